"""What the explanation metrics perturb: an attribution's features, their order, and the masks that take them out.

A feature is a pixel (all its channels at once), or with a grid of N a cell of an N x N grid laid over the image.
A feature's attribution is the mean of the attribution over its pixels (an attribution with channels is first
averaged over them). Masks are 1 where the image is kept and 0 where it becomes the baseline.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnnviz.errors import OptionError


def as_map(attribution: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """An attribution as a ``(rows, cols)`` float64 map: ``(rows, cols)`` as it is, ``(rows, cols, channels)``
    averaged over its channels (a map with values that are not finite is kept: the metrics call it undefined).

    Raises:
        OptionError: any other shape.
    """
    values = np.asarray(attribution, dtype=np.float64)
    if values.ndim == 3 and values.shape[:2] == (rows, cols):
        values = values.mean(axis=-1)
    if values.shape != (rows, cols):
        raise OptionError(
            f"an attribution of shape {list(np.shape(attribution))} does not fit an input of {rows}x{cols}; it "
            "must be rows x cols (or rows x cols x channels) at the model's input size"
        )
    return values  # values that are not finite rank nothing: every metric scores them undefined


def feature_cells(rows: int, cols: int, grid: int | None) -> tuple[np.ndarray, int]:
    """Each pixel's feature, ``(rows, cols)`` int, and the number of features: every pixel its own, or the cells
    of a ``grid`` x ``grid`` grid (cell edges at ``i * rows // grid``).

    >>> feature_cells(4, 4, 2)[0].tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    if grid is None:
        return np.arange(rows * cols).reshape(rows, cols), rows * cols
    if grid > min(rows, cols):
        raise OptionError(f"a grid of {grid} has more cells per side than the {rows}x{cols} input has pixels")
    row_cell = np.arange(rows) * grid // rows
    col_cell = np.arange(cols) * grid // cols
    return row_cell[:, None] * grid + col_cell[None, :], grid * grid


def feature_values(attribution: np.ndarray, cells: np.ndarray, count: int) -> np.ndarray:
    """Each feature's attribution: the mean over its pixels of a ``(rows, cols)`` map."""
    sums = np.bincount(cells.ravel(), weights=attribution.ravel(), minlength=count)
    sizes = np.bincount(cells.ravel(), minlength=count)
    return sums / np.maximum(sizes, 1)


def removal_rank(attribution: np.ndarray, cells: np.ndarray, count: int) -> np.ndarray:
    """``(rows, cols)``: the place of each pixel's feature in the order of attribution, highest first (0 for the
    features taken out first; ties in the order of the features)."""
    order = np.argsort(-feature_values(attribution, cells, count), kind="stable")
    place = np.empty(count, dtype=np.int64)
    place[order] = np.arange(count)
    return place[cells]


def step_counts(count: int, steps: int) -> np.ndarray:
    """How many features are changed at each of ``steps + 1`` points: ``np.linspace(0, count, steps + 1)`` cast to
    integers (rounded down), as xplique counts them.

    >>> step_counts(10, 4).tolist()
    [0, 2, 5, 7, 10]
    """
    return np.linspace(0, count, steps + 1).astype(np.int64)


def curve_masks(rank: np.ndarray, counts: np.ndarray, deleting: bool) -> Iterator[np.ndarray]:
    """The masks of a deletion curve (the first ``k`` features become the baseline) or an insertion curve (only
    the first ``k`` features are kept, the rest is the baseline), one per count."""
    for k in counts:
        yield (rank >= k if deleting else rank < k).astype(np.float32)


def random_subsets(count: int, samples: int, fraction: float, seed: int, number: int) -> np.ndarray:
    """``(samples, size)`` random subsets of ``count`` features, ``size = max(1, int(count * fraction))`` each,
    drawn without replacement; the same for a seed and an image number on any engine and in any batch."""
    size = max(1, int(count * fraction))
    rng = np.random.default_rng([seed, number])
    return np.stack([rng.choice(count, size=size, replace=False) for _ in range(samples)])
