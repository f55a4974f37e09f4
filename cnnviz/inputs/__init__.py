"""Inputs: finding input files (``gather``), reading and fitting images (``images``), preparing pixels for a model
(``preprocess``), and reading ahead while the model runs (``pipeline``)."""
