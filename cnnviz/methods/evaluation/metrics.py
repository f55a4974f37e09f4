"""The explanation metrics, one class each: deletion and insertion (Petsiuk et al. 2018), µ-fidelity (Bhatt et
al. 2020) and the model-parameter randomisation test (Adebayo et al. 2018).

A metric is given a :class:`Scoring` (the batch, the model, its forward pass, the baselines, the settings, and a
way to explain the batch again) and :class:`Subject` s (an image's attribution by one method), and returns
:class:`Measured` values for each. The perturbation metrics only say which masks they want and what their values
mean: :class:`PerturbationMetric` sends the masks of every subject of a batch through the model together, in
large batches (:meth:`cnnviz.methods.target.TargetModel.perturbed_rows`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.methods.attribution.base import BASELINE, SEED
from cnnviz.methods.evaluation.features import (
    curve_masks,
    feature_cells,
    random_subsets,
    removal_rank,
    step_counts,
)
from cnnviz.methods.evaluation.randomize import cascade
from cnnviz.methods.evaluation.statistics import auc, ranks_nothing, spearman, ssim
from cnnviz.methods.settings import Family, Setting, Settings
from cnnviz.methods.target import VALUE_KINDS, Scored, TargetModel

#: µ-fidelity's grid where ``grid`` is not set (xplique's default).
MUFIDELITY_GRID = 9

#: Every metric by name (a metric of your own is added with ``METRICS.add``).
METRICS = Family("metric", "metrics")

CURVE_STEPS = Setting("steps", int, 20, "the curve's steps from no feature to all", minimum=1)
GRID = Setting(
    "grid",
    int,
    None,
    "perturb the cells of an N x N grid instead of pixels",
    minimum=1,
    shown=f"pixels; mufidelity: {MUFIDELITY_GRID}",
)
SCORE = Setting(
    "score",
    str,
    "probability",
    "what is read: the class's probability (after the softmax) or its pre-softmax logit",
    names=VALUE_KINDS,
)
SUBSETS = Setting("samples", int, 200, "random subsets per image", minimum=1)
SUBSET = Setting(
    "subset",
    float,
    0.2,
    "the fraction of the grid's cells each subset removes",
    minimum=0,
    maximum=1,
    above=True,
    below=True,
)


class EvaluationSettings(Settings):
    """The metrics' settings, each declared by the metrics that read it (``METRICS.declared()``); one that none
    of the metrics chosen reads is refused.

    >>> EvaluationSettings(grid=4).grid, EvaluationSettings().steps, EvaluationSettings().baseline
    (4, 20, 'black')
    """

    family = METRICS


@dataclass(frozen=True)
class Subject:
    """One image's attribution by one method: its row in the batch, the method's name, a ``(rows, cols)`` map."""

    row: int
    method: str
    attribution: np.ndarray


@dataclass(frozen=True)
class Measured:
    """A metric's value for one subject, with the curve it summarises (deletion and insertion: the score at each
    step; randomisation: the similarity after each layer is reset, named in ``points``). A value that is NaN is
    undefined (an attribution that ranks nothing, a randomisation that ended on a silent network), and ``reason``
    says why; ``reason`` also says what a defined value rests on where that needs saying."""

    metric: str
    value: float
    curve: tuple[float, ...] = ()
    points: tuple[str, ...] = ()
    reason: str = ""

    @property
    def defined(self) -> bool:
        """Whether the value is a number (NaN: undefined)."""
        return bool(np.isfinite(self.value))


def undefined(metric: type[Metric] | Metric, reason: str) -> list[Measured]:
    """Every value ``metric`` records, undefined, with ``reason``."""
    return [Measured(value, float("nan"), reason=reason) for value in metric.makes]


@dataclass
class Scoring:
    """What a metric is given for one batch.

    Attributes:
        model: the model as attributions see it (:class:`cnnviz.methods.target.TargetModel`).
        inputs: ``(N, rows, cols, channels)`` model-ready, channels last.
        baselines: what a removed feature becomes, the same shape.
        scored: the unperturbed forward pass (the classes explained).
        images: each row's image number in the run (random subsets and feeds follow the image, not the batch).
        settings: the metrics' settings.
        explain: the batch's attributions again, by every method of the run, for the same classes, computed on
            ``copy`` (the randomisation test calls it as it resets the copy's weights); None where the attributions
            came from files.
        copy: the model whose weights a metric may reset: a copy of ``model``'s, so that nothing else using the
            model sees them change (``model`` itself where there is none).
    """

    model: TargetModel
    inputs: np.ndarray
    baselines: np.ndarray
    scored: Scored
    images: Sequence[int]
    settings: EvaluationSettings
    explain: Callable[[], dict[str, np.ndarray]] | None = None
    copy: TargetModel | None = None


class Metric(ABC):
    """An explanation metric (see the module).

    Attributes:
        name: how it is chosen (``--metric``) and recorded.
        title: how tables and pictures name it.
        better: ``higher`` or ``lower``: which way a more faithful explanation moves it.
        makes: the values it records (a metric can record more than one), each with what it means, as tables say.
        needs_method: whether it explains images again (files of attributions cannot be scored by it).
        settings: the :class:`cnnviz.methods.settings.Setting` s it reads.
        panel: for a metric whose values have curves, the chart's title and x axis (empty: no panel).
        limit: a value past which (in the worse direction) a method fails the metric outright (None: no verdict).
        limit_of: what the limit is a limit of, in words.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    better: ClassVar[str] = "higher"
    makes: ClassVar[dict[str, str]] = {}
    needs_method: ClassVar[bool] = False
    settings: ClassVar[tuple[Setting, ...]] = ()
    panel: ClassVar[tuple[str, str]] = ("", "")
    limit: ClassVar[float | None] = None
    limit_of: ClassVar[str] = ""

    @abstractmethod
    def measure(self, scoring: Scoring, subjects: Sequence[Subject]) -> list[list[Measured]]:
        """The metric's values for each subject, in order."""


class PerturbationMetric(Metric):
    """A metric read from the model's values on masked copies of each image."""

    @abstractmethod
    def masks(self, scoring: Scoring, subject: Subject) -> Iterator[np.ndarray]:
        """The subject's masks, ``(rows, cols)`` each: 1 kept, 0 set to the baseline."""

    @abstractmethod
    def summary(self, scoring: Scoring, subject: Subject, values: np.ndarray) -> list[Measured]:
        """The metric's values from the model's values on the subject's masked copies."""

    def measure(self, scoring: Scoring, subjects: Sequence[Subject]) -> list[list[Measured]]:  # noqa: D102
        return measure_together([self], scoring, subjects)[0]


def measure_together(
    metrics: Sequence[PerturbationMetric], scoring: Scoring, subjects: Sequence[Subject]
) -> list[list[list[Measured]]]:
    """Several perturbation metrics' values for each subject (per metric, per subject), their masked copies all
    sent through the model in one stream: only the stream's last model call is smaller than a full batch."""
    counts: list[int] = []

    def pairs() -> Iterator[tuple[int, np.ndarray]]:
        for metric in metrics:
            for subject in subjects:
                counts.append(0)
                for mask in metric.masks(scoring, subject):
                    counts[-1] += 1
                    yield subject.row, mask

    values = scoring.model.perturbed_rows(
        scoring.inputs, scoring.baselines, pairs(), scoring.scored, scoring.images, scoring.settings.score
    )
    ends = iter(np.cumsum(counts))
    sizes = iter(counts)
    measured = []
    for metric in metrics:
        per_subject = []
        for subject in subjects:
            end, count = int(next(ends)), next(sizes)
            per_subject.append(metric.summary(scoring, subject, values[end - count : end]))
        measured.append(per_subject)
    return measured


class CurveMetric(PerturbationMetric):
    """Deletion or insertion: features taken out (or put in) in the order of attribution, highest first, in
    ``steps`` equal steps; the value is the area under the curve of the class's score."""

    deleting: ClassVar[bool]
    settings = (CURVE_STEPS, GRID, BASELINE, SCORE)

    def masks(self, scoring: Scoring, subject: Subject) -> Iterator[np.ndarray]:  # noqa: D102
        rows, cols = subject.attribution.shape
        cells, count = feature_cells(rows, cols, scoring.settings.grid)
        rank = removal_rank(subject.attribution, cells, count)
        return curve_masks(rank, step_counts(count, scoring.settings.steps), self.deleting)

    def summary(self, scoring: Scoring, subject: Subject, values: np.ndarray) -> list[Measured]:  # noqa: D102
        curve = tuple(float(value) for value in values)
        return [Measured(self.name, auc(values), curve)]


@METRICS.add
class Deletion(CurveMetric):
    """Deletion: the most important features first become the baseline; a faithful attribution makes the score
    fall fast (a low area)."""

    name = "deletion"
    title = "Deletion"
    better = "lower"
    makes = {"deletion": "area under the deletion curve"}
    panel = ("Deletion: most important first (lower area is better)", "fraction of features deleted")
    deleting = True


@METRICS.add
class Insertion(CurveMetric):
    """Insertion: from the baseline, the most important features are put back first; a faithful attribution
    makes the score rise fast (a high area)."""

    name = "insertion"
    title = "Insertion"
    makes = {"insertion": "area under the insertion curve"}
    panel = ("Insertion: most important first (higher area is better)", "fraction of features inserted")
    deleting = False


@METRICS.add
class MuFidelity(PerturbationMetric):
    """µ-fidelity: random subsets of grid cells become the baseline; the Spearman correlation between the drops
    in the score and the attributions the subsets took out (1: the attribution predicts every drop's rank)."""

    name = "mufidelity"
    title = "µ-fidelity"
    makes = {"mufidelity": "Spearman correlation of drops and attributions"}
    settings = (GRID, BASELINE, SCORE, SUBSETS, SUBSET, SEED)

    def _subsets(self, scoring: Scoring, subject: Subject) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = subject.attribution.shape
        cells, count = feature_cells(rows, cols, scoring.settings.grid or MUFIDELITY_GRID)
        settings = scoring.settings
        number = int(scoring.images[subject.row])
        return cells, random_subsets(count, settings.samples, settings.subset, settings.seed, number)

    def masks(self, scoring: Scoring, subject: Subject) -> Iterator[np.ndarray]:  # noqa: D102
        cells, subsets = self._subsets(scoring, subject)
        for subset in subsets:
            yield (~np.isin(cells, subset)).astype(np.float32)

    def summary(self, scoring: Scoring, subject: Subject, values: np.ndarray) -> list[Measured]:  # noqa: D102
        cells, subsets = self._subsets(scoring, subject)
        full = float(
            scoring.model.values(
                scoring.scored.scores[subject.row : subject.row + 1],
                scoring.scored.outputs[subject.row : subject.row + 1],
                scoring.scored,
                np.array([subject.row]),
                scoring.settings.score,
            )[0]
        )
        taken = np.array([subject.attribution[np.isin(cells, subset)].sum() for subset in subsets])
        return [Measured(self.name, fidelity(full, values, taken))]


def fidelity(full: float, values: np.ndarray, taken: np.ndarray) -> float:
    """µ-fidelity's value: the Spearman correlation of the score's drops (``full`` less each subset's ``values``)
    with the attribution each subset took out (``taken``). The model computes in float32, so drops within two
    float32 steps of the scores' size of each other are ties: which of them is larger is rounding, not the model
    (on a flat image, 3 real levels of drop came out as 9 values 1-2 steps apart)."""
    scale = np.float32(max(abs(full), float(np.abs(values).max(initial=0.0))))
    return spearman(full - values.astype(np.float64), taken, resolution=2.0 * float(np.spacing(scale)))


@METRICS.add
class Randomization(Metric):
    """The model-parameter randomisation test (Adebayo et al. 2018): the layers' weights are reset from the top
    down, one more layer at each step, and the images explained again for the same classes. The values are the
    Spearman correlation of the absolute attributions with the original ones, and the SSIM of the two maps (each
    scaled to its peak), after every layer is reset; the curves give them after each step. An explanation that
    stays close to the original (rank correlation above 0.5) does not depend on what the model learned."""

    name = "randomization"
    title = "Randomization"
    better = "lower"
    makes = {
        "randomization": "rank correlation with the original after every layer is reset",
        "randomization-ssim": "SSIM with the original after every layer is reset",
    }
    needs_method = True
    settings = (SEED,)
    panel = ("Randomization: rank correlation with the original (low is better)", "layers reset, from the top")
    #: A randomised attribution whose rank correlation with the original stays above this fails the check.
    limit = 0.5
    limit_of = "rank correlation"

    def measure(self, scoring: Scoring, subjects: Sequence[Subject]) -> list[list[Measured]]:  # noqa: D102
        if scoring.explain is None:
            raise OptionError("the randomization test explains the images again; it needs a method, not files")
        explain = scoring.explain
        ranked: list[list[float]] = [[] for _ in subjects]
        similar: list[list[float]] = [[] for _ in subjects]
        layers: list[str] = []
        steps = cascade(scoring.copy if scoring.copy is not None else scoring.model, scoring.settings.seed)
        try:
            for layer in steps:
                layers.append(layer)
                again = explain()
                for index, subject in enumerate(subjects):
                    new = np.asarray(again[subject.method][subject.row], dtype=np.float64)
                    if ranks_nothing(new):  # a silent network: no similarity to score, either way
                        ranked[index].append(float("nan"))
                        similar[index].append(float("nan"))
                        continue
                    ranked[index].append(spearman(np.abs(subject.attribution), np.abs(new)))
                    similar[index].append(ssim(_peak_scaled(subject.attribution), _peak_scaled(new)))
        finally:
            steps.close()  # the model's own weights back
        points = tuple(layers)
        measured = []
        for ranks, sims in zip(ranked, similar, strict=True):
            reason = _undefined_steps(ranks, points)
            measured.append(
                [
                    Measured(self.name, ranks[-1] if ranks else 1.0, tuple(ranks), points, reason),
                    Measured("randomization-ssim", sims[-1] if sims else 1.0, tuple(sims), points, reason),
                ]
            )
        return measured


def _undefined_steps(ranks: Sequence[float], points: Sequence[str]) -> str:
    """What a randomisation's undefined steps mean for its value, or ``""`` where every step is defined."""
    missing = [index for index, value in enumerate(ranks) if not np.isfinite(value)]
    if not missing:
        return ""
    said = (
        f"{len(missing)} of {len(ranks)} steps undefined (the reset network's attribution ranked nothing, first "
        f"after resetting {points[missing[0]]})"
    )
    defined = [index for index in range(len(ranks)) if np.isfinite(ranks[index])]
    if missing[-1] != len(ranks) - 1:
        return said
    if not defined:
        return f"{said}: no step decides"
    last = defined[-1]
    return f"{said}: undecided; the last defined step, after resetting {points[last]}, gave {ranks[last]:.3f}"


def _peak_scaled(attribution: np.ndarray) -> np.ndarray:
    magnitude = np.abs(np.asarray(attribution, dtype=np.float64))
    peak = float(magnitude.max(initial=0.0))
    return magnitude / peak if peak > 0 else magnitude


#: A randomised attribution whose rank correlation with the original stays above this fails the check.
RANDOMIZATION_LIMIT = Randomization.limit


def maker(value: str) -> type[Metric]:
    """The metric that records the value named ``value`` (a metric's name, or another of its ``makes``)."""
    return next(metric for metric in METRICS.values() if value in metric.makes)


def check_metrics(metrics: Sequence[str], settings: EvaluationSettings | None = None) -> tuple[str, ...]:
    """The metrics named, each once in order; raise :class:`OptionError` for an unknown one, none, or a setting
    given that none of them reads."""
    return METRICS.check(metrics, settings.given() if settings is not None else ())


__all__ = [
    "METRICS",
    "EvaluationSettings",
    "Measured",
    "Metric",
    "Scoring",
    "Subject",
    "check_metrics",
    "maker",
    "measure_together",
    "undefined",
]
