"""The ``compare`` run: two models over the same images, layer by layer (linear CKA), and where they share an
architecture (a fine-tuned model and its base, two checkpoints) what changed per unit.

One scan (:class:`cnnviz.methods.compare.Comparison`, on the engine the options choose) runs each batch through
both models; then this run computes CKA from the merged sums, the per-unit drift of the matched layers, and draws:
``cka.png`` (the heatmap), ``drift.png`` (per matched layer) and ``units_<layer>.png`` (the units that moved most,
each model's ``maximize`` picture and top patches side by side).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.render import Picture
from cnnviz.engines.dispatch import scan_inputs
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.inputs.reader import Reader, ReadingSettings
from cnnviz.methods.cka import DEBIASED_MIN_SAMPLES, ESTIMATORS, FEATURES
from cnnviz.methods.compare import (
    DEFAULT_GRID,
    SIDES,
    ComparePartial,
    CompareQuery,
    Comparison,
    relative_change,
    top_overlap,
)
from cnnviz.methods.top import DEFAULT_K, TopScan
from cnnviz.output.compare_charts import cka_chart, drift_chart
from cnnviz.output.files import Folder, safe_name, save_bytes, save_png
from cnnviz.output.manifest import update_manifest
from cnnviz.runs.contract import EngineReading, Naming, Progress, RunResult, counted

#: The columns of --csv, and the keys of each --json record.
FIELDS = ("layer_a", "layer_b", "cka")
#: The columns of ``units.csv``: per unit of a layer both models have.
UNIT_FIELDS = ("layer", "unit", "weight_change", "correlation", "top_overlap")
#: The units drawn as pairs unless asked otherwise.
DEFAULT_PAIRS = 4


@dataclass(frozen=True)
class CompareOptions(Naming, EngineReading):
    """What ``compare`` computes and writes, besides the shared parts (:class:`cnnviz.engines.naming.Naming` names
    the first model; :class:`cnnviz.engines.dispatch.EngineReading`: how images are read, and where the scan runs).

    Attributes:
        other: the second model: a Keras model, or a :class:`cnnviz.engines.naming.ModelRef` (the Ray engine needs
            one: its workers load it). CKA compares two models on the same samples, so it takes the pixels the
            first model read (with its own preprocessing) wherever it can: the same or a free input size; a model
            of another fixed size reads each image again, from its path, at its size.
        other_label: the second model's name in pictures and records; its ``ModelRef`` label or Keras name when
            None.
        layers: the first model's conv layers (names, paths or patterns); all when None.
        other_layers: the second model's; all when None.
        features: how a conv layer's maps become features. ``positions`` (the default): each layer's maps
            average-pooled to ``grid`` x ``grid`` cells, each cell of each image a sample. Any two layers then pair
            up cell by cell, whatever their map sizes; 64 samples an image give a settled value from a few dozen
            images; the sums are channels x channels whatever the number of images. ``mean``: each channel's mean
            over the whole map, one sample per image; it needs hundreds of images, and the means of every layer
            follow each image's overall colour and brightness (on the bundled model every layer of A had the same
            CKA with a given layer of B, to 0.01).
        grid: for ``positions``, the cells a side (fewer where a layer's map is smaller).
        estimator: ``debiased`` (the unbiased HSIC estimator, exact over minibatches; the default) or ``biased``
            (Kornblith et al. 2019's formula).
        k: top images kept per unit of a shared layer, for the overlap of the two models' top images.
        pairs: the units that moved most (lowest correlation of their maps), drawn as pairs; 0 for none.
        json: write the ``{layer_a, layer_b, cka}`` records as JSON to this file.
        csv: write them as CSV to this file.
        charts: write the pictures.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    other: Any = None
    other_label: str | None = None
    layers: Sequence[str] | None = None
    other_layers: Sequence[str] | None = None
    features: str = FEATURES[1]
    grid: int = DEFAULT_GRID
    estimator: str = ESTIMATORS[0]
    k: int = DEFAULT_K
    pairs: int = DEFAULT_PAIRS
    json: str | os.PathLike[str] | None = None
    csv: str | os.PathLike[str] | None = None
    charts: bool = True

    def __post_init__(self) -> None:
        self.check_engine_reading()
        if self.other is None:
            raise OptionError("compare needs a second model (`other`)")
        if self.estimator not in ESTIMATORS:
            raise OptionError(f"unknown estimator '{self.estimator}'; choose one of: {', '.join(ESTIMATORS)}")
        if self.pairs < 0:
            raise OptionError(f"pairs must be 0 or more, got {self.pairs}")
        if self.engine == "ray" and not isinstance(self.other, ModelRef):
            raise OptionError("the Ray engine's workers load both models themselves: give the second as a ModelRef")
        self.query()  # checks features and k

    def query(self) -> CompareQuery:
        """What the scan computes."""
        other = self.other.resolved() if isinstance(self.other, ModelRef) and self.engine == "ray" else self.other
        return CompareQuery(other, self.layers, self.other_layers, self.features, self.grid, self.k)

    def label_of_other(self) -> str:
        """The second model's name in pictures and records."""
        if self.other_label:
            return self.other_label
        return self.other.label if isinstance(self.other, ModelRef) else str(getattr(self.other, "name", "model"))


@dataclass
class LayerDrift:
    """What changed in a layer both models have, per unit (``units`` long arrays).

    Attributes:
        layer: its path.
        cka: its CKA with its twin.
        weight_change: ``||w_b - w_a|| / ||w_a||`` of each unit's kernel.
        correlation: the Pearson correlation of each unit's maps in the two models over every position of every
            image (NaN where a map is constant).
        top_overlap: the share of each unit's top ``k`` images in the first model that are among its top ``k`` in
            the second.
    """

    layer: str
    cka: float
    weight_change: np.ndarray
    correlation: np.ndarray
    top_overlap: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        """One record per unit (:data:`UNIT_FIELDS`)."""
        return [
            {
                "layer": self.layer,
                "unit": unit,
                "weight_change": _number(self.weight_change[unit]),
                "correlation": _number(self.correlation[unit]),
                "top_overlap": _number(self.top_overlap[unit]),
            }
            for unit in range(len(self.weight_change))
        ]


@dataclass
class CompareResult(RunResult):
    """What a comparison found: :class:`cnnviz.runs.contract.RunResult`, and

    Attributes:
        label_a: the first model's name; label_b: the second's.
        layers_a: the first model's compared layers (the CKA matrix's rows); layers_b: the second's (its columns).
        cka: the CKA matrix, ``(len(layers_a), len(layers_b))``; NaN where a layer's features were constant.
        estimator: the HSIC estimator; features: how maps became features.
        samples: images compared (CKA's samples with ``features="mean"``).
        drift: per layer both models have (same path, same weight shapes), what changed per unit.
        moved: the units that moved most, drawn as pairs: (layer, unit).
    """

    label_a: str = ""
    label_b: str = ""
    layers_a: list[str] = field(default_factory=list)
    layers_b: list[str] = field(default_factory=list)
    cka: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    estimator: str = ESTIMATORS[0]
    features: str = FEATURES[1]
    samples: int = 0
    drift: list[LayerDrift] = field(default_factory=list)
    moved: list[tuple[str, int]] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        """One ``{layer_a, layer_b, cka}`` record per pair of layers (``cka`` None where undefined)."""
        return [
            {"layer_a": row, "layer_b": col, "cka": _number(self.cka[i, j])}
            for i, row in enumerate(self.layers_a)
            for j, col in enumerate(self.layers_b)
        ]

    @property
    def measure(self) -> str:
        """How the layers were compared: ``linear CKA (debiased, positions features) over 48 images``."""
        return f"linear CKA ({self.estimator}, {self.features} features) over {self.samples} images"

    @property
    def heading(self) -> str:
        """What was compared, and how, in a line."""
        return f"{self.measure}: {self.label_a} vs {self.label_b}"

    def best_matches(self) -> list[tuple[str, str, str]]:
        """Per layer of the first model: its name, its CKA with the second's layer of the same path (``-`` where
        there is none) and the second's layer that matches it best, with its CKA, as text."""
        rows = []
        for i, layer in enumerate(self.layers_a):
            row = self.cka[i]
            same = row[self.layers_b.index(layer)] if layer in self.layers_b else np.nan
            if np.isfinite(row).any():
                j = int(np.nanargmax(row))
                best = f"{self.layers_b[j]} ({row[j]:.3f})"
            else:
                best = "undefined (constant features)"
            rows.append((layer, f"{same:.3f}" if np.isfinite(same) else "-", best))
        return rows

    def table(self) -> str:
        """:attr:`heading`, then a line per layer of the first model (:meth:`best_matches`)."""
        rows = self.best_matches()
        width = max([len(layer) for layer, _, _ in rows] + [7])
        lines = [self.heading, f"{'layer A':<{width}}  {'same B':>7}  best match in B"]
        lines += [f"{layer:<{width}}  {same:>7}  {best}" for layer, same, best in rows]
        return "\n".join(lines)


def compare_models(
    model: Any, images: Images, options: CompareOptions, progress: Progress | None = None
) -> CompareResult:
    """Compare ``model`` with ``options.other`` over image files and return the findings as arrays (the CKA
    matrix, each shared layer's drift), writing nothing: the Python API's comparison.

    Raises:
        OptionError: no images, too few for the estimator, or a name that finds no layer.
        LayerNotFound, NotAConvLayer, UnsupportedModel: before any image is read.
    """
    return _compare(model, images, options, progress, exclude=None).result


def run_compare(
    model: Any, images: Images, out_dir: Folder, options: CompareOptions, progress: Progress | None = None
) -> CompareResult:
    """Compare ``model`` with ``options.other`` over image files (see the module) and write the pictures into
    ``out_dir``, ``units.csv`` where the two share layers, the records where ``options`` asks, and the run in the
    manifest. ``progress`` is called with (images just scanned, images in the run).

    Raises:
        OptionError: no images, too few for the estimator, or a name that finds no layer.
        LayerNotFound, NotAConvLayer, UnsupportedModel: before any image is read.
    """
    done = _compare(model, images, options, progress, exclude=Path(out_dir))
    result = done.result
    _write(done, Path(out_dir), options)
    about = options.about(done.method.model.name)
    sections = {"compare": {"with": result.label_b, "png": [str(path) for path in result.written]}}
    update_manifest(Path(out_dir) / "manifest.json", about, failures=result.failures, sections=sections)
    return result


@dataclass
class _Done:
    """A finished comparison: the method as set up here, its merged partial, the findings and the inputs."""

    method: Comparison
    partial: ComparePartial
    result: CompareResult
    paths: list[str]


def _compare(
    model: Any, images: Images, options: CompareOptions, progress: Progress | None, exclude: Path | None
) -> _Done:
    inputs = gather_inputs(images, exclude=exclude)
    if not inputs:
        raise OptionError("no images given")
    if options.features == "mean" and options.estimator == "debiased" and len(inputs) < DEBIASED_MIN_SAMPLES:
        raise OptionError(
            f"with `features` mean each image is one sample, and the debiased estimator needs at least "
            f"{DEBIASED_MIN_SAMPLES}: {len(inputs)} given. Give more images, or choose `features` positions"
        )
    scanned = scan_inputs(Comparison, options.query(), model, inputs, options, counted(progress, len(inputs)))
    method = scanned.method if isinstance(scanned.method, Comparison) else None
    loaded = model.load() if isinstance(model, ModelRef) else model
    if method is None:  # it ran elsewhere: set it up here, for the layers, the weights and the pictures
        local = replace(options.query(), other=options.other)
        method = Comparison(loaded, Reader(loaded, options), local)
    if scanned.partial is None:
        raise OptionError("no image could be read: " + "; ".join(str(error) for _, error in scanned.failures[:3]))
    result = compared(method, scanned.partial, options, label_a=options.label_of(loaded))
    result.failures, result.fit, result.inputs = scanned.failures, scanned.fit, len(inputs)
    result.precision = scanned.precision
    result.notes.extend(scanned.notes)
    return _Done(method, scanned.partial, result, [item.path for item in inputs])


def compared(method: Comparison, partial: ComparePartial, options: CompareOptions, label_a: str) -> CompareResult:
    """The findings of a merged scan: the CKA matrix, each shared layer's drift, and the units that moved most
    (nothing drawn or written; the training callback and the report use it too)."""
    result = CompareResult(
        label_a=label_a,
        label_b=options.label_of_other(),
        layers_a=[conv.path for conv in method.layers("a")],
        layers_b=[conv.path for conv in method.layers("b")],
        cka=method.cka(partial, options.estimator),
        estimator=options.estimator,
        features=options.features,
        samples=partial.samples,
    )
    for layer in method.matched:
        first, second = method.unit_weights(layer)
        i, j = result.layers_a.index(layer), result.layers_b.index(layer)
        result.drift.append(
            LayerDrift(
                layer,
                float(result.cka[i, j]),
                relative_change(first, second),
                partial.units[layer].correlation(),
                top_overlap(partial.tops["a", layer], partial.tops["b", layer]),
            )
        )
    result.moved = _most_moved(result.drift, options.pairs)
    if not method.matched:
        result.note("the two models share no conv layer (same path and weight shapes): CKA only, no per-unit drift")
    return result


def _most_moved(drifts: Sequence[LayerDrift], count: int) -> list[tuple[str, int]]:
    """The ``count`` units whose maps agree least between the two models (lowest correlation; weight change breaks
    ties); units with constant maps, whose correlation is undefined, are left out."""
    ranked = [
        (float(drift.correlation[unit]), -float(drift.weight_change[unit]), position, unit, drift.layer)
        for position, drift in enumerate(drifts)
        for unit in range(len(drift.correlation))
        if np.isfinite(drift.correlation[unit])
    ]
    return [(layer, unit) for *_, unit, layer in sorted(ranked)[:count]]


def _write(done: _Done, out: Path, options: CompareOptions) -> None:
    result = done.result
    if options.charts:
        chart = cka_chart(result.cka, result.layers_a, result.layers_b, result.label_a, result.label_b, result.heading)
        result.written.append(save_bytes(chart, out / "cka.png"))
        if result.drift:
            chart = drift_chart(result.drift, result.label_a, result.label_b)
            result.written.append(save_bytes(chart, out / "drift.png"))
        for layer, picture in _pairs(done, options).items():
            result.written.append(save_png(picture, out / f"units_{safe_name(layer)}.png"))
    if result.drift:
        rows = [row for drift in result.drift for row in drift.rows()]
        result.written.append(save_bytes(_csv(rows, UNIT_FIELDS).encode(), out / "units.csv"))
    if options.json is not None:
        text = json.dumps(result.records, indent=2) + "\n"
        result.written.append(save_bytes(text.encode(), options.json))
    if options.csv is not None:
        result.written.append(save_bytes(_csv(result.records, FIELDS).encode(), options.csv))


def _pairs(done: _Done, options: CompareOptions) -> dict[str, Picture]:
    """Per layer with units that moved most, one picture: each model's ``top`` rows of those units (its
    ``maximize`` picture, then its best patches), the first model's on the left."""
    from cnnviz.runs.top import TopOptions, draw_top

    method, result = done.method, done.result
    units: dict[str, list[int]] = {}
    for layer, unit in result.moved:
        units.setdefault(layer, []).append(unit)
    models = {"a": method.model, "b": method.other}
    labels = {"a": result.label_a, "b": result.label_b}
    pictures = {}
    for layer, chosen in units.items():
        drawn = []
        for side in SIDES:
            conv = next(conv for conv in method.layers(side) if conv.path == layer)
            top = TopOptions(
                **{setting.name: getattr(options, setting.name) for setting in fields(ReadingSettings)},
                model_label=labels[side],
                layer=layer,
                filters=",".join(str(unit) for unit in sorted(chosen)),
                k=options.k,
                maximize=True,
            )
            scan = TopScan([conv], {layer: done.partial.tops[side, layer]}, done.paths, [], [], result.precision)
            drawn.append(draw_top(models[side], scan, top).pictures[layer])
        pictures[layer] = side_by_side([next(iter(page.values())) for page in drawn])
    return pictures


def side_by_side(pictures: Sequence[Picture], gap: int = 12) -> Picture:
    """Pictures next to each other, top-aligned, on white, ``gap`` pixels apart."""
    arrays = [picture.to_rgb() for picture in pictures]
    rows = max(array.shape[0] for array in arrays)
    canvas = np.full((rows, sum(a.shape[1] for a in arrays) + gap * (len(arrays) - 1), 3), 255, dtype=np.uint8)
    left = 0
    for array in arrays:
        canvas[: array.shape[0], left : left + array.shape[1]] = array
        left += array.shape[1] + gap
    return Picture(canvas, None)


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _csv(records: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow(["" if record[name] is None else record[name] for name in fields])
    return buffer.getvalue()
