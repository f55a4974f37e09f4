"""SmoothGrad (Smilkov et al. 2017) around any gradient method: the method's attributions of every channel
averaged over copies of the image with Gaussian noise added, which takes the speckle out of gradients. ``smoothgrad``
is SmoothGrad around the plain gradient; ``smoothgrad-ig``, ``smoothgrad-guided-ig`` and ``smoothgrad-blur-ig``
around Integrated Gradients, Guided IG and Blur IG (PAIR's saliency offers SmoothGrad around each of them). The
noise's standard deviation is ``noise`` times the image's value range; each image gets the same noise for the same
``seed`` wherever it runs, so the result does not depend on the batch or the engine. A baseline stays the clean
image's. With zero noise it is the method itself, to the bit."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cnnviz.methods.attribution.base import SEED, AttributionBatch, AttributionSettings, ChannelAttribution
from cnnviz.methods.attribution.blur_ig import BlurIG
from cnnviz.methods.attribution.gradient import Gradient
from cnnviz.methods.attribution.guided_ig import GuidedIG
from cnnviz.methods.attribution.integrated_gradients import IntegratedGradients
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

SAMPLES = Setting("samples", int, 50, "noisy copies per image", minimum=1)
NOISE = Setting("noise", float, 0.15, "the noise, a fraction of each image's value range", minimum=0)
#: Inputs through the model per call of the wrapped method at most (its inputs per copy times the copies at once).
COPIES_AT_ONCE = 256


class Smoothed(ChannelAttribution):
    """SmoothGrad around the method :attr:`inner` (see the module); :func:`smoothed` makes one."""

    inner: ClassVar[type[ChannelAttribution]]

    def __init__(self, values: AttributionSettings) -> None:
        super().__init__(values)
        self.wrapped = self.inner(values)
        self._draws: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.samples) * self.wrapped.inputs_per_image(rows, cols, channels)

    def reduce(self, values: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.wrapped.reduce(values)

    def draws(self, shape: tuple[int, ...]) -> np.ndarray:
        """``(samples, *shape)`` the standard normal draws of the seed, drawn once per run and input shape."""
        key = (int(self.values.samples), int(self.values.seed), shape)
        if key not in self._draws:
            rng = np.random.default_rng(self.values.seed)
            self._draws = {key: rng.standard_normal((self.values.samples, *shape), dtype=np.float32)}
        return self._draws[key]

    def per_channel(self, model: TargetModel, batch: AttributionBatch) -> np.ndarray:  # noqa: D102
        inputs = np.asarray(batch.inputs, dtype=np.float32)
        count, shape = len(inputs), inputs.shape[1:]
        draws = self.draws(shape)
        flat = inputs.reshape(count, -1)
        spread = (self.values.noise * (flat.max(axis=1) - flat.min(axis=1))).reshape(count, 1, *[1] * len(shape))
        per_copy = max(1, self.wrapped.inputs_per_image(shape[0], shape[1], 0))
        group = max(1, COPIES_AT_ONCE // (per_copy * max(1, count)))
        total = np.zeros(inputs.shape, dtype=np.float64)
        for first in range(0, len(draws), group):
            part = draws[first : first + group]
            noisy = (inputs[:, None] + spread * part[None]).reshape(-1, *shape)
            values = self.wrapped.per_channel(model, batch.repeated(len(part), noisy))
            total += values.reshape(count, len(part), *shape).sum(axis=1, dtype=np.float64)
        return (total / len(draws)).astype(np.float32)


def smoothed(inner: type[ChannelAttribution], name: str = "", title: str = "") -> type[Smoothed]:
    """The method SmoothGrad around ``inner``: named ``smoothgrad-<inner.short>`` unless ``name`` is given, with
    SmoothGrad's settings and ``inner``'s."""
    return type(
        f"SmoothGrad{inner.__name__}",
        (Smoothed,),
        {
            "__doc__": f"SmoothGrad around {inner.title} (see the module).",
            "inner": inner,
            "name": name or f"smoothgrad-{inner.short}",
            "title": title or f"SmoothGrad {inner.title}",
            "settings": (SAMPLES, NOISE, SEED, *inner.settings),
            "signed": inner.signed,
        },
    )


SmoothGrad = smoothed(Gradient, "smoothgrad", "SmoothGrad")
SmoothGradIG = smoothed(IntegratedGradients)
SmoothGradGuidedIG = smoothed(GuidedIG)
SmoothGradBlurIG = smoothed(BlurIG)
