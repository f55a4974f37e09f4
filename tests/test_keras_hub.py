"""KerasHub's models, built here from their configs (random weights, nothing downloaded): cnnviz feeds a classifier
what its own image converter makes, and reads no keras.applications preprocessing into a KerasHub model's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz.cli import main
from cnnviz.inputs.preprocess import auto_preprocessing
from cnnviz.inputs.reader import Reader, ReadingSettings, load_batch
from tests.conftest import ROOT, write_image

keras_hub = pytest.importorskip("keras_hub", reason="the hub extra: pip install 'cnnviz[hub]'")

#: ImageNet's mean and standard deviation as KerasHub's ResNet presets' converters hold them.
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _small_backbone(**names: str):  # type: ignore[no-untyped-def]
    """A one-block KerasHub ResNet backbone (three conv layers)."""
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        **names,
    )


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A small KerasHub ResNet classifier with its preprocessor, saved as a user saves one."""
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(48, 40), scale=list(1.0 / (255.0 * STD)), offset=list(-MEAN / STD)
    )
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(converter)
    model = keras_hub.models.ResNetImageClassifier(backbone, num_classes=5, preprocessor=preprocessor)
    path = tmp_path_factory.mktemp("hub") / "resnet.keras"
    model.save(path)
    return path


def test_a_classifier_is_fed_what_its_own_image_converter_makes(resnet_file: Path, tmp_path: Path) -> None:
    from cnnviz import load_model

    model = load_model(resnet_file)
    picture = np.random.default_rng(3).uniform(0, 255, (48, 40, 3)).round()
    image = write_image(tmp_path / "at_size.png", picture.astype(np.uint8))
    reader = Reader(model)
    assert reader.preprocessing.name == "converter"
    assert "ResNetImageConverter" in reader.preprocessing.description
    fed = load_batch(reader, [image])[0]
    converted = np.asarray(model.preprocessor.image_converter(picture[None].astype("float32")))
    np.testing.assert_allclose(fed, converted, rtol=1e-6, atol=1e-5)
    assert abs(float(fed.max()) - (255 / 255 - MEAN.min()) / STD[MEAN.argmin()]) < 0.1  # ImageNet mean/std, not x/255
    # a model of free input size reads images at the converter's size, the aspect ratio kept by a crop
    wide = write_image(tmp_path / "wide.png", np.zeros((30, 90, 3), np.uint8))
    assert load_batch(reader, [wide])[0].shape == (1, 48, 40, 3)
    assert load_batch(Reader(model, ReadingSettings(size=(32, 32))), [wide])[0].shape == (1, 32, 32, 3)


