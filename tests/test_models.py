"""Loading models by name and from files, listing their conv layers, nested models end to end."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from cnnviz import (
    LayerNotFound,
    ModelLoadError,
    ModelRunError,
    NotAConvLayer,
    OptionError,
    UnsupportedModel,
    WeightsDownloadError,
    build_extractor,
    conv_layers,
    feature_maps,
    load_model,
)
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.methods.stats import filter_stats
from tests.conftest import LINE_IMAGE, VERTICAL_LINE, nested_sequential, tiny_base

VGG16_CONVS = [
    ("block1_conv1", (224, 224, 64), 1_792),
    ("block1_conv2", (224, 224, 64), 36_928),
    ("block2_conv1", (112, 112, 128), 73_856),
    ("block2_conv2", (112, 112, 128), 147_584),
    ("block3_conv1", (56, 56, 256), 295_168),
    ("block3_conv2", (56, 56, 256), 590_080),
    ("block3_conv3", (56, 56, 256), 590_080),
    ("block4_conv1", (28, 28, 512), 1_180_160),
    ("block4_conv2", (28, 28, 512), 2_359_808),
    ("block4_conv3", (28, 28, 512), 2_359_808),
    ("block5_conv1", (14, 14, 512), 2_359_808),
    ("block5_conv2", (14, 14, 512), 2_359_808),
    ("block5_conv3", (14, 14, 512), 2_359_808),
]


def test_vgg16_without_weights_lists_its_13_conv_layers_with_shapes_and_params() -> None:
    model = load_model("vgg16", weights="none")

    convs = conv_layers(model)

    assert [(c.path, c.output_shape, c.params) for c in convs] == VGG16_CONVS
    assert {c.kind for c in convs} == {"Conv2D"}
    assert all(c.kernel_size == (3, 3) for c in convs)


def test_application_size_option_changes_the_traced_shapes() -> None:
    model = load_model("VGG16", weights="none", size=(64, 96))

    assert conv_layers(model)[-1].output_shape == (4, 6, 512)


def test_nested_model_lists_inner_layers_as_outer_slash_inner(nested_model) -> None:
    convs = conv_layers(nested_model)

    assert [(c.path, c.kind, c.output_shape) for c in convs] == [
        ("base/conv_a", "Conv2D", (16, 16, 4)),
        ("base/conv_b", "Conv2D", (16, 16, 4)),
        ("base/depthwise", "DepthwiseConv2D", (16, 16, 4)),
        ("base/conv_c", "Conv2D", (7, 7, 6)),
    ]


def _inner_reference(model, pixels: np.ndarray, layer: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What the inner layer computes when the inner model is fed the rescaled pixels directly."""
    from cnnviz._keras import keras_module

    keras = keras_module()
    base = model.get_layer("base")
    probe = keras.Model(base.inputs, base.get_layer(layer).output)
    return np.asarray(probe(pixels / 255.0, training=False))


def test_nested_model_feature_maps_come_from_the_outer_input_in_inference_mode(nested_model, tmp_path: Path) -> None:
    path = tmp_path / "transfer.keras"
    nested_model.save(path)
    loaded = load_model(path)  # a Sequential loaded from a file: it has no defined .output
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)

    maps = feature_maps(loaded, pixels, ["base/conv_a", "conv_c"])

    assert list(maps) == ["base/conv_a", "base/conv_c"]
    # RandomFlip must not flip in inference mode and Rescaling must run: equal to the inner model on pixels/255.
    np.testing.assert_allclose(maps["base/conv_a"], _inner_reference(loaded, pixels, "conv_a"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["base/conv_c"], _inner_reference(loaded, pixels, "conv_c"), rtol=1e-5, atol=1e-5)


def test_functional_outer_model_calling_a_base_with_training_false(keras) -> None:
    base = tiny_base(keras)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(2.0, name="double")(inputs)
    x = base(x, training=False)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs, name="functional_transfer")
    pixels = np.ones((1, 16, 16, 3), dtype=np.float32)

    maps = feature_maps(model, pixels, ["conv_a"])

    direct = keras.Model(base.inputs, base.get_layer("conv_a").output)(pixels * 2.0)
    np.testing.assert_allclose(maps["base/conv_a"], np.asarray(direct), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_round_trip_through_a_file_keeps_kernels_and_feature_maps(keras, tmp_path: Path, suffix: str) -> None:
    model = nested_sequential(keras)
    pixels = np.random.default_rng(1).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    before = feature_maps(model, pixels)
    path = tmp_path / f"model{suffix}"
    model.save(path)

    loaded = load_model(path)
    after = feature_maps(loaded, pixels)

    assert list(after) == list(before)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-6)


