"""The tutorials' worked examples (shared seeds, 000), computed by cnnviz's own extractor."""

from __future__ import annotations

import numpy as np

from cnnviz import conv_layers, feature_maps
from tests.conftest import LINE_IMAGE


def test_1d_bump_detector_gives_the_tutorial_feature_map(keras) -> None:
    model = keras.Sequential([keras.Input((8, 1)), keras.layers.Conv1D(1, 3, name="bump")], name="one_d")
    model.get_layer("bump").set_weights([np.array([0, 1, 0], dtype=np.float32).reshape(3, 1, 1), np.zeros(1)])
    data = np.array([0, 0, 0, 1, 1, 0, 0, 0], dtype=np.float32).reshape(1, 8, 1)

    maps = feature_maps(model, data, ["bump"])

    assert list(maps) == ["bump"]
    assert maps["bump"].shape == (1, 6, 1)
    np.testing.assert_array_equal(maps["bump"][0, :, 0], [0, 0, 1, 1, 0, 0])


def test_2d_vertical_line_detector_gives_the_tutorial_feature_map(line_model) -> None:
    maps = feature_maps(line_model, LINE_IMAGE.reshape(1, 8, 8, 1))

    result = maps["detector"][0, :, :, 0]
    expected = np.zeros((6, 6), dtype=np.float32)
    expected[:, 2:4] = 3.0
    np.testing.assert_array_equal(result, expected)


def test_seed_cifar_cnn_listing_matches_the_tutorial_summary() -> None:
    from tests.conftest import load_script

    model = load_script("train_cifar").build_model()

    convs = conv_layers(model)

    assert [(c.path, c.output_shape, c.params) for c in convs] == [
        ("conv2d", (32, 32, 32), 896),
        ("conv2d_1", (32, 32, 32), 9248),
    ]
    assert model.count_params() == 4_210_090
