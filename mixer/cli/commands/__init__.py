"""One module per `mixer` sub-command; each exposes `command`."""
