"""Guided Integrated Gradients (Kapishnikov et al. 2021): Integrated Gradients along a path the model's gradient
chooses. At each of ``steps`` steps the path moves the ``fraction`` of the input's features with the smallest
absolute gradient towards the image, as far as it takes to bring the L1 distance to the image down by one step's
share, and a feature never strays more than ``max_dist`` (a fraction of the way) from the straight line: the path
avoids the regions where the gradient is large and noisy, which take plain IG's attributions off the object.
A feature's attribution is its gradient times each move it made (a left Riemann sum along the path); the sum is
the score's change from the baseline to the image, as for IG.

With ``max_dist`` 0 every feature stays on the straight line: Guided IG is then Integrated Gradients by the left
Riemann sum (the gradient at the start of each step). The path depends on the gradient at each step, so the steps
run one after the other (each one a batch of every image of the batch), as in PAIR's saliency, whose algorithm this
follows."""

from __future__ import annotations

import math

import numpy as np

from cnnviz.methods.attribution.base import BASELINE, AttributionBatch, ChannelAttribution
from cnnviz.methods.attribution.integrated_gradients import STEPS
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

FRACTION = Setting(
    "fraction",
    float,
    0.25,
    "the share of the features moved at a time, those of smallest gradient",
    minimum=0,
    maximum=1,
    above=True,
)
MAX_DIST = Setting(
    "max_dist",
    float,
    0.02,
    "how far a feature may stray from the straight path, a share of the way (0: it is IG)",
    minimum=0,
    maximum=1,
)
#: Two L1 distances this close (relative and absolute) count as equal.
CLOSE = 1e-9


def advance(
    x: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    grad: np.ndarray,
    reached: float,
    total: float,
    fraction: float,
    max_dist: float,
) -> np.ndarray:
    """Move one image's features ``x`` (float64, changed in place) to ``reached`` (0..1) of the way from ``start``
    to ``end`` in L1 distance, the features of smallest ``|grad|`` first; return each feature's attribution for the
    move (its gradient times how far it moved). ``total`` is the L1 distance from ``start`` to ``end``."""
    span = end - start
    low_alpha, high_alpha = max(reached - max_dist, 0.0), min(reached + max_dist, 1.0)
    low, high = start + low_alpha * span, start + high_alpha * span
    target = total * (1.0 - reached)
    moved = np.zeros_like(x)
    magnitude = np.abs(grad)
    while True:
        before = x.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(span != 0, (x - start) / span, high_alpha)
        behind = alpha < low_alpha  # a feature left too far behind joins the band around the straight path
        x[behind] = low[behind]
        distance = float(np.abs(x - end).sum())
        if distance <= target or math.isclose(distance, target, rel_tol=CLOSE, abs_tol=CLOSE):
            moved += (x - before) * grad
            return moved
        free = np.where(x == high, np.inf, magnitude)  # features at the band's far edge move no further this step
        if not np.isfinite(free).any():
            moved += (x - before) * grad
            return moved
        threshold = np.quantile(free, fraction, method="lower")
        chosen = (free <= threshold) & np.isfinite(free)
        room = float((np.abs(x - high) * chosen).sum())
        gamma = (distance - target) / room if room > 0 else np.inf
        if gamma > 1.0:
            x[chosen] = high[chosen]
        else:
            x[chosen] += gamma * (high[chosen] - x[chosen])
        moved += (x - before) * grad
        if gamma <= 1.0:
            return moved


def guided_ig(model: TargetModel, batch: AttributionBatch, steps: int, fraction: float, max_dist: float) -> np.ndarray:
    """``(N, rows, cols, channels)`` float32 Guided IG attributions of every channel."""
    end = np.asarray(batch.inputs, dtype=np.float64)
    start = np.asarray(batch.baseline, dtype=np.float64)
    x = start.copy()
    totals = np.abs(end - start).reshape(len(end), -1).sum(axis=1)
    attributions = np.zeros_like(end)
    for step in range(steps):
        grads = model.input_gradient(x.astype(np.float32), batch.scored.cotangent, batch.images)[0]
        for row in range(len(end)):
            if totals[row] == 0:
                continue  # the image is its baseline: nothing to attribute
            attributions[row] += advance(
                x[row],
                start[row],
                end[row],
                grads[row].astype(np.float64),
                (step + 1) / steps,
                float(totals[row]),
                fraction,
                max_dist,
            )
    return attributions.astype(np.float32)


class GuidedIG(ChannelAttribution):
    """Guided Integrated Gradients (see the module)."""

    name = "guided-ig"
    title = "Guided IG"
    short = "guided-ig"
    settings = (STEPS, BASELINE, FRACTION, MAX_DIST)
    signed = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.steps)

    def per_channel(self, model: TargetModel, batch: AttributionBatch) -> np.ndarray:  # noqa: D102
        values = self.values
        return guided_ig(model, batch, values.steps, values.fraction, values.max_dist)
