"""The statistics run, from a model and image files to per-filter statistics, charts and tables: what
``cnnviz stats`` calls, on the engine its options choose (:func:`cnnviz.engines.dispatch.scan_inputs`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnviz.engines.dispatch import scan_inputs
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.methods.stats import DEFAULT_RARE, FilterStats, LayerStats, StatsQuery
from cnnviz.output.files import Folder
from cnnviz.output.stats_report import write_stats
from cnnviz.runs.contract import EngineReading, Naming, Progress, RunResult


@dataclass(frozen=True)
class StatsOptions(Naming, EngineReading):
    """What ``stats`` measures and writes, besides the shared parts (:class:`cnnviz.runs.contract.Naming`,
    :class:`cnnviz.engines.dispatch.EngineReading`: how images are read, and where the run runs).

    Attributes:
        layers: conv layer names, paths or patterns; all conv layers when None.
        threshold: what counts as active in layers without a ReLU of their own.
        rare: a filter active at fewer than this share of positions (0..1), but not dead, is rarely active.
        charts: write a bar chart per layer, ``stats_<layer>.png``.
        csv: write one row per filter as CSV to this file.
        json: write one object per filter as JSON to this file.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    layers: Sequence[str] | None = None
    threshold: float = 0.0
    rare: float = DEFAULT_RARE
    charts: bool = True
    csv: str | os.PathLike[str] | None = None
    json: str | os.PathLike[str] | None = None

    @property
    def writes_folder(self) -> bool:
        """Whether the run writes into its output folder (the charts)."""
        return self.charts

    def __post_init__(self) -> None:
        self.check_engine_reading()
        if not 0.0 <= self.rare <= 1.0:
            raise OptionError(f"rare is a share of positions from 0 to 1, got {self.rare}")


@dataclass
class StatsResult(RunResult):
    """What a statistics run did: :class:`cnnviz.runs.contract.RunResult`, and the statistics per layer over
    the images that could be read."""

    layers: list[LayerStats] = field(default_factory=list)


def run_stats(
    model: Any, images: Images, out_dir: Folder, options: StatsOptions | None = None, progress: Progress | None = None
) -> StatsResult:
    """Per-filter activation statistics over image files (:class:`cnnviz.methods.stats.FilterStats`), with a chart
    per layer written to ``out_dir/stats_<layer>.png`` and the CSV and JSON tables where ``options`` asks.
    ``model`` is a Keras model, or a :class:`cnnviz.engines.naming.ModelRef` (which the Ray engine needs: its
    workers load it). ``progress`` is called with (images just done, images in the run).

    Raises:
        OptionError: no images, or a name that finds none.
        LayerNotFound, NotAConvLayer, UnsupportedModel: before any image is read.
    """
    options = options if options is not None else StatsOptions()
    inputs = gather_inputs(images)
    if not inputs:
        raise OptionError("no images given")
    query = StatsQuery(options.layers, options.threshold)
    scanned = scan_inputs(
        FilterStats,
        query,
        model,
        inputs,
        options,
        None if progress is None else (lambda done: progress(done, len(inputs))),
    )
    layers = list(scanned.partial.values()) if scanned.partial is not None else []
    written = write_stats(
        layers,
        out_dir,
        options.label_of(model),
        options.rare,
        charts=options.charts,
        csv_path=options.csv,
        json_path=options.json,
    )
    result = StatsResult(written=written, failures=scanned.failures, fit=options.fit, inputs=len(inputs), layers=layers)
    result.notes.extend(scanned.notes)
    result.precision = scanned.precision
    return result
