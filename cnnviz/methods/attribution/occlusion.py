"""Occlusion (Zeiler & Fergus 2014): a square patch slid over the image, set to the baseline; a pixel's attribution
is the mean drop in the class's probability over the patches that cover it (negative where hiding it raises the
class). All patched copies of an image go through the model in large batches, made on the device."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import (
    BASELINE,
    Attributed,
    Attribution,
    AttributionBatch,
    explained_probabilities,
    per_image,
)
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

PATCH = Setting("patch", int, None, "the square patch's side in pixels", minimum=1, shown="input/8")
STRIDE = Setting("stride", int, None, "the step between patches in pixels", minimum=1, shown="patch/2")


def starts(size: int, patch: int, stride: int) -> list[int]:
    """Where patches start along an axis of ``size``: every ``stride``, the last one flush with the end.

    >>> starts(10, 4, 3), starts(4, 8, 2)
    ([0, 3, 6], [0])
    """
    last = max(size - patch, 0)
    places = list(range(0, last + 1, stride))
    return places if places[-1] == last else [*places, last]


def patch_masks(rows: int, cols: int, patch: int, stride: int) -> np.ndarray:
    """``(M, rows, cols)`` masks: 1 kept, 0 under each patch."""
    boxes = [(top, left) for top in starts(rows, patch, stride) for left in starts(cols, patch, stride)]
    masks = np.ones((len(boxes), rows, cols), dtype=np.float32)
    for index, (top, left) in enumerate(boxes):
        masks[index, top : top + patch, left : left + patch] = 0.0
    return masks


class Occlusion(Attribution):
    """Occlusion (see the module)."""

    name = "occlusion"
    title = "Occlusion"
    settings = (PATCH, STRIDE, BASELINE)
    signed = True

    def _patches(self, rows: int, cols: int) -> np.ndarray:
        patch = self.values.patch or max(1, round(min(rows, cols) / 8))
        stride = self.values.stride or max(1, patch // 2)
        return patch_masks(rows, cols, patch, stride)

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return len(self._patches(rows, cols))

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        rows, cols = batch.inputs.shape[1:3]
        masks = self._patches(rows, cols)
        hidden = 1.0 - masks
        covered = hidden.sum(axis=0)
        drops = explained_probabilities(model, batch)[:, None] - per_image(model, batch, masks)
        total = np.tensordot(drops, hidden, axes=1)
        return Attributed(np.where(covered > 0, total / np.maximum(covered, 1.0), 0.0).astype(np.float32))
