"""Linear CKA (centered kernel alignment) between two sets of features of the same samples, from sums that merge.

For features ``X`` (n x p) and ``Y`` (n x q) of the same n samples, linear CKA is
``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the linear kernels ``K = X X^T`` and ``L = Y Y^T``
(Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited"). Two estimators of HSIC:

- ``biased``: Kornblith's formula, ``tr(K H L H)`` with the centring matrix ``H``, which for linear kernels is
  ``||Xc^T Yc||_F^2`` on the centred features;
- ``debiased``: the unbiased HSIC estimator (Song et al. 2012) that Nguyen et al. 2021 ("Do Wide and Deep Networks
  Learn the Same Things?") use for minibatch CKA. Its value does not drift with the number of samples as the biased
  one does (which is above 0 for unrelated features at small n).

Neither needs the n x n kernels: every term of both is a function of sums over samples (``X^T Y``, the sums of the
features, of their squared norms, and of each sample's norm times the other's features), kept in float64 by
:class:`CrossMoments`. Those sums add exactly over any split of the samples, so a scan over minibatches, on any
engine, gives the estimator of all the data at once (Nguyen et al. average per-minibatch estimates instead, which
depends on the batch size), and memory is p x q whatever the number of samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The HSIC estimators: ``debiased`` (the unbiased estimator; the default) and ``biased`` (Kornblith 2019).
ESTIMATORS = ("debiased", "biased")
#: How a conv layer's (N, rows, cols, channels) maps become samples x features for CKA (:func:`as_samples`).
FEATURES = ("mean", "positions")
#: The debiased estimator needs at least this many samples (its normalisation divides by n - 3).
DEBIASED_MIN_SAMPLES = 4


@dataclass
class CrossMoments:
    """The sums over samples that linear CKA's HSIC terms between features ``X`` and ``Y`` come from; ``a + b``
    merges exactly (float64).

    Attributes:
        samples: n, the samples summed.
        sum_x: sum of the rows of X, (p,).
        sum_y: sum of the rows of Y, (q,).
        cross: X^T Y, (p, q).
        norms_x: sum of ||x_i||^2.
        norms_y: sum of ||y_i||^2.
        x_by_y_norms: sum of ||y_i||^2 x_i, (p,).
        y_by_x_norms: sum of ||x_i||^2 y_i, (q,).
        norm_products: sum of ||x_i||^2 ||y_i||^2.
    """

    samples: int
    sum_x: np.ndarray
    sum_y: np.ndarray
    cross: np.ndarray
    norms_x: float
    norms_y: float
    x_by_y_norms: np.ndarray
    y_by_x_norms: np.ndarray
    norm_products: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> CrossMoments:
        """The sums of one block of samples: ``x`` (n, p) and ``y`` (n, q), row i of each the same sample."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples and y {len(y)}")
        x_norms = np.einsum("ij,ij->i", x, x)
        y_norms = x_norms if y is x else np.einsum("ij,ij->i", y, y)
        return cls(
            samples=len(x),
            sum_x=x.sum(axis=0),
            sum_y=y.sum(axis=0),
            cross=x.T @ y,
            norms_x=float(x_norms.sum()),
            norms_y=float(y_norms.sum()),
            x_by_y_norms=y_norms @ x,
            y_by_x_norms=x_norms @ y,
            norm_products=float(x_norms @ y_norms),
        )

    def __add__(self, other: CrossMoments) -> CrossMoments:
        if self.cross.shape != other.cross.shape:
            raise ValueError(f"cannot merge sums of {other.cross.shape} features into {self.cross.shape}")
        return CrossMoments(
            self.samples + other.samples,
            self.sum_x + other.sum_x,
            self.sum_y + other.sum_y,
            self.cross + other.cross,
            self.norms_x + other.norms_x,
            self.norms_y + other.norms_y,
            self.x_by_y_norms + other.x_by_y_norms,
            self.y_by_x_norms + other.y_by_x_norms,
            self.norm_products + other.norm_products,
        )

    def hsic(self, estimator: str = "debiased") -> float:
        """HSIC of the two feature sets' linear kernels by ``estimator`` (:data:`ESTIMATORS`), up to a factor that
        cancels in CKA (the biased one is ``tr(KHLH)``, without Kornblith's ``1/(n-1)^2``).

        Raises:
            ValueError: an unknown estimator, or too few samples for it.
        """
        n = self.samples
        if estimator == "biased":
            if n < 1:
                raise ValueError("no samples")
            centred = self.cross - np.outer(self.sum_x, self.sum_y) / n
            return float(np.sum(centred * centred))
        if estimator != "debiased":
            raise ValueError(f"unknown estimator '{estimator}'; choose one of: {', '.join(ESTIMATORS)}")
        if n < DEBIASED_MIN_SAMPLES:
            raise ValueError(f"the debiased estimator needs at least {DEBIASED_MIN_SAMPLES} samples, got {n}")
        # K~ and L~ are the kernels with their diagonals set to 0 (Song et al. 2012):
        trace = float(np.sum(self.cross * self.cross)) - self.norm_products  # tr(K~ L~)
        k_total = float(self.sum_x @ self.sum_x) - self.norms_x  # 1^T K~ 1
        l_total = float(self.sum_y @ self.sum_y) - self.norms_y  # 1^T L~ 1
        # 1^T K~ L~ 1 = sum_i (x_i . Sx - ||x_i||^2)(y_i . Sy - ||y_i||^2)
        row_products = (
            float(self.sum_x @ self.cross @ self.sum_y)
            - float(self.sum_x @ self.x_by_y_norms)
            - float(self.sum_y @ self.y_by_x_norms)
            + self.norm_products
        )
        value = trace + k_total * l_total / ((n - 1) * (n - 2)) - 2.0 * row_products / (n - 2)
        return value / (n * (n - 3))


