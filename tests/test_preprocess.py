"""Preprocessing: the named modes, and the automatic choice from the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz import MapOptions, OptionError, feature_maps, render_feature_maps
from cnnviz.inputs.preprocess import auto_preprocessing, preprocessing, resolve_preprocessing
from cnnviz.inputs.reader import ReadingSettings


def test_vgg_mode_matches_keras_preprocess_input_and_does_not_mutate(keras) -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    original = pixels.copy()

    ours = preprocessing("vgg")(pixels)
    theirs = keras.applications.vgg16.preprocess_input(pixels.copy())

    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(pixels, original)


@pytest.mark.parametrize(("mode", "module"), [("tf", "mobilenet_v2"), ("torch", "densenet")])
def test_tf_and_torch_modes_match_their_keras_families(keras, mode: str, module: str) -> None:
    pixels = np.random.default_rng(1).uniform(0, 255, (1, 2, 5, 3)).astype(np.float32)  # no axis but the last is 3

    theirs = getattr(keras.applications, module).preprocess_input(pixels.copy())

    np.testing.assert_allclose(preprocessing(mode)(pixels), theirs, rtol=1e-5, atol=1e-5)


def test_scale255_and_none() -> None:
    pixels = np.array([[[[0.0, 127.5, 255.0]]]])
    np.testing.assert_allclose(preprocessing("scale255")(pixels), [[[[0.0, 0.5, 1.0]]]])
    np.testing.assert_array_equal(preprocessing("none")(pixels), pixels)
    with pytest.raises(OptionError, match="unknown preprocessing 'caffe'"):
        preprocessing("caffe")


def test_application_model_gets_its_family_preprocess_input_on_a_copy() -> None:
    from cnnviz import load_model

    model = load_model("vgg16", weights="none", size=(32, 32))
    pixels = np.full((1, 2, 2, 3), 200.0, dtype=np.float32)

    step = auto_preprocessing(model)
    result = step(pixels)

    assert step.name == "vgg16.preprocess_input"
    np.testing.assert_allclose(result[0, 0, 0], [200 - 103.939, 200 - 116.779, 200 - 123.68], rtol=1e-5)
    assert (pixels == 200.0).all()


def test_model_starting_with_rescaling_gets_raw_pixels(nested_model) -> None:
    step = auto_preprocessing(nested_model)
    assert step.name == "none"
    assert "Rescaling" in step.description


def test_nested_application_base_gets_its_family(keras) -> None:
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3))
    model = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.GlobalAveragePooling2D()], name="mine")

    step = auto_preprocessing(model)

    assert step.name == "mobilenet_v2.preprocess_input"
    np.testing.assert_allclose(step(np.array([[[[0.0, 127.5, 255.0]]]])), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)


def test_plain_user_model_gets_x_over_255_and_override_wins(line_model) -> None:
    assert auto_preprocessing(line_model).name == "scale255"
    assert resolve_preprocessing(line_model, "tf").name == "tf"


def test_own_rescaling_wins_over_an_application_like_name(keras) -> None:
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(2, 3)], name="vgg16_finetuned"
    )
    assert auto_preprocessing(model).name == "none"


def test_efficientnet_gets_raw_pixels_from_either_rule() -> None:
    from cnnviz import load_model

    model = load_model("efficientnetb0", weights="none", size=(32, 32))
    step = auto_preprocessing(model)
    assert step.name == "none"
    np.testing.assert_array_equal(step(np.array([[[[10.0, 20.0, 30.0]]]])), [[[[10.0, 20.0, 30.0]]]])


@pytest.mark.parametrize("mode", ["vgg", "tf", "torch", "scale255", "none"])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_neutral_pixel_is_what_preprocessing_maps_to_zero(mode: str, channels: int) -> None:
    step = preprocessing(mode)
    pixel = step.neutral(channels)

    assert pixel.shape == (channels,) and (pixel >= 0).all() and (pixel <= 255).all()
    np.testing.assert_allclose(step(pixel.reshape(1, 1, 1, channels)), 0.0, atol=1e-4)


def test_the_neutral_pixel_of_a_vgg_family_model_is_the_imagenet_mean() -> None:
    from cnnviz.inputs.preprocess import IMAGENET_MEAN_RGB, _application_preprocessing

    np.testing.assert_allclose(_application_preprocessing("vgg16", "vgg").neutral(), IMAGENET_MEAN_RGB, atol=1e-3)


def test_the_neutral_pixel_follows_the_models_own_rescaling_and_normalization(keras) -> None:
    normalization = keras.layers.Normalization(mean=[0.5, 0.25, 0.0], variance=[4.0, 4.0, 4.0], name="norm")
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255.0, name="unit"),
            normalization,
            keras.layers.Conv2D(1, 3, name="conv"),
        ]
    )
    signed = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1.0), keras.layers.Conv2D(1, 3)]
    )

    np.testing.assert_allclose(auto_preprocessing(model).neutral(), [127.5, 63.75, 0.0])
    np.testing.assert_allclose(auto_preprocessing(signed).neutral(1), [127.5])


def _stripe_picture(path: Path) -> Path:
    """8 rows x 16 columns, white but for black columns 0 and 1."""
    pixels = np.full((8, 16), 255, dtype=np.uint8)
    pixels[:, :2] = 0
    Image.fromarray(pixels).save(path)
    return path


def _identity_model(keras):  # type: ignore[no-untyped-def]
    """16x16 grayscale in, its pixels out: Rescaling to -1..1, then a 1x1 convolution that passes them on."""
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="signed"),
            keras.layers.Conv2D(1, 1, name="pass"),
        ]
    )
    model.get_layer("pass").set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    return model


def test_fit_crop_pad_and_stretch_give_the_fixed_size_as_promised(keras, tmp_path: Path) -> None:
    model, picture = _identity_model(keras), _stripe_picture(tmp_path / "stripe.png")

    def seen(fit: str) -> np.ndarray:
        return feature_maps(model, [picture], ["pass"], ReadingSettings(fit=fit))["pass"][0, :, :, 0]

    stripe_row = np.array([-1.0, -1.0] + [1.0] * 14)
    # crop: scaled to 16x32, the middle 16 columns kept: the stripe (columns 0-3 by then) is cut off
    np.testing.assert_allclose(seen("crop"), np.ones((16, 16)), atol=1e-6)
    # stretch: rows doubled, columns as they were
    np.testing.assert_allclose(seen("stretch"), np.tile(stripe_row, (16, 1)), atol=1e-6)
    # pad: the picture in rows 4-11, neutral (zero for the model) above and below
    padded = np.zeros((16, 16))
    padded[4:12] = stripe_row
    np.testing.assert_allclose(seen("pad"), padded, atol=1e-6)
    with pytest.raises(OptionError, match="unknown fit 'squash'; choose one of: crop, pad, stretch"):
        feature_maps(model, [picture], ["pass"], ReadingSettings(fit="squash"))
    with pytest.raises(OptionError, match="unknown fit 'squash'"):  # refused before the model is traced
        render_feature_maps(None, [picture], tmp_path / "out", MapOptions(fit="squash"))


def test_one_channel_models_get_each_mode_with_the_channel_means() -> None:
    white = np.full((1, 1, 2, 1), 255.0, dtype=np.float32)  # grayscale: one channel, two columns

    np.testing.assert_allclose(preprocessing("vgg")(white)[0, 0, :, 0], 255.0 - (123.68 + 116.779 + 103.939) / 3)
    np.testing.assert_allclose(
        preprocessing("torch")(white)[0, 0, :, 0], (1.0 - (0.485 + 0.456 + 0.406) / 3) / ((0.229 + 0.224 + 0.225) / 3)
    )
    np.testing.assert_allclose(preprocessing("tf")(white)[0, 0, :, 0], 1.0)


def test_a_preprocessing_cannot_be_changed_once_made() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        preprocessing("tf").name = "other"  # type: ignore[misc]


def _conv(keras):  # type: ignore[no-untyped-def]
    return keras.layers.Conv2D(2, 3)


def test_the_layers_before_the_first_convolution_decide_even_inside_nested_models(keras) -> None:
    def model(*layers):  # type: ignore[no-untyped-def]
        return keras.Sequential([keras.Input((16, 16, 3)), *layers])

    inner_rescaling = model(keras.Sequential([keras.layers.Rescaling(1 / 255.0), _conv(keras)]))
    after_a_conv = model(_conv(keras), keras.layers.Rescaling(1 / 255.0))
    after_a_nested_conv = model(keras.Sequential([_conv(keras)]), keras.layers.Rescaling(1 / 255.0))
    after_nested_augmentation = model(
        keras.Sequential([keras.layers.RandomFlip()]), keras.layers.Rescaling(1 / 127.5, offset=-1.0), _conv(keras)
    )

    assert auto_preprocessing(inner_rescaling).name == "none"
    assert auto_preprocessing(after_a_conv).name == "scale255"  # a Rescaling after the first conv is not input scaling
    assert auto_preprocessing(after_a_nested_conv).name == "scale255"
    step = auto_preprocessing(after_nested_augmentation)
    assert step.name == "none" and step.neutral(1).tolist() == [127.5]


def test_a_nested_vgg16_base_gets_the_vgg_family(keras) -> None:
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    model = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.GlobalAveragePooling2D()], name="mine")

    step = auto_preprocessing(model)

    assert step.name == "vgg16.preprocess_input" and step.description.endswith("; nested base 'vgg16'")


def test_a_model_starting_with_a_normalization_layer_takes_raw_pixels(keras) -> None:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Normalization(mean=[100.0, 50.0, 25.0], variance=[4.0, 4.0, 4.0], name="norm"),
            keras.layers.Conv2D(1, 3, name="conv"),
        ]
    )

    step = auto_preprocessing(model)

    assert (step.name, step.description) == ("none", "raw 0..255 pixels: the model starts with a Normalization layer")
    assert step.neutral().tolist() == [100.0, 50.0, 25.0]
    assert step(np.full((1, 1, 1, 3), 200.0, dtype=np.float32)).ravel().tolist() == [200.0, 200.0, 200.0]
