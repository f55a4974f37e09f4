"""cnnviz: see what a convolutional neural network has learned.

The public API; the ``cnnviz`` command is one user of it. TensorFlow is imported only when a function needs it.
"""

from cnnviz.errors import (
    CnnvizError,
    ImageLoadError,
    LayerNotFound,
    ModelLoadError,
    ModelRunError,
    NotAConvLayer,
    OptionError,
    OutputError,
    UnsupportedLayer,
    UnsupportedModel,
    WeightsDownloadError,
)
from cnnviz.extract import Extractor, build_extractor, feature_maps
from cnnviz.filters import layer_kernels
from cnnviz.graph import ConvLayer, conv_layers
from cnnviz.images import load_image
from cnnviz.models import load_model
from cnnviz.output import save_png
from cnnviz.render import Header, Picture, feature_map_grid, filter_grid
from cnnviz.runs import FilterOptions, MapOptions, render_feature_maps, render_filters
from cnnviz.stats import LayerStats, filter_stats

__version__ = "0.1.0"

__all__ = [
    "CnnvizError",
    "ConvLayer",
    "Extractor",
    "FilterOptions",
    "Header",
    "ImageLoadError",
    "LayerNotFound",
    "LayerStats",
    "MapOptions",
    "ModelLoadError",
    "ModelRunError",
    "NotAConvLayer",
    "OptionError",
    "OutputError",
    "Picture",
    "UnsupportedLayer",
    "UnsupportedModel",
    "WeightsDownloadError",
    "__version__",
    "build_extractor",
    "conv_layers",
    "feature_map_grid",
    "feature_maps",
    "filter_grid",
    "filter_stats",
    "layer_kernels",
    "load_image",
    "load_model",
    "render_feature_maps",
    "render_filters",
    "save_png",
]
