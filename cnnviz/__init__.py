"""cnnviz: see what a convolutional neural network has learned.

The public API; the ``cnnviz`` command is one user of it. TensorFlow is imported only when a function needs it;
:class:`VisualizeCallback` subclasses a Keras class, so ``cnnviz.VisualizeCallback`` imports Keras when it is
first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cnnviz._version import __version__

#: Where each public name lives. They are imported on first use (PEP 562), so that ``import cnnviz.cli`` (and
#: ``cnnviz --help``) loads only what the command line needs: not numpy's, matplotlib's or Keras's import time.
_PUBLIC = {
    "Batch": "cnnviz.inputs.reader",
    "CnnvizError": "cnnviz.errors",
    "ConvLayer": "cnnviz.models.graph",
    "EngineReading": "cnnviz.engines.dispatch",
    "EngineSettings": "cnnviz.engines.dispatch",
    "Explanation": "cnnviz.methods.gradcam",
    "Extractor": "cnnviz.methods.extract",
    "FeedSettings": "cnnviz.inputs.reader",
    "FilterOptions": "cnnviz.engines.filters_run",
    "FilterStats": "cnnviz.methods.stats",
    "GradCam": "cnnviz.methods.gradcam",
    "GradcamOptions": "cnnviz.engines.gradcam_run",
    "GradcamResult": "cnnviz.engines.gradcam_run",
    "Header": "cnnviz.draw.render",
    "ImageLoadError": "cnnviz.errors",
    "LayerNotFound": "cnnviz.errors",
    "LayerStats": "cnnviz.methods.stats",
    "MapOptions": "cnnviz.engines.featuremaps_run",
    "MaximizeOptions": "cnnviz.methods.maximize",
    "MaximizeResult": "cnnviz.engines.maximize_run",
    "MaximizeRunOptions": "cnnviz.engines.maximize_run",
    "Maximized": "cnnviz.methods.maximize",
    "Maximizer": "cnnviz.methods.maximize",
    "Method": "cnnviz.methods.shape",
    "ModelLoadError": "cnnviz.errors",
    "ModelRef": "cnnviz.engines.naming",
    "ModelRunError": "cnnviz.errors",
    "Naming": "cnnviz.engines.contract",
    "NotAConvLayer": "cnnviz.errors",
    "OptionError": "cnnviz.errors",
    "OutputError": "cnnviz.errors",
    "Picture": "cnnviz.draw.render",
    "Reader": "cnnviz.inputs.reader",
    "ReadingSettings": "cnnviz.inputs.reader",
    "ReportOptions": "cnnviz.engines.report_run",
    "ReportResult": "cnnviz.engines.report_run",
    "RunResult": "cnnviz.engines.contract",
    "Scanned": "cnnviz.methods.shape",
    "StatsOptions": "cnnviz.engines.stats_run",
    "StatsQuery": "cnnviz.methods.stats",
    "StatsResult": "cnnviz.engines.stats_run",
    "Target": "cnnviz.methods.gradcam",
    "TopImages": "cnnviz.methods.top",
    "TopK": "cnnviz.methods.top",
    "TopOptions": "cnnviz.engines.top_run",
    "TopQuery": "cnnviz.methods.top",
    "TopResult": "cnnviz.engines.top_run",
    "UnsupportedLayer": "cnnviz.errors",
    "UnsupportedModel": "cnnviz.errors",
    "ViewSettings": "cnnviz.engines.contract",
    "VisualizeCallback": "cnnviz.engines.callback",
    "WeightsDownloadError": "cnnviz.errors",
    "animate": "cnnviz.output.animate",
    "animate_folder": "cnnviz.output.animate",
    "build_extractor": "cnnviz.methods.extract",
    "conv_layers": "cnnviz.models.graph",
    "feature_map_grid": "cnnviz.draw.render",
    "feature_maps": "cnnviz.methods.extract",
    "filter_grid": "cnnviz.draw.render",
    "filter_stats": "cnnviz.methods.stats",
    "gradcam": "cnnviz.methods.gradcam",
    "layer_kernels": "cnnviz.methods.filters",
    "load_image": "cnnviz.inputs.images",
    "load_model": "cnnviz.models.load",
    "maximize": "cnnviz.methods.maximize",
    "overlay_grid": "cnnviz.draw.overlay",
    "receptive_field": "cnnviz.models.receptive",
    "render_feature_maps": "cnnviz.engines.featuremaps_run",
    "render_filters": "cnnviz.engines.filters_run",
    "render_gradcam": "cnnviz.engines.gradcam_run",
    "render_maximize": "cnnviz.engines.maximize_run",
    "render_top": "cnnviz.engines.top_run",
    "run_stats": "cnnviz.engines.stats_run",
    "save_png": "cnnviz.output.files",
    "scan_all": "cnnviz.methods.shape",
    "scan_inputs": "cnnviz.engines.dispatch",
    "scan_top": "cnnviz.methods.top",
    "write_report": "cnnviz.engines.report_run",
}

if TYPE_CHECKING:  # for type checkers and editors, which do not run __getattr__
    from cnnviz.draw.overlay import overlay_grid
    from cnnviz.draw.render import Header, Picture, feature_map_grid, filter_grid
    from cnnviz.engines.callback import VisualizeCallback
    from cnnviz.engines.contract import Naming, RunResult, ViewSettings
    from cnnviz.engines.dispatch import EngineReading, EngineSettings, scan_inputs
    from cnnviz.engines.featuremaps_run import MapOptions, render_feature_maps
    from cnnviz.engines.filters_run import FilterOptions, render_filters
    from cnnviz.engines.gradcam_run import GradcamOptions, GradcamResult, render_gradcam
    from cnnviz.engines.maximize_run import MaximizeResult, MaximizeRunOptions, render_maximize
    from cnnviz.engines.naming import ModelRef
    from cnnviz.engines.report_run import ReportOptions, ReportResult, write_report
    from cnnviz.engines.stats_run import StatsOptions, StatsResult, run_stats
    from cnnviz.engines.top_run import TopOptions, TopResult, render_top
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
    from cnnviz.inputs.reader import Batch, FeedSettings, Reader, ReadingSettings
    from cnnviz.methods.extract import Extractor, build_extractor, feature_maps
    from cnnviz.methods.filters import layer_kernels
    from cnnviz.methods.gradcam import Explanation, GradCam, Target, gradcam
    from cnnviz.methods.maximize import Maximized, MaximizeOptions, Maximizer, maximize
    from cnnviz.methods.shape import Method, Scanned, scan_all
    from cnnviz.methods.stats import FilterStats, LayerStats, StatsQuery, filter_stats
    from cnnviz.methods.top import TopImages, TopK, TopQuery, scan_top
    from cnnviz.models.graph import ConvLayer, conv_layers
    from cnnviz.models.load import load_model
    from cnnviz.models.receptive import receptive_field
    from cnnviz.output.animate import animate, animate_folder
    from cnnviz.output.files import save_png


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'cnnviz' has no attribute '{name}'")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Batch",
    "CnnvizError",
    "ConvLayer",
    "EngineReading",
    "EngineSettings",
    "Explanation",
    "Extractor",
    "FeedSettings",
    "FilterOptions",
    "FilterStats",
    "GradCam",
    "GradcamOptions",
    "GradcamResult",
    "Header",
    "ImageLoadError",
    "LayerNotFound",
    "LayerStats",
    "MapOptions",
    "MaximizeOptions",
    "MaximizeResult",
    "MaximizeRunOptions",
    "Maximized",
    "Maximizer",
    "Method",
    "ModelLoadError",
    "ModelRef",
    "ModelRunError",
    "Naming",
    "NotAConvLayer",
    "OptionError",
    "OutputError",
    "Picture",
    "Reader",
    "ReadingSettings",
    "ReportOptions",
    "ReportResult",
    "RunResult",
    "Scanned",
    "StatsOptions",
    "StatsQuery",
    "StatsResult",
    "Target",
    "TopImages",
    "TopK",
    "TopOptions",
    "TopQuery",
    "TopResult",
    "UnsupportedLayer",
    "UnsupportedModel",
    "ViewSettings",
    "VisualizeCallback",
    "WeightsDownloadError",
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
    "receptive_field",
    "render_feature_maps",
    "render_filters",
    "render_gradcam",
    "render_maximize",
    "render_top",
    "run_stats",
    "save_png",
    "scan_all",
    "scan_inputs",
    "scan_top",
    "write_report",
    "__version__",
]
