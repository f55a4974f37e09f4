"""An evaluation run, from a model, images and attribution methods to scores: what ``cnnviz evaluate`` calls.

Each image is explained by every method of the run (and by attributions made elsewhere, read from ``.npy`` files
named like the images), then every metric measures every attribution
(:class:`cnnviz.methods.evaluation.Evaluator`). The scan runs on the engine the options choose
(:func:`cnnviz.engines.dispatch.scan_inputs`), here or in Ray workers; what comes back is numbers, and this
process writes the table's records (``json``, ``csv``) and the picture of the curves.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.engines.dispatch import EngineReading, scan_inputs
from cnnviz.errors import OptionError, brief
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.attribution import METHODS, AttributionSettings, check_methods
from cnnviz.methods.evaluation import (
    DEFAULT_METRICS,
    METRICS,
    EvaluationSettings,
    Evaluator,
    Measured,
    check_metrics,
    maker,
)
from cnnviz.methods.evaluation.features import as_map
from cnnviz.methods.target import Target, checked_region
from cnnviz.models.labels import class_name
from cnnviz.output.evaluation_chart import curves_chart
from cnnviz.output.files import Folder, save_bytes
from cnnviz.runs.contract import Naming, Progress, RunResult, counted
from cnnviz.runs.explaining import ExplainingMethod

#: The picture of the curves, in the run's folder.
CURVES_FILE = "evaluation_curves.png"


@dataclass(frozen=True)
class EvaluateOptions(Naming, EngineReading):
    """What ``evaluate`` scores and how, besides the shared parts (:class:`cnnviz.engines.naming.Naming`,
    :class:`cnnviz.engines.dispatch.EngineReading`).

    Attributes:
        methods: cnnviz's methods to score (:data:`cnnviz.methods.attribution.METHODS`); may be empty with
            ``explanation``.
        metrics: the metrics (:data:`cnnviz.methods.evaluation.METRICS`).
        explanation: a folder of attributions made elsewhere, one ``.npy`` per image named like it (``cat.npy`` for
            ``cat.jpg``, or the image's output key ``a/cat.npy``), rows x cols (x channels) at the model's input
            size; scored as a method named after the folder.
        settings: the methods' own settings (:class:`cnnviz.methods.attribution.AttributionSettings`).
        evaluation: the metrics' settings (:class:`cnnviz.methods.evaluation.EvaluationSettings`).
        target: the class to explain in every image; each image's top class when None.
        layer: the layer of the CAM methods.
        labels_file: class names, one per line.
        output: for a model of several outputs, the one to explain.
        region: for a segmentation output, ``(top, left, bottom, right)`` in pixels of the model input.
        json: write one record per image, method and metric (with the curves) to this file.
        csv: the same records as CSV.
        picture: draw the mean curves per method (``evaluation_curves.png`` in the output folder).

    Raises:
        OptionError: when made with a value that cannot work.
    """

    methods: Sequence[str] = ("gradcam",)
    metrics: Sequence[str] = DEFAULT_METRICS
    explanation: str | os.PathLike[str] | None = None
    settings: AttributionSettings = field(default_factory=AttributionSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    target: str | int | None = None
    layer: str | None = None
    labels_file: str | None = None
    output: str | None = None
    region: tuple[int, int, int, int] | None = None
    json: str | os.PathLike[str] | None = None
    csv: str | os.PathLike[str] | None = None
    picture: bool = True

    def __post_init__(self) -> None:
        self.check_engine_reading()
        object.__setattr__(self, "metrics", check_metrics(list(self.metrics), self.evaluation))
        if self.explanation is None or self.methods:
            object.__setattr__(self, "methods", check_methods(list(self.methods), self.settings))
        else:
            if self.settings.given():
                raise OptionError(f"`{self.settings.given()[0]}` is a method's setting; no method is chosen")
        if self.explanation is not None:
            folder = Path(self.explanation)
            if not folder.is_dir():
                raise OptionError(f"`explanation` must be a folder of .npy files; '{folder}' is not a folder")
            needs = [name for name in self.metrics if METRICS[name].needs_method]
            if needs:
                raise OptionError(
                    f"the {needs[0]} test explains the images again as the weights are reset, which attributions "
                    "read from files cannot be; score files with deletion, insertion or mufidelity"
                )
            if self.explained_name in self.methods:
                raise OptionError(f"the explanation folder is named '{self.explained_name}', as a method chosen")
        if self.layer is not None and not self.methods:
            raise OptionError("`layer` is for the CAM methods; no method is chosen")
        checked_region(self.region)

    @property
    def explained_name(self) -> str:
        """The name the attributions of ``explanation`` are scored under: the folder's name."""
        return Path(self.explanation).resolve().name if self.explanation is not None else ""


@dataclass(frozen=True)
class ImageScores:
    """One image's scores: its path, the class explained, and each method's :class:`Measured` values."""

    path: str
    target: int
    target_name: str
    measured: dict[str, list[Measured]]


@dataclass(frozen=True)
class Summary:
    """One method's values of one metric over the images: mean, standard deviation and count of the defined ones,
    which way is better, and how many were undefined (an attribution that ranked nothing: they are left out of
    the mean, which is NaN where no value was defined)."""

    metric: str
    method: str
    mean: float
    std: float
    count: int
    better: str
    undefined: int = 0


@dataclass
class EvaluationResult(RunResult):
    """What an evaluation run did: :class:`cnnviz.runs.contract.RunResult`, the methods and metrics, the layer
    of the CAMs and the score read, each image's scores, and the settings each method and metric read (by name:
    given or default)."""

    methods: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    score: str = "probability"
    images: list[ImageScores] = field(default_factory=list)
    picture: Path | None = None
    read: dict[str, dict[str, Any]] = field(default_factory=dict)

    def records(self, curves: bool = True) -> list[dict[str, Any]]:
        """One record per image, method and value recorded, with the settings the method and the metric read
        (``method_settings``, ``metric_settings``) and the curve (``curve``, and for the randomization test the
        layer reset at each point, ``points``) where there is one. An undefined value or point is None, and
        ``reason`` says why."""
        records = []
        for image in self.images:
            for method in self.methods:
                for measured in image.measured.get(method, []):
                    record: dict[str, Any] = {
                        "image": image.path,
                        "method": method,
                        "metric": measured.metric,
                        "value": _number(measured.value),
                        "class": image.target,
                        "class_name": image.target_name,
                        "method_settings": self.read.get(method, {}),
                        "metric_settings": self.read.get(maker(measured.metric).name, {}),
                    }
                    if measured.reason:
                        record["reason"] = measured.reason
                    if curves and measured.curve:
                        record["curve"] = [_number(value) for value in measured.curve]
                    if curves and measured.points:
                        record["points"] = list(measured.points)
                    records.append(record)
        return records

    def _values(self, method: str, metric: str) -> list[Measured]:
        return [m for image in self.images for m in image.measured.get(method, []) if m.metric == metric]

    def summary(self) -> list[Summary]:
        """Each metric's values per method over the images, metrics in the order they were measured and methods
        best first (a method with no defined value last)."""
        made = [name for metric in self.metrics for name in METRICS[metric].makes]
        rows = []
        for metric in made:
            per_method = []
            for method in self.methods:
                found = self._values(method, metric)
                if not found:
                    continue
                values = np.array([m.value for m in found if m.defined])
                mean = float(values.mean()) if len(values) else float("nan")
                std = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else float("nan"))
                better = maker(metric).better
                per_method.append(Summary(metric, method, mean, std, len(values), better, len(found) - len(values)))
            per_method.sort(key=lambda row: (np.isnan(row.mean), row.mean if row.better == "lower" else -row.mean))
            rows.extend(per_method)
        return rows

    def verdicts(self) -> dict[str, dict[str, str]]:
        """For each metric with a limit (the randomization check), each method's verdict: ``fails`` (its mean past
        the limit, in the worse direction), ``passes``, or ``undecided`` where an image's value is undefined (its
        last step ranked nothing): an undefined step is never scored as agreement or disagreement."""
        verdicts: dict[str, dict[str, str]] = {}
        for row in self.summary():
            limit = METRICS[row.metric].limit if row.metric in METRICS else None
            if limit is None:
                continue
            if row.undefined:
                verdict = "undecided"
            else:
                verdict = "fails" if (row.mean > limit if row.better == "lower" else row.mean < limit) else "passes"
            verdicts.setdefault(row.metric, {})[row.method] = verdict
        return verdicts

    def flagged(self) -> list[str]:
        """The methods that fail a metric with a limit (the randomization check: their attributions' mean rank
        correlation with the original after every layer is reset stays above its limit)."""
        return self._with("fails")

    def undecided(self) -> list[str]:
        """The methods whose randomization check decided nothing on some image (:meth:`verdicts`)."""
        return self._with("undecided")

    def _with(self, verdict: str) -> list[str]:
        found = [method for per in self.verdicts().values() for method, said in per.items() if said == verdict]
        return list(dict.fromkeys(found))

    def reasons(self, method: str, metric: str) -> list[str]:
        """Why ``method``'s values of ``metric`` are undefined or rest on fewer steps, each reason once."""
        return list(dict.fromkeys(m.reason for m in self._values(method, metric) if m.reason))

    def mean_curves(self, metric: str) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        """Each method's mean curve of ``metric`` over the images, with the curve's point names (randomization);
        an undefined point is left out of its mean (NaN, a gap in the chart, where no image defined it)."""
        curves = {}
        for method in self.methods:
            found = [m for m in self._values(method, metric) if m.curve]
            if found:
                stacked = np.array([m.curve for m in found], dtype=np.float64)
                defined = np.isfinite(stacked)
                total = np.where(defined, stacked, 0.0).sum(axis=0)
                counts = defined.sum(axis=0)
                mean = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
                curves[method] = (mean, found[0].points)
        return curves


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class EvaluateWriting:
    """What :class:`EvaluateImages` is set up with: the run's options, and each input's output key."""

    options: EvaluateOptions
    keys: dict[str, str]


