"""Engines: whole runs from a model and files to pictures, as the CLI calls them. Here (``runs``, ``gradcam_run``,
``maximize_run``, ``report``), on a Ray cluster (``ray_engine``), or during training (``callback``)."""
