"""Gaussian blur as matrices: blurring an image's rows and columns is two matrix products with a
``size x size`` matrix per axis (:func:`blur_matrix`), whatever the blur's width, where a tap loop costs the kernel's
width in passes over the image. The edges are mirrored (``d c b a | a b c d | d c b a``), as often as a wide
kernel needs."""

from __future__ import annotations

import numpy as np


def blur_matrix(size: int, sigma: float) -> np.ndarray:
    """``(size, size)`` float32: row i holds the weights of a Gaussian of ``sigma`` pixels (taps to three sigmas)
    centred on pixel i, folded onto the pixels by mirroring the edges; the identity where ``sigma`` is 0.

    >>> blur_matrix(3, 0.0).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> bool(np.allclose(blur_matrix(5, 2.0).sum(axis=1), 1.0))
    True
    """
    if sigma <= 0:
        return np.eye(size, dtype=np.float32)
    radius = max(1, int(round(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    taps /= taps.sum()
    sources = np.arange(size)[:, None] + offsets[None, :]
    folded = np.mod(sources, 2 * size)
    folded = np.where(folded >= size, 2 * size - 1 - folded, folded)
    matrix = np.zeros((size, size), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(size), len(offsets)), folded.ravel()), np.tile(taps, size))
    return matrix.astype(np.float32)


def blurred(inputs: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """``(N, rows, cols, channels)`` blurred by a Gaussian of ``sigma`` pixels (default a twentieth of the short
    side, as insertion's start in Petsiuk et al. 2018 keeps colours and loses shapes), edges mirrored.

    >>> flat = np.full((1, 9, 9, 1), 2.0, np.float32)
    >>> bool(np.allclose(blurred(flat), 2.0))
    True
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    rows, cols = inputs.shape[1:3]
    sigma = sigma if sigma is not None else max(min(rows, cols) / 20.0, 0.5)
    across = blur_matrix(rows, sigma)
    down = blur_matrix(cols, sigma)
    return np.einsum("ri,nijc,sj->nrsc", across, inputs, down, optimize=True).astype(np.float32)
