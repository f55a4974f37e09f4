"""RISE (Petsiuk et al. 2018): the image seen through many random masks (a coarse grid of cells, each kept with
probability one half, interpolated smoothly and shifted by a random fraction of a cell), the rest set to the
baseline. The grid reaches a cell past the image on every side, so every pixel lies between grid points: with the
shift uniform over a whole cell, every pixel's mask value has the same distribution, its mean and variance the same
at the border as inside (a grid clamped at the image's edge gives the border pixels one cell's value, more variance,
and RISE's noise gathers there). A pixel's attribution is the mean of the class's probability over the masks, each
weighted by how much of the pixel it kept (Petsiuk et al.'s saliency), minus the mean probability over all masks: a
pixel that does not matter gets 0, one whose presence lowers the class a negative value. The masks depend only on
the seed and the input's size: every image, batch and engine gets the same ones, and mask k is the same for any
number of masks."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import BASELINE, SEED, Attributed, Attribution, AttributionBatch, per_image
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

#: The default number of masks: the smallest at which two seeds' maps agreed to 0.9 (Pearson) on every sample photo
#: where RISE finds something (the bundled model at 128x128, bench/rise_masks.py: 2000 gave 0.84 and 0.93).
MASKS = Setting("masks", int, 4000, "random masks per image", minimum=1)
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
    grids = np.empty((count, CELLS + 2, CELLS + 2), dtype=np.float32)
    shifts = np.empty((count, 2))
    for index in range(count):
        rng = np.random.default_rng((seed, start + index))
        grids[index] = rng.random((CELLS + 2, CELLS + 2)) < KEEP
        shifts[index] = rng.random(2)
    row_weights, col_weights = _weights(rows, shifts[:, 0]), _weights(cols, shifts[:, 1])
    return np.einsum("nrk,nkl,ncl->nrc", row_weights, grids, col_weights, optimize=True)


def _weights(size: int, shifts: np.ndarray) -> np.ndarray:
    """``(masks, size, CELLS + 2)`` linear-interpolation weights: pixel centre y, shifted by ``shift`` of a cell,
    lies at ``(y + 0.5) / cell + shift`` grid steps, between grid points ``floor`` and ``floor + 1``."""
    cell = size / CELLS
    places = (np.arange(size) + 0.5)[None, :] / cell + shifts[:, None]  # (masks, size), from 0 to CELLS + 1
    low = np.floor(places).astype(int)
    frac = (places - low).astype(np.float32)
    weights = np.zeros((len(shifts), size, CELLS + 2), dtype=np.float32)
    masks, pixels = np.indices(low.shape)
    weights[masks, pixels, low] = 1.0 - frac
    weights[masks, pixels, low + 1] = frac
    return weights


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
