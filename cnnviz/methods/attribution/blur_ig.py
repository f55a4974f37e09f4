"""Blur IG (Xu et al. 2020): Integrated Gradients along the path that blurs the image, from a Gaussian blur of
``max_sigma`` pixels (a picture with its shapes gone) to the image itself, in ``steps`` equal steps of the blur's
sigma, so that no baseline is chosen: the attributions add up to the score's change from the blurred image to the
image. PAIR's saliency takes the path's derivative by a finite difference of the blur and a Riemann sum; here the
trapezoid rule runs over the path's own segments (:func:`cnnviz.methods.attribution.paths.path_integral`), so that on
a model linear in its input Blur IG is exactly Integrated Gradients from the most blurred image (the sum telescopes).
Edges are mirrored (:mod:`cnnviz.methods.blur`)."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import AttributionBatch, ChannelAttribution
from cnnviz.methods.attribution.integrated_gradients import STEPS
from cnnviz.methods.attribution.paths import path_integral
from cnnviz.methods.blur import blur_matrix
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

MAX_SIGMA = Setting("max_sigma", float, 50.0, "the blur the path starts from: a Gaussian's sigma, in pixels", minimum=0)


def blur_path(inputs: np.ndarray, max_sigma: float, steps: int) -> np.ndarray:
    """``(N, steps + 1, rows, cols, channels)``: each image blurred by sigmas from ``max_sigma`` down to 0 (the
    image itself, last), in equal steps."""
    rows, cols = inputs.shape[1:3]
    sigmas = np.linspace(max_sigma, 0.0, steps + 1)
    points = np.empty((len(inputs), steps + 1, *inputs.shape[1:]), dtype=np.float32)
    for step, sigma in enumerate(sigmas):
        across, down = blur_matrix(rows, float(sigma)), blur_matrix(cols, float(sigma))
        points[:, step] = np.einsum("ri,nijc,sj->nrsc", across, inputs, down, optimize=True)
    points[:, -1] = inputs  # sigma 0 is the image, to the bit
    return points


class BlurIG(ChannelAttribution):
    """Blur IG (see the module)."""

    name = "blur-ig"
    title = "Blur IG"
    short = "blur-ig"
    settings = (STEPS, MAX_SIGMA)
    signed = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.steps) + 1

    def per_channel(self, model: TargetModel, batch: AttributionBatch) -> np.ndarray:  # noqa: D102
        points = blur_path(np.asarray(batch.inputs, np.float32), self.values.max_sigma, self.values.steps)
        return path_integral(model, batch, points)
