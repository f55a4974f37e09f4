"""Attribution methods: known answers on models of fixed weights, hit rates on a model trained in the test to find a
square, and the same answers on a nested model, on every engine (Ray in test_ray_engine) and backend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.errors import OptionError
from cnnviz.methods.attribution import AttributionSettings, Attributor, attribute, general_methods
from cnnviz.methods.attribution.base import AttributionBatch
from cnnviz.methods.attribution.eigencam import eigen_cam
from cnnviz.methods.attribution.integrated_gradients import integrated_gradients
from cnnviz.methods.attribution.scorecam import channel_weights
from cnnviz.runs.attribute import AttributeOptions, render_attributions
from tests.conftest import printed, square_pictures

#: Small settings for the costly methods, so that a test runs in seconds.
QUICK = AttributionSettings(samples=8, masks=400, steps=16)
#: Where the square is in the hit-rate pictures: (row, col) of its top-left corner, side 8.
PLACES = [(2, 3), (20, 20), (12, 5), (4, 22), (22, 2), (10, 14)]


def _one_conv(keras, kernel: np.ndarray, head: str = "softmax"):  # type: ignore[no-untyped-def]
    """A one-conv model of fixed weights: 3x3 conv (given kernels, no bias, ReLU) over a 6x6 grey input, global
    average pooling, and a dense head of fixed weights (2 classes)."""
    inputs = keras.Input((6, 6, 1))
    maps = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", use_bias=False, activation="relu", name="conv")(
        inputs
    )
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(maps)
    out = keras.layers.Dense(2, activation=head, use_bias=False, name="head")(pooled)
    model = keras.Model(inputs, out, name="one_conv")
    model.get_layer("conv").set_weights([kernel])
    model.get_layer("head").set_weights([np.array([[1.0, -1.0], [-0.5, 2.0]], np.float32)])
    return model


@pytest.fixture(scope="module")
def one_conv(keras):  # type: ignore[no-untyped-def]
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[1, 1, 0, 0] = 1.0  # channel 0: the pixel itself
    kernel[1, 2, 0, 1] = 1.0  # channel 1: the pixel to its right
    return _one_conv(keras, kernel)


def _picture() -> np.ndarray:
    image = np.zeros((1, 6, 6, 1), np.float32)
    image[0, 1, 1] = 2.0
    image[0, 4, 3] = 1.0
    image[0, 4, 4] = 2.0  # beside (4, 3): both channels see something at (4, 3)
    image[0, 2, 4] = 3.0
    return image


def _maps(image: np.ndarray) -> np.ndarray:
    """The one-conv model's maps, by hand: channel 0 the image, channel 1 the image shifted left by one."""
    maps = np.zeros((1, 6, 6, 2), np.float32)
    maps[..., 0] = image[..., 0]
    maps[:, :, :5, 1] = image[:, :, 1:, 0]
    return maps


def test_grad_cams_by_hand(one_conv) -> None:  # type: ignore[no-untyped-def]
    image = _picture()
    maps = _maps(image)
    got = attribute(one_conv, image, ["gradcam", "gradcam++", "layercam"], classes=0)
    # The pre-softmax score of class 0 is mean(ch0) * 1 + mean(ch1) * -0.5: its gradient with respect to each
    # value of the conv layer's output (after its ReLU) is the head's weight / 36.
    grads = np.zeros_like(maps)
    grads[..., 0], grads[..., 1] = 1.0 / 36, -0.5 / 36
    gradcam = np.maximum(maps[0] @ grads[0].mean(axis=(0, 1)), 0)
    layercam = np.maximum((np.maximum(grads, 0) * maps)[0].sum(-1), 0)
    np.testing.assert_allclose(got.layer_maps["gradcam"][0], gradcam, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.layer_maps["layercam"][0], layercam, rtol=1e-5, atol=1e-7)
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3) per position, weights = sum of alpha * relu(g)
    g = grads[0, 0, 0]
    alpha = g**2 / (2 * g**2 + maps[0].sum(axis=(0, 1)) * g**3)
    plus = np.maximum(maps[0] @ (36 * alpha * np.maximum(g, 0)), 0)
    np.testing.assert_allclose(got.layer_maps["gradcam++"][0], plus, rtol=1e-5, atol=1e-7)
    assert got.layer == "conv" and got.classes.tolist() == [0]
    # Class 1 weighs channel 1 up: Layer-CAM then follows channel 1's map.
    other = attribute(one_conv, image, ["layercam"], classes=1).layer_maps["layercam"][0]
    np.testing.assert_allclose(other, maps[0, ..., 1] * 2.0 / 36, rtol=1e-5, atol=1e-7)


