"""Integrating the score's gradient along a path of inputs, from a start (a baseline, a blurred image) to the image:
what Integrated Gradients, Blur IG and XRAI share. The gradients at every point of the path are taken in large
batches (:meth:`cnnviz.methods.target.TargetModel.input_gradient`), and the integral is the trapezoid rule over the
path's segments, ``sum_i (g_i + g_i+1) / 2 * (p_i+1 - p_i)``, summed in float64 as it goes. On a model linear in its
input the gradient is the same everywhere and the sum telescopes: ``w * (image - start)``, exactly, for any path."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import AttributionBatch
from cnnviz.methods.target import TargetModel


def gradients_along(model: TargetModel, batch: AttributionBatch, points: np.ndarray) -> np.ndarray:
    """``(N, K, rows, cols, channels)`` the explained score's gradient at each of ``points`` (the same shape), K
    points per image of ``batch``, every image's points through the model together."""
    along = batch.repeated(points.shape[1], points.reshape(-1, *points.shape[2:]))
    return along.input_gradient(model).reshape(points.shape)


def path_integral(model: TargetModel, batch: AttributionBatch, points: np.ndarray) -> np.ndarray:
    """``(N, rows, cols, channels)`` float32: the gradient integrated along each image's path ``points``
    ``(N, K + 1, rows, cols, channels)`` (its start first, the image last), by the trapezoid rule."""
    grads = gradients_along(model, batch, points)
    total = np.zeros(points.shape[:1] + points.shape[2:], dtype=np.float64)
    for step in range(points.shape[1] - 1):
        segment = points[:, step + 1].astype(np.float64) - points[:, step]
        total += 0.5 * (grads[:, step].astype(np.float64) + grads[:, step + 1]) * segment
    return total.astype(np.float32)