def test_lambda_layer_is_refused_in_safe_mode_and_names_the_flag(keras, tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Lambda(lambda x: x * 2.0, name="double"), keras.layers.Conv2D(1, 3)]
    )
    path = tmp_path / "lambda.keras"
    model.save(path)

    loaded = _refused_until_unsafe(
        path,
        f"{path} contains a Lambda layer or other Python code, which runs when the model is loaded; "
        "cnnviz refuses it by default. If you trust the file, pass `unsafe`.",
    )
    assert loaded.get_layer("double") is not None


def _refused_until_unsafe(path: Path, message: str):  # type: ignore[no-untyped-def]
    """Load ``path``: refused with exactly ``message`` in safe mode, then loaded with ``unsafe``."""
    with pytest.raises(ModelLoadError) as caught:
        load_model(path)
    assert str(caught.value) == message
    return load_model(path, unsafe=True)


def test_unknown_model_name_suggests_close_names() -> None:
    with pytest.raises(ModelLoadError, match=r"no model 'vgg61'.*Did you mean vgg19, vgg16\?"):
        load_model("vgg61")


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_model(tmp_path / "gone.keras")
    assert str(caught.value) == f"no such model file: {tmp_path / 'gone.keras'}"


def test_file_model_rejects_imagenet_weights(tmp_path: Path, line_model) -> None:
    path = tmp_path / "m.keras"
    line_model.save(path)
    with pytest.raises(ModelLoadError, match="applies to keras.applications names only"):
        load_model(path, weights="imagenet")


def test_not_a_model_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelLoadError, match=r"^could not load .*broken\.keras"):
        load_model(path)


def test_failed_imagenet_download_says_what_where_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.utils import file_utils

    def offline(url, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")

    with pytest.raises(WeightsDownloadError) as caught:
        load_model("vgg16")

    message = str(caught.value)
    assert message.startswith(
        "could not download the ImageNet weights for vgg16 (conv base only, include_top=False) into "
        "/nonexistent-keras-home/models: "
    )
    assert "`model` shapes" in message and "`weights` PATH" in message


def test_layer_lookup_errors_list_conv_layers_closest_first(nested_model) -> None:
    with pytest.raises(LayerNotFound) as caught:
        build_extractor(nested_model, ["conv_x"])
    assert str(caught.value) == (
        "no layer 'conv_x'; conv layers are: base/conv_a, base/conv_b, base/conv_c, base/depthwise"
    )
    with pytest.raises(NotAConvLayer, match=r"^layer 'base/add' is a Add, not a convolution; conv layers are: "):
        build_extractor(nested_model, ["add"])


def test_channels_first_layers_come_out_channels_last(keras) -> None:
    model = keras.Sequential(
        [keras.Input((1, 8, 8)), keras.layers.Conv2D(2, 3, data_format="channels_first", name="cf")], name="cf_model"
    )
    model.get_layer("cf").set_weights([np.stack([VERTICAL_LINE, -VERTICAL_LINE], -1)[:, :, None, :], np.zeros(2)])
    extractor = build_extractor(model)
    maps = extractor(LINE_IMAGE.reshape(1, 8, 8, 1))  # images are given channels last

    assert extractor.taken.channels == 1 and extractor.taken.spatial_size == (8, 8)
    assert conv_layers(model)[0].output_shape == (6, 6, 2)
    assert maps["cf"].shape == (1, 6, 6, 2)
    np.testing.assert_array_equal(maps["cf"][0, :, 2, 0], np.full(6, 3.0))
    np.testing.assert_array_equal(maps["cf"][0, :, 2, 1], np.full(6, -3.0))


def _twin_models(keras, data_format: str):  # type: ignore[no-untyped-def]
    """The same small 2-D network in either layout: every conv kind cnnviz draws, pooling and batch norm between."""
    axis = 1 if data_format == "channels_first" else -1
    shape = (3, 12, 12) if data_format == "channels_first" else (12, 12, 3)
    kw = {"data_format": data_format}
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv", **kw),
            keras.layers.BatchNormalization(axis=axis, name="bn"),
            keras.layers.MaxPooling2D(2, name="pool", **kw),
            keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise", **kw),
            keras.layers.SeparableConv2D(5, 3, name="separable", **kw),
            keras.layers.Conv2DTranspose(2, 3, strides=2, name="transpose", **kw),
        ],
        name=f"twin_{data_format}",
    )