def test_score_cam_by_hand(one_conv) -> None:  # type: ignore[no-untyped-def]
    image = _picture()
    maps = _maps(image)[0]
    got = attribute(one_conv, image, ["scorecam"], classes=1).layer_maps["scorecam"][0]
    weights = []
    for k in range(2):  # each channel's map, min-max normalised, masks the input; weight = softmax p(class 1)
        mask = (maps[..., k] - maps[..., k].min()) / (maps[..., k].max() - maps[..., k].min())
        masked = image[0, ..., 0] * mask
        shifted = np.zeros_like(masked)
        shifted[:, :5] = masked[:, 1:]
        pooled = np.array([masked.mean(), shifted.mean()])
        logits = pooled @ np.array([[1.0, -1.0], [-0.5, 2.0]])
        weights.append(np.exp(logits[1]) / np.exp(logits).sum())
    expected = np.maximum(maps @ np.array(weights), 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_faster_score_cam_weighs_only_the_channels_that_vary_most(one_conv) -> None:  # type: ignore[no-untyped-def]
    """tf-keras-vis's max_N: each image's channels of largest standard deviation only; every channel is Score-CAM."""
    image = _picture()
    maps = _maps(image)[0]
    full = attribute(one_conv, image, ["scorecam"], classes=1)
    every = attribute(one_conv, image, ["scorecam"], classes=1, settings=AttributionSettings(max_channels=2))
    assert np.array_equal(every.layer_maps["scorecam"], full.layer_maps["scorecam"])
    one = attribute(one_conv, image, ["scorecam"], classes=1, settings=AttributionSettings(max_channels=1))
    kept = int(np.argmax(maps.reshape(-1, 2).std(axis=0)))
    # the kept channel's weight is the one Score-CAM gives it: its map times that weight, through a ReLU
    alone = attribute(one_conv, image, ["scorecam"], classes=1).layer_maps["scorecam"][0]
    attributor = Attributor(one_conv, ["scorecam"])
    batch = AttributionBatch(image, attributor.model.forward(image, 1, None), np.zeros_like(image))
    batch.layer = attributor.model.layer_pass(image, 1, None, gradient=False)
    weights = channel_weights(attributor.model, batch)[0]
    np.testing.assert_allclose(one.layer_maps["scorecam"][0], np.maximum(maps[..., kept] * weights[kept], 0), rtol=1e-5)
    assert not np.allclose(one.layer_maps["scorecam"][0], alone)
    with pytest.raises(OptionError, match="`max_channels` must be at least 1"):
        AttributionSettings(max_channels=0)


def test_score_cam_skips_flat_channels_exactly(keras) -> None:  # type: ignore[no-untyped-def]
    kernel = np.zeros((3, 3, 1, 3), np.float32)
    kernel[1, 1, 0, 0] = 1.0
    kernel[1, 1, 0, 1] = -1.0  # channel 1: ReLU of the negated image, zero everywhere on a positive image
    kernel[1, 2, 0, 2] = 1.0
    two = _one_conv(keras, kernel[..., [0, 2]])  # the same model without the dead channel
    inputs = keras.Input((6, 6, 1))
    maps = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    out = keras.layers.Dense(2, activation="softmax", use_bias=False, name="head")(pooled)
    dead = keras.Model(inputs, out)
    dead.get_layer("conv").set_weights([kernel])
    dead.get_layer("head").set_weights([np.array([[1.0, -1.0], [5.0, 5.0], [-0.5, 2.0]], np.float32)])
    image = _picture()
    calls = []
    attributor = Attributor(dead, ["scorecam"])
    original = attributor.model.perturbed_rows

    def counting(inputs, baselines, masked, *args, **kwargs):  # type: ignore[no-untyped-def]
        pairs = list(masked)
        calls.append(len(pairs))
        return original(inputs, baselines, iter(pairs), *args, **kwargs)

    attributor.model.perturbed_rows = counting  # type: ignore[method-assign]
    with_dead = attributor(image, 1).layer_maps["scorecam"][0]
    assert calls == [2]  # the dead channel never went through the model
    without = attribute(two, image, ["scorecam"], classes=1).layer_maps["scorecam"][0]
    np.testing.assert_allclose(with_dead, without, rtol=1e-6)


def test_eigen_cam_is_the_first_principal_component() -> None:
    rng = np.random.default_rng(0)
    pattern = np.zeros((5, 5))
    pattern[1:3, 2:4] = 1.0
    maps = pattern[..., None] * rng.uniform(1, 2, 6) + rng.normal(0, 0.01, (5, 5, 6))
    got = eigen_cam(maps[None])[0]
    flat = maps.reshape(25, 6)
    centred = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(centred)
    projection = centred @ vt[0]
    if projection @ (flat.sum(1) - flat.sum(1).mean()) < 0:
        projection = -projection
    expected = np.maximum(projection, 0).reshape(5, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert set(zip(*np.nonzero(got > 0.5 * got.max()), strict=True)) == {(1, 2), (1, 3), (2, 2), (2, 3)}


def test_integrated_gradients_are_complete(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(8, 7)[0][1::2]  # the four with a square: the score changes much from black
    attributor = Attributor(square_finder, ["integrated-gradients"], settings=AttributionSettings(steps=64))
    scored = attributor.model.forward(pictures, 1, None)
    batch = AttributionBatch(pictures, scored, attributor.baseline(pictures))
    attributions = integrated_gradients(attributor.model, batch, 64)
    baseline_scores = attributor.model.forward(batch.baseline, 1, None).targets
    change = scored.targets - baseline_scores
    sums = attributions.reshape(4, -1).sum(axis=1)
    assert np.all(np.abs(change) > 0.5)
    np.testing.assert_allclose(sums, change, rtol=0.01)
    # the 2-D map the picture shows sums the channels: it is complete too
    heat = attribute(square_finder, pictures, ["integrated-gradients"], 1, settings=AttributionSettings(steps=64))
    np.testing.assert_allclose(heat.heatmaps["integrated-gradients"].reshape(4, -1).sum(1), change, rtol=0.01)


def test_smoothgrad_without_noise_is_the_gradient(square_finder) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(2, 3)[0]
    settings = AttributionSettings(samples=4, noise=0.0)
    got = attribute(square_finder, pictures, ["smoothgrad", "gradient"], settings=settings)
    np.testing.assert_allclose(got.heatmaps["smoothgrad"], got.heatmaps["gradient"], rtol=1e-6, atol=1e-9)
    assert got.heatmaps["gradient"].max() > 0


def test_the_gradient_from_the_scoring_pass_is_the_two_pass_gradient(square_finder, keras) -> None:  # type: ignore[no-untyped-def]
    """The gradient method takes its gradient in the forward pass that chooses the class: the same numbers as a
    forward pass then a gradient, for the top class, a given class and a regression head."""
    pictures = square_pictures(4, 21)[0]
    inputs = keras.Input((32, 32, 3))
    regression = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs)))
    for model, classes in ((square_finder, None), (square_finder, 0), (regression, None)):
        target = Attributor(model, ["gradient"]).model
        scored, fused = target.scored_gradient(pictures, classes, None)
        forward = target.forward(pictures, classes, None)
        apart = target.input_gradient(pictures, forward.cotangent, None)[0]
        np.testing.assert_array_equal(scored.classes, forward.classes)
        np.testing.assert_allclose(scored.targets, forward.targets, rtol=1e-6)
        np.testing.assert_allclose(fused, apart, rtol=1e-5, atol=1e-8)
        assert np.abs(fused).max() > 0
    target = Attributor(square_finder, ["gradient"]).model
    two_pass = target.input_gradient(pictures, target.forward(pictures, None, None).cotangent, None)[0]
    heat = attribute(square_finder, pictures, ["gradient"]).heatmaps["gradient"]
    np.testing.assert_allclose(heat, np.abs(two_pass).max(axis=-1), rtol=1e-5, atol=1e-8)


