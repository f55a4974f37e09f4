"""Which explanation to trust: faithfulness and sanity scores for attribution maps.

Deletion and insertion (Petsiuk et al. 2018), µ-fidelity (Bhatt et al. 2020) and the model-parameter randomisation
test (Adebayo et al. 2018), each one class in :mod:`cnnviz.methods.evaluation.metrics`. :class:`Evaluator` scores a
batch: it explains the images by cnnviz's methods (and takes attributions made elsewhere beside them), then has
every metric measure every image's attribution by every method, the perturbed copies of all of them going through
the model together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.inputs.reader import Reader
from cnnviz.methods.attribution import Attributor
from cnnviz.methods.attribution.base import AttributionSettings, baseline_of
from cnnviz.methods.evaluation.features import as_map
from cnnviz.methods.evaluation.metrics import (
    METRICS,
    RANDOMIZATION_LIMIT,
    EvaluationSettings,
    Measured,
    Metric,
    PerturbationMetric,
    Scoring,
    Subject,
    check_metrics,
    maker,
    measure_together,
    undefined,
)
from cnnviz.methods.evaluation.randomize import model_copy
from cnnviz.methods.evaluation.statistics import ranks_nothing
from cnnviz.methods.settings import Settings
from cnnviz.methods.target import Target, TargetModel

#: The metrics a run measures where none are named: the two cheapest, read together.
DEFAULT_METRICS = ("deletion", "insertion")


@dataclass(frozen=True)
class Evaluated:
    """A batch's scores: ``classes`` ``(N,)`` the class explained per image, ``outputs`` the model's outputs, and
    for each (row, method) the metrics' :class:`Measured` values."""

    classes: np.ndarray
    outputs: np.ndarray
    measured: dict[tuple[int, str], list[Measured]]


