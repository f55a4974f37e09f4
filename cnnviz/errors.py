"""The exceptions cnnviz raises. Each message says what was expected, what was found and what to do next."""

from __future__ import annotations


class CnnvizError(Exception):
    """Base class of every error cnnviz raises on purpose."""


class ModelLoadError(CnnvizError):
    """A model name or file could not be turned into a Keras model."""


class WeightsDownloadError(ModelLoadError):
    """Pretrained weights could not be fetched from the internet."""


class LayerNotFound(CnnvizError):
    """A layer name does not exist in the model."""


class NotAConvLayer(CnnvizError):
    """A layer exists but is not a convolution."""


class UnsupportedLayer(CnnvizError):
    """A convolution that a command cannot render (for example Conv3D kernels)."""


class UnsupportedModel(CnnvizError):
    """A model whose graph cannot be walked (subclassed models, several inputs)."""


class ImageLoadError(CnnvizError):
    """An image file could not be read or decoded."""


class OptionError(CnnvizError):
    """An option value that cannot be used (a bad slice, an unknown colormap, ...)."""
