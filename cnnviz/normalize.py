"""Pure numpy normalisation of activations and weights to 0..1 for display.

Every function copies its input (never mutates it), takes the axes it reduces over explicitly, and maps a constant
slice (a dead filter's all-zero map) to a flat value instead of dividing by zero. Values become integers only at
the output boundary, in :func:`to_levels`.
"""

from __future__ import annotations

import numpy as np

Axis = int | tuple[int, ...] | None
EPSILON = 1e-12


def minmax(x: np.ndarray, axis: Axis = None, eps: float = EPSILON) -> np.ndarray:
    """Scale to 0..1 by the minimum and maximum over ``axis`` (all axes when None).

    A slice whose range is below ``eps`` is constant and becomes all 0.

    >>> minmax(np.array([[1.0, 3.0], [5.0, 5.0]]), axis=1).tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float32)
    lo = x.min(axis=axis, keepdims=True)
    span = x.max(axis=axis, keepdims=True) - lo
    flat = span < eps
    return np.where(flat, 0.0, (x - lo) / np.where(flat, 1.0, span)).astype(np.float32)


def standardize(
    x: np.ndarray,
    axis: Axis = None,
    eps: float = EPSILON,
    spread: float = 64.0,
    centre: float = 128.0,
) -> np.ndarray:
    """The tutorials' ``(x - mean) / std * spread + centre``, clipped to 0..255, returned as 0..1.

    A slice whose standard deviation is below ``eps`` sits at ``centre``.

    >>> standardize(np.array([1.0, 3.0]), spread=64.0, centre=128.0).tolist()
    [0.250980406999588, 0.7529411911964417]
    """
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    flat = std < eps
    scaled = np.where(flat, centre, (x - mean) / np.where(flat, 1.0, std) * spread + centre)
    return (np.clip(scaled, 0.0, 255.0) / 255.0).astype(np.float32)


def symmetric(x: np.ndarray, axis: Axis = None, eps: float = EPSILON) -> np.ndarray:
    """Scale by the largest magnitude over ``axis`` so that 0 lands at 0.5: honest for signed weights.

    An all-zero slice is all 0.5.

    >>> symmetric(np.array([-2.0, 0.0, 1.0])).tolist()
    [0.0, 0.5, 0.75]
    """
    x = np.asarray(x, dtype=np.float32)
    bound = np.abs(x).max(axis=axis, keepdims=True)
    flat = bound < eps
    return np.where(flat, 0.5, 0.5 + 0.5 * x / np.where(flat, 1.0, bound)).astype(np.float32)


def to_levels(x: np.ndarray, levels: int = 256) -> np.ndarray:
    """Quantise 0..1 values to the integers ``0 .. levels - 1`` as uint8 (NaN becomes 0).

    >>> to_levels(np.array([0.0, 0.5, 1.0]), levels=5).tolist()
    [0, 2, 4]
    """
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in 2..256, got {levels}")
    clean = np.nan_to_num(np.clip(x, 0.0, 1.0), nan=0.0)
    return np.rint(clean * (levels - 1)).astype(np.uint8)
