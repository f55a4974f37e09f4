"""The statistics the explanation metrics report: rank correlation, structural similarity, area under a curve.

Written here in NumPy (a few lines each) rather than taken from SciPy or scikit-image, which cnnviz does not
otherwise need.
"""

from __future__ import annotations

import numpy as np


def ranks(values: np.ndarray, resolution: float = 0.0) -> np.ndarray:
    """The ranks of ``values`` (flattened), 1 for the smallest, ties given the mean of the ranks they span. Values
    that follow each other in order no further apart than ``resolution`` are ties (a chain of such steps is one
    tie): what a computation in float32 cannot tell apart.

    >>> ranks(np.array([10.0, 30.0, 20.0, 30.0])).tolist()
    [1.0, 3.5, 2.0, 3.5]
    >>> ranks(np.array([1.0, 1.0 + 1e-9, 2.0]), resolution=1e-6).tolist()
    [1.5, 1.5, 3.0]
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    # Each run of equal values gets the mean of the ranks it spans: (first + last) / 2, 1-based.
    starts = np.flatnonzero(np.r_[True, np.diff(ordered) > resolution])
    ends = np.r_[starts[1:], len(flat)]
    mean_rank = (starts + 1 + ends) / 2.0
    run = np.repeat(np.arange(len(starts)), ends - starts)
    out = np.empty(len(flat), dtype=np.float64)
    out[order] = mean_rank[run]
    return out


def spearman(first: np.ndarray, second: np.ndarray, resolution: float = 0.0) -> float:
    """Spearman's rank correlation of two arrays of the same size: the Pearson correlation of their ranks (values of
    ``first`` within ``resolution`` of each other are ties, :func:`ranks`); NaN where either has no order (every
    value tied, or one not finite): the correlation is undefined there, neither agreement nor disagreement.

    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 35.0]))
    1.0
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))
    -1.0
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    nan
    """
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        return float("nan")
    a, b = ranks(first, resolution), ranks(second)
    if a.size != b.size:
        raise ValueError(f"spearman needs arrays of one size, got {a.size} and {b.size}")
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float("nan") if norm == 0.0 else float(np.clip((a * b).sum() / norm, -1.0, 1.0))


def ranks_nothing(attribution: np.ndarray) -> str:
    """Why an attribution map orders no feature before another, or ``""`` where it does: a constant map (the
    same value everywhere, often a network that passes no gradient back) or one with values that are not finite.
    Every metric's value of such a map is undefined."""
    values = np.asarray(attribution)
    if not np.isfinite(values).all():
        return "the attribution has values that are not finite"
    if values.size == 0 or values.max() == values.min():
        return "the attribution is the same everywhere: it ranks nothing"
    return ""


#: SSIM's window side and constants, as scikit-image's ``structural_similarity`` uses them by default.
SSIM_WINDOW = 7
_K1, _K2 = 0.01, 0.03


def _box_means(image: np.ndarray, side: int) -> np.ndarray:
    """The mean over every ``side`` x ``side`` window wholly inside ``image``: (rows - side + 1, cols - side + 1)."""
    total = np.pad(np.cumsum(np.cumsum(image, axis=0), axis=1), ((1, 0), (1, 0)))
    sums = total[side:, side:] - total[:-side, side:] - total[side:, :-side] + total[:-side, :-side]
    return sums / float(side * side)


def ssim(first: np.ndarray, second: np.ndarray, data_range: float = 1.0) -> float:
    """The mean structural similarity (Wang et al. 2004) of two 2-D maps, over every 7 x 7 window inside them,
    with sample covariances and K1 = 0.01, K2 = 0.03 (scikit-image's defaults); 1 for equal maps.

    >>> ssim(np.eye(8), np.eye(8))
    1.0
    """
    x = np.asarray(first, dtype=np.float64)
    y = np.asarray(second, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"ssim compares two 2-D maps of one shape, got {x.shape} and {y.shape}")
    side = min(SSIM_WINDOW, *x.shape)
    count = side * side
    correction = count / (count - 1) if count > 1 else 1.0
    mx, my = _box_means(x, side), _box_means(y, side)
    vx = (_box_means(x * x, side) - mx * mx) * correction
    vy = (_box_means(y * y, side) - my * my) * correction
    cov = (_box_means(x * y, side) - mx * my) * correction
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())


def auc(values: np.ndarray) -> float:
    """The area under a curve of equally spaced points from 0 to 1 (the fraction of features changed), by the
    trapezoid rule.

    >>> auc(np.array([1.0, 0.5, 0.0]))
    0.5
    """
    points = np.asarray(values, dtype=np.float64)
    if len(points) < 2:
        raise ValueError("a curve needs at least two points")
    width = 1.0 / (len(points) - 1)
    return float(width * (points[1:] + points[:-1]).sum() / 2.0)
