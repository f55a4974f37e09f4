"""Pure numpy normalisation of activations and weights to 0..1 for display.

Every function copies its input (never mutates it), takes the axes it reduces over explicitly, and maps a constant
slice (a dead filter's all-zero map) to a flat value instead of dividing by zero. Values become integers only at
the output boundary, in :func:`to_levels`. A batch run puts millions of values through these for every grid, so
each makes one float32 copy and works on it in place.
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
    return scale_range(x, x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True), eps)


def scale_range(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, eps: float = EPSILON) -> np.ndarray:
    """:func:`minmax` with the minimum and maximum already known: ``(x - lo) / (hi - lo)``, where ``lo`` and
    ``hi`` broadcast against ``x`` (per-channel values against channels-last maps); 0 where ``hi - lo < eps``.

    >>> scale_range(np.array([[1.0, 4.0], [2.0, 4.0]]), np.array([1.0, 4.0]), np.array([2.0, 4.0])).tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """
    lo, hi = np.asarray(lo, dtype=np.float32), np.asarray(hi, dtype=np.float32)
    span = hi - lo
    flat = span < eps
    out = np.subtract(np.asarray(x, dtype=np.float32), lo)
    out /= np.where(flat, np.float32(1.0), span)
    return _set_where(out, flat, 0.0)


def _set_where(out: np.ndarray, flat: np.ndarray, value: float) -> np.ndarray:
    """``out`` with the slices where the (broadcast) ``flat`` is True set to ``value``."""
    if flat.any():
        np.copyto(out, np.float32(value), where=flat)
    return out


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
    out = np.subtract(x, mean)
    out /= np.where(flat, np.float32(1.0), std)
    out *= np.float32(spread)
    out += np.float32(centre)
    _set_where(out, flat, centre)
    np.clip(out, 0.0, 255.0, out=out)
    out /= np.float32(255.0)
    return out


def symmetric(x: np.ndarray, axis: Axis = None, eps: float = EPSILON) -> np.ndarray:
    """Scale by the largest magnitude over ``axis`` so that 0 lands at 0.5: honest for signed weights.

    An all-zero slice is all 0.5.

    >>> symmetric(np.array([-2.0, 0.0, 1.0])).tolist()
    [0.0, 0.5, 0.75]
    """
    x = np.asarray(x, dtype=np.float32)
    bound = np.abs(x).max(axis=axis, keepdims=True)
    flat = bound < eps
    out = np.multiply(x, np.float32(0.5))
    out /= np.where(flat, np.float32(1.0), bound)
    out += np.float32(0.5)
    return _set_where(out, flat, 0.5)


def to_levels(x: np.ndarray, levels: int = 256, *, overwrite: bool = False) -> np.ndarray:
    """Quantise 0..1 values to the integers ``0 .. levels - 1`` as uint8 (NaN becomes 0).

    ``overwrite=True`` lets it use a float32 ``x`` as its scratch space instead of copying it, for callers that
    made ``x`` themselves and are done with it.

    >>> to_levels(np.array([0.0, 0.5, 1.0]), levels=5).tolist()
    [0, 2, 4]
    """
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in 2..256, got {levels}")
    x = np.asarray(x)
    clean = x if overwrite and x.dtype == np.float32 else x.astype(np.float32)
    np.clip(clean, 0.0, 1.0, out=clean)  # NaN stays NaN here ...
    if np.isnan(clean.max(initial=0.0)):  # ... and becomes 0 here (max is NaN when any value is)
        clean[np.isnan(clean)] = 0.0
    clean *= np.float32(levels - 1)
    np.rint(clean, out=clean)
    return clean.astype(np.uint8)


def range_levels(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, levels: int = 256) -> np.ndarray:
    """``to_levels(scale_range(x, lo, hi), levels)`` in four passes over ``x`` instead of seven: one scale
    factor per slice, ``(levels - 1) / (hi - lo)``, instead of a division and a multiplication. The two can differ
    by one level where a value falls exactly halfway between levels. Ranges that are not finite (a map holding
    NaN or infinity) take the long way, with its NaN handling.

    >>> range_levels(np.array([[1.0, 4.0], [2.0, 4.0], [1.5, 4.0]]), np.array([1.0, 4.0]), np.array([2.0, 4.0]), 5)
    array([[0, 0],
           [4, 0],
           [2, 0]], dtype=uint8)
    """
    lo, hi = np.asarray(lo, dtype=np.float32), np.asarray(hi, dtype=np.float32)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        return to_levels(scale_range(x, lo, hi), levels, overwrite=True)
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in 2..256, got {levels}")
    span = hi - lo
    flat = span < EPSILON
    factor = np.where(flat, np.float32(0.0), np.float32(levels - 1) / np.where(flat, np.float32(1.0), span))
    out = np.subtract(np.asarray(x, dtype=np.float32), lo)
    out *= factor
    np.clip(out, 0.0, levels - 1, out=out)  # a rounded factor can put the maximum a hair past the top level
    np.rint(out, out=out)
    return out.astype(np.uint8)
