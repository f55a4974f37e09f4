"""Grad-CAM on the heads users bring: several outputs, a regression value, a segmentation map; models trained in
the tests on pictures with a bright square, so the right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz import OptionError, gradcam
from cnnviz.cli import main
from cnnviz.methods.gradcam import Target
from tests.conftest import SQUARE_AT, printed, square_picture


def _bright_squares(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dim noise pictures (32x32x3, 0..255) each with an 8x8 square of random brightness somewhere: (pictures,
    the square's brightness / 255, the per-pixel mask of the square)."""
    rng = np.random.default_rng(seed)
    pictures = rng.uniform(0, 60, (count, 32, 32, 3)).astype(np.float32)
    brightness = rng.uniform(80, 255, count).astype(np.float32)
    masks = np.zeros((count, 32, 32), dtype=np.int32)
    for index in range(count):
        row, col = rng.integers(0, 25, 2)
        pictures[index, row : row + 8, col : col + 8] = brightness[index]
        masks[index, row : row + 8, col : col + 8] = 1
    return pictures, brightness / 255.0, masks


def _trunk(keras, inputs):  # type: ignore[no-untyped-def]
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    return keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)


@pytest.fixture(scope="module")
def brightness_meter(keras):  # type: ignore[no-untyped-def]
    """A CNN trained here to measure the square's brightness (a regression head, 'brightness'), beside a
    classifier head ('has_square') that is not trained: a model of two outputs."""
    keras.utils.set_random_seed(0)
    pictures, brightness, _ = _bright_squares(800, seed=0)
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalMaxPooling2D(name="pool")(_trunk(keras, inputs))
    # Weights of one sign: every channel counts toward the brightness, so the heatmap must peak on the square
    # whatever the training found (free weights let some runs measure brightness partly by the dim background,
    # seen on JAX's initialisation: then no explainer would peak on the square alone).
    value = keras.layers.Dense(1, name="brightness", kernel_constraint=keras.constraints.NonNeg())(pooled)
    classes = keras.layers.Dense(2, activation="softmax", name="has_square")(pooled)
    meter = keras.Model(inputs, value)
    meter.compile(keras.optimizers.Adam(0.01), "mse")
    history = meter.fit(pictures, brightness, epochs=6, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.01, "the brightness meter did not learn"
    return keras.Model(inputs, [classes, value], name="two_heads")


def _peak_on_square(heatmap: np.ndarray) -> None:
    inside = np.zeros(heatmap.shape, dtype=bool)
    inside[SQUARE_AT] = True
    assert inside[np.unravel_index(np.argmax(heatmap), heatmap.shape)], "the heatmap's peak is off the square"
    assert heatmap[inside].mean() > 3 * heatmap[~inside].mean()


def test_a_regression_head_is_explained_by_its_value_and_peaks_on_the_square(brightness_meter) -> None:  # type: ignore[no-untyped-def]
    picture = square_picture()[None]

    explained = gradcam(brightness_meter, picture, layer="conv2", target=Target(output="brightness"))

    assert (explained.head, explained.output) == ("regression", "brightness")
    assert explained.score == "the output of layer 'brightness' (no softmax at the end)"
    assert explained.targets[0] == pytest.approx(float(explained.outputs[0, 0]))
    assert 0.9 < explained.outputs[0, 0] < 1.1  # the square is 255: brightness 1
    _peak_on_square(explained.heatmaps[0])


def test_the_first_of_several_outputs_is_explained_unless_another_is_named(brightness_meter) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.methods.gradcam import GradCam

    first = GradCam(brightness_meter, "conv2")

    assert (first.head, first.output, first.classes) == ("classes", "has_square", 2)
    assert first.notes == ["explaining output 'has_square'; the model's others: brightness (choose with `output`)"]
    named = GradCam(brightness_meter, "conv2", target=Target(output="has_square"))
    assert (named.head, named.output, named.notes) == ("classes", "has_square", [])
    with pytest.raises(OptionError, match="model 'two_heads' has no output 'price'; its outputs are: has_square, bri"):
        GradCam(brightness_meter, "conv2", target=Target(output="price"))


@pytest.fixture(scope="module")
def square_marker(keras):  # type: ignore[no-untyped-def]
    """A small fully convolutional network trained here to mark the square's pixels (class 1) in a picture."""
    keras.utils.set_random_seed(1)
    pictures, _, masks = _bright_squares(600, seed=1)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(2, 1, activation="softmax", name="mask")(_trunk(keras, inputs))
    model = keras.Model(inputs, outputs, name="marker")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(pictures, masks, epochs=4, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.97, "the square marker did not learn"
    return model


def test_a_segmentation_head_is_explained_over_the_pixels_predicted_as_the_class(square_marker) -> None:  # type: ignore[no-untyped-def]
    picture = square_picture()[None]

    explained = gradcam(square_marker, picture, 1, layer="conv1")

    assert explained.head == "segmentation"
    assert explained.score == "the pre-softmax scores of layer 'mask', summed over the pixels predicted as the class"
    assert 48 <= int(explained.pixels[0]) <= 80  # about the square's 64 pixels
    _peak_on_square(explained.heatmaps[0])


def test_a_segmentation_region_sums_the_class_logits_over_the_box(keras, square_marker) -> None:  # type: ignore[no-untyped-def]
    picture = square_picture()[None]
    logits_model = keras.Model(square_marker.input, square_marker.get_layer("mask").input)
    kernel, bias = square_marker.get_layer("mask").get_weights()
    logits = np.asarray(logits_model(picture)) @ kernel[0, 0] + bias  # (1, 32, 32, 2), before the softmax

    explained = gradcam(square_marker, picture, 1, layer="conv1", target=Target(region=(2, 18, 14, 30)))

    assert int(explained.pixels[0]) == 12 * 12
    assert explained.targets[0] == pytest.approx(float(logits[0, 2:14, 18:30, 1].sum()), rel=1e-4)
    assert "summed over the region [2, 18, 14, 30]" in explained.score


def test_cli_prints_the_regression_value_and_the_head_it_explains(brightness_meter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_file = tmp_path / "two_heads.keras"
    brightness_meter.save(model_file)
    picture = tmp_path / "square.png"
    Image.fromarray(square_picture().astype(np.uint8)).save(picture)

    result = CliRunner().invoke(
        main, ["gradcam", str(picture), "-m", str(model_file), "--head", "brightness", "-o", str(tmp_path / "out")]
    )

    assert result.exit_code == 0, result.output
    lines = printed(result.output).splitlines()
    assert lines[0] == "layer: conv2; gradient of the output of layer 'brightness' (no softmax at the end)"
    assert lines[2].startswith(f"{picture}: regression output 'brightness' = ")
    assert (tmp_path / "out" / "two_heads" / "square" / "gradcam_brightness.png").is_file()


def test_a_one_unit_sigmoid_is_a_binary_classifier_not_a_regression(keras) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.methods.gradcam import GradCam

    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    sigmoid = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="p")(pooled))
    linear = keras.Model(inputs, keras.layers.Dense(1, name="value")(pooled))

    assert (GradCam(sigmoid).head, GradCam(sigmoid).score) == ("classes", "the pre-sigmoid scores of layer 'p'")
    assert GradCam(linear).head == "regression"


@pytest.mark.parametrize("head", ["regression", "segmentation"])
def test_every_attribution_method_explains_regression_and_segmentation_heads(  # type: ignore[no-untyped-def]
    brightness_meter, square_marker, head: str
) -> None:
    from cnnviz.methods.attribution import AttributionSettings, attribute, general_methods

    picture = square_picture()[None]
    # A patch as large as the square: the meter max-pools, so hiding part of the square changes nothing
    settings = AttributionSettings(samples=8, masks=400, steps=16, patch=8, stride=4)
    if head == "regression":
        got = attribute(
            brightness_meter,
            picture,
            general_methods(),
            target=Target(output="brightness", layer="conv2"),
            settings=settings,
        )
        assert got.head == "regression" and got.targets[0] == pytest.approx(float(got.outputs[0, 0]))
    else:
        got = attribute(square_marker, picture, general_methods(), 1, target=Target(layer="conv1"), settings=settings)
        assert got.head == "segmentation" and 48 <= int(got.pixels[0]) <= 80
    inside = np.zeros((32, 32), dtype=bool)
    inside[SQUARE_AT] = True
    ratios = {}
    for method, heatmaps in got.heatmaps.items():
        heat = np.maximum(heatmaps[0], 0.0)
        ratios[method] = float(heat[inside].mean() / max(float(heat[~inside].mean()), 1e-12))
    print(head, "the square's mean heat over the rest's:", {m: round(r, 1) for m, r in ratios.items()})
    assert all(ratio > 2.0 for ratio in ratios.values()), ratios
