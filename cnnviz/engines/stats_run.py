"""The statistics run, from a model and image files to per-filter statistics, charts and tables: what
``cnnviz stats`` calls. The Ray engine's :func:`cnnviz.engines.ray_engine.ray_stats` takes the same options and
finishes through :func:`stats_result`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnviz.engines.contract import Naming, Progress, ReadingSettings, RunResult
from cnnviz.errors import CnnvizError, OptionError
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.methods.stats import DEFAULT_RARE, LayerStats, filter_stats
from cnnviz.output.stats_report import write_stats


@dataclass(frozen=True)
class StatsOptions(Naming, ReadingSettings):
    """What ``stats`` measures and writes, besides the shared parts (:class:`cnnviz.engines.contract.Naming`,
    ``ReadingSettings``).

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

    def __post_init__(self) -> None:
        self.check_reading()
        if not 0.0 <= self.rare <= 1.0:
            raise OptionError(f"rare is a share of positions from 0 to 1, got {self.rare}")


@dataclass
class StatsResult(RunResult):
    """What a statistics run did: :class:`cnnviz.engines.contract.RunResult`, and the statistics per layer over
    the images that could be read."""

    layers: list[LayerStats] = field(default_factory=list)


def run_stats(
    model: Any,
    images: Sequence[str | os.PathLike[str] | Input],
    out_dir: str | os.PathLike[str],
    options: StatsOptions | None = None,
    progress: Progress | None = None,
) -> StatsResult:
    """Per-filter activation statistics over image files (:func:`cnnviz.methods.stats.filter_stats`), with a chart
    per layer written to ``out_dir/stats_<layer>.png`` and the CSV and JSON tables where ``options`` asks.
    ``progress`` is called with (images just done, images in the run).

    Raises:
        OptionError: no images, or a name that finds none.
        LayerNotFound, NotAConvLayer, UnsupportedModel: before any image is read.
    """
    options = options if options is not None else StatsOptions()
    inputs = gather_inputs(images)
    run = filter_stats(
        model,
        inputs,
        options.layers,
        threshold=options.threshold,
        preprocess=options.preprocess,
        batch_size=options.batch_size,
        size=options.size,
        fit=options.fit,
        progress=None if progress is None else (lambda done: progress(done, len(inputs))),
        **options.choice,
    )
    label = options.label_of(model)
    return stats_result(run.layers, run.failures, len(inputs), out_dir, options, label, run.notes, run.precision)


def stats_result(
    layers: list[LayerStats],
    failures: list[tuple[str, CnnvizError]],
    inputs: int,
    out_dir: str | os.PathLike[str],
    options: StatsOptions,
    label: str,
    notes: Sequence[str],
    precision: str,
) -> StatsResult:
    """Write the charts and tables of finished statistics and say what was done, for either engine: ``notes`` and
    ``precision`` are the run's extractor's (:meth:`cnnviz.methods.extract.Extractor.run_notes` with
    :data:`cnnviz.methods.stats.ROUNDED_VERDICTS`, :attr:`~cnnviz.methods.extract.Extractor.precision`)."""
    written = write_stats(
        layers, out_dir, label, options.rare, charts=options.charts, csv_path=options.csv, json_path=options.json
    )
    result = StatsResult(written=written, failures=failures, fit=options.fit, inputs=inputs, layers=layers)
    result.notes.extend(notes)
    result.precision = precision
    return result