class Evaluator:
    """Score attribution methods on batches of one model.

    Args:
        model: a Keras model ending in class scores, a regression value or a segmentation.
        methods: cnnviz's methods to score (:data:`cnnviz.methods.attribution.METHODS`); may be empty where
            attributions are given.
        metrics: metric names (:data:`METRICS`).
        target: the layer of the CAM methods, which output, and for segmentation which region.
        reader: how the run reads images (:class:`cnnviz.inputs.reader.Reader`): which input takes them, what the
            others get, the precision, and how 0..255 pixels become model inputs (the ``black`` baseline).
        settings: the methods' settings (:class:`cnnviz.methods.attribution.AttributionSettings`) and the
            metrics' (:class:`EvaluationSettings`), one object or both; each family's defaults where left out.
        given: the names of attributions each call is handed (made elsewhere: files).

    Raises:
        OptionError: no method and nothing given, an unknown metric, or the randomisation test on given
            attributions (it explains the images again, which files cannot).
    """

    def __init__(
        self,
        model: Any,
        methods: Sequence[str] = (),
        metrics: Sequence[str] = DEFAULT_METRICS,
        target: Target | None = None,
        reader: Reader | None = None,
        settings: Settings | Sequence[Settings] = (),
        given: Sequence[str] = (),
    ) -> None:
        chosen = [settings] if isinstance(settings, Settings) else list(settings)
        attribution = next((one for one in chosen if isinstance(one, AttributionSettings)), AttributionSettings())
        self.settings = next((one for one in chosen if isinstance(one, EvaluationSettings)), EvaluationSettings())
        self.metrics: list[Metric] = [METRICS[name]() for name in check_metrics(metrics)]
        reader = reader if reader is not None else Reader(model)
        reading, self.preprocessing = reader.settings, reader.preprocessing
        self.given = tuple(given)
        if not methods and not given:
            raise OptionError("choose a method to score, or give attributions made elsewhere")
        if given and any(metric.needs_method for metric in self.metrics):
            raise OptionError(
                "the randomization test explains the images again as the weights are reset, which attributions "
                "read from files cannot be; score files with deletion, insertion or mufidelity"
            )
        explaining = (methods, None, target, reading, attribution, self.preprocessing)
        self.attributor = Attributor(model, *explaining) if methods else None
        #: The methods again over a copy of the model, for the metrics that reset its weights.
        resets = methods and any(metric.needs_method for metric in self.metrics)
        self.copy = Attributor(model_copy(model), *explaining) if resets else None
        if self.attributor is not None:
            self.model = self.attributor.model
            clash = [name for name in given if name in self.attributor.names]
            if clash:
                raise OptionError(f"given attributions are named '{clash[0]}', as a method chosen; rename them")
        else:
            if target is not None and target.layer is not None:
                raise OptionError("`layer` is for the CAM methods; no method is chosen")
            self.model = TargetModel(model, None, target, reading, maps=False)
        self.methods = (*(self.attributor.names if self.attributor is not None else ()), *self.given)

    def _scores(self, metric: Metric, subject: Subject) -> bool:
        """Whether ``metric`` scores ``subject``: a metric that explains images again cannot score given files."""
        return not metric.needs_method or subject.method not in self.given

    def __call__(
        self,
        inputs: np.ndarray,
        classes: Sequence[int] | int | None = None,
        images: Sequence[int] | None = None,
        given: Mapping[str, np.ndarray] | None = None,
    ) -> Evaluated:
        """Every metric's values for every image and method of a model-ready, channels-last batch.

        Args:
            inputs: ``(N, rows, cols, channels)``.
            classes: the class to explain, per image or one for all; each image's top class by default.
            images: each row's number in the run (µ-fidelity's subsets and fed inputs follow it); 0.. by default.
            given: attributions made elsewhere, by name: ``(N, rows, cols)`` or ``(N, rows, cols, channels)``.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        count, rows, cols = inputs.shape[:3]
        numbers = list(images) if images is not None else list(range(count))
        given = dict(given or {})
        missing = [name for name in self.given if name not in given]
        if missing:
            raise OptionError(f"no attributions given for '{missing[0]}'")
        attributor = self.attributor
        if attributor is not None:
            attributions = attributor(inputs, classes, numbers)
            assert attributions.scored is not None
            scored = attributions.scored
            maps: dict[str, Any] = dict(attributions.heatmaps)

            again = self.copy if self.copy is not None else attributor

            def explain() -> dict[str, np.ndarray]:
                return again(inputs, scored.classes.tolist(), numbers).heatmaps

        else:
            scored = self.model.forward(inputs, classes, numbers)
            maps = {}
            explain = None  # type: ignore[assignment]
        maps.update({name: given[name] for name in self.given})
        subjects = [
            Subject(row, method, as_map(maps[method][row], rows, cols))
            for method in self.methods
            for row in range(count)
        ]
        baselines = baseline_of(inputs, self.settings.baseline, self.preprocessing)
        copy = self.copy.model if self.copy is not None else None
        scoring = Scoring(self.model, inputs, baselines, scored, numbers, self.settings, explain, copy)
        measured: dict[tuple[int, str], list[Measured]] = {}
        ranking = []
        for subject in subjects:
            reason = ranks_nothing(subject.attribution)
            if not reason:
                ranking.append(subject)
                continue
            # a map that ranks nothing gets no score from any metric: every metric reads only its order
            measured[subject.row, subject.method] = [
                value for metric in self.metrics if self._scores(metric, subject) for value in undefined(metric, reason)
            ]
        perturbing = [metric for metric in self.metrics if isinstance(metric, PerturbationMetric)]
        together = iter(measure_together(perturbing, scoring, ranking) if perturbing and ranking else [])
        for metric in self.metrics:
            chosen = [one for one in ranking if self._scores(metric, one)]
            if not chosen:
                continue
            found = next(together) if isinstance(metric, PerturbationMetric) else metric.measure(scoring, chosen)
            for subject, values in zip(chosen, found, strict=True):
                measured.setdefault((subject.row, subject.method), []).extend(values)
        return Evaluated(scored.classes, scored.outputs, measured)


__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "RANDOMIZATION_LIMIT",
    "Evaluated",
    "EvaluationSettings",
    "Evaluator",
    "Measured",
    "check_metrics",
    "maker",
]
