"""Full-size VGG16 (random weights, no download) through the CLI: slow, so marked, but CI runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.draw.marks import label_size
from tests.conftest import ROOT
from tests.test_models import VGG16_CONVS

pytestmark = pytest.mark.slow


def test_featuremaps_on_vgg16_writes_all_13_layers_from_one_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["featuremaps", str(ROOT / "sample_images" / "cat.jpg"), "--weights", "none", "-o", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert "preprocessing: vgg16.preprocess_input" in result.output
    manifest = json.loads((tmp_path / "vgg16-random" / "manifest.json").read_text())
    assert (manifest["model"], manifest["weights"]) == ("vgg16 (random weights)", "random")
    layers = manifest["images"][str(ROOT / "sample_images" / "cat.jpg")]["layers"]
    assert [(name, tuple(record["shape"])) for name, record in layers.items()] == [
        (name, shape) for name, shape, _ in VGG16_CONVS
    ]
    block5 = Image.open(tmp_path / "vgg16-random" / "cat" / "block5_conv3.png")
    # 512 maps of 14x14, scaled up to at least 48 pixels, in a 23x23 grid, under a header strip
    assert block5.mode == "P" and block5.width == 23 * 56 + 22


def test_filters_of_block5_conv1_are_capped_with_a_note(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["filters", "--layer", "block5_conv1", "--weights", "none", "--no-labels", "-o", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "note: showing filters 0-63 of 512; choose others with --filters, e.g. 64:128",
        "note: showing channels 0-63 of 512; choose others with --channels, e.g. 64:128",
    ]
    pixels = np.asarray(Image.open(tmp_path / "vgg16-random" / "filters_block5_conv1.png"))
    gutter = label_size(range(64))[1] + 1  # the filter numbers, left of each row
    # one row of 64 kernels per filter: 3x3 scaled by 8, 1-pixel separators between channels, 3 between filters
    assert pixels.shape == (64 * 24 + 63 * 3, gutter + 64 * 24 + 63)


def test_gradcam_and_maximize_reach_into_a_nested_vgg16_base(tmp_path: Path) -> None:
    # The transfer-learning shape on which other tools' Grad-CAM fails ("No such layer: block5_conv3").
    from cnnviz._keras import keras_module
    from cnnviz.methods.gradcam import gradcam
    from cnnviz.methods.maximize import MaximizeOptions, maximize

    keras = keras_module()
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    model = keras.Sequential(
        [keras.Input((224, 224, 3)), base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, "softmax")],
        name="transfer",
    )
    model.save(tmp_path / "transfer.keras")
    loaded = keras.saving.load_model(tmp_path / "transfer.keras")

    explained = gradcam(loaded, [str(ROOT / "sample_images" / "cat.jpg")])
    found = maximize(loaded, "vgg16/block5_conv1", [0, 7], MaximizeOptions(steps=2, size=64))

    assert explained.layer == "vgg16/block5_conv3" and explained.heatmaps.shape == (1, 224, 224)
    assert explained.layer_maps.shape == (1, 14, 14) and explained.score.startswith("the pre-softmax scores")
    assert found.layer == "vgg16/block5_conv1" and found.images.shape == (2, 64, 64, 3)
