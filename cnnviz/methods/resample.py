"""Resize maps to an image's size, smoothly: Grad-CAM heatmaps and feature-map overlays are computed at a
layer's resolution (14x14 for VGG16's block5) and drawn over the 224x224 input."""

from __future__ import annotations

import numpy as np


def linear_weights(size: int, target: int) -> np.ndarray:
    """A ``(target, size)`` matrix of linear-interpolation weights, pixel centres aligned as in
    ``tf.image.resize(..., "bilinear")`` (half-pixel centres, edges clamped).

    >>> linear_weights(2, 4).tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    centres = (np.arange(target, dtype=np.float64) + 0.5) * size / target - 0.5
    centres = np.clip(centres, 0.0, size - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = centres - low
    weights = np.zeros((target, size))
    np.add.at(weights, (np.arange(target), low), 1.0 - frac)
    np.add.at(weights, (np.arange(target), high), frac)
    return weights


def resize_maps(maps: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinearly resize ``(h, w, ...)`` maps to ``(rows, cols, ...)``; trailing axes (channels) are kept.

    Each output value is a weighted mean of at most four inputs, so the values stay within the maps' range and a
    constant map stays constant.

    >>> resize_maps(np.array([[0.0, 1.0]]), 1, 4).tolist()
    [[0.0, 0.25, 0.75, 1.0]]
    """
    maps = np.asarray(maps, dtype=np.float32)
    row_weights = linear_weights(maps.shape[0], rows).astype(np.float32)
    col_weights = linear_weights(maps.shape[1], cols).astype(np.float32)
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
    out = np.einsum("rh,hwk,cw->rck", row_weights, flat, col_weights, optimize=True)
    return out.reshape(rows, cols, *maps.shape[2:])