#: :class:`EvaluateImages`' partial: each image's scores by its place in the run.
Scores = dict[int, ImageScores]


class EvaluateImages(ExplainingMethod[Scores]):
    """Scores over images as a method: each batch explained and measured; the partial is each image's
    :class:`ImageScores` by its place."""

    def __init__(self, model: Any, reader: Reader, options: EvaluateWriting) -> None:
        super().__init__(model, reader, options)
        chosen = options.options
        self.given = chosen.explained_name
        self.evaluator = Evaluator(
            model,
            chosen.methods,
            chosen.metrics,
            Target(chosen.output, chosen.region, chosen.layer),
            reader,
            (chosen.settings, chosen.evaluation),
            given=(self.given,) if self.given else (),
        )
        self.explaining(model, self.evaluator.model, chosen, len(options.keys))

    def scan(self, batch: Batch) -> Scores:  # noqa: D102
        chosen = self.options.options
        given = {}
        if self.given:
            rows, cols = batch.data.shape[1:3]
            files = [explanation_file(chosen.explanation, path, self.options.keys[path]) for path in batch.paths]
            given[self.given] = np.stack([read_attribution(file, rows, cols) for file in files])
        evaluated = self.guarded(lambda: self.evaluator(batch.data, self.target, batch.numbers, given))
        results = {}
        for row, path in enumerate(batch.paths):
            target = int(evaluated.classes[row])
            measured = {method: evaluated.measured.get((row, method), []) for method in self.evaluator.methods}
            results[batch.numbers[row]] = ImageScores(path, target, class_name(target, self.names), measured)
        return results

    @staticmethod
    def merge(first: Scores, second: Scores) -> Scores:  # noqa: D102
        return {**first, **second}


