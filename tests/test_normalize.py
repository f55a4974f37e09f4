"""Normalisation modes on known arrays, constant maps included."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.draw.normalize import minmax, range_levels, scale_range, standardize, symmetric, to_levels


def test_minmax_per_map_and_constant_map_is_flat_zero() -> None:
    maps = np.array([[[0.0, 2.0], [4.0, 8.0]], [[5.0, 5.0], [5.0, 5.0]]])  # (K=2, H=2, W=2)
    original = maps.copy()

    result = minmax(maps, axis=(1, 2))

    np.testing.assert_array_equal(result, [[[0.0, 0.25], [0.5, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_array_equal(maps, original)  # the input is never mutated
    assert not np.isnan(result).any()


def test_minmax_over_the_whole_layer_keeps_relative_strength() -> None:
    maps = np.array([[[0.0, 1.0]], [[2.0, 4.0]]])

    np.testing.assert_array_equal(minmax(maps, axis=None), [[[0.0, 0.25]], [[0.5, 1.0]]])


def test_all_zero_layer_is_flat_not_nan() -> None:
    np.testing.assert_array_equal(minmax(np.zeros((3, 4, 4)), axis=None), np.zeros((3, 4, 4)))


def test_standardize_is_the_tutorial_formula_clipped() -> None:
    x = np.array([[0.0, 0.0, 10.0, 10.0]])  # mean 5, std 5

    result = standardize(x, axis=1)

    # (x - 5) / 5 * 64 + 128 -> 64 and 192, then / 255
    np.testing.assert_allclose(result, [[64 / 255, 64 / 255, 192 / 255, 192 / 255]], rtol=1e-6)


def test_standardize_clips_outliers_and_centres_constant_maps() -> None:
    outlier = np.array([0.0] * 99 + [100.0])
    assert standardize(outlier)[-1] == 1.0
    np.testing.assert_allclose(standardize(np.full((2, 3), 7.0), axis=1), np.full((2, 3), 128 / 255), rtol=1e-6)


def test_symmetric_keeps_zero_in_the_middle() -> None:
    weights = np.array([[-4.0, 0.0, 2.0], [0.0, 0.0, 0.0]])

    np.testing.assert_array_equal(symmetric(weights, axis=None), [[0.0, 0.5, 0.75], [0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(symmetric(weights, axis=1), [[0.0, 0.5, 0.75], [0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(symmetric(np.zeros(3)), [0.5, 0.5, 0.5])


def test_to_levels_rounds_clips_and_cleans_nan() -> None:
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])

    np.testing.assert_array_equal(to_levels(values, 252), [0, 0, 126, 251, 251, 0])
    assert to_levels(values).dtype == np.uint8
    with pytest.raises(ValueError):
        to_levels(values, 300)


def test_range_levels_matches_the_two_step_way_but_for_exact_half_levels() -> None:
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(30, 40, 6)).astype(np.float32) * np.array([1, 10, 1e-3, 1e4, 0, 2], np.float32)
    lo, hi = maps.min(axis=(0, 1)), maps.max(axis=(0, 1))
    fast = range_levels(maps, lo, hi, 252)
    slow = to_levels(scale_range(maps, lo, hi), 252)
    assert fast.dtype == np.uint8
    assert int(np.abs(fast.astype(int) - slow).max()) <= 1
    assert (fast == slow).mean() > 0.999
    assert (fast[..., 4] == 0).all()  # the all-zero channel is flat
    np.testing.assert_array_equal(fast.min(axis=(0, 1)), [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(fast.max(axis=(0, 1)), [251, 251, 251, 251, 0, 251])


def test_range_levels_with_one_range_for_all_and_with_nan() -> None:
    values = np.array([[0.0, 2.0], [4.0, 8.0]], dtype=np.float32)
    np.testing.assert_array_equal(range_levels(values, 0.0, 8.0, 9), [[0, 2], [4, 8]])
    with_nan = np.array([0.0, np.nan, 1.0], dtype=np.float32)
    nan = np.float32(np.nan)
    np.testing.assert_array_equal(range_levels(with_nan, nan, nan, 5), [0, 0, 0])  # NaN range: nothing to scale
    with pytest.raises(ValueError, match="levels"):
        range_levels(values, 0.0, 8.0, 1)


def test_minmax_without_axes_scales_by_the_whole_array() -> None:
    x = np.array([[0.0, 2.0], [4.0, 8.0]])

    assert minmax(x).tolist() == [[0.0, 0.25], [0.5, 1.0]]
    assert minmax(x, axis=0).tolist() == [[0.0, 0.0], [1.0, 1.0]]
