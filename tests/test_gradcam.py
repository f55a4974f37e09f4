"""Grad-CAM on a model trained in the test to find a bright square: the heatmap must peak on the square, also when
the model is nested in another and after a round trip through a legacy .h5 file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.draw.overlay import blend
from cnnviz.errors import OptionError, UnsupportedLayer, UnsupportedModel
from cnnviz.methods.gradcam import GradCam, cam, gradcam
from cnnviz.models.labels import imagenet_labels, resolve_class
from cnnviz.models.load import load_model
from tests.conftest import SQUARE_AT, printed, square_picture


def _peak_on_square(heatmap: np.ndarray) -> None:
    """The heatmap's hottest pixel is on the square, and the square is on average far hotter than the rest."""
    assert heatmap.shape == (32, 32)
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    assert SQUARE_AT[0].start <= row < SQUARE_AT[0].stop and SQUARE_AT[1].start <= col < SQUARE_AT[1].stop
    inside = np.zeros(heatmap.shape, dtype=bool)
    inside[SQUARE_AT] = True
    assert heatmap[inside].mean() > 5 * heatmap[~inside].mean()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradcam_peaks_on_the_bright_square(square_finder, method: str) -> None:  # type: ignore[no-untyped-def]
    explained = gradcam(square_finder, square_picture()[None], method=method)

    assert explained.layer == "conv2"  # the last conv layer
    assert explained.classes.tolist() == [1]  # the model's top class: a square
    assert explained.outputs[0, 1] > 0.9
    assert explained.score == "the pre-softmax scores of layer 'predictions'"
    assert explained.layer_maps.shape == (1, 16, 16)
    _peak_on_square(explained.heatmaps[0])


def test_a_nested_model_and_its_h5_round_trip_give_the_same_heatmap(keras, square_finder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outer = keras.Sequential([keras.Input((32, 32, 3)), square_finder], name="outer")
    picture = square_picture()[None]
    plain = gradcam(square_finder, picture).heatmaps[0]

    nested = gradcam(outer, picture)
    outer.save(tmp_path / "outer.h5")
    loaded = gradcam(load_model(tmp_path / "outer.h5"), picture)

    for explained in (nested, loaded):
        assert explained.layer == "square_finder/conv2"
        assert explained.score == "the pre-softmax scores of layer 'square_finder/predictions'"
        _peak_on_square(explained.heatmaps[0])
        np.testing.assert_allclose(explained.heatmaps[0], plain, rtol=1e-4, atol=1e-6)


def test_the_gradient_is_of_the_score_before_the_softmax(keras, square_finder) -> None:  # type: ignore[no-untyped-def]
    # The same network without its softmax: its outputs are the scores Grad-CAM must differentiate.
    logits = keras.Sequential(
        [keras.Input((32, 32, 3)), *square_finder.layers[:-1], keras.layers.Dense(2, name="logits")], name="logits"
    )
    logits.get_layer("logits").set_weights(square_finder.get_layer("predictions").get_weights())
    separate = keras.Sequential([logits, keras.layers.Softmax(name="softmax")], name="separate")
    picture = square_picture()[None]

    wanted = gradcam(logits, picture, 1)
    assert wanted.score == "the output of layer 'logits' (no softmax at the end)"
    for model, score in [
        (square_finder, "the pre-softmax scores of layer 'predictions'"),
        (separate, "the pre-softmax scores (the input of layer 'softmax')"),
    ]:
        explained = gradcam(model, picture, 1)
        assert explained.score == score
        np.testing.assert_allclose(explained.heatmaps, wanted.heatmaps, rtol=1e-4, atol=1e-6)


def test_the_other_class_and_a_named_layer(square_finder) -> None:  # type: ignore[no-untyped-def]
    picture = square_picture()[None]
    background = gradcam(square_finder, picture, 0)
    early = gradcam(square_finder, picture, layer="conv1")

    assert background.classes.tolist() == [0]
    # the square argues against "no square": that class's heatmap is zero all over the square, warm elsewhere
    assert float(background.heatmaps[0][SQUARE_AT].max()) == 0.0
    assert float(background.heatmaps[0].max()) > 0.0
    assert early.layer == "conv1" and early.layer_maps.shape == (1, 32, 32)


def test_layers_that_cannot_be_explained_are_refused(keras, square_finder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnsupportedLayer, match="layer 'gap' is a GlobalAveragePooling2D with output 16"):
        GradCam(square_finder, "gap")
    with pytest.raises(OptionError, match="unknown method 'cam'"):
        GradCam(square_finder, method="cam")
    layers = [
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.Reshape((36, 2), name="rows"),
    ]
    with pytest.raises(UnsupportedModel, match="output 'rows' is 36x2; attributions explain class scores, a"):
        GradCam(keras.Sequential(layers, name="base"))
    with pytest.raises(OptionError, match="class 2 is out of range"):
        GradCam(square_finder)(square_picture()[None], 2)


def test_cam_weights_channels_by_their_gradients() -> None:
    maps = np.zeros((1, 2, 2, 2))
    maps[0, :, :, 0] = [[1.0, 0.0], [0.0, 0.0]]
    maps[0, :, :, 1] = [[0.0, 0.0], [0.0, 2.0]]
    grads = np.zeros((1, 2, 2, 2))
    grads[0, :, :, 0] = 0.5  # mean 0.5
    grads[0, :, :, 1] = [[0.0, 0.0], [0.0, 4.0]]  # mean 1.0

    assert cam(maps, grads, "gradcam")[0].tolist() == [[0.5, 0.0], [0.0, 2.0]]
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3) where g != 0; weights = sum(alpha * relu(g))
    # channel 0: sum(A) = 1, each g = 0.5 -> alpha = 0.25 / (0.5 + 0.125) = 0.4, weight = 4 * 0.4 * 0.5 = 0.8
    # channel 1: sum(A) = 2, one g = 4 -> alpha = 16 / (32 + 128) = 0.1, weight = 0.1 * 4 = 0.4
    np.testing.assert_allclose(cam(maps, grads, "gradcam++")[0], [[0.8, 0.0], [0.0, 0.8]], rtol=1e-6)


