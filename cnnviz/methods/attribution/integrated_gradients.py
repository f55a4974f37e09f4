"""Integrated Gradients (Sundararajan et al. 2017): the input gradient averaged along the straight path from a
baseline to the image (the trapezoid rule over ``steps`` equal steps), times the image minus the baseline. The
attributions add up to the score's change from the baseline to the image (completeness); a pixel's attribution is
the sum over its channels, and can be negative (evidence against the class)."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import BASELINE, AttributionBatch, ChannelAttribution
from cnnviz.methods.attribution.paths import gradients_along
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

STEPS = Setting("steps", int, 64, "steps along the path from the start to the image", minimum=1)


def straight_path(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """``(N, steps + 1, ...)`` equally spaced points from ``start`` to ``end`` (both ``(N, ...)``)."""
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32).reshape(1, -1, *([1] * (start.ndim - 1)))
    return start[:, None] + alphas * (end - start)[:, None]


def integrated_gradients(model: TargetModel, batch: AttributionBatch, steps: int) -> np.ndarray:
    """``(N, rows, cols, channels)`` attributions of every channel."""
    inputs, baseline = batch.inputs, batch.baseline
    grads = gradients_along(model, batch, straight_path(baseline, inputs, steps))
    # the trapezoid rule on equal steps, sum of (g_i + g_i+1) / 2, as every gradient once less half of the two ends:
    # summed in float64 as it goes, with no float64 copy of the gradients
    ends = grads[:, 0].astype(np.float64) + grads[:, -1]
    trapezoid = (grads.sum(axis=1, dtype=np.float64) - ends / 2.0) / steps
    return (trapezoid * (inputs - baseline)).astype(np.float32)


class IntegratedGradients(ChannelAttribution):
    """Integrated Gradients (see the module)."""

    name = "integrated-gradients"
    title = "Integrated Gradients"
    short = "ig"
    settings = (STEPS, BASELINE)
    signed = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.steps) + 1

    def per_channel(self, model: TargetModel, batch: AttributionBatch) -> np.ndarray:  # noqa: D102
        return integrated_gradients(model, batch, self.values.steps)
