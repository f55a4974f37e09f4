"""Layers reached inside other layers' ``call`` (cnnviz.models.inner), on KerasHub's MobileNetV3 and Vision
Transformer built from their configs (random weights, nothing downloaded): every convolution of MobileNetV3's blocks
is listed and drawn; a ViT's blocks are maps on the patch grid, and Grad-CAM and attention rollout on them equal the
same computed by hand, layer by layer, from KerasHub's own sublayers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz.cli import main
from tests.conftest import ROOT, write_image

keras_hub = pytest.importorskip("keras_hub", reason="the hub extra: pip install 'cnnviz[hub]'")
sys.path.insert(0, str(ROOT / "bench"))
from bench_top_support import CONFIG  # noqa: E402  (MobileNetV3-small's shape, shared with the bench)

SIDE, PATCH = 32, 8


def _descendant_convs(layer, keras, prefix: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    """Every conv layer held at any depth, by the names of the layers holding it: counted here from Keras's own
    tracking, not by cnnviz."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    found = []
    for sub in layer._layers:
        path = prefix + sub.name
        if isinstance(sub, kinds):
            found.append(path)
        found.extend(_descendant_convs(sub, keras, path + "/"))
    return found


@pytest.fixture(scope="module")
def mobilenet(keras):  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.MobileNetBackbone(**{**CONFIG, "image_shape": (64, 64, 3)})
    return keras_hub.models.MobileNetImageClassifier(backbone, num_classes=6, num_features=32)


