"""Integrated Gradients (Sundararajan et al. 2017): the input gradient averaged along the straight path from a
baseline to the image (the trapezoid rule over ``steps`` equal steps), times the image minus the baseline. The
attributions add up to the score's change from the baseline to the image (completeness); a pixel's attribution is
the sum over its channels, and can be negative (evidence against the class)."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import BASELINE, Attributed, Attribution, AttributionBatch
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

STEPS = Setting("steps", int, 64, "steps from the baseline to the image", minimum=1)


def integrated_gradients(model: TargetModel, batch: AttributionBatch, steps: int) -> np.ndarray:
    """``(N, rows, cols, channels)`` attributions of every channel."""
    inputs, baseline = batch.inputs, batch.baseline
    count = len(inputs)
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    path = baseline[:, None] + alphas[None, :, None, None, None] * (inputs - baseline)[:, None]
    cotangent = np.repeat(batch.scored.cotangent, steps + 1, axis=0)
    images = None if batch.images is None else np.repeat(np.asarray(batch.images), steps + 1).tolist()
    grads = model.input_gradient(path.reshape(-1, *inputs.shape[1:]), cotangent, images)[0]
    grads = grads.reshape(count, steps + 1, *inputs.shape[1:])
    # the trapezoid rule, sum of (g_i + g_i+1) / 2, as every gradient once less half of the two ends: summed in
    # float64 as it goes, with no float64 copy of the gradients
    ends = grads[:, 0].astype(np.float64) + grads[:, -1]
    trapezoid = (grads.sum(axis=1, dtype=np.float64) - ends / 2.0) / steps
    return (trapezoid * (inputs - baseline)).astype(np.float32)


class IntegratedGradients(Attribution):
    """Integrated Gradients (see the module)."""

    name = "integrated-gradients"
    title = "Integrated Gradients"
    settings = (STEPS, BASELINE)
    signed = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.steps) + 1

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        return Attributed(integrated_gradients(model, batch, self.values.steps).sum(axis=-1))