def explanation_file(folder: str | os.PathLike[str], path: str, key: str) -> Path:
    """The ``.npy`` file of ``folder`` that holds the attribution of the image at ``path`` (output key ``key``):
    ``<folder>/<key>.npy``, else ``<folder>/<image's stem>.npy``.

    Raises:
        OptionError: neither exists.
    """
    for candidate in (Path(folder) / f"{key}.npy", Path(folder) / f"{Path(path).stem}.npy"):
        if candidate.is_file():
            return candidate
    raise OptionError(
        f"no attribution for {path} in {folder}: looked for {Path(folder) / (key + '.npy')}"
        f"{'' if '/' not in key else ' and ' + str(Path(folder) / (Path(path).stem + '.npy'))}"
    )


def read_attribution(file: Path, rows: int, cols: int) -> np.ndarray:
    """An attribution file as a ``(rows, cols)`` map (:func:`cnnviz.methods.evaluation.features.as_map`).

    Raises:
        OptionError: the file is not a NumPy array of numbers, or does not fit the input's size.
    """
    try:
        values = np.load(file, allow_pickle=False)
        return as_map(values, rows, cols)
    except OptionError as exc:
        raise OptionError(f"{file}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise OptionError(f"{file} is not a NumPy .npy array of numbers ({brief(exc)})") from None


def evaluate_images(
    model: Any,
    images: Images,
    out_dir: Folder,
    options: EvaluateOptions | None = None,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Score each method of ``options`` on each image with each metric; write the picture of the curves
    (``out_dir/evaluation_curves.png``) and the records (``options.json``, ``options.csv``): a run of the shared
    shape (:mod:`cnnviz.runs.contract`), ``progress`` called with (images just done, images in the run).

    Raises:
        OptionError: a bad method, metric, setting, class, or a missing attribution file, before any image is read.
        LayerNotFound, UnsupportedLayer, UnsupportedModel: the layer or the model does not fit.
    """
    options = options if options is not None else EvaluateOptions()
    inputs = gather_inputs(images, exclude=Path(out_dir))
    keys = {item.path: item.key for item in inputs}
    if options.explanation is not None:
        for item in inputs:
            explanation_file(options.explanation, item.path, item.key)
    methods = [*options.methods, *([options.explained_name] if options.explanation is not None else [])]
    result = EvaluationResult(
        methods=methods,
        metrics=list(options.metrics),
        score=options.evaluation.score,
        fit=options.fit,
        inputs=len(inputs),
        read={
            **{name: _read(METHODS[name], options.settings) for name in options.methods},
            **{name: _read(METRICS[name], options.evaluation) for name in options.metrics},
        },
    )
    scanned = scan_inputs(
        EvaluateImages, EvaluateWriting(options, keys), model, inputs, options, counted(progress, len(inputs))
    )
    result.failures, result.notes, result.precision = scanned.failures, scanned.notes, scanned.precision
    result.preprocessing = scanned.preprocessing
    if scanned.partial is not None:
        result.images = [scanned.partial[number] for number in sorted(scanned.partial)]
    if options.picture and result.images:
        chart = curves_chart(result, f"{options.label_of(model)}: {len(result.images)} images")
        if chart is not None:
            result.picture = save_bytes(chart, Path(out_dir) / CURVES_FILE)
            result.written.append(result.picture)
    if options.json is not None:
        result.written.append(save_bytes((json.dumps(result.records(), indent=2) + "\n").encode(), options.json))
    if options.csv is not None:
        result.written.append(_write_csv(options.csv, result.records()))
    return result


def _read(entry: Any, settings: Any) -> dict[str, Any]:
    """The values of the settings ``entry`` (a method or metric class) reads."""
    return {setting.name: settings.value(setting.name) for setting in entry.settings}


def _write_csv(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> Path:
    columns = ["image", "method", "metric", "value", "class", "class_name", "method_settings", "metric_settings"]
    columns += ["curve", "points", "reason"]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = dict(record)
        row["value"] = "" if record["value"] is None else repr(float(record["value"]))  # undefined: empty
        row["curve"] = " ".join("nan" if v is None else repr(float(v)) for v in record.get("curve", []))
        row["points"] = " ".join(record.get("points", []))
        for part in ("method_settings", "metric_settings"):
            row[part] = " ".join(f"{name}={value}" for name, value in record[part].items())
        writer.writerow(row)
    return save_bytes(text.getvalue().encode("utf-8"), path)
