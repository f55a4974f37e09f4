"""Finding conv layers by name, path and pattern, and fixing free input sizes: the graph module on its own."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz import LayerNotFound, NotAConvLayer, OptionError, UnsupportedModel
from cnnviz.models.graph import input_shape, leaf_name, sized_input_shape, trace
from tests.conftest import nested_sequential


def _top_and_nested_conv(keras):  # type: ignore[no-untyped-def]
    """A top-level layer called "conv", and a nested model with its own "conv" and "other"."""
    inner = keras.Sequential(
        [keras.Input((6, 6, 2)), keras.layers.Conv2D(2, 1, name="conv"), keras.layers.Conv2D(2, 1, name="other")],
        name="inner",
    )
    second = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(2, 1, name="other")], name="second")
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"), inner, second], name="outer"
    )


def test_a_name_means_the_top_level_layer_before_a_nested_one(keras) -> None:
    traced = trace(_top_and_nested_conv(keras))

    assert [conv.path for conv in traced.find(["conv", "inner/conv", "second/other"])] == [
        "conv",
        "inner/conv",
        "second/other",
    ]


def test_a_short_name_that_fits_several_nested_layers_is_refused() -> None:
    import keras

    with pytest.raises(LayerNotFound) as caught:
        trace(_top_and_nested_conv(keras)).find(["other"])
    assert str(caught.value) == "'other' is ambiguous: it names inner/other, second/other; give the full path"


def test_patterns_match_paths_and_nested_layers_own_names(keras) -> None:
    traced = trace(nested_sequential(keras))

    assert [conv.path for conv in traced.find(["conv_*"])] == ["base/conv_a", "base/conv_b", "base/conv_c"]
    assert [conv.path for conv in traced.find(["base/*_c", "*depth*"])] == ["base/conv_c", "base/depthwise"]
    with pytest.raises(LayerNotFound, match=r"^no conv layer matches 'pool\*'; conv layers are: "):
        traced.find(["pool*"])


def test_unknown_names_list_the_conv_layers_closest_first(keras) -> None:
    traced = trace(nested_sequential(keras))

    with pytest.raises(LayerNotFound) as caught:
        traced.find(["conv_cc"])
    assert str(caught.value) == (
        "no layer 'conv_cc'; conv layers are: base/conv_c, base/conv_a, base/conv_b, base/depthwise"
    )


def test_a_model_without_convolutions_says_so(keras) -> None:
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")], name="mlp")

    with pytest.raises(NotAConvLayer) as caught:
        trace(dense).find(["dense"])
    assert str(caught.value) == "layer 'dense' is a Dense, not a convolution; this model has no conv layers"


def test_a_model_with_no_input_yet_is_refused(keras) -> None:
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3)], name="unbuilt")

    with pytest.raises(UnsupportedModel) as caught:
        input_shape(unbuilt)
    assert str(caught.value) == (
        "model 'unbuilt' has no defined input shape; build it (model.build or a keras.Input) and save it"
    )


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((None, None, 3), (64, 96), (64, 96, 3)),
        ((3, None, None), (64, 96), (3, 64, 96)),  # channels first
        ((1, None, None), (64, 96), (1, 64, 96)),
        ((None, None, 1), (64, 96), (64, 96, 1)),
        ((None, None, 5), (64, 96), (64, 96, 5)),  # five bands, channels last
        ((3, None, 1), (3, 96), (3, 96, 1)),  # three rows of grayscale, not three channels
        ((1, None, 3), (1, 96), (1, 96, 3)),  # one row of RGB, not one channel
        ((64, None, 3), (64, 80), (64, 80, 3)),  # one free axis
        ((8, 8, 1), (8, 8), (8, 8, 1)),  # a fixed size that matches
        ((None, None, 3), None, (None, None, 3)),
        ((16, 2), (64, 96), (16, 2)),  # not an image: nothing to size
    ],
)
def test_sized_input_shape_fills_free_axes(keras, shape: tuple, size: tuple | None, expected: tuple) -> None:
    model = keras.Sequential([keras.Input(shape), keras.layers.Identity()], name="m")

    assert sized_input_shape(model, size) == expected


@pytest.mark.parametrize(("shape", "size"), [((8, 8, 1), (16, 16)), ((64, None, 3), (32, 80)), ((3, 8, None), (16, 9))])
def test_sized_input_shape_refuses_a_size_that_a_fixed_axis_cannot_take(keras, shape: tuple, size: tuple) -> None:
    model = keras.Sequential([keras.Input(shape), keras.layers.Identity()], name="fixed")

    with pytest.raises(OptionError, match=r"^model 'fixed' takes .* input; `size` .* fits only models of free input"):
        sized_input_shape(model, size)


def test_a_refused_size_is_named_rows_by_cols() -> None:
    class Fixed:
        name = "fixed"
        inputs = [type("Input", (), {"shape": (None, 3, 8, None)})()]

    with pytest.raises(OptionError) as caught:
        sized_input_shape(Fixed(), (16, 9))
    assert str(caught.value) == "model 'fixed' takes 3x8x? input; `size` 16x9 fits only models of free input size"


def test_the_listing_puts_first_the_layer_whose_own_name_is_closest(keras) -> None:
    features = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 1, name="conv")], name="features")
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="conv2d_extra")(features(inputs)))

    with pytest.raises(LayerNotFound) as caught:
        trace(model).find(["conv2"])

    # 'conv2' is closer to the nested layer's own name 'conv' than to 'conv2d_extra', though not to its whole path
    assert str(caught.value) == "no layer 'conv2'; conv layers are: features/conv, conv2d_extra"
    assert leaf_name("features/conv") == "conv" and leaf_name("conv2d_extra") == "conv2d_extra"


def test_a_layer_called_twice_keeps_the_output_of_its_first_call(keras) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from cnnviz import feature_maps

    inputs = keras.Input((4, 4, 1))
    shared = keras.layers.Conv2D(1, 1, use_bias=False, name="shared")
    model = keras.Model(inputs, shared(shared(inputs)))
    shared.set_weights([np.full((1, 1, 1, 1), 2.0, dtype=np.float32)])
    pixels = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)

    traced = trace(model)
    maps = feature_maps(model, pixels, ["shared"])

    assert [conv.path for conv in traced.convs] == ["shared"]
    assert traced.inputs["shared"] is traced.input
    np.testing.assert_array_equal(maps["shared"], pixels * 2.0)  # the first call's maps, not the second's (x4)
    np.testing.assert_array_equal(keras.Model(traced.input, traced.output)(pixels), pixels * 4.0)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_twinned_layer_follows_later_changes_to_its_weights(keras, precision: str) -> None:  # type: ignore[no-untyped-def]
    """A strided 1x1 conv runs as a twin (see graph._run_twin), and in bfloat16 every layer after the first conv
    does: an extractor built once (as the training callback builds it) must see the weights as they are at each
    call, on every backend (JAX compiles the call, with the variables it is told about as arguments)."""
    from cnnviz.inputs.reader import FeedSettings
    from cnnviz.methods.extract import build_extractor

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(3, 1, strides=2, name="shortcut")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="after")(x))
    arrays = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype(np.float32)
    extractor = build_extractor(model, ["after"], feeding=FeedSettings(precision=precision))
    before = extractor(arrays)["after"]

    shortcut = model.get_layer("shortcut")
    shortcut.set_weights([w * 3.0 for w in shortcut.get_weights()])
    after = extractor(arrays)["after"]

    bias = keras.ops.convert_to_numpy(model.get_layer("after").bias)
    # the conv after is linear in the shortcut's output, and that output is 3 times what it was
    np.testing.assert_allclose(
        after - bias,
        3.0 * (before - bias),
        rtol=0.02,
        atol=0.02,
    )