@pytest.fixture(scope="module")
def vit(keras, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A four-block ViT classifier with its converter (x / 127.5 - 1), saved as a user saves one."""
    keras.utils.set_random_seed(2)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIDE, SIDE, 3), patch_size=PATCH, num_layers=4, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(SIDE, SIDE), scale=1 / 127.5, offset=-1)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(converter)
    model = keras_hub.models.ViTImageClassifier(backbone, num_classes=3, preprocessor=preprocessor)
    path = tmp_path_factory.mktemp("vit") / "vit.keras"
    model.save(path)
    return model, path


def test_mobilenet_v3_lists_every_conv_inside_its_blocks_and_draws_one(keras, mobilenet, tmp_path: Path) -> None:
    from cnnviz.methods.attribution import Attributor
    from cnnviz.methods.extract import build_extractor
    from cnnviz.models.graph import conv_layers

    held = _descendant_convs(mobilenet, keras)
    listed = [conv.path for conv in conv_layers(mobilenet)]
    assert len(held) == 53 and sorted(listed) == sorted(held)  # all of them, where 2 were listed before
    # a conv inside a block: its maps are the block's first conv applied to the block's input
    backbone = mobilenet.backbone
    block = backbone.get_layer("block_2_1")
    path = "mobile_net_backbone/block_2_1/block_2_1_conv1"
    picture = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    block_input = keras.Model(backbone.input, block.input)(picture)
    expected = np.asarray(block.conv1(block_input))
    maps = build_extractor(mobilenet, [path])(picture)[path]
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)
    # Grad-CAM's default layer: the last conv with maps larger than 1x1 (the head's classifier_conv is 1x1)
    assert Attributor(mobilenet, ["gradcam"]).model.layer == "mobile_net_backbone/block_5_0/block_5_0_conv"
    # and the command draws it
    file = tmp_path / "mobilenet.keras"
    mobilenet.save(file)
    image = write_image(tmp_path / "noise.png", (picture[0] * 255).astype(np.uint8))
    result = CliRunner().invoke(
        main, ["featuremaps", str(image), "--model", str(file), "--layer", "block_2_1_conv1", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    drawn = tmp_path / "mobilenet" / "noise" / "mobile_net_backbone__block_2_1__block_2_1_conv1.png"
    assert drawn.is_file()
    from PIL import Image

    pixels = np.asarray(Image.open(drawn).convert("RGB"), dtype=np.int32)
    assert pixels.shape[0] > 100 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # maps, not a blank grid


def _tokens_by_hand(model, picture: np.ndarray, blocks: int):  # type: ignore[no-untyped-def]
    """The tokens after ``blocks`` transformer blocks, calling KerasHub's layers one by one."""
    backbone = model.backbone
    tokens = backbone.get_layer("vit_patching_and_embedding")(picture)
    encoder = backbone.get_layer("vit_encoder")
    for block in encoder.encoder_layers[:blocks]:
        tokens = block(tokens)
    return tokens


def _on_grid(tokens) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Patch tokens (the class token, first, left out) as maps on the grid."""
    tokens = np.asarray(tokens)
    side = SIDE // PATCH
    return tokens[:, 1:].reshape(len(tokens), side, side, tokens.shape[-1])


def test_a_vit_block_is_maps_on_the_patch_grid_and_gradcam_is_the_hand_computation(keras, vit) -> None:
    from cnnviz import backends
    from cnnviz.inputs.reader import Reader
    from cnnviz.methods.attribution import attribute
    from cnnviz.methods.extract import build_extractor
    from cnnviz.models.graph import conv_layers

    model, _ = vit
    pixels = np.random.default_rng(5).uniform(0, 255, (1, SIDE, SIDE, 3)).astype(np.float32)
    converted = np.asarray(model.preprocessor.image_converter(pixels))  # KerasHub's own: x / 127.5 - 1
    np.testing.assert_allclose(Reader(model).preprocessing(pixels), converted, rtol=1e-6, atol=1e-5)
    convs = conv_layers(model)
    blocks = [conv for conv in convs if conv.tokens is not None]
    assert [conv.path for conv in convs][0] == "vi_t_backbone/vit_patching_and_embedding/patch_embedding"
    assert [conv.path.split("/")[-1] for conv in blocks] == [f"transformer_block_{n}" for n in (1, 2, 3, 4)]
    assert all(conv.tokens == 1 and conv.output_shape == (4, 4, 16) for conv in blocks)
    picture = np.random.default_rng(1).uniform(-1, 1, (2, SIDE, SIDE, 3)).astype(np.float32)
    maps = build_extractor(model, [blocks[1].path])(picture)[blocks[1].path]
    np.testing.assert_allclose(maps, _on_grid(_tokens_by_hand(model, picture, 2)), rtol=1e-5, atol=1e-5)

    # Grad-CAM at the last block but one (the head reads the class token alone: the last block's patch tokens
    # have no gradient), by hand: the rest of the network from those tokens, its gradient, Grad-CAM's formula
    found = attribute(model, picture, ["gradcam"])
    assert found.layer == blocks[2].path
    encoder = model.backbone.get_layer("vit_encoder")
    before = np.asarray(_tokens_by_hand(model, picture, 3))

    def rest(tokens):  # type: ignore[no-untyped-def]
        tokens = encoder.encoder_layers[3](tokens)
        return model.get_layer("predictions")(encoder.layer_norm(tokens)[:, 0])

    (scores,), backward = backends.pullback(lambda tokens: (rest(tokens),), before)
    classes = scores.argmax(axis=1)
    np.testing.assert_array_equal(found.classes, classes)
    grads = _on_grid(backward([np.eye(3, dtype=np.float32)[classes]]))
    cam = np.maximum((_on_grid(before) * grads.mean(axis=(1, 2), keepdims=True)).sum(axis=-1), 0.0)
    assert cam.max() > 0
    np.testing.assert_allclose(found.layer_maps["gradcam"], cam, rtol=1e-4, atol=1e-6 * cam.max())


def test_attention_rollout_is_the_product_of_the_blocks_attention(keras, vit, tmp_path: Path) -> None:
    from cnnviz.methods.attribution import attribute

    model, file = vit
    picture = np.random.default_rng(4).uniform(-1, 1, (2, SIDE, SIDE, 3)).astype(np.float32)
    encoder = model.backbone.get_layer("vit_encoder")
    tokens = model.backbone.get_layer("vit_patching_and_embedding")(picture)
    rolled = np.broadcast_to(np.eye(17), (2, 17, 17))
    for block in encoder.encoder_layers:
        normed = block.layer_norm_1(tokens)
        _, scores = block.mha(normed, normed, return_attention_scores=True)
        mixed = 0.5 * np.asarray(scores).mean(axis=1) + 0.5 * np.eye(17)
        rolled = (mixed / mixed.sum(axis=-1, keepdims=True)) @ rolled
        tokens = block(tokens)
    expected = rolled[:, 0, 1:].reshape(2, 4, 4)
    found = attribute(model, picture, ["attention-rollout"])
    np.testing.assert_allclose(found.layer_maps["attention-rollout"], expected, rtol=1e-5, atol=1e-7)
    assert found.heatmaps["attention-rollout"].shape == (2, SIDE, SIDE)
    # a CNN has no attention: the error names the methods that apply
    image = write_image(tmp_path / "grey.png", np.full((SIDE, SIDE, 3), 128, np.uint8))
    bundled = CliRunner().invoke(
        main, ["explain", str(image), "--model", "shapes", "--method", "attention-rollout", "-o", str(tmp_path)]
    )
    assert bundled.exit_code != 0
    assert "has no attention layers" in bundled.output and "gradcam, gradcam++" in bundled.output
    # and the command draws the rollout of the saved model, saying what its maps leave out
    drawn = CliRunner().invoke(
        main, ["explain", str(image), "--model", str(file), "--method", "attention-rollout", "-o", str(tmp_path)]
    )
    assert drawn.exit_code == 0, drawn.output
    assert list((tmp_path / "vit" / "grey").glob("attributions_*.png"))


def test_a_vit_block_has_no_kernel_and_maximize_runs_at_the_models_size(vit, tmp_path: Path) -> None:
    _, file = vit
    filters = CliRunner().invoke(
        main, ["filters", "--model", str(file), "--layer", "transformer_block_2", "-o", str(tmp_path)]
    )
    assert filters.exit_code != 0 and "no kernel to draw" in filters.output and "featuremaps" in filters.output
    maximized = CliRunner().invoke(
        main,
        ["maximize", "--model", str(file), "--layer", "transformer_block_2", "--filters", "0:2", "--steps", "2"]
        + ["-o", str(tmp_path)],
    )
    assert maximized.exit_code == 0, maximized.output
    assert f"images of {SIDE} px" in maximized.output
    asked = CliRunner().invoke(
        main,
        ["maximize", "--model", str(file), "--layer", "transformer_block_2", "--size", "48", "-o", str(tmp_path)],
    )
    assert asked.exit_code != 0 and "position embeddings" in asked.output
