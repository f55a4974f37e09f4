"""Models of several inputs (an image and a vector of metadata): which input takes the images, and what the
others get (``--input``, ``--feed``), on models whose maps can be worked out by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz import OptionError, UnsupportedLayer, conv_layers, feature_maps, gradcam
from cnnviz.cli import main
from cnnviz.inputs.reader import FeedSettings, ReadingSettings
from cnnviz.methods.extract import build_extractor
from cnnviz.methods.gradcam import Target
from cnnviz.runs.filters import FilterOptions, render_filters
from tests.conftest import square_picture

#: What the metadata adds to every position: weights (2, -1) on the vector's two values.
META_WEIGHTS = np.array([[2.0], [-1.0]], dtype=np.float32)


def image_and_vector(keras, nested: bool = False):  # type: ignore[no-untyped-def]
    """'after' = the image (one channel, 8x8) plus 2 * meta[0] - meta[1] at every position."""
    layers = keras.layers
    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((2,), name="meta")
    if nested:
        base = keras.Sequential(
            [keras.Input((8, 8, 1)), layers.Conv2D(1, 1, use_bias=False, name="inner")], name="base"
        )
        seen = base(image)
    else:
        seen = layers.Conv2D(1, 1, use_bias=False, name="inner")(image)
    shift = layers.Dense(1, use_bias=False, name="weigh")(meta)
    spread = layers.UpSampling2D(8, name="spread")(layers.Reshape((1, 1, 1))(shift))
    summed = layers.Add(name="sum")([seen, spread])
    after = layers.Conv2D(1, 1, use_bias=False, name="after")(summed)
    meta_conv = layers.Conv1D(1, 1, name="meta_conv")(layers.Reshape((2, 1))(meta))
    outputs = [layers.GlobalAveragePooling2D()(after), layers.Flatten()(meta_conv)]
    model = keras.Model([image, meta], layers.Concatenate()(outputs), name="with_meta")
    (base.get_layer("inner") if nested else model.get_layer("inner")).set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("after").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("weigh").set_weights([META_WEIGHTS])
    return model


PICTURES = np.arange(3 * 64, dtype=np.float32).reshape(3, 8, 8, 1)


def test_other_inputs_get_zeros_one_vector_for_all_or_a_row_per_image(keras) -> None:  # type: ignore[no-untyped-def]
    model = image_and_vector(keras)
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]], dtype=np.float32)

    zeros = feature_maps(model, PICTURES, ["after"])["after"]
    one = feature_maps(model, PICTURES, ["after"], ReadingSettings(feed={"meta": np.array([1.0, 1.0])}))["after"]
    each = feature_maps(model, PICTURES, ["after"], ReadingSettings(feed={"meta": rows}))["after"]

    np.testing.assert_allclose(zeros, PICTURES)
    np.testing.assert_allclose(one, PICTURES + 1.0)  # 2 * 1 - 1
    np.testing.assert_allclose(each, PICTURES + np.array([2.0, -1.0, 5.0]).reshape(3, 1, 1, 1))
    assert build_extractor(model, ["after"]).feeds.notes == [  # type: ignore[union-attr]
        "input 'meta' gets zeros; give it values with `feed` meta=FILE.npy"
    ]


def test_layers_and_filters_work_whatever_the_inputs(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = image_and_vector(keras)

    assert sorted(conv.path for conv in conv_layers(model)) == ["after", "inner", "meta_conv"]
    drawn = render_filters(model, tmp_path, FilterOptions(layer="meta_conv"))
    assert [path.name for path in drawn.written] == ["filters_meta_conv.png"]
    assert [conv.path for conv in build_extractor(model).layers] == ["inner", "after"]  # the image's branch only
    with pytest.raises(UnsupportedLayer, match="layer 'meta_conv' computes from the model's other inputs, not from"):
        build_extractor(model, ["meta_conv"])


def test_a_nested_image_base_inside_a_model_of_several_inputs(keras) -> None:  # type: ignore[no-untyped-def]
    model = image_and_vector(keras, nested=True)

    maps = feature_maps(model, PICTURES, ["base/inner", "after"], ReadingSettings(feed={"meta": np.array([0.0, 2.0])}))

    np.testing.assert_allclose(maps["base/inner"], PICTURES)
    np.testing.assert_allclose(maps["after"], PICTURES - 2.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input": "photo"}, "model 'with_meta' has no input 'photo'; its inputs are: image, meta"),
        ({"feed": {"metadata": np.zeros(2)}}, "`feed` metadata: 'metadata' is not one of its inputs; the model's"),
        ({"feed": {"image": np.zeros(2)}}, "`feed` image: 'image' takes the images"),
        ({"feed": {"meta": np.zeros(3)}}, r"`feed` meta: an array of shape 3; input 'meta' takes 2 \(the same"),
        ({"feed": {"meta": np.zeros((2, 2))}}, "`feed` meta has 2 rows, one per image, but the run has 3 images"),
    ],
)
def test_choices_that_cannot_work_are_refused_naming_what_would(keras, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError, match=message):
        feature_maps(image_and_vector(keras), PICTURES, ["after"], ReadingSettings(**kwargs))


def test_cli_feeds_a_file_to_the_other_input(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_file = tmp_path / "with_meta.keras"
    image_and_vector(keras).save(model_file)
    picture = tmp_path / "p.png"
    Image.fromarray(np.full((8, 8), 10, dtype=np.uint8), mode="L").save(picture)
    np.save(tmp_path / "meta.npy", np.array([3.0, 1.0], dtype=np.float32))
    common = [str(picture), "-m", str(model_file), "--layer", "after", "--preprocess", "none", "--save-raw"]

    fed = CliRunner().invoke(
        main, ["featuremaps", *common, "--feed", f"meta={tmp_path / 'meta.npy'}", "-o", str(tmp_path / "fed")]
    )
    zeros = CliRunner().invoke(main, ["featuremaps", *common, "-o", str(tmp_path / "zeros")])
    wrong = CliRunner().invoke(main, ["featuremaps", *common, "--feed", "meta", "-o", str(tmp_path / "x")])

    assert fed.exit_code == 0, fed.output
    np.testing.assert_allclose(np.load(tmp_path / "fed" / "with_meta" / "p" / "after.npy"), 15.0)  # 10 + 2*3 - 1
    assert (
        zeros.exit_code == 0
        and "note: input 'meta' gets zeros; give it values with --feed meta=FILE.npy" in zeros.output
    )
    np.testing.assert_allclose(np.load(tmp_path / "zeros" / "with_meta" / "p" / "after.npy"), 10.0)
    assert wrong.exit_code == 2 and "'meta' is not NAME=FILE.npy" in wrong.output
    records = [json.loads((tmp_path / run / "with_meta" / "manifest.json").read_text()) for run in ("fed", "zeros")]
    assert [(r["images"][str(picture)]["input"], r["images"][str(picture)]["feed"]) for r in records] == [
        ("image", {"meta": str(tmp_path / "meta.npy")}),
        ("image", {"meta": "zeros"}),
    ]


def test_grad_cam_of_a_classifier_with_a_metadata_input(keras, square_finder) -> None:  # type: ignore[no-untyped-def]
    image = keras.Input((32, 32, 3), name="image")
    meta = keras.Input((3,), name="meta")
    trunk = keras.Model(square_finder.inputs, square_finder.get_layer("gap").output, name="finder")
    scores, layer = keras.layers.Dense(2, name="logits"), keras.layers.Dense(2, name="meta_logits")
    summed = keras.layers.Add()([scores(trunk(image)), layer(meta)])
    model = keras.Model([image, meta], keras.layers.Softmax()(summed))
    scores.set_weights(square_finder.get_layer("predictions").get_weights())
    layer.set_weights([np.zeros((3, 2), np.float32), np.zeros(2, np.float32)])  # the metadata changes nothing
    picture = square_picture()[None]

    with_meta = gradcam(model, picture, 1, layer="finder/conv2", reading=ReadingSettings(feed={"meta": np.ones(3)}))
    alone = gradcam(square_finder, picture, 1, layer="conv2")

    np.testing.assert_allclose(with_meta.heatmaps, alone.heatmaps, rtol=1e-4, atol=1e-6)
    assert with_meta.heatmaps.max() > 0


def test_models_of_several_inputs_and_outputs_written_by_keras_2_work(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same shapes saved by tf_keras (Keras 2) as .h5: the image-and-vector model (maps worked out by hand),
    and a model of two heads, each explained as its Keras 3 twin explains it."""
    from cnnviz import load_model

    tf_keras = pytest.importorskip("tf_keras")
    layers = tf_keras.layers
    image, meta = tf_keras.Input((8, 8, 1), name="image"), tf_keras.Input((2,), name="meta")
    seen = layers.Conv2D(1, 1, use_bias=False, name="inner")(image)
    shift = layers.Reshape((1, 1, 1))(layers.Dense(1, use_bias=False, name="weigh")(meta))
    spread = layers.UpSampling2D(8, name="spread")(shift)
    after = layers.Conv2D(1, 1, use_bias=False, name="after")(layers.Add(name="sum")([seen, spread]))
    legacy = tf_keras.Model([image, meta], layers.GlobalAveragePooling2D()(after), name="with_meta")
    legacy.get_layer("inner").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    legacy.get_layer("after").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    legacy.get_layer("weigh").set_weights([META_WEIGHTS])
    legacy.save(tmp_path / "with_meta.h5")

    maps = feature_maps(
        load_model(tmp_path / "with_meta.h5"), PICTURES, ["after"], ReadingSettings(feed={"meta": np.ones(2)})
    )
    np.testing.assert_allclose(maps["after"], PICTURES + 1.0)

    tf_keras.utils.set_random_seed(2)
    photo = tf_keras.Input((16, 16, 3))
    trunk = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(photo)
    pooled = layers.GlobalAveragePooling2D()(trunk)
    heads = [layers.Dense(3, activation="softmax", name="kind")(pooled), layers.Dense(1, name="size")(pooled)]
    two = tf_keras.Model(photo, heads, name="two_heads")
    two.save(tmp_path / "two_heads.h5")
    loaded = load_model(tmp_path / "two_heads.h5")
    pixels = np.random.default_rng(3).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    expected = [np.asarray(out) for out in two(pixels)]  # what Keras 2 computes for each head
    for number, (head, kind) in enumerate((("kind", "classes"), ("size", "regression"))):
        explained = gradcam(loaded, pixels, layer="conv", target=Target(output=head))
        assert (explained.head, explained.output) == (kind, head)
        np.testing.assert_allclose(explained.outputs, expected[number], rtol=1e-5, atol=1e-6)
        assert explained.heatmaps.shape == (1, 16, 16)


