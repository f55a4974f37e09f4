"""Saliency (Simonyan et al. 2014): the gradient of the class score with respect to the input pixels; a pixel's
attribution is the largest absolute gradient over its channels."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import AttributionBatch, ChannelAttribution
from cnnviz.methods.target import TargetModel


def saliency(grads: np.ndarray) -> np.ndarray:
    """``max_c |grad|`` of ``(N, rows, cols, channels)`` gradients: ``(N, rows, cols)``."""
    return np.abs(np.asarray(grads, dtype=np.float32)).max(axis=-1)


class Gradient(ChannelAttribution):
    """The input gradient's magnitude (see the module)."""

    name = "gradient"
    title = "Gradient"
    reads_gradient = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return 1

    def per_channel(self, model: TargetModel, batch: AttributionBatch) -> np.ndarray:  # noqa: D102
        return batch.input_gradient(model)

    def reduce(self, values: np.ndarray) -> np.ndarray:  # noqa: D102
        return saliency(values)
