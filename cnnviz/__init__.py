"""cnnviz: see what a convolutional neural network has learned.

The public API; the ``cnnviz`` command is one user of it. TensorFlow is imported only when a function needs it;
:class:`VisualizeCallback` subclasses a Keras class, so ``cnnviz.VisualizeCallback`` imports Keras when it is
first used.
"""

from typing import Any

from cnnviz._version import __version__
from cnnviz.draw.overlay import overlay_grid
from cnnviz.draw.render import Header, Picture, feature_map_grid, filter_grid
from cnnviz.engines.featuremaps_run import MapOptions, render_feature_maps
from cnnviz.engines.filters_run import FilterOptions, render_filters
from cnnviz.engines.report_run import write_report
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
from cnnviz.inputs.images import load_image
from cnnviz.methods.extract import Extractor, build_extractor, feature_maps
from cnnviz.methods.filters import layer_kernels
from cnnviz.methods.gradcam import Explanation, GradCam, gradcam
from cnnviz.methods.maximize import Maximized, MaximizeOptions, Maximizer, maximize
from cnnviz.methods.stats import LayerStats, filter_stats
from cnnviz.models.graph import ConvLayer, conv_layers
from cnnviz.models.load import load_model
from cnnviz.output.animate import animate, animate_folder
from cnnviz.output.files import save_png


def __getattr__(name: str) -> Any:
    """Import the Keras callback on first use, so that ``import cnnviz`` (and the CLI) stays free of Keras."""
    if name == "VisualizeCallback":
        from cnnviz.engines.callback import VisualizeCallback

        return VisualizeCallback
    raise AttributeError(f"module 'cnnviz' has no attribute '{name}'")


__all__ = [
    "CnnvizError",
    "ConvLayer",
    "Explanation",
    "Extractor",
    "FilterOptions",
    "GradCam",
    "Header",
    "ImageLoadError",
    "LayerNotFound",
    "LayerStats",
    "MapOptions",
    "MaximizeOptions",
    "Maximized",
    "Maximizer",
    "ModelLoadError",
    "ModelRunError",
    "NotAConvLayer",
    "OptionError",
    "OutputError",
    "Picture",
    "UnsupportedLayer",
    "VisualizeCallback",
    "UnsupportedModel",
    "WeightsDownloadError",
    "__version__",
    "animate",
    "animate_folder",
    "build_extractor",
    "conv_layers",
    "feature_map_grid",
    "feature_maps",
    "filter_grid",
    "filter_stats",
    "gradcam",
    "layer_kernels",
    "load_image",
    "load_model",
    "maximize",
    "overlay_grid",
    "render_feature_maps",
    "render_filters",
    "save_png",
    "write_report",
]