def test_channels_first_models_compute_what_their_channels_last_twins_do(keras) -> None:
    first, last = _twin_models(keras, "channels_first"), _twin_models(keras, "channels_last")
    rng = np.random.default_rng(3)
    for layer in first.layers:
        weights = [rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()]
        if layer.name == "bn":  # a positive variance
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)
        last.get_layer(layer.name).set_weights(weights)
    images = rng.uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)

    got, want = build_extractor(first)(images), build_extractor(last)(images)

    assert list(got) == ["conv", "depthwise", "separable", "transpose"]
    for name in got:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert got["transpose"].shape == (2, 9, 9, 2)


def test_the_channels_last_twin_uses_the_models_own_weights(keras) -> None:
    model = keras.Sequential([keras.Input((1, 8, 8)), keras.layers.Conv2D(1, 3, data_format="channels_first")])
    extractor = build_extractor(model)
    layer = model.layers[0]
    layer.set_weights([VERTICAL_LINE[:, :, None, None], np.array([0.5], dtype=np.float32)])

    maps = extractor(LINE_IMAGE.reshape(1, 8, 8, 1))

    np.testing.assert_array_equal(maps[layer.name][0, :, :, 0], np.tile([0.5, 0.5, 3.5, 3.5, 0.5, 0.5], (6, 1)))


def test_a_model_that_cannot_run_on_any_input_is_blamed_not_the_images(keras, tmp_path: Path) -> None:
    class Broken(keras.layers.Layer):  # type: ignore[misc]
        """Fails at run time whatever the input (its output shape is known without running it)."""

        def compute_output_shape(self, shape):  # type: ignore[no-untyped-def]
            return shape

        def call(self, x):  # type: ignore[no-untyped-def]
            raise ValueError("broken whatever the input")

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, name="conv")(Broken()(inputs)), name="broken")
    np.save(tmp_path / "a.npy", np.ones((8, 8, 1), dtype=np.float32))
    with pytest.raises(ModelRunError) as caught:
        filter_stats(model, [tmp_path / "a.npy"], reading=ReadingSettings(preprocess="none"))

    assert str(caught.value).startswith("model 'broken' cannot run here on any input, so no image was drawn: ")
    assert "broken whatever the input" in str(caught.value)


def test_a_model_that_runs_at_its_own_size_blames_the_image(keras, tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 5, name="wide")], name="free")
    np.save(tmp_path / "small.npy", np.zeros((3, 3, 1), dtype=np.float32))
    run = filter_stats(model, [tmp_path / "small.npy"], reading=ReadingSettings(preprocess="none"))
    reported = run.failures

    assert run.layers[0].images == 0 and [path for path, _ in reported] == [str(tmp_path / "small.npy")]
    assert str(reported[0][1]).startswith(f"{tmp_path / 'small.npy'}: the model could not run on it at 3x3x1: ")
    assert reported[0][1].__cause__ is not None  # the TensorFlow error, for --verbose