def cka_value(cross: CrossMoments, first: CrossMoments, second: CrossMoments, estimator: str = "debiased") -> float:
    """Linear CKA from the sums between X and Y (``cross``), of X with itself (``first``) and of Y with itself
    (``second``); NaN where either self-similarity is not positive (constant features: CKA is undefined).

    Raises:
        ValueError: an unknown estimator, too few samples, or sums of different samples.
    """
    if not cross.samples == first.samples == second.samples:
        raise ValueError(f"sums over {first.samples}, {second.samples} and {cross.samples} samples")
    own_x, own_y = first.hsic(estimator), second.hsic(estimator)
    if not (own_x > 0 and own_y > 0):
        return float("nan")
    return cross.hsic(estimator) / float(np.sqrt(own_x * own_y))


def linear_cka(x: np.ndarray, y: np.ndarray, estimator: str = "debiased") -> float:
    """Linear CKA between features ``x`` (n, p) and ``y`` (n, q) of the same n samples, all in memory.

    >>> x = np.arange(12.0).reshape(6, 2) ** 2
    >>> round(linear_cka(x, 3 * x, "biased"), 6), round(linear_cka(x, x), 6)
    (1.0, 1.0)
    """
    return cka_value(CrossMoments.of(x, y), CrossMoments.of(x, x), CrossMoments.of(y, y), estimator)


def as_samples(maps: np.ndarray, features: str, grid: tuple[int, int] | None = None) -> np.ndarray:
    """A batch of channels-last maps, ``(N, *positions, channels)``, as samples x features (float64).

    Args:
        maps: one layer's maps for N images.
        features: ``mean`` (one sample per image: each channel's mean over positions) or ``positions`` (one
            sample per image and position: each position's channels).
        grid: for ``positions`` of 2-D maps, the (rows, cols) to average-pool the maps to first (each output cell
            the mean of the input cells it covers, as adaptive average pooling does), so that layers of different
            map sizes pair up position by position.

    Raises:
        ValueError: an unknown ``features``.
    """
    channels = maps.shape[-1]
    if features == "mean":
        return maps.reshape(len(maps), -1, channels).mean(axis=1, dtype=np.float64)
    if features != "positions":
        raise ValueError(f"unknown features '{features}'; choose one of: {', '.join(FEATURES)}")
    if grid is not None and maps.ndim == 4 and tuple(maps.shape[1:3]) != tuple(grid):
        maps = pool_to(maps, grid)
    return np.asarray(maps, dtype=np.float64).reshape(-1, channels)


def pool_to(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Average-pool ``(N, rows, cols, C)`` maps to ``grid`` rows x cols (float32): output cell (i, j) is the mean
    of input rows ``floor(i*rows/R) .. ceil((i+1)*rows/R)`` and the same for columns (adaptive average pooling).

    >>> pool_to(np.arange(16.0).reshape(1, 4, 4, 1), (2, 2))[0, :, :, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    count, rows, cols, channels = maps.shape
    by_rows = _weights(rows, grid[0]) @ np.asarray(maps, dtype=np.float32).reshape(count, rows, cols * channels)
    by_rows = by_rows.reshape(count * grid[0], cols, channels)
    return (_weights(cols, grid[1]) @ by_rows).reshape(count, grid[0], grid[1], channels)


def _weights(size: int, parts: int) -> np.ndarray:
    """The (parts, size) matrix that averages each bin of adaptive average pooling: one matrix product pools an
    axis (float32: each bin a mean of at most a few hundred values), with no copy of the maps."""
    weights = np.zeros((parts, size), dtype=np.float32)
    for part, (start, stop) in enumerate(_bins(size, parts)):
        weights[part, start:stop] = 1.0 / (stop - start)
    return weights


def _bins(size: int, parts: int) -> Sequence[tuple[int, int]]:
    return [((index * size) // parts, -((-(index + 1) * size) // parts)) for index in range(parts)]
