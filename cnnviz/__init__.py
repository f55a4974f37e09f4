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
    "EvaluateOptions": "cnnviz.runs.evaluate",
    "EvaluationResult": "cnnviz.runs.evaluate",
    "evaluate_images": "cnnviz.runs.evaluate",
    "EvaluationSettings": "cnnviz.methods.evaluation",
    "Evaluator": "cnnviz.methods.evaluation",
    "AttributeOptions": "cnnviz.runs.attribute",
    "AttributionResult": "cnnviz.runs.attribute",
    "AttributionSettings": "cnnviz.methods.attribution",
    "Attributions": "cnnviz.methods.attribution",
    "Attributor": "cnnviz.methods.attribution",
    "Batch": "cnnviz.inputs.reader",
    "CnnvizError": "cnnviz.errors",
    "ConvLayer": "cnnviz.models.graph",
    "EngineReading": "cnnviz.engines.dispatch",
    "EngineSettings": "cnnviz.engines.dispatch",
    "Explanation": "cnnviz.methods.gradcam",
    "ExploreOptions": "cnnviz.explorer.options",
    "Extractor": "cnnviz.methods.extract",
    "FeedSettings": "cnnviz.inputs.reader",
    "FilterOptions": "cnnviz.runs.filters",
    "FilterStats": "cnnviz.methods.stats",
    "GradCam": "cnnviz.methods.gradcam",
    "GradcamOptions": "cnnviz.runs.attribute",
    "GradcamResult": "cnnviz.runs.attribute",
    "Header": "cnnviz.draw.render",
    "ImageLoadError": "cnnviz.errors",
    "LayerNotFound": "cnnviz.errors",
    "LayerStats": "cnnviz.methods.stats",
    "MapOptions": "cnnviz.runs.featuremaps",
    "MaximizeOptions": "cnnviz.methods.maximize",
    "MaximizeResult": "cnnviz.runs.maximize",
    "MaximizeRunOptions": "cnnviz.runs.maximize",
    "Maximized": "cnnviz.methods.maximize",
    "Maximizer": "cnnviz.methods.maximize",
    "Method": "cnnviz.methods.shape",
    "ModelLoadError": "cnnviz.errors",
    "ModelRef": "cnnviz.engines.naming",
    "ModelRunError": "cnnviz.errors",
    "Naming": "cnnviz.runs.contract",
    "NotAConvLayer": "cnnviz.errors",
    "OptionError": "cnnviz.errors",
    "OutputError": "cnnviz.errors",
    "Picture": "cnnviz.draw.render",
    "Reader": "cnnviz.inputs.reader",
    "ReadingSettings": "cnnviz.inputs.reader",
    "ReportOptions": "cnnviz.runs.report",
    "ReportResult": "cnnviz.runs.report",
    "RunResult": "cnnviz.runs.contract",
    "Scanned": "cnnviz.methods.shape",
    "StatsOptions": "cnnviz.runs.stats",
    "StatsQuery": "cnnviz.methods.stats",
    "StatsResult": "cnnviz.runs.stats",
    "Target": "cnnviz.methods.gradcam",
    "TargetModel": "cnnviz.methods.target",
    "TopImages": "cnnviz.methods.top",
    "TopK": "cnnviz.methods.top",
    "TopOptions": "cnnviz.runs.top",
    "TopQuery": "cnnviz.methods.top",
    "TopResult": "cnnviz.runs.top",
    "UnsupportedLayer": "cnnviz.errors",
    "UnsupportedModel": "cnnviz.errors",
    "ViewSettings": "cnnviz.draw.view",
    "MapView": "cnnviz.draw.view",
    "FilterView": "cnnviz.draw.view",
    "VisualizeCallback": "cnnviz.runs.callback",
    "CallbackOptions": "cnnviz.runs.callback",
    "WeightsDownloadError": "cnnviz.errors",
    "animate": "cnnviz.output.animate",
    "animate_folder": "cnnviz.output.animate",
    "attribute": "cnnviz.methods.attribution",
    "build_extractor": "cnnviz.methods.extract",
    "conv_layers": "cnnviz.models.graph",
    "explore": "cnnviz.explorer.serve",
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
    "render_attributions": "cnnviz.runs.attribute",
    "render_feature_maps": "cnnviz.runs.featuremaps",
    "render_filters": "cnnviz.runs.filters",
    "render_gradcam": "cnnviz.runs.attribute",
    "render_maximize": "cnnviz.runs.maximize",
    "render_top": "cnnviz.runs.top",
    "run_stats": "cnnviz.runs.stats",
    "save_png": "cnnviz.output.files",
    "scan_all": "cnnviz.methods.shape",
    "scan_inputs": "cnnviz.engines.dispatch",
    "scan_top": "cnnviz.methods.top",
    "write_report": "cnnviz.runs.report",
    "CompareOptions": "cnnviz.runs.compare",
    "CompareResult": "cnnviz.runs.compare",
    "compare_models": "cnnviz.runs.compare",
    "run_compare": "cnnviz.runs.compare",
    "Comparison": "cnnviz.methods.compare",
    "linear_cka": "cnnviz.methods.cka",
    "AtlasOptions": "cnnviz.runs.atlas",
    "AtlasResult": "cnnviz.runs.atlas",
    "build_atlas": "cnnviz.runs.atlas",
    "UnitWork": "cnnviz.methods.units",
    "run_units": "cnnviz.engines.units",
}