def test_subclassed_model_is_refused_alone_and_opened_inside_a_functional_one(keras) -> None:
    class Custom(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="custom")
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, x):  # type: ignore[no-untyped-def]
            return self.conv(x)

    model = Custom()
    model(np.zeros((1, 8, 8, 1), dtype=np.float32))
    inputs = keras.Input((8, 8, 1))
    outer = keras.Model(inputs, Custom()(inputs), name="outer")

    with pytest.raises(UnsupportedModel) as caught:  # on its own: no input to replay it from
        conv_layers(model)
    assert str(caught.value) == (
        "model 'custom' is a subclassed Custom, whose layers cannot be reached from its input; rebuild it as a "
        "Functional or Sequential model"
    )
    # nested in a Functional model, it is a layer whose call is run with its conv's call recorded
    (found,) = conv_layers(outer)
    inner = outer.layers[1]
    assert found.path == f"{inner.name}/{inner.conv.name}" and found.layer is inner.conv
    picture = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    maps = build_extractor(outer, [found.path])(picture)[found.path]
    np.testing.assert_allclose(maps, np.asarray(inner.conv(picture)), rtol=1e-6, atol=1e-6)


def test_weights_only_h5_says_to_use_weights(line_model, tmp_path: Path) -> None:
    path = tmp_path / "only.weights.h5"
    line_model.save_weights(path)

    with pytest.raises(ModelLoadError) as caught:
        load_model(path)
    assert str(caught.value) == (
        f"{path} holds weights only, no architecture: build the model with `model` NAME or a model file, "
        f"and give this file with `weights` {path}"
    )


def test_weights_of_another_architecture_are_said_not_to_fit(line_model, tmp_path: Path) -> None:
    weights = tmp_path / "line.weights.h5"
    line_model.save_weights(weights)
    line_model.save(tmp_path / "line.h5")

    with pytest.raises(ModelLoadError) as into_file_model:
        load_model("shapes", str(weights))
    with pytest.raises(ModelLoadError) as into_application:
        load_model("vgg16", str(weights))
    with pytest.raises(ModelLoadError) as legacy:
        load_model("shapes", str(tmp_path / "line.h5"))

    advice = "they were saved from a model whose layer names or shapes differ"
    assert str(into_file_model.value) == (
        f"the weights in {weights} do not fit shapes: {advice} (layer edges has 1 weight arrays in shapes, 2 in "
        "the file). Give `weights` a file saved from this same architecture."
    )
    assert str(into_application.value).startswith(
        f"the weights in {weights} do not fit vgg16: {advice} (block1_conv1/kernel is (3, 3, 3, 64) in vgg16, "
        "(3, 3, 1, 1) in the file)."
    )
    assert str(legacy.value).startswith(
        f"the weights in {tmp_path / 'line.h5'} do not fit shapes: {advice} (shapes has 4 layers with weights, "
        "the file 1)."
    )


def test_vgg16_base_nested_in_a_classifier_end_to_end(keras, tmp_path: Path) -> None:
    from cnnviz.inputs.preprocess import auto_preprocessing

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), base, keras.layers.Flatten(), keras.layers.Dense(2)], name="cats_vs_dogs"
    )
    path = tmp_path / "transfer.keras"
    model.save(path)
    loaded = load_model(path)
    pixels = np.random.default_rng(6).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)

    convs = conv_layers(loaded)
    step = auto_preprocessing(loaded)
    maps = feature_maps(loaded, step(pixels), ["block1_conv1", "vgg16/block5_conv3"])

    assert [c.path for c in convs][:2] == ["vgg16/block1_conv1", "vgg16/block1_conv2"]
    assert len(convs) == 13 and convs[-1].output_shape == (2, 2, 512)
    assert step.name == "vgg16.preprocess_input"
    inner = loaded.get_layer("vgg16")
    probe = keras.Model(inner.inputs, inner.get_layer("block5_conv3").output)
    np.testing.assert_allclose(maps["vgg16/block5_conv3"], np.asarray(probe(step(pixels))), rtol=1e-4, atol=1e-4)


