"""Every conv-like layer kind: listed by `layers`, drawn by `filters` and `featuremaps` or refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz import (
    OptionError,
    UnsupportedLayer,
    build_extractor,
    conv_layers,
    feature_maps,
    layer_kernels,
    load_model,
)
from cnnviz.cli import main
from cnnviz.inputs.reader import ReadingSettings
from tests.conftest import write_image


@pytest.fixture
def zoo_model(keras):  # type: ignore[no-untyped-def]
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, name="plain")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")(x)
    x = keras.layers.SeparableConv2D(5, 3, name="separable")(x)
    x = keras.layers.Conv2DTranspose(6, 3, name="transpose")(x)
    return keras.Model(inputs, x, name="zoo")


def test_layers_lists_every_2d_kind_with_shapes(zoo_model) -> None:
    assert [(c.path, c.kind, c.output_shape, c.params) for c in conv_layers(zoo_model)] == [
        ("plain", "Conv2D", (10, 10, 4), 3 * 3 * 3 * 4 + 4),
        ("depthwise", "DepthwiseConv2D", (8, 8, 8), 3 * 3 * 4 * 2 + 8),
        ("separable", "SeparableConv2D", (6, 6, 5), 3 * 3 * 8 + 8 * 5 + 5),
        ("transpose", "Conv2DTranspose", (8, 8, 6), 3 * 3 * 6 * 5 + 6),
    ]


def test_kernels_are_filters_by_channels_for_every_kind(zoo_model) -> None:
    convs = {c.path: c for c in conv_layers(zoo_model)}

    plain = layer_kernels(convs["plain"])
    depthwise = layer_kernels(convs["depthwise"])
    separable = layer_kernels(convs["separable"])
    transpose = layer_kernels(convs["transpose"])

    assert plain.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(plain[2, 1], zoo_model.get_layer("plain").kernel.numpy()[:, :, 1, 2])
    assert depthwise.shape == (8, 1, 3, 3)  # channel i, multiplier m -> filter 2*i + m
    np.testing.assert_array_equal(depthwise[5, 0], zoo_model.get_layer("depthwise").kernel.numpy()[:, :, 2, 1])
    assert separable.shape == (8, 1, 3, 3)  # the depthwise (spatial) part
    assert transpose.shape == (6, 5, 3, 3)  # Conv2DTranspose stores (kh, kw, out, in)
    np.testing.assert_array_equal(transpose[4, 1], zoo_model.get_layer("transpose").kernel.numpy()[:, :, 4, 1])


def test_featuremaps_for_every_2d_kind(zoo_model) -> None:
    maps = feature_maps(zoo_model, np.ones((2, 12, 12, 3), dtype=np.float32))

    assert {name: array.shape for name, array in maps.items()} == {
        "plain": (2, 10, 10, 4),
        "depthwise": (2, 8, 8, 8),
        "separable": (2, 6, 6, 5),
        "transpose": (2, 8, 8, 6),
    }


def test_conv1d_model_takes_npy_files_and_draws_strips(keras, tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((16, 2)), keras.layers.Conv1D(3, 5, name="c1"), keras.layers.Conv1D(2, 3, name="c2")], name="seq"
    )
    model_path = tmp_path / "seq.keras"
    model.save(model_path)
    signal = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    np.save(tmp_path / "signal.npy", signal)
    picture = write_image(tmp_path / "pic.png", np.zeros((4, 4), dtype=np.uint8))
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main,
        [
            "featuremaps",
            str(tmp_path / "signal.npy"),
            str(picture),
            "--model",
            str(model_path),
            "--no-labels",
            "--scale",
            "1",
            "-o",
            str(out),
        ],
    )

    assert result.exit_code == 1
    assert f"Error: {picture}: the model takes arrays of shape 16x2, not images; give .npy files" in result.stderr
    strips = np.asarray(Image.open(out / "seq" / "signal" / "c1.png"))
    # three maps of 12 steps, each a one-pixel strip at --scale 1, stacked in one column
    assert strips.shape == (3 + 2, 12)
    expected = np.asarray(model.get_layer("c1")(signal[None]))[0]
    assert strips[0].argmax() == expected[:, 0].argmax()
    assert strips[2].argmax() == expected[:, 1].argmax()
    kernels = CliRunner().invoke(main, ["filters", "--model", str(model_path), "--layer", "c2", "-o", str(out)])
    assert kernels.exit_code == 0, kernels.output
    assert Image.open(out / "seq" / "filters_c2.png").mode == "P"


def test_conv3d_is_listed_skipped_by_default_and_refused_by_name(keras, tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4, 6, 6, 1)), keras.layers.Conv3D(2, 3, name="volume")], name="vol")

    assert [(c.kind, c.output_shape) for c in conv_layers(model)] == [("Conv3D", (2, 4, 4, 2))]
    with pytest.raises(UnsupportedLayer, match="no conv layers with 1-D or 2-D maps"):
        build_extractor(model)
    with pytest.raises(UnsupportedLayer) as caught:
        build_extractor(model, ["volume"])
    assert str(caught.value) == "layer 'volume' is a Conv3D with 3-D maps; featuremaps renders 1-D and 2-D maps only"
    with pytest.raises(UnsupportedLayer, match="3-D kernels; filters renders 1-D and 2-D kernels only"):
        layer_kernels(conv_layers(model)[0])


def test_mixed_model_skips_3d_layers_with_a_note(keras, tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 3))
    flat = keras.layers.Conv2D(2, 3, name="flat")(inputs)
    volume = keras.layers.Conv3D(1, (1, 3, 3), name="volume")(keras.layers.Reshape((1, 6, 6, 2))(flat))
    path = tmp_path / "mixed.keras"
    keras.Model(inputs, volume, name="mixed").save(path)
    image = write_image(tmp_path / "x.png", np.zeros((8, 8, 3), dtype=np.uint8))

    result = CliRunner().invoke(main, ["featuremaps", str(image), "--model", str(path), "-o", str(tmp_path / "o")])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "note: skipped volume: a Conv3D has 3-D maps"
    assert sorted(p.name for p in (tmp_path / "o" / "mixed" / "x").iterdir()) == ["flat.png"]


def test_size_must_fit_a_fixed_size_model(line_model, tmp_path: Path) -> None:
    image = write_image(tmp_path / "x.png", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(OptionError) as caught:
        feature_maps(line_model, [image], None, ReadingSettings(size=(16, 16)))
    assert str(caught.value) == (
        "model 'line_detector' takes 8x8x1 input; `size` 16x16 fits only models of free input size"
    )


def test_free_size_model_with_mixed_picture_sizes_needs_a_size(tmp_path: Path) -> None:
    model = load_model("shapes")
    small = write_image(tmp_path / "a.png", np.zeros((20, 30, 3), dtype=np.uint8))
    large = write_image(tmp_path / "b.png", np.zeros((40, 30, 3), dtype=np.uint8))
    taller = write_image(tmp_path / "c.png", np.zeros((60, 40, 3), dtype=np.uint8))
    square = write_image(tmp_path / "d.png", np.zeros((40, 40, 3), dtype=np.uint8))

    with pytest.raises(OptionError, match="different sizes"):
        feature_maps(model, [small, large], ["edges"])
    with pytest.raises(OptionError, match="different sizes"):  # only the rows differ
        feature_maps(model, [square, taller], ["edges"])
    with pytest.raises(OptionError, match="^no images given$"):
        feature_maps(model, [], ["edges"])
    assert feature_maps(model, [small, large], ["edges"], ReadingSettings(size=(32, 32)))["edges"].shape == (
        2,
        28,
        28,
        8,
    )
