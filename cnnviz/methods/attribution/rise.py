"""RISE (Petsiuk et al. 2018): the image seen through many random masks (a coarse grid of cells, each kept with
probability one half, upsampled smoothly and shifted by a random fraction of a cell), the rest set to the
baseline. A pixel's attribution is the mean of the class's probability over the masks, each weighted by how much
of the pixel it kept (Petsiuk et al.'s saliency), minus the mean probability over all masks: a pixel that does
not matter gets 0, one whose presence lowers the class a negative value. The masks depend only on the seed and the
input's size: every image, batch and engine gets the same ones, and mask k is the same for any number of masks."""

from __future__ import annotations

import math

import numpy as np

from cnnviz.methods.attribution.base import BASELINE, SEED, Attributed, Attribution, AttributionBatch, per_image
from cnnviz.methods.resample import linear_weights
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

MASKS = Setting("masks", int, 2000, "random masks per image", minimum=1)
#: The masks' grid: cells per side, and the chance each is kept.
CELLS, KEEP = 7, 0.5
#: Masks made and run at a time: bounds memory at any --masks.
CHUNK = 256


def rise_masks(count: int, rows: int, cols: int, seed: int, start: int = 0) -> np.ndarray:
    """Masks ``start`` to ``start + count`` of the seed's sequence, ``(count, rows, cols)`` in 0..1. Mask k is
    drawn from a stream of its own (the seed and k), so it is the same whatever the number of masks asked.

    >>> bool(np.array_equal(rise_masks(3, 16, 16, 0)[2], rise_masks(1, 16, 16, 0, start=2)[0]))
    True
    """
    cell_rows, cell_cols = math.ceil(rows / CELLS), math.ceil(cols / CELLS)
    up_rows, up_cols = (CELLS + 1) * cell_rows, (CELLS + 1) * cell_cols
    row_weights = linear_weights(CELLS, up_rows).astype(np.float32)
    col_weights = linear_weights(CELLS, up_cols).astype(np.float32)
    masks = np.empty((count, rows, cols), dtype=np.float32)
    for index in range(count):
        rng = np.random.default_rng((seed, start + index))
        grid = (rng.random((CELLS, CELLS)) < KEEP).astype(np.float32)
        top, left = (int(shift * cells) for shift, cells in zip(rng.random(2), (cell_rows, cell_cols), strict=True))
        big = row_weights @ grid @ col_weights.T
        masks[index] = big[top : top + rows, left : left + cols]
    return masks


class Rise(Attribution):
    """RISE (see the module)."""

    name = "rise"
    title = "RISE"
    settings = (MASKS, SEED, BASELINE)
    signed = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return int(self.values.masks)

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        total, seed = self.values.masks, self.values.seed
        count, rows, cols = batch.inputs.shape[:3]
        sums = np.zeros((count, rows, cols), dtype=np.float64)
        means = np.zeros(count, dtype=np.float64)
        for start in range(0, total, CHUNK):
            masks = rise_masks(min(CHUNK, total - start), rows, cols, seed, start)
            scores = per_image(model, batch, masks)
            sums += np.tensordot(scores, masks, axes=1)
            means += scores.sum(axis=1)
        saliency = sums / (total * KEEP) - (means / total)[:, None, None]
        return Attributed(saliency.astype(np.float32))