def test_a_model_with_two_image_inputs_lists_its_layers_and_asks_which_input_takes_the_images(keras) -> None:
    a, b = keras.Input((8, 8, 3), name="left_eye"), keras.Input((8, 8, 3), name="right_eye")
    right = keras.layers.Conv2D(2, 3, name="right")(b)
    merged = keras.layers.Concatenate()([keras.layers.Conv2D(2, 3, name="left")(a), right])
    model = keras.Model([a, b], merged, name="two_eyes")

    assert [conv.path for conv in conv_layers(model)] == ["left", "right"]
    with pytest.raises(OptionError) as caught:
        build_extractor(model)
    assert str(caught.value) == (
        "model 'two_eyes' has several inputs that take images: left_eye (8x8x3), right_eye (8x8x3); "
        "choose one with `input`"
    )


def test_layer_patterns_select_conv_layers_in_model_order(nested_model) -> None:
    extractor = build_extractor(nested_model, ["*conv_[ca]", "base/dep*"])

    assert [conv.path for conv in extractor.layers] == ["base/conv_a", "base/conv_c", "base/depthwise"]
    with pytest.raises(LayerNotFound, match=r"^no conv layer matches 'block\*'; conv layers are: "):
        build_extractor(nested_model, ["block*"])


def test_application_weights_from_a_local_file(tmp_path: Path) -> None:
    source = load_model("vgg16", weights="none", size=(32, 32))
    path = tmp_path / "vgg16_notop.weights.h5"
    source.save_weights(path)

    copy = load_model("vgg16", weights=str(path), size=(32, 32))

    np.testing.assert_array_equal(
        copy.get_layer("block5_conv3").kernel.numpy(), source.get_layer("block5_conv3").kernel.numpy()
    )
    with pytest.raises(ModelLoadError, match=r"^`weights` .*missing\.h5: no such file \(expected imagenet, none or"):
        load_model("vgg16", weights=str(tmp_path / "missing.h5"))


CUSTOM_LAYER_MODULE = """
import keras


@keras.saving.register_keras_serializable(package="cnnviz_tests")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
"""


def test_custom_layer_classes_come_from_an_imported_module(tmp_path: Path) -> None:
    import importlib.util
    import sys

    source = tmp_path / "my_layers.py"
    source.write_text(CUSTOM_LAYER_MODULE)
    spec = importlib.util.spec_from_file_location("my_layers_for_saving", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from cnnviz._keras import keras_module

    keras = keras_module()
    model = keras.Sequential([keras.Input((6, 6, 1)), module.Doubler(name="double"), keras.layers.Conv2D(1, 3)])
    path = tmp_path / "custom.keras"
    model.save(path)
    # a fresh session knows nothing of the class: forget its registration
    keras.saving.get_custom_objects().pop("cnnviz_tests>Doubler")
    sys.modules.pop("my_layers", None)

    with pytest.raises(ModelLoadError) as caught:
        load_model(path)
    assert str(caught.value) == (
        f"could not load {path}: it uses a layer class 'Doubler' that is not part of Keras. "
        "If it is your own, pass the module or .py file that defines it with `imports`."
    )
    loaded = load_model(path, imports=[str(source)])
    assert [c.path for c in conv_layers(loaded)] == [loaded.layers[-1].name]
    with pytest.raises(ModelLoadError, match=r"^could not import no_such_module_here: "):
        load_model(path, imports=["no_such_module_here"])

    from click.testing import CliRunner

    from cnnviz.cli import main

    result = CliRunner().invoke(main, ["layers", "--model", str(path), "--import", str(source), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["kind"] for row in json.loads(result.output)] == ["Conv2D"]


def test_a_folder_named_like_a_model_does_not_hide_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").mkdir()  # as `cnnviz featuremaps ... -o .` makes it

    assert [conv.path for conv in conv_layers(load_model("shapes"))] == ["edges", "parts", "shapes"]
    with pytest.raises(ModelLoadError, match=r"^shapes is a directory but not a SavedModel"):
        load_model("./shapes")
