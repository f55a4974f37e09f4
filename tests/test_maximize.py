"""Activation maximisation on handcrafted filters whose answer is known: a vertical-edge detector must get an image
of vertical edges, and the same seed must give the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.errors import LayerNotFound, OptionError, UnsupportedModel
from cnnviz.inputs.reader import FeedSettings
from cnnviz.methods.maximize import MaximizeOptions, Maximizer, maximize
from tests.conftest import printed

#: A Sobel kernel: it responds to brightness rising from left to right, a vertical edge.
VERTICAL_EDGE = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
QUICK = MaximizeOptions(steps=48, size=32)


def edge_model(keras, nested: bool = False):  # type: ignore[no-untyped-def]
    """Conv2D with ReLU: filter 0 the vertical-edge detector on all three channels, filter 1 its transpose (a
    horizontal-edge detector); raw 0..255 pixels in (a Rescaling layer first)."""
    inner = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1.0 / 255.0, name="rescale"),
            keras.layers.Conv2D(2, 3, activation="relu", name="edges"),
        ],
        name="edge_base",
    )
    kernel = np.stack([VERTICAL_EDGE, VERTICAL_EDGE.T], axis=-1)[:, :, None, :].repeat(3, axis=2) / 3.0
    inner.get_layer("edges").set_weights([kernel, np.zeros(2, dtype=np.float32)])
    if not nested:
        return inner
    return keras.Sequential(
        [keras.Input((32, 32, 3)), inner, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)], name="outer"
    )


def gradient_energies(image: np.ndarray) -> tuple[float, float]:
    """(horizontal, vertical) gradient energy of an image's grey levels: the sums of squared differences between
    neighbours along a row and along a column."""
    grey = image.mean(axis=-1)
    return float((np.diff(grey, axis=1) ** 2).sum()), float((np.diff(grey, axis=0) ** 2).sum())


@pytest.mark.parametrize(
    ("options", "dominance"),
    [
        (QUICK, 1.6),  # the defaults: random rotations of up to 10 degrees let some slanted edges through
        (MaximizeOptions(steps=48, size=32, parametrization="pixel", jitter=0, scale=0.0, rotate=0.0), 4.0),
    ],
    ids=["fourier-transforms", "pixel-plain"],
)
def test_a_vertical_edge_filter_gets_vertical_edges(keras, options: MaximizeOptions, dominance: float) -> None:  # type: ignore[no-untyped-def]
    found = maximize(edge_model(keras), "edges", [0, 1], options)

    assert found.images.shape == (2, 32, 32, 3) and found.filters == [0, 1] and found.layer == "edges"
    assert found.images.min() >= 0.0 and found.images.max() <= 1.0
    vertical_filter = gradient_energies(found.images[0])
    horizontal_filter = gradient_energies(found.images[1])
    assert vertical_filter[0] > dominance * vertical_filter[1]
    assert horizontal_filter[1] > dominance * horizontal_filter[0]  # and the transposed filter, the other way
    # the filter fires on its image; on the flat grey it started from it gives 0
    assert found.activations.min() > 0.1


def test_the_same_seed_gives_the_same_bytes_and_another_seed_another_image(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = edge_model(keras)
    model.save(tmp_path / "edges.keras")
    args = ["maximize", "--model", str(tmp_path / "edges.keras"), "--layer", "edges", "--steps", "8", "-q"]
    outputs = []
    for folder, seed in [("a", "0"), ("b", "0"), ("c", "1")]:
        result = CliRunner().invoke(main, [*args, "--seed", seed, "-o", str(tmp_path / folder)])
        assert result.exit_code == 0, result.output
        outputs.append((tmp_path / folder / "edges" / "maximize_edges.png").read_bytes())

    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_a_filters_image_does_not_depend_on_the_others_in_its_batch(keras) -> None:  # type: ignore[no-untyped-def]
    model = edge_model(keras)
    options = MaximizeOptions(steps=8, size=32, batch_size=2)
    alone = Maximizer(model, "edges", options)([1])
    together = Maximizer(model, "edges", options)([0, 1])

    np.testing.assert_allclose(alone.images[0], together.images[1], atol=1e-5)


def test_a_nested_layer_is_reached_and_the_head_is_not_needed(keras) -> None:  # type: ignore[no-untyped-def]
    # at 48 pixels the dense head after the nested base could not run: the replay stops at the layer
    found = maximize(edge_model(keras, nested=True), "edge_base/edges", [0], MaximizeOptions(steps=24, size=48))

    assert found.layer == "edge_base/edges" and found.images.shape == (1, 48, 48, 3)
    horizontal, vertical = gradient_energies(found.images[0])
    assert horizontal > vertical


def test_bad_choices_are_refused(keras, line_model) -> None:  # type: ignore[no-untyped-def]
    model = edge_model(keras)
    with pytest.raises(OptionError, match="unknown parametrization 'wavelet'"):
        Maximizer(model, "edges", MaximizeOptions(parametrization="wavelet"))
    with pytest.raises(LayerNotFound, match="no layer 'edgez'; conv layers are: edges"):
        Maximizer(model, "edgez", QUICK)
    with pytest.raises(OptionError, match="filter 2 is out of range: layer 'edges' has 2"):
        Maximizer(model, "edges", MaximizeOptions(steps=1, size=32))([2])
    sequence = keras.Sequential([keras.Input((20, 2)), keras.layers.Conv1D(2, 3, name="conv")], name="seq")
    with pytest.raises(UnsupportedModel, match="model 'seq' does not take images"):
        Maximizer(sequence, "conv", QUICK)


def test_cli_writes_a_numbered_grid_with_the_settings_in_its_header(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = edge_model(keras)
    model.save(tmp_path / "edges.keras")
    args = ["maximize", "--model", str(tmp_path / "edges.keras"), "--layer", "edges", "--steps", "8"]
    result = CliRunner().invoke(main, [*args, "--size", "24", "--save-raw", "-o", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    lines = printed(result.output).splitlines()
    assert lines[0].startswith("edges: mean activation reached per filter: 0: ")
    png = tmp_path / "out" / "edges" / "maximize_edges.png"
    assert lines[1:] == [f"wrote {png}", f"wrote {png.with_suffix('.npy')}"]
    raw = np.load(png.with_suffix(".npy"))
    assert raw.shape == (2, 24, 24, 3)
    oblong = CliRunner().invoke(main, [*args, "--size", "24x32", "-o", str(tmp_path / "out")])
    assert (
        oblong.exit_code == 2
        and "maximize draws square images of 8 pixels or more: give --size N, not 24x32" in oblong.output
    )
    grid = np.asarray(Image.open(png).convert("RGB"))
    # two 24-pixel images enlarged 4 times (to at least 96), 2 white pixels apart, under the header
    body = grid[-96:]
    assert body.shape[1] >= 2 * 96 + 2
    expected = np.rint(raw[1] * 255).astype(np.uint8)
    np.testing.assert_array_equal(body[40::4, 98 + 0 : 98 + 96 : 4], expected[10:])  # below the number's box


@pytest.mark.parametrize(
    "settings",
    [
        {"padding": "valid"},
        {"padding": "same", "strides": 2},
        {"padding": "valid", "dilation_rate": 2},
        {"padding": "same", "use_bias": False, "activation": "tanh"},
    ],
)
def test_the_chosen_filters_alone_give_what_the_whole_layer_gives(keras, settings: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="first"),
            keras.layers.Conv2D(6, 3, name="target", **{"activation": "relu", **settings}),
        ],
        name="two",
    )
    model.get_layer("target").set_weights([w + 0.1 for w in model.get_layer("target").get_weights()])
    direct = Maximizer(model, "target", MaximizeOptions(size=20), feeding=FeedSettings(preprocess="scale255"))
    assert direct._direct  # the filters alone, computed by cnnviz
    images = np.random.default_rng(0).uniform(size=(3, 20, 20, 3)).astype(np.float32)
    targets = [5, 0, 2]

    ops = keras.ops
    reached = ops.convert_to_numpy(
        direct._objective(ops.convert_to_tensor(images), ops.convert_to_tensor(targets), True)
    )

    # the whole layer, by Keras, on the same pixels (scale255 of images * 255 is the images themselves)
    means = keras.ops.convert_to_numpy(model(images)).mean(axis=(1, 2))
    np.testing.assert_allclose(reached, means[np.arange(3), targets], rtol=1e-5, atol=1e-6)