def test_maximize_holds_the_other_inputs_at_their_fed_values(keras) -> None:  # type: ignore[no-untyped-def]
    from cnnviz import MaximizeOptions, maximize

    model = image_and_vector(keras)
    options = MaximizeOptions(steps=4, size=8, parametrization="pixel", jitter=0, scale=0.0, rotate=0.0)

    zeros = maximize(model, "after", [0], options, feeding=FeedSettings(preprocess="none"))
    fed = maximize(
        model, "after", [0], options, feeding=FeedSettings(preprocess="none", feed={"meta": np.array([1.0, 1.0])})
    )

    np.testing.assert_allclose(fed.images, zeros.images)  # the image's gradient does not depend on the shift
    assert fed.activations[0] == pytest.approx(zeros.activations[0] + 1.0, rel=1e-5)  # 2 * 1 - 1 added everywhere


def test_maximize_draws_a_multispectral_model_a_row_per_filter_a_tile_per_channel(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz import MaximizeRunOptions, render_maximize

    model = keras.Sequential([keras.Input((None, None, 8)), keras.layers.Conv2D(4, 3, name="c")], name="bands")
    options = MaximizeRunOptions(layer="c", filters="0:3", steps=4, size=32, labels=False, save_raw=True)

    result = render_maximize(model, tmp_path, options)

    assert result.maximized is not None and result.maximized.images.shape == (3, 32, 32, 8)
    picture = np.asarray(Image.open(tmp_path / "maximize_c.png").convert("RGB"))
    assert picture.shape == (3 * 96 + 2 * 2, 8 * 96 + 7 * 2, 3)  # 3 rows of 8 tiles enlarged 3 times, 2 px apart
    band = result.maximized.images[1, :, :, 5]  # filter 1's sixth channel, in grey, at row 1, column 5
    tile_ = picture[98 : 98 + 96 : 3, 5 * 98 : 5 * 98 + 96 : 3, 0]
    np.testing.assert_array_equal(tile_[8:, 8:], np.rint(band * 255).astype(np.uint8)[8:, 8:])  # past the number


def test_the_callback_and_the_report_take_the_input_choice(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import cnnviz
    from cnnviz import MapOptions, ReportOptions, write_report

    model = image_and_vector(keras)
    rows = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    callback = cnnviz.VisualizeCallback(
        images=PICTURES[:2],
        layers=["after"],
        out=tmp_path / "viz",
        map_options=MapOptions(feed={"meta": rows}),
        filters=False,
        animate=False,
    )
    callback.set_model(model)
    callback.draw("epoch_001", "epoch 1", 1)
    Image.fromarray(np.full((8, 8), 10, dtype=np.uint8), mode="L").save(tmp_path / "p.png")
    options = ReportOptions(preprocess="none", feed={"meta": np.array([3.0, 1.0])}, attributions=False)
    write_report(model, [tmp_path / "p.png"], tmp_path / "report", options)

    drawn = feature_maps(model, PICTURES[:2], ["after"], ReadingSettings(feed={"meta": rows}))["after"]
    np.testing.assert_allclose(drawn, PICTURES[:2] + np.array([2.0, -1.0]).reshape(2, 1, 1, 1))
    from cnnviz.runs.featuremaps import map_picture

    conv = build_extractor(model, ["after"]).layers[0]
    expected = map_picture("with_meta | epoch 1", conv, drawn[1], "sample_1", MapOptions(feed={"meta": rows}))
    drawn_by_callback = Image.open(tmp_path / "viz" / "epoch_001" / "sample_1" / "after.png")
    # the header names the range of the maps as fed (the second picture's values minus 1): the feed was used
    np.testing.assert_array_equal(np.asarray(drawn_by_callback.convert("RGB")), expected.to_rgb())
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<dt>other inputs</dt><dd>meta: an array of shape (2,)</dd>" in page


def test_top_says_what_the_other_inputs_get_and_in_bfloat16_what_rounding_can_swap(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.methods.top import ROUNDED_RANKS
    from cnnviz.runs.top import TopOptions, render_top

    pictures = []
    for level in (10, 200):
        pictures.append(tmp_path / f"p{level}.png")
        Image.fromarray(np.full((8, 8), level, dtype=np.uint8), mode="L").save(pictures[-1])
    options = TopOptions(layer="after", k=2, preprocess="none")
    zeros = "input 'meta' gets zeros; give it values with `feed` meta=FILE.npy"

    exact = render_top(image_and_vector(keras), pictures, tmp_path / "exact", options)
    brief = render_top(image_and_vector(keras), pictures, tmp_path / "brief", replace(options, precision="bfloat16"))

    assert exact.notes == [zeros] and brief.notes == [zeros, ROUNDED_RANKS]
    assert [record["image"] for record in exact.records] == [str(pictures[1]), str(pictures[0])]  # 200 before 10


def test_every_attribution_method_with_a_metadata_input_and_in_bfloat16(keras, square_finder) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.methods.attribution import AttributionSettings, attribute, general_methods

    image = keras.Input((32, 32, 3), name="image")
    meta = keras.Input((3,), name="meta")
    trunk = keras.Model(square_finder.inputs, square_finder.get_layer("gap").output, name="finder")
    scores, layer = keras.layers.Dense(2, name="logits"), keras.layers.Dense(2, name="meta_logits")
    summed = keras.layers.Add()([scores(trunk(image)), layer(meta)])
    model = keras.Model([image, meta], keras.layers.Softmax()(summed))
    scores.set_weights(square_finder.get_layer("predictions").get_weights())
    layer.set_weights([np.zeros((3, 2), np.float32), np.zeros(2, np.float32)])  # the metadata changes nothing
    pictures = np.stack([square_picture(), square_picture(7)])
    settings = AttributionSettings(samples=4, masks=500, steps=8)  # RISE's peak is noise at a few dozen masks
    fed = ReadingSettings(feed={"meta": np.ones((2, 3))})  # a row per image

    with_meta = attribute(
        model, pictures, general_methods(), 1, target=Target(layer="finder/conv2"), settings=settings, reading=fed
    )
    alone = attribute(square_finder, pictures, general_methods(), 1, target=Target(layer="conv2"), settings=settings)
    for method in general_methods():
        np.testing.assert_allclose(
            with_meta.heatmaps[method], alone.heatmaps[method], rtol=1e-4, atol=1e-6, err_msg=method
        )
    halved = attribute(
        square_finder, pictures, general_methods(), 1, settings=settings, reading=ReadingSettings(precision="bfloat16")
    )
    for method in general_methods():
        heat = halved.heatmaps[method][0]
        row, col = np.unravel_index(np.argmax(heat), heat.shape)
        assert 4 <= row < 12 and 20 <= col < 28, f"{method} in bfloat16: the peak is off the square"
