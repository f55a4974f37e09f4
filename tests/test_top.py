"""``cnnviz top``: the images and patches that excite each filter most, on models whose answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.methods.top import TopK, TopQuery, scan_top, support_boxes
from cnnviz.models.graph import trace
from cnnviz.models.receptive import receptive_field
from cnnviz.runs.top import TopOptions, render_top

#: (name, channel, value, (row, col)) of the dot in each 16x16 test picture; channel 0 red, 1 green.
DOTS = [
    ("a", 0, 200, (3, 4)),
    ("b", 0, 250, (10, 12)),
    ("c", 0, 100, (0, 0)),
    ("d", 1, 180, (5, 5)),
    ("e", 0, 200, (8, 9)),  # as bright as a: ranked after it, found later
]


def colour_detector(keras):  # type: ignore[no-untyped-def]
    """A 3x3 'same' conv whose filter 0 is the red value at the centre tap and filter 1 the green one."""
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3, padding="same", name="det")])
    kernel = np.zeros((3, 3, 3, 2), dtype=np.float32)
    kernel[1, 1, 0, 0] = kernel[1, 1, 1, 1] = 1.0
    model.get_layer("det").set_weights([kernel, np.zeros(2, dtype=np.float32)])
    return model


@pytest.fixture
def dots(tmp_path: Path) -> list[Path]:
    paths = []
    for name, channel, value, (row, col) in DOTS:
        pixels = np.zeros((16, 16, 3), dtype=np.uint8)
        pixels[row, col, channel] = value
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_the_ranking_positions_and_boxes_are_the_known_ones(keras, dots, tmp_path: Path, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    options = TopOptions(layer="det", k=4, preprocess="none", batch_size=batch_size, json=tmp_path / "top.json")

    result = render_top(colour_detector(keras), dots, tmp_path / "out", options)

    records = json.loads((tmp_path / "top.json").read_text())
    red = [(Path(r["image"]).stem, r["value"], r["position"], r["box"]) for r in records if r["filter"] == 0]
    assert red == [
        ("b", 250.0, [10, 12], [9, 11, 12, 14]),
        ("a", 200.0, [3, 4], [2, 3, 5, 6]),
        ("e", 200.0, [8, 9], [7, 8, 10, 11]),  # a tie: the image found first ranks first
        ("c", 100.0, [0, 0], [0, 0, 2, 2]),  # at the corner: the box is clipped to the image
    ]
    green = [(Path(r["image"]).stem, r["value"], r["rank"]) for r in records if r["filter"] == 1]
    assert green[0] == ("d", 180.0, 1)
    assert [record["rank"] for record in records[:4]] == [1, 2, 3, 4]
    assert result.records[0]["layer"] == "det" and "layer" not in records[0]  # one layer: not repeated


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_ranking_by_mean_keeps_whole_images(keras, dots, tmp_path: Path, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    options = TopOptions(
        layer="det", k=2, by="mean", preprocess="none", batch_size=batch_size, csv=tmp_path / "top.csv"
    )

    result = render_top(colour_detector(keras), dots, tmp_path / "out", options)

    red = [record for record in result.records if record["filter"] == 0]
    assert [(Path(r["image"]).stem, r["position"], r["box"]) for r in red] == [("b", None, None), ("a", None, None)]
    np.testing.assert_allclose([r["value"] for r in red], [250 / 256, 200 / 256], rtol=1e-6)
    lines = (tmp_path / "top.csv").read_text().splitlines()
    assert lines[0] == "layer,filter,rank,image,value,position,box"
    assert lines[1].startswith(f"det,0,1,{dots[1]},0.976") and lines[1].endswith(",,")


def test_split_runs_merge_to_the_same_answer(keras, dots) -> None:  # type: ignore[no-untyped-def]
    model = colour_detector(keras)
    whole = scan_top(model, dots, TopQuery(["det"], k=3), ReadingSettings(preprocess="none")).tops["det"]
    first = scan_top(model, dots[:2], TopQuery(["det"], k=3), ReadingSettings(preprocess="none")).tops["det"]
    second = scan_top(model, dots[2:], TopQuery(["det"], k=3), ReadingSettings(preprocess="none")).tops["det"]
    second.image[second.image >= 0] += 2  # numbered in the whole run's input order

    merged = first.merge(second)

    for name in ("value", "image", "row", "col"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name), err_msg=name)
    assert whole.image[0].tolist() == [1, 0, 4]


def test_an_empty_top_list_fills_in_input_order() -> None:
    top = TopK.empty(1, k=3)
    top.add(np.array([[[5.0], [0.0], [1.0], [2.0]], [[5.0], [0.0], [0.0], [0.0]]]), [7, 3])
    assert top.image.tolist() == [[3, 7, -1]] and top.value[0, :2].tolist() == [5.0, 5.0]
    assert (top.row[0, 0], top.col[0, 0]) == (0, 0) and (top.row[0, 1], top.col[0, 1]) == (1, 2)


#: A VGG16 block's receptive fields worked out by hand: (layer, start, step, size) along each axis.
VGG16_FIELDS = [
    ("block1_conv1", -1, 1, 3),
    ("block1_conv2", -2, 1, 5),
    ("block2_conv1", -4, 2, 10),
    ("block3_conv1", -10, 4, 24),
    ("block3_conv3", -18, 4, 40),
    ("block4_conv1", -26, 8, 60),
    ("block5_conv3", -90, 16, 196),
]


def test_receptive_fields_of_vgg16_are_the_ones_worked_out_by_hand(keras) -> None:  # type: ignore[no-untyped-def]
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    traced = trace(vgg)
    for layer, start, step, size in VGG16_FIELDS:
        field = receptive_field(traced, layer)
        assert [(axis.start, axis.jump, axis.size) for axis in field.axes] == [(start, step, size)] * 2, layer
    assert receptive_field(traced, "block3_conv1").box((5, 7), (64, 64)) == (10, 18, 34, 42)
    assert receptive_field(traced, "block3_conv1").box((15, 15), (64, 64)) == (50, 50, 64, 64)  # clipped
    assert receptive_field(traced, "block1_conv1").box((0, 63), (64, 64)) == (0, 62, 2, 64)
    assert receptive_field(traced, "block5_conv3").box((1, 2), (64, 64)) == (0, 0, 64, 64)


def _linear_stack(keras, nested: bool = False):  # type: ignore[no-untyped-def]
    """A VGG-shaped stack with linear activations and average pooling, whose gradient support is the whole field."""
    keras.utils.set_random_seed(3)
    layers = keras.layers
    body = [
        layers.Conv2D(4, 3, padding="same", name="c1"),
        layers.Conv2D(4, 3, padding="same", name="c2"),
        layers.AveragePooling2D(2, name="p1"),
        layers.Conv2D(4, 3, padding="same", name="c3"),
        layers.Conv2D(4, 5, strides=2, padding="valid", name="c4"),
    ]
    if nested:
        base = keras.Sequential([keras.Input((32, 32, 3)), *body], name="base")
        return keras.Sequential([keras.Input((32, 32, 3)), base], name="outer")
    return keras.Sequential([keras.Input((32, 32, 3)), *body], name="flat")


def test_receptive_fields_equal_the_gradient_support_of_a_linear_stack(keras) -> None:  # type: ignore[no-untyped-def]
    model = _linear_stack(keras)
    traced = trace(model)
    batch = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    positions = [(0, 0), (2, 3), (5, 5), (0, 5)]
    for layer, shape in (("c2", (32, 32)), ("c3", (16, 16)), ("c4", (6, 6))):
        field = receptive_field(traced, layer)
        graph = [field.box(position, (32, 32)) for position in positions if max(position) < shape[0]]
        support = support_boxes(traced, layer, batch, [p for p in positions if max(p) < shape[0]])
        assert graph == support, layer


def test_nested_models_give_the_boxes_of_their_flat_twins(keras) -> None:  # type: ignore[no-untyped-def]
    flat, nested = trace(_linear_stack(keras)), trace(_linear_stack(keras, nested=True))
    for layer in ("c1", "c2", "c3", "c4"):
        assert receptive_field(nested, f"base/{layer}") == receptive_field(flat, layer)


def test_an_unknown_layer_falls_back_to_the_gradient_and_says_so(keras, dots, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inputs = keras.Input((16, 16, 3))
    up = keras.layers.UpSampling2D(1, name="same_size")(inputs)  # moves nothing, but cnnviz does not know it
    outputs = keras.layers.Conv2D(1, 3, padding="same", name="det")(up)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 3, 1), dtype=np.float32)
    kernel[:, :, 0, 0] = 1.0
    model.get_layer("det").set_weights([kernel, np.zeros(1, dtype=np.float32)])

    result = render_top(model, dots, tmp_path / "out", TopOptions(layer="det", k=1, preprocess="none"))

    # b's dot at (10, 12) gives 250 at the nine positions around it; the first, row-major, is (9, 11), whose 3x3
    # field the gradient finds
    assert (result.records[0]["position"], result.records[0]["box"]) == ([9, 11], [8, 10, 11, 13])
    assert result.notes == [
        "det: receptive fields from the gradient's support (layer 'same_size' moves positions in a way cnnviz "
        "does not compute)"
    ]


def test_cli_draws_one_row_per_filter_with_its_patches(keras, dots, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_file = tmp_path / "dots.keras"
    colour_detector(keras).save(model_file)
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main,
        ["top", *map(str, dots), "-m", str(model_file), "--layer", "det", "-k", "2", "--preprocess", "none"]
        + ["-o", str(out), "--no-labels"],
    )

    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'dots' / 'top_det.png'}" in result.output
    picture = np.asarray(Image.open(out / "dots" / "top_det.png").convert("RGB")).reshape(-1, 3)
    # each 3x3 patch is enlarged 32 times: its one bright pixel (the dot) is a 32x32 block, in its own colour
    count = {colour: int((picture == colour).all(axis=1).sum()) for colour in [(250, 0, 0), (200, 0, 0), (0, 180, 0)]}
    assert count == {(250, 0, 0): 32 * 32, (200, 0, 0): 32 * 32, (0, 180, 0): 32 * 32}  # b, a (row 0); d (row 1)
    manifest = json.loads((out / "dots" / "manifest.json").read_text())
    assert manifest["top"]["det"]["k"] == 2 and manifest["top"]["det"]["png"] == [str(out / "dots" / "top_det.png")]


def test_a_filter_out_of_range_is_refused_before_the_images_are_read(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.errors import OptionError

    broken = tmp_path / "broken.png"  # a failed image, not an error, if the images were read first
    broken.write_text("not a picture")
    with pytest.raises(OptionError, match=r"filter 5 is out of range: there are 2 \(0..1\)"):
        render_top(colour_detector(keras), [broken], tmp_path / "out", TopOptions(layer="det", filters="5"))


def test_fewer_images_than_k_leave_no_empty_columns(keras, dots, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = colour_detector(keras)

    asked_nine = render_top(model, dots, tmp_path / "nine", TopOptions(layer="det", k=9, preprocess="none"))
    asked_five = render_top(model, dots, tmp_path / "five", TopOptions(layer="det", k=5, preprocess="none"))

    nine, five = (Image.open(result.written[0]) for result in (asked_nine, asked_five))
    assert nine.size == five.size  # 5 images: 5 columns, not 9 with 4 of them empty
    assert np.array_equal(np.asarray(nine), np.asarray(five))