if TYPE_CHECKING:  # for type checkers and editors, which do not run __getattr__
    from cnnviz.draw.overlay import overlay_grid
    from cnnviz.draw.render import Header, Picture, feature_map_grid, filter_grid
    from cnnviz.draw.view import FilterView, MapView, ViewSettings
    from cnnviz.engines.dispatch import EngineReading, EngineSettings, scan_inputs
    from cnnviz.engines.naming import ModelRef
    from cnnviz.engines.units import run_units
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
    from cnnviz.explorer.options import ExploreOptions
    from cnnviz.explorer.serve import explore
    from cnnviz.inputs.images import load_image
    from cnnviz.inputs.reader import Batch, FeedSettings, Reader, ReadingSettings
    from cnnviz.methods.attribution import Attributions, AttributionSettings, Attributor, attribute
    from cnnviz.methods.cka import linear_cka
    from cnnviz.methods.compare import Comparison
    from cnnviz.methods.evaluation import EvaluationSettings, Evaluator
    from cnnviz.methods.extract import Extractor, build_extractor, feature_maps
    from cnnviz.methods.filters import layer_kernels
    from cnnviz.methods.gradcam import Explanation, GradCam, Target, gradcam
    from cnnviz.methods.maximize import Maximized, MaximizeOptions, Maximizer, maximize
    from cnnviz.methods.shape import Method, Scanned, scan_all
    from cnnviz.methods.stats import FilterStats, LayerStats, StatsQuery, filter_stats
    from cnnviz.methods.target import TargetModel
    from cnnviz.methods.top import TopImages, TopK, TopQuery, scan_top
    from cnnviz.methods.units import UnitWork
    from cnnviz.models.graph import ConvLayer, conv_layers
    from cnnviz.models.load import load_model
    from cnnviz.models.receptive import receptive_field
    from cnnviz.output.animate import animate, animate_folder
    from cnnviz.output.files import save_png
    from cnnviz.runs.atlas import AtlasOptions, AtlasResult, build_atlas
    from cnnviz.runs.attribute import (
        AttributeOptions,
        AttributionResult,
        GradcamOptions,
        GradcamResult,
        render_attributions,
        render_gradcam,
    )
    from cnnviz.runs.callback import CallbackOptions, VisualizeCallback
    from cnnviz.runs.compare import CompareOptions, CompareResult, compare_models, run_compare
    from cnnviz.runs.contract import Naming, RunResult
    from cnnviz.runs.evaluate import EvaluateOptions, EvaluationResult, evaluate_images
    from cnnviz.runs.featuremaps import MapOptions, render_feature_maps
    from cnnviz.runs.filters import FilterOptions, render_filters
    from cnnviz.runs.maximize import MaximizeResult, MaximizeRunOptions, render_maximize
    from cnnviz.runs.report import ReportOptions, ReportResult, write_report
    from cnnviz.runs.stats import StatsOptions, StatsResult, run_stats
    from cnnviz.runs.top import TopOptions, TopResult, render_top


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'cnnviz' has no attribute '{name}'")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


#: Every public name: the version and the names above (what the API reference lists).
__all__ = ["__version__", *_PUBLIC]
