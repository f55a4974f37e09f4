"""The path methods PAIR's saliency has and cnnviz added (Guided IG, Blur IG, SmoothGrad around any gradient
method, XRAI): each against its paper's definition where it can be computed by hand, and the limit in which it
becomes Integrated Gradients."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.methods.attribution import AttributionSettings, Attributor, attribute
from cnnviz.methods.attribution.base import AttributionBatch
from cnnviz.methods.attribution.blur_ig import blur_path
from cnnviz.methods.attribution.integrated_gradients import integrated_gradients, straight_path
from cnnviz.methods.attribution.paths import gradients_along, path_integral
from cnnviz.methods.attribution.xrai import ranked_regions, regions
from cnnviz.methods.blur import blurred
from tests.conftest import square_pictures

STEPS = 16


@pytest.fixture(scope="module")
def linear(keras):  # type: ignore[no-untyped-def]
    """A model linear in its input, score = w . x (two classes): every path method gives w * (x - start)."""
    inputs = keras.Input((12, 10, 3))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="scores")(flat))
    weights = np.random.default_rng(1).normal(size=(360, 2)).astype(np.float32)
    model.get_layer("scores").set_weights([weights])
    return model, weights[:, 1].reshape(12, 10, 3)


def _batch(attributor: Attributor, pictures: np.ndarray, cls: int) -> AttributionBatch:
    scored = attributor.model.forward(pictures, cls, None)
    return AttributionBatch(pictures, scored, attributor.baseline(pictures))


def test_on_a_linear_model_every_path_gives_w_times_the_change(linear) -> None:  # type: ignore[no-untyped-def]
    model, w = linear
    image = np.random.default_rng(2).uniform(0, 255, (1, 12, 10, 3)).astype(np.float32)
    settings = AttributionSettings(steps=STEPS, baseline="zero", max_sigma=3.0, fraction=0.25, max_dist=0.1)
    got = attribute(model, image, ["integrated-gradients", "guided-ig", "blur-ig"], 1, settings=settings)
    np.testing.assert_allclose(got.heatmaps["integrated-gradients"][0], (w * image[0]).sum(-1), rtol=1e-4, atol=1e-3)
    # Guided IG's path leaves the straight line, and still ends with w * (x - baseline) on a linear model
    np.testing.assert_allclose(got.heatmaps["guided-ig"][0], (w * image[0]).sum(-1), rtol=1e-4, atol=1e-3)
    # Blur IG is Integrated Gradients from the most blurred image
    start = blurred(image, 3.0)[0]
    np.testing.assert_allclose(got.heatmaps["blur-ig"][0], (w * (image[0] - start)).sum(-1), rtol=1e-4, atol=1e-3)


def test_guided_ig_without_straying_is_integrated_gradients_by_the_left_riemann_sum(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(4, 7)[0][1::2]
    settings = AttributionSettings(steps=STEPS, max_dist=0.0)
    attributor = Attributor(square_finder, ["guided-ig"], settings=settings)
    batch = _batch(attributor, pictures, 1)
    grads = gradients_along(attributor.model, batch, straight_path(batch.baseline, pictures, STEPS))
    left = grads[:, :-1].sum(axis=1, dtype=np.float64) / STEPS * (pictures - batch.baseline)
    got = attribute(square_finder, pictures, ["guided-ig"], 1, settings=settings).heatmaps["guided-ig"]
    np.testing.assert_allclose(got, left.sum(axis=-1), rtol=1e-4, atol=1e-5 * np.abs(left).max())
    # with its path free to stray it is another attribution, still complete to within the Riemann sum's error
    free = attribute(square_finder, pictures, ["guided-ig"], 1, settings=AttributionSettings(steps=64))
    change = batch.scored.targets - attributor.model.forward(batch.baseline, 1, None).targets
    assert not np.allclose(free.heatmaps["guided-ig"], got, rtol=0.05)
    np.testing.assert_allclose(free.heatmaps["guided-ig"].reshape(2, -1).sum(1), change, rtol=0.1)


def test_blur_ig_is_complete_from_the_blurred_image(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(4, 7)[0][1::2]
    settings = AttributionSettings(steps=64, max_sigma=8.0)
    attributor = Attributor(square_finder, ["blur-ig"], settings=settings)
    got = attribute(square_finder, pictures, ["blur-ig"], 1, settings=settings).heatmaps["blur-ig"]
    scores = attributor.model.forward(pictures, 1, None).targets
    start = attributor.model.forward(blurred(pictures, 8.0), 1, None).targets
    assert np.all(np.abs(scores - start) > 0.5)
    np.testing.assert_allclose(got.reshape(2, -1).sum(axis=1), scores - start, rtol=0.02)
    path = blur_path(pictures, 8.0, 4)
    assert np.array_equal(path[:, -1], pictures)
    np.testing.assert_allclose(path[:, 0], blurred(pictures, 8.0), rtol=1e-5, atol=1e-3)


def test_the_trapezoid_along_the_straight_path_is_integrated_gradients(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(2, 5)[0]
    attributor = Attributor(square_finder, ["integrated-gradients"])
    batch = _batch(attributor, pictures, 1)
    along = path_integral(attributor.model, batch, straight_path(batch.baseline, pictures, STEPS))
    direct = integrated_gradients(attributor.model, batch, STEPS)
    np.testing.assert_allclose(along, direct, rtol=1e-4, atol=1e-6 * np.abs(direct).max())


@pytest.mark.parametrize("inner", ["integrated-gradients", "guided-ig", "blur-ig", "gradient"])
def test_smoothgrad_without_noise_is_the_method_itself(square_finder, inner: str) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(2, 3)[0]
    around = {"integrated-gradients": "smoothgrad-ig", "gradient": "smoothgrad"}.get(inner, f"smoothgrad-{inner}")
    steps = {} if inner == "gradient" else {"steps": 8}
    settings = AttributionSettings(samples=3, noise=0.0, **steps)  # type: ignore[arg-type]
    got = attribute(square_finder, pictures, [around, inner], 1, settings=settings).heatmaps
    assert np.array_equal(got[around], got[inner]), inner
    noisy = attribute(square_finder, pictures, [around], 1, settings=AttributionSettings(samples=3, **steps))  # type: ignore[arg-type]
    assert not np.allclose(noisy.heatmaps[around], got[inner])


def test_smoothgrad_ig_averages_integrated_gradients_over_the_noisy_copies(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(2, 3)[0][1:]
    settings = AttributionSettings(samples=3, noise=0.1, steps=8, seed=4)
    got = attribute(square_finder, pictures, ["smoothgrad-ig"], 1, settings=settings).heatmaps["smoothgrad-ig"]
    draws = np.random.default_rng(4).standard_normal((3, 32, 32, 3), dtype=np.float32)
    plain = AttributionSettings(steps=8)
    spread = 0.1 * (pictures.max() - pictures.min())
    by_hand = [
        attribute(square_finder, pictures + spread * draw, ["integrated-gradients"], 1, settings=plain)
        for draw in draws
    ]
    # each noisy copy keeps the clean image's black baseline: the same for every copy
    mean = np.mean([one.heatmaps["integrated-gradients"] for one in by_hand], axis=0)
    np.testing.assert_allclose(got, mean, rtol=1e-4, atol=1e-5 * np.abs(mean).max())


def test_xrai_ranks_regions_by_their_attribution_per_pixel() -> None:
    attribution = np.zeros((4, 6))
    attribution[:2, :2] = 3.0  # region a: the top-left 2x2
    attribution[2:, 3:] = 1.0  # region b: the bottom right 2x3
    masks = np.zeros((3, 4, 6), dtype=bool)
    masks[0, :2, :2] = True
    masks[1, 2:, 3:] = True
    masks[2, :, :3] = True  # the left half: overlaps a
    heat, added = ranked_regions(attribution, masks, fewest_new=1)
    assert [int(one.sum()) for one in added] == [4, 6, 8, 6]  # a, b, the rest of the left half, what none covered
    assert np.all(heat[:2, :2] == 3.0) and np.all(heat[2:, 3:] == 1.0)
    assert np.all(heat[masks[2] & ~masks[0]] == 0.0)  # the left half's new pixels: mean 0
    # the pixels no region brought in share their mean; every pixel is covered once
    assert np.array_equal(np.sum(added, axis=0), np.ones((4, 6)))
    # a region adding fewer pixels than the smallest allowed is dropped
    # a region adding fewer pixels than the smallest allowed is dropped: a (4 pixels) at 5; b and the left half
    # then tie at 1.0 a pixel, the first listed wins, and the 6 pixels no region covers come last
    heat, added = ranked_regions(attribution, masks, fewest_new=5)
    assert [int(one.sum()) for one in added] == [6, 12, 6]
    assert np.all(heat[:2, :2] == 1.0) and np.all(heat[2:, 3:] == 1.0)  # a's pixels now carry the left half's mean
    assert np.all(heat[:2, 3:] == 0.0)  # the uncovered top right: its own mean, 0


def test_xrai_covers_the_image_with_regions_ranked_by_their_integrated_gradients(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(2, 13)[0][1:]
    settings = AttributionSettings(steps=STEPS)
    masks = regions(pictures[0]).toarray().reshape(-1, 32, 32)
    assert masks.any(axis=0).all() and len(masks) > 6  # the regions cover the image, six segmentations of it
    got = attribute(square_finder, pictures, ["xrai", "integrated-gradients"], 1, settings=settings).heatmaps
    # XRAI's attribution: IG from a black and from a white image, averaged, each pixel's largest channel
    attributor = Attributor(square_finder, ["integrated-gradients"], settings=settings)
    batch = _batch(attributor, pictures, 1)
    ig = []
    for value in (pictures.min(), pictures.max()):
        ig.append(
            integrated_gradients(
                attributor.model, AttributionBatch(pictures, batch.scored, np.full_like(pictures, value)), STEPS
            )
        )
    strongest = np.mean(ig, axis=0).max(axis=-1)[0]
    heat, added = ranked_regions(strongest, masks, int(round(50 * 32 * 32 / 224**2)))
    np.testing.assert_allclose(got["xrai"][0], heat, rtol=1e-4, atol=1e-6 * np.abs(heat).max())
    # the first region is the one of highest attribution per pixel; each later one the highest of what it adds
    first = max(float(strongest[mask].mean()) for mask in masks)
    np.testing.assert_allclose(heat[added[0]], first, rtol=1e-5)
    for one in added:
        np.testing.assert_allclose(heat[one], strongest[one].mean(), rtol=1e-4)
    # the first region takes in part of the square (its bright pixels), which is hotter than the rest
    square = pictures[0].min(axis=-1) == 255.0
    assert (added[0] & square).any()
    assert heat[square].mean() > heat[~square].mean()
