"""The toolkit's version, recorded in every run.json (and shown by `mixer --version` from the
installed metadata). Here, low in the layers, so no sub-package imports the package root."""
__version__ = "0.1.0"
