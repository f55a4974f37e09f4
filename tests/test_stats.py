"""Per-filter statistics on a handcrafted model whose dead and rarely active filters are known by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz import load_model
from cnnviz.cli import main
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.methods.stats import LayerStats, activity_rule, filter_stats
from cnnviz.methods.top import TopQuery
from cnnviz.models.graph import ConvLayer

#: Five 4x4 inputs: image k has the value k/4 everywhere, and image 4 one pixel of 2.0 as well.
IMAGES = [np.full((4, 4, 1), k / 4, dtype=np.float32) for k in range(5)]
IMAGES[4][1, 2, 0] = 2.0


def _probe_model(keras):  # type: ignore[no-untyped-def]
    """relu filters: 0 passes the pixel, 1 negates it (dead), 2 is zero (dead), 3 fires above 1.5 (rare);
    then, nested, a linear filter: the pixel minus 0.25 (no ReLU of its own)."""
    inner = keras.Sequential([keras.Input((4, 4, 4)), keras.layers.Conv2D(1, 1, name="linear")], name="inner")
    inputs = keras.Input((4, 4, 1))
    relu = keras.layers.Conv2D(4, 1, activation="relu", name="relu")
    model = keras.Model(inputs, inner(relu(inputs)), name="probe")
    relu.set_weights(
        [np.array([1.0, -1.0, 0.0, 1.0], np.float32).reshape(1, 1, 1, 4), np.array([0, 0, 0, -1.5], np.float32)]
    )
    inner.get_layer("linear").set_weights(
        [np.array([1.0, 0, 0, 0], np.float32).reshape(1, 1, 4, 1), np.array([-0.25], np.float32)]
    )
    return model


@pytest.fixture
def arrays(tmp_path: Path) -> list[Path]:
    paths = []
    for number, image in enumerate(IMAGES):
        np.save(tmp_path / f"{number}.npy", image)
        paths.append(tmp_path / f"{number}.npy")
    return paths


def test_dead_and_rare_filters_of_a_handcrafted_model(keras, arrays: list[Path]) -> None:
    relu, linear = filter_stats(_probe_model(keras), arrays, threshold=0.5).layers

    assert (relu.layer, relu.rule, relu.images) == ("relu", "> 0 (after its relu)", 5)
    # filter 0 is the pixel: sums 16 * (0 + .25 + .5 + .75 + 1) + (2 - 1), active everywhere but on image 0
    np.testing.assert_array_equal(relu.sums, [41.0, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(relu.maxima, [2.0, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(relu.active, [64, 0, 0, 1])
    np.testing.assert_array_equal(relu.positions, [80, 80, 80, 80])
    np.testing.assert_array_equal(relu.images_active, [4, 0, 0, 1])
    assert relu.dead.tolist() == [False, True, True, False]
    assert relu.rare(0.02).tolist() == [False, False, False, True]  # 1 of 80 positions
    assert relu.rare(0.01).tolist() == [False, False, False, False]
    np.testing.assert_allclose(relu.mean, [41 / 80, 0, 0, 0.5 / 80])
    # the nested linear layer, active above the threshold 0.5: pixel - 0.25 > 0.5 on image 4 (all 16) only
    assert (linear.layer, linear.rule) == ("inner/linear", "> 0.5 (linear output)")
    np.testing.assert_array_equal(linear.active, [16])
    np.testing.assert_array_equal(linear.images_active, [1])
    np.testing.assert_array_equal(linear.maxima, [1.75])


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_batches_of_any_size_merge_to_the_same_numbers(keras, arrays: list[Path], batch_size: int) -> None:
    model = _probe_model(keras)
    whole = filter_stats(model, arrays, reading=ReadingSettings(batch_size=5)).layers[0]

    parts = filter_stats(model, arrays, reading=ReadingSettings(batch_size=batch_size)).layers[0]
    halves = (
        filter_stats(model, arrays[:2], reading=ReadingSettings(batch_size=batch_size)).layers[0]
        + filter_stats(model, arrays[2:], reading=ReadingSettings(batch_size=batch_size)).layers[0]
    )

    for merged in (parts, halves):
        for name in ("sums", "maxima", "active", "positions", "images_active"):
            np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
        assert merged.images == 5


def test_rows_are_one_per_filter_with_the_verdict(keras, arrays: list[Path]) -> None:
    relu = filter_stats(_probe_model(keras), arrays, ["relu"]).layers[0]

    rows = relu.rows(rare_below=0.02)

    assert [(row["filter"], row["dead"], row["rare"]) for row in rows] == [
        (0, False, False),
        (1, True, False),
        (2, True, False),
        (3, False, True),
    ]
    assert rows[0] | {"mean": 0} == {
        "layer": "relu",
        "filter": 0,
        "mean": 0,
        "max": 2.0,
        "active_fraction": 0.8,
        "images_active": 4,
        "images": 5,
        "dead": False,
        "rare": False,
        "active_means": "> 0 (after its relu)",
    }


def test_statistics_of_different_layers_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge statistics of b into a"):
        LayerStats.empty("a", "> 0", 2) + LayerStats.empty("b", "> 0", 2)


def test_unreadable_inputs_are_counted_out_and_reported(keras, arrays: list[Path], tmp_path: Path) -> None:
    (tmp_path / "bad.npy").write_text("no array")
    done: list[int] = []

    run = filter_stats(_probe_model(keras), [*arrays, tmp_path / "bad.npy"], ["relu"], progress=done.append)

    assert run.layers[0].images == 5 and sum(done) == 6
    assert [path for path, _ in run.failures] == [str(tmp_path / "bad.npy")]


def test_a_relu6_layer_is_active_above_zero_whatever_the_threshold(keras) -> None:
    layer = keras.layers.Conv2D(1, 1, activation="relu6")
    conv = ConvLayer("c", layer, "Conv2D", (1, 1), (4, 4, 1), 2, False)
    assert activity_rule(conv, threshold=3.0) == ("> 0 (after its relu6)", 0.0)
    linear = ConvLayer("c", keras.layers.Conv2D(1, 1), "Conv2D", (1, 1), (4, 4, 1), 2, False)
    assert activity_rule(linear, threshold=3.0) == ("> 3 (linear output)", 3.0)


def test_stats_command_prints_the_table_and_writes_charts_csv_and_json(
    keras, arrays: list[Path], tmp_path: Path
) -> None:
    model_file = tmp_path / "probe.keras"
    _probe_model(keras).save(model_file)
    out, table = tmp_path / "out", tmp_path / "t.csv"
    (tmp_path / "bad.npy").write_text("no array")

    result = CliRunner().invoke(
        main,
        ["stats", *map(str, arrays), str(tmp_path / "bad.npy"), "-m", str(model_file), "-o", str(out)]
        + ["--rare", "2", "--threshold", "0.5", "--csv", str(table), "--json", str(tmp_path / "t.json")],
    )

    assert result.exit_code == 1  # the bad input, after everything else was written
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "layer         filters  dead  rare  most active  least active  active means",
        "relu                4     2     1  #0 80.0%     #1 0.0%       > 0 (after its relu)",
        "inner/linear        1     0     0  #0 20.0%     #0 20.0%      > 0.5 (linear output)",
    ]
    assert "dead filters: relu #1, #2" in lines
    assert sorted(p.name for p in (out / "probe").iterdir()) == ["stats_inner__linear.png", "stats_relu.png"]
    assert Image.open(out / "probe" / "stats_relu.png").size[0] >= 600
    assert table.read_text().splitlines()[0].startswith("layer,filter,mean,max,active_fraction,images_active")
    assert len(table.read_text().splitlines()) == 1 + 5
    rows = json.loads((tmp_path / "t.json").read_text())
    assert [(row["layer"], row["filter"], row["rare"]) for row in rows if row["rare"]] == [("relu", 3, True)]
    assert result.stderr.splitlines()[-1] == "Error: 1 of 6 inputs failed; the statistics leave them out"


def test_a_folder_is_read_as_its_files(keras, arrays: list[Path]) -> None:
    model = _probe_model(keras)
    by_folder = filter_stats(model, [arrays[0].parent], ["relu"]).layers[0]
    by_file = filter_stats(model, arrays, ["relu"]).layers[0]

    assert by_folder.images == 5
    np.testing.assert_array_equal(by_folder.sums, by_file.sums)


def test_a_model_with_layers_named_like_keras_ops_is_reduced(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The reductions run inside a layer of their own: Keras would name their operations sum, max, mean, ..., and
    a model loaded from a file may have layers of those names ('The name "sum" is used 2 times in the model')."""
    from cnnviz.methods.top import scan_top

    inputs = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(2, 3, padding="same", name="max")(inputs)
    b = keras.layers.Conv2D(2, 3, padding="same", name="mean")(inputs)
    model = keras.Model(inputs, keras.layers.Add(name="sum")([a, b]))
    model.save(tmp_path / "named.keras")
    loaded = load_model(tmp_path / "named.keras")
    np.save(tmp_path / "ones.npy", np.ones((6, 6, 1), dtype=np.float32))
    arrays = [tmp_path / "ones.npy"]

    stats = filter_stats(loaded, arrays, ["max", "mean"]).layers
    top = scan_top(loaded, arrays, TopQuery(["max"], k=1)).tops["max"]

    assert [(layer.layer, layer.images) for layer in stats] == [("max", 1), ("mean", 1)]
    assert top.image[:, 0].tolist() == [0, 0]
