"""SmoothGrad (Smilkov et al. 2017): the input gradient averaged over copies of the image with Gaussian noise
added, which takes the speckle out of plain gradients. The noise's standard deviation is ``noise`` times the
image's value range; each image gets the same noise for the same ``seed`` wherever it runs, so the result does not
depend on the batch or the engine. With zero noise it is the plain gradient."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import SEED, Attributed, Attribution, AttributionBatch
from cnnviz.methods.attribution.gradient import saliency
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

SAMPLES = Setting("samples", int, 50, "noisy copies per image", minimum=1)
NOISE = Setting("noise", float, 0.15, "the noise, a fraction of each image's value range", minimum=0)


class SmoothGrad(Attribution):
    """SmoothGrad (see the module)."""

    name = "smoothgrad"
    title = "SmoothGrad"
    settings = (SAMPLES, NOISE, SEED)

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.samples)

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        samples, noise, seed = self.values.samples, self.values.noise, self.values.seed
        inputs = batch.inputs
        count = len(inputs)
        draws = np.random.default_rng(seed).standard_normal((samples, *inputs.shape[1:]), dtype=np.float32)
        spread = noise * (inputs.reshape(count, -1).max(axis=1) - inputs.reshape(count, -1).min(axis=1))
        noisy = inputs[:, None] + spread[:, None, None, None, None] * draws[None]
        cotangent = np.repeat(batch.scored.cotangent, samples, axis=0)
        images = None if batch.images is None else np.repeat(np.asarray(batch.images), samples).tolist()
        grads = model.input_gradient(noisy.reshape(-1, *inputs.shape[1:]), cotangent, images)[0]
        mean = grads.reshape(count, samples, *inputs.shape[1:]).astype(np.float64).mean(axis=1)
        return Attributed(saliency(mean.astype(np.float32)))
