"""Models: loading a model by name or file (``load``), mending Keras 2 files (``legacy``), the keras.applications
zoo (``zoo``), replaying a model's graph to reach every layer, nested ones too (``graph``), and class names
(``labels``)."""