def test_class_names_and_indices() -> None:
    names = imagenet_labels()
    assert resolve_class("tabby", 1000, names) == 281
    assert resolve_class("Egyptian cat", 1000, names) == 285
    with pytest.raises(OptionError, match="no class named 'tabbby'; did you mean tabby"):
        resolve_class("tabbby", 1000, names)
    with pytest.raises(OptionError, match="class 'cat' is a name, but this model's 2 classes have none"):
        resolve_class("cat", 2, None)
    with pytest.raises(OptionError, match=r"class 1000 is out of range: the model has 1000 classes \(0-999\)"):
        resolve_class("1000", 1000, names)


@pytest.fixture
def square_files(square_finder, tmp_path: Path) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    model = tmp_path / "finder.keras"
    square_finder.save(model)
    picture = tmp_path / "pictures" / "square.png"
    picture.parent.mkdir()
    Image.fromarray(square_picture().astype(np.uint8)).save(picture)
    labels = tmp_path / "labels.txt"
    labels.write_text("background\nsquare\n")
    return str(model), str(picture), str(labels)


def test_cli_writes_the_picture_the_raw_heatmap_and_the_top_classes(square_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, picture, labels = square_files
    out = tmp_path / "out"
    args = ["gradcam", picture, "--model", model, "--labels", labels, "--save-raw", "-o", str(out)]
    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    lines = printed(result.output).splitlines()
    assert lines[0] == "layer: conv2; gradient of the pre-softmax scores of layer 'predictions'"
    assert lines[1] == "preprocessing: none (raw 0..255 pixels: the model starts with a Rescaling layer)"
    assert re.fullmatch(rf"{re.escape(str(picture))}: top p: square (0\.9\d\d|1\.000), background 0\.0\d\d", lines[2])
    folder = out / "finder" / "square"
    assert lines[3] == f"  explained square (class 1) -> {folder / 'gradcam_square.png'}"
    raw = np.load(folder / "gradcam_square.npy")
    _peak_on_square(raw)
    drawn = np.asarray(Image.open(folder / "gradcam_square.png").convert("RGB"))
    # two panels of 32x32 enlarged 10 times, 8 pixels apart, below the header: the left one is the picture itself
    body = drawn[-320:]
    np.testing.assert_array_equal(body[::10, :320:10], square_picture().astype(np.uint8))
    right = body[:, 328:648].astype(int)
    square_pixel, far_pixel = right[80, 240], right[250, 40]  # rows 8, 24 / cols 24, 4 of the picture
    assert abs(square_pixel - 255).sum() > 60  # coloured over the square
    muted = blend(body[250:251, 40:41], np.zeros((1, 1)))[0, 0].astype(int)  # the picture, muted, no colour
    assert abs(far_pixel - muted).sum() < 12  # far from the square: the picture alone


def test_cli_explains_a_class_given_by_name_and_refuses_unknown_ones(square_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, picture, labels = square_files
    base = ["gradcam", picture, "--model", model, "--labels", labels, "-o", str(tmp_path / "out"), "-q"]

    assert CliRunner().invoke(main, [*base, "--class", "background", "--method", "gradcam++"]).exit_code == 0
    assert (tmp_path / "out" / "finder" / "square" / "gradcampp_background.png").is_file()
    refused = CliRunner().invoke(main, [*base, "--class", "squares"])
    assert refused.exit_code == 2
    assert "no class named 'squares'; did you mean square?" in refused.output
    short = tmp_path / "short.txt"
    short.write_text("one\n")
    wrong = CliRunner().invoke(main, [*base[:4], "--labels", str(short), "-o", str(tmp_path / "out")])
    assert wrong.exit_code == 2 and f"the labels file {short} names 1 classes; the model has 2" in wrong.output


def test_cli_on_the_bundled_model_names_its_classes(tmp_path: Path) -> None:
    picture = tmp_path / "circle.png"
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    pixels[(yy - 32) ** 2 + (xx - 32) ** 2 < 20**2] = 255
    Image.fromarray(pixels).save(picture)

    result = CliRunner().invoke(main, ["gradcam", str(picture), "--model", "shapes", "-o", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert f"{picture}: top p: circles " in result.output
    assert "explained circles (class 8)" in result.output


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_a_model_saved_by_keras_2_to_h5_is_explained_the_same(square_finder, tmp_path: Path, nested: bool) -> None:  # type: ignore[no-untyped-def]
    tf_keras = pytest.importorskip("tf_keras")
    layers = tf_keras.layers
    legacy = tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(32, 32, 3)),
            layers.Rescaling(1.0 / 255.0, name="rescale"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool"),
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(2, activation="softmax", name="predictions"),
        ],
        name="square_finder",
    )
    legacy.set_weights(square_finder.get_weights())  # the square finder's weights, written by Keras 2
    if nested:  # a transfer-learning shape: the finder inside another model, as Keras 2 wrote those
        legacy = tf_keras.Sequential([layers.InputLayer(input_shape=(32, 32, 3)), legacy], name="outer")
    legacy.save(tmp_path / "keras2.h5")
    picture = square_picture()[None]

    explained = gradcam(load_model(tmp_path / "keras2.h5"), picture)

    prefix = "square_finder/" if nested else ""
    assert explained.layer == f"{prefix}conv2"
    assert explained.score == f"the pre-softmax scores of layer '{prefix}predictions'"
    _peak_on_square(explained.heatmaps[0])
    np.testing.assert_allclose(explained.heatmaps, gradcam(square_finder, picture).heatmaps, rtol=1e-4, atol=1e-6)


def test_a_model_ready_npy_input_gets_the_heatmap_alone(square_finder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.draw.overlay import MIN_PANEL
    from cnnviz.runs.attribute import GradcamOptions, render_gradcam

    np.save(tmp_path / "ready.npy", square_picture())  # model-ready: not pixels to draw under the heat
    options = GradcamOptions(labels=False, save_raw=True)
    report = render_gradcam(square_finder, [tmp_path / "ready.npy"], tmp_path / "out", options)

    _peak_on_square(np.load(report.images[0].raw["gradcam"]))
    drawn = np.asarray(Image.open(report.images[0].picture).convert("RGB")).astype(int)
    # one panel, the heatmap in jet, 32 px enlarged 10 times, widened with white to 640: no picture beside it
    assert drawn.shape == (MIN_PANEL, 640, 3) and (drawn[:, MIN_PANEL:] == 255).all()
    hot, cold = drawn[80, 240], drawn[300, 10]  # the square's centre (row 8, col 24), a far corner
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red on the square, blue far from it