def test_occlusion_of_a_model_that_sums_one_patch(keras) -> None:  # type: ignore[no-untyped-def]
    inputs = keras.Input((8, 8, 1))
    patch = keras.layers.Cropping2D(((2, 4), (4, 2)), name="patch")(inputs)  # rows 2..3, cols 4..5
    total = keras.layers.Flatten()(patch)
    out = keras.layers.Dense(1, use_bias=False, name="sum")(total)
    model = keras.Model(inputs, out)
    model.get_layer("sum").set_weights([np.ones((4, 1), np.float32)])
    image = np.arange(1, 65, dtype=np.float32).reshape(1, 8, 8, 1)
    settings = AttributionSettings(patch=2, stride=2, baseline="zero")
    got = attribute(model, image, ["occlusion"], settings=settings)
    heat = got.heatmaps["occlusion"][0]
    expected = np.zeros((8, 8), np.float32)
    expected[2:4, 4:6] = image[0, 2:4, 4:6, 0].sum()  # hiding the patch takes its whole sum away
    np.testing.assert_allclose(heat, expected, rtol=1e-6)
    assert got.head == "regression"


@pytest.mark.parametrize("method", ["rise", "smoothgrad"])
def test_the_same_seed_gives_the_same_bytes(square_finder, method: str) -> None:  # type: ignore[no-untyped-def]
    pictures = square_pictures(2, 5)[0]
    key = {"rise": {"masks": 64}, "smoothgrad": {"samples": 4}}[method]

    def run(seed: int) -> bytes:
        settings = AttributionSettings(seed=seed, **key)  # type: ignore[arg-type]
        return attribute(square_finder, pictures, [method], settings=settings).heatmaps[method].tobytes()

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_every_method_peaks_on_the_square(square_finder) -> None:  # type: ignore[no-untyped-def]
    """The hit rates the note reports: where each method's peak falls, over squares at six known places."""
    pictures = []
    for number, (row, col) in enumerate(PLACES):
        picture = square_pictures(2, 40 + number)[0][0]
        picture[row : row + 8, col : col + 8] = 255.0
        pictures.append(picture)
    got = attribute(square_finder, np.stack(pictures), general_methods(), 1, settings=QUICK)
    rates = {}
    for name, heatmaps in got.heatmaps.items():
        hits = 0
        for heat, (row, col) in zip(heatmaps, PLACES, strict=True):
            peak_row, peak_col = np.unravel_index(int(np.argmax(heat)), heat.shape)
            hits += row <= peak_row < row + 8 and col <= peak_col < col + 8
        rates[name] = hits / len(PLACES)
    print("hit rates:", rates)
    # Plain gradients are speckled: on the model JAX's initialisation trains, one of six peaks fell beside the square
    assert all(rate >= 5 / 6 for rate in rates.values()), rates
    assert sum(rate == 1.0 for rate in rates.values()) >= 9, rates


