"""The corpus's Arrow parts: the writer and the reader of their bytes (`ipc`), the model layout
kept between processes (`layout_cache`), and pyarrow's full validation for any other part
(`pyarrow_views`)."""