def test_the_command_says_it_uses_the_converter(resnet_file: Path, tmp_path: Path) -> None:
    image = write_image(tmp_path / "one.png", np.full((60, 50, 3), 90, np.uint8))
    done = CliRunner().invoke(main, ["featuremaps", str(image), "--model", str(resnet_file), "-o", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "preprocessing: converter (ResNetImageConverter, the model's own: x * [0.01712, 0.01751, 0.01743]" in (
        done.output
    )
    assert "at 48x40" in done.output


def test_a_kerashub_name_is_no_keras_applications_model() -> None:
    """KerasHub's MobileNet backbone is named mobile_net_backbone: no keras.applications MobileNet preprocessing."""
    backbone = _small_backbone(name="mobilenet_v2_lookalike")
    assert auto_preprocessing(backbone).name == "scale255"


def test_without_keras_hub_the_error_says_what_to_install(resnet_file: Path) -> None:
    blocked = (
        "import sys; sys.modules['keras_hub'] = None; from cnnviz.cli import main; "
        f"main(['layers', '--model', {str(resnet_file)!r}])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert "is a KerasHub model (ResNetImageClassifier); reading it needs keras-hub: pip install 'cnnviz[hub]'" in (
        done.stderr + done.stdout
    )
    assert "Traceback" not in done.stderr


def test_a_bare_backbone_is_no_segmentation_head(tmp_path: Path) -> None:
    backbone = _small_backbone()
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    image = write_image(tmp_path / "one.png", np.full((40, 40, 3), 90, np.uint8))
    refused = CliRunner().invoke(main, ["gradcam", str(image), "--model", str(path), "-o", str(tmp_path)])
    assert refused.exit_code != 0
    assert "is a KerasHub backbone (ResNetBackbone): it gives features, not class scores" in refused.output
    drawn = CliRunner().invoke(main, ["featuremaps", str(image), "--model", str(path), "-o", str(tmp_path)])
    assert drawn.exit_code == 0, drawn.output
    assert len(list((tmp_path / "backbone" / "one").glob("*.png"))) == 3  # its three conv layers


def test_a_preset_folder_gives_the_same_maps_as_the_keras_file(resnet_file: Path, tmp_path: Path) -> None:
    from cnnviz import load_model
    from cnnviz.methods.extract import build_extractor

    model = load_model(resnet_file)
    folder = tmp_path / "preset"
    model.save_to_preset(str(folder))
    again = load_model(folder)
    assert type(again).__name__ == "ResNetImageClassifier" and again.preprocessor is not None
    picture = np.random.default_rng(5).uniform(0, 255, (1, 48, 40, 3)).astype(np.float32)
    fed = Reader(again).preprocessing(picture)
    first, second = build_extractor(model), build_extractor(again)
    for (name, maps), (other, again_maps) in zip(first(fed).items(), second(fed).items(), strict=True):
        assert name == other
        np.testing.assert_allclose(again_maps, maps, rtol=1e-5, atol=1e-6)
    # random weights from the preset's config: another model, the same architecture
    random = load_model(folder, weights="none")
    assert [w.shape for w in random.weights] == [w.shape for w in again.weights]
    assert not np.allclose(random.weights[0], again.weights[0])


def test_an_unreachable_preset_says_what_was_fetched_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnviz import load_model
    from cnnviz.errors import WeightsDownloadError

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(keras_hub.models.ImageClassifier, "from_preset", offline)
    monkeypatch.setenv("KAGGLEHUB_CACHE", "/somewhere/kaggle")
    with pytest.raises(WeightsDownloadError) as caught:
        load_model("resnet_18_imagenet")
    message = str(caught.value)
    assert "could not fetch the KerasHub preset 'resnet_18_imagenet'" in message
    assert "/somewhere/kaggle" in message and "save_to_preset(FOLDER)" in message


def _densenet() -> tuple[object, object]:
    backbone = keras_hub.models.DenseNetBackbone(stackwise_num_repeats=[2, 2], growth_rate=8)
    return backbone, keras_hub.layers.DenseNetImageConverter(image_size=(40, 40), scale=[1 / 255.0] * 3)


def _efficientnet() -> tuple[object, object]:
    backbone = keras_hub.models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[16, 16],
        stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["v1", "v1"],
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False],
        num_features=64,
    )
    mean, std = MEAN.tolist(), STD.tolist()
    converter = keras_hub.layers.EfficientNetImageConverter(
        image_size=(40, 40), scale=[1 / (255 * s) for s in std], offset=[-m / s for m, s in zip(mean, std, strict=True)]
    )
    return backbone, converter


@pytest.mark.parametrize(
    ("build", "task", "preprocessor"),
    [
        (_densenet, "DenseNetImageClassifier", "DenseNetImageClassifierPreprocessor"),
        (_efficientnet, "EfficientNetImageClassifier", "EfficientNetImageClassifierPreprocessor"),
    ],
)
def test_densenet_and_efficientnet_classifiers_show_every_conv_and_explain_at_the_last_with_maps(
    keras, build, task: str, preprocessor: str
) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.methods.attribution import Attributor
    from cnnviz.methods.extract import build_extractor

    backbone, converter = build()
    made = getattr(keras_hub.models, task)(
        backbone, num_classes=4, preprocessor=getattr(keras_hub.models, preprocessor)(converter)
    )
    # in memory: KerasHub 0.32's EfficientNet classifier does not load back from its own .keras (its head's
    # top_conv, top_bn and predictions come back without weights); ResNet's file is tested above
    model = made
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    convs = [layer for layer in backbone.layers if isinstance(layer, kinds)]
    extractor = build_extractor(model)
    assert len(extractor.layers) == len(convs) > 8  # every conv of these functional backbones
    picture = np.random.default_rng(2).uniform(0, 255, (1, 40, 40, 3)).astype(np.float32)
    fed = Reader(model).preprocessing(picture)
    np.testing.assert_allclose(fed, np.asarray(model.preprocessor.image_converter(picture)), rtol=1e-6, atol=1e-5)
    maps = extractor(fed)
    last = [path for path, found in maps.items() if found.shape[1] * found.shape[2] > 1][-1]
    assert Attributor(model, ["gradcam"]).model.layer == last