def test_a_nested_model_gives_the_flat_models_attributions(keras, square_finder) -> None:  # type: ignore[no-untyped-def]
    inputs = keras.Input((32, 32, 3))
    nested = keras.Model(inputs, square_finder(inputs), name="wrapper")
    pictures = square_pictures(2, 11)[0]
    flat = attribute(square_finder, pictures, general_methods(), settings=QUICK)
    inner = attribute(nested, pictures, general_methods(), settings=QUICK)
    assert inner.layer == "square_finder/conv2"
    for name in general_methods():
        np.testing.assert_allclose(inner.heatmaps[name], flat.heatmaps[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_settings_a_method_cannot_honour_are_refused(square_finder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError, match="`patch` is a setting of occlusion, which is not among the methods"):
        AttributeOptions(methods=["gradcam"], settings=AttributionSettings(patch=4))
    with pytest.raises(OptionError, match="unknown method 'saliency'"):
        AttributeOptions(methods=["saliency"])
    with pytest.raises(OptionError, match="`layer` is for the class activation maps"):
        AttributeOptions(methods=["gradient"], layer="conv1")
    with pytest.raises(OptionError, match="unknown baseline 'grey'"):
        AttributionSettings(baseline="grey")
    assert AttributeOptions(methods=["rise", "rise", "gradient"]).methods == ("rise", "gradient")


@pytest.fixture(scope="module")
def square_files(square_finder, tmp_path_factory) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("squares")
    model_path = folder / "finder.keras"
    square_finder.save(model_path)
    images = folder / "images"
    images.mkdir()
    for number, (row, col) in enumerate(PLACES[:2]):
        picture = square_pictures(2, 60 + number)[0][0]
        picture[row : row + 8, col : col + 8] = 255.0
        Image.fromarray(picture.astype(np.uint8)).save(images / f"square{number}.png")
    return model_path, images


def test_the_command_writes_a_column_per_method(square_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_path, images = square_files
    out = tmp_path / "out"
    args = [
        "explain", str(images), "--model", str(model_path), "--method", "gradcam,occlusion", "--method", "rise",
        "--masks", "64", "--save-raw", "--json", str(tmp_path / "r.json"), "-o", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = printed(result.output)
    assert "CAMs at layer conv2; attributions of the pre-softmax scores of layer 'predictions'" in text
    assert re.search(r"square0\.png: class 1 \(class 1, p 0\.9\d\d\)", text)
    picture = out / "finder" / "square0" / "attributions_class_1.png"
    assert picture.is_file()
    records = json.loads((tmp_path / "r.json").read_text())
    assert [(r["image"].endswith("square0.png"), r["method"]) for r in records[:3]] == [
        (True, "gradcam"),
        (True, "occlusion"),
        (True, "rise"),
    ]
    assert {r["class"] for r in records} == {1}
    raw = np.load(out / "finder" / "square0" / "occlusion_class_1.npy")
    assert raw.shape == (32, 32)
    # The picture: a header, then 4 panels (image + 3 methods) in one row, each 32 px enlarged 10x to 320 px,
    # 8 px apart, with a caption strip under each.
    pixels = np.asarray(Image.open(picture).convert("RGB"))
    assert pixels.shape[1] == 4 * 320 + 3 * 8
    white_columns = np.flatnonzero((pixels[-60:] == 255).all(axis=(0, 2)))
    assert {320, 327, 648, 655, 976, 983} <= set(white_columns.tolist())
    # The image panel: the square's pixels are white where the square is (rows 2..9, cols 3..10, enlarged 10x)
    panel_top = pixels.shape[0] - 31 - 320  # under the panels, a caption strip of 31 rows (20 px text)
    panel = pixels[panel_top : panel_top + 320, :320]
    assert (panel[25:95, 35:105] == 255).all() and not (panel[120:, 120:] == 255).all()


def test_the_command_refuses_an_unknown_method(square_files) -> None:  # type: ignore[no-untyped-def]
    model_path, images = square_files
    result = CliRunner().invoke(main, ["explain", str(images), "--model", str(model_path), "--method", "cam"])
    assert result.exit_code == 2
    assert "unknown method 'cam'" in result.output


def test_the_run_on_a_model_ready_batch_equals_the_library_call(square_finder, square_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, images = square_files
    options = AttributeOptions(methods=("layercam", "gradient"), save_raw=True)
    result = render_attributions(square_finder, [str(images)], tmp_path, options)
    files = sorted(str(path) for path in images.iterdir())
    direct = attribute(square_finder, files, ["layercam", "gradient"])
    for number, image in enumerate(result.images):
        for method in ("layercam", "gradient"):
            np.testing.assert_array_equal(np.load(image.raw[method]), direct.heatmaps[method][number])


# -- RISE that points -----------------------------------------------------------------------------------------------


def test_rise_masks_have_the_same_mean_and_variance_at_the_border_as_inside() -> None:
    from cnnviz.methods.attribution.rise import rise_masks

    masks = rise_masks(10_000, 64, 64, seed=0)
    mean, variance = masks.mean(axis=0), masks.var(axis=0)
    border = np.zeros((64, 64), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    inside = np.zeros((64, 64), bool)
    inside[16:48, 16:48] = True
    assert mean[border].mean() / mean[inside].mean() == pytest.approx(1.0, abs=0.05)
    # a grid clamped at the edge gave the border pixels 14% more variance than the inside, where RISE's noise
    # then peaked
    assert variance[border].mean() / variance[inside].mean() == pytest.approx(1.0, abs=0.05)
    assert variance.mean() == pytest.approx(0.25 * (2 / 3) ** 2, rel=0.02)  # Bernoulli(1/2), interpolated in 2-D


def square_detector(keras):  # type: ignore[no-untyped-def]
    """Class 1 when a bright 8x8 square is somewhere in a dim picture of any size: a box filter's peak."""
    inputs = keras.Input((None, None, 3))
    box = keras.layers.Conv2D(1, 8, activation="relu", name="box")
    head = keras.layers.Dense(2, activation="softmax", name="head")
    peak = keras.layers.GlobalMaxPooling2D()(box(keras.layers.Rescaling(1 / 255.0)(inputs)))
    model = keras.Model(inputs, head(peak), name="square_detector")
    box.set_weights([np.full((8, 8, 3, 1), 1 / 192, np.float32), np.array([-0.5], np.float32)])
    head.set_weights([np.array([[-8.0, 8.0]], np.float32), np.array([2.0, -2.0], np.float32)])
    return model


def test_rise_points_at_the_square_for_every_seed_at_the_default_masks(keras) -> None:  # type: ignore[no-untyped-def]
    picture = np.random.default_rng(0).uniform(0, 80, (96, 96, 3)).astype(np.float32)
    picture[20:28, 60:68] = 255.0
    model = square_detector(keras)
    for seed in range(10):
        settings = AttributionSettings(seed=seed, baseline="zero")
        heat = attribute(model, picture[None], ["rise"], 1, settings=settings).heatmaps["rise"][0]
        peak = np.array(np.unravel_index(np.argmax(heat), heat.shape))
        assert np.linalg.norm(peak - (23.5, 63.5)) <= 15, seed  # the pointing game's tolerance
