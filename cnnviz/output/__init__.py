"""Output: the files on disk. Atomic writes, folders and the manifest (``files``), GIFs (``animate``), statistics
tables and charts (``stats_report``), TensorBoard summaries (``summaries``)."""
