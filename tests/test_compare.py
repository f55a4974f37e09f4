"""``cnnviz compare``: linear CKA against plain NumPy formulas of its papers, its invariances and its exactness over
minibatches; two models over images (a model with itself, two random models, a model and its fine-tuned twin); the
pictures, records and refusals of the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import OptionError
from cnnviz.methods.cka import CrossMoments, as_samples, cka_value, linear_cka, pool_to
from cnnviz.runs.compare import CompareOptions, compare_models, run_compare
from tests.conftest import ROOT, printed, write_image

# --- the estimators, in NumPy, as the papers write them (n x n kernels) ---------------------------------------------


def kornblith_2019(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA by Kornblith et al. (2019), eq. 4 with linear kernels: HSIC = tr(KHLH) / (n-1)^2."""
    n = len(x)
    centring = np.eye(n) - np.ones((n, n)) / n

    def hsic(k: np.ndarray, kl: np.ndarray) -> float:
        return float(np.trace(k @ centring @ kl @ centring)) / (n - 1) ** 2

    k, kl = x @ x.T, y @ y.T
    return hsic(k, kl) / np.sqrt(hsic(k, k) * hsic(kl, kl))


def song_2012(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from the unbiased HSIC estimator of Song et al. (2012), eq. 5, on the whole data at once."""

    def hsic(k: np.ndarray, kl: np.ndarray) -> float:
        n = len(k)
        k, kl = k - np.diag(np.diag(k)), kl - np.diag(np.diag(kl))
        one = np.ones(n)
        value = np.trace(k @ kl) + (one @ k @ one) * (one @ kl @ one) / ((n - 1) * (n - 2))
        return float(value - 2 / (n - 2) * one @ k @ kl @ one) / (n * (n - 3))

    k, kl = x @ x.T, y @ y.T
    return hsic(k, kl) / np.sqrt(hsic(k, k) * hsic(kl, kl))


@pytest.fixture
def features() -> tuple[np.ndarray, np.ndarray]:
    """Two related sets of non-negative features (as after a ReLU) of the same 60 samples: x (60 x 12), y (60 x 7)."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(1.0, 1.0, (60, 12)), 0.0)
    y = np.maximum(x @ rng.normal(size=(12, 7)) + rng.normal(size=(60, 7)), 0.0)
    return x, y


def test_biased_equals_kornbliths_formula_and_debiased_equals_songs(features) -> None:  # type: ignore[no-untyped-def]
    x, y = features
    assert linear_cka(x, y, "biased") == pytest.approx(kornblith_2019(x, y), abs=1e-10)
    assert linear_cka(x, y, "debiased") == pytest.approx(song_2012(x, y), abs=1e-10)
    # the two estimators differ, and the values are the related features' (far from 0 and 1)
    assert 0.3 < linear_cka(x, y, "debiased") < linear_cka(x, y, "biased") < 0.9


@pytest.mark.parametrize("sizes", [[60], [1] * 60, [4, 4, 52], [7, 1, 30, 2, 20], [59, 1]])
def test_the_estimators_over_minibatches_of_any_size_equal_them_on_all_the_data(features, sizes) -> None:  # type: ignore[no-untyped-def]
    x, y = features
    starts = np.cumsum([0, *sizes])
    parts = [slice(start, stop) for start, stop in zip(starts[:-1], starts[1:], strict=True)]
    cross = sum((CrossMoments.of(x[part], y[part]) for part in parts[1:]), CrossMoments.of(x[parts[0]], y[parts[0]]))
    own_x = sum((CrossMoments.of(x[part], x[part]) for part in parts[1:]), CrossMoments.of(x[parts[0]], x[parts[0]]))
    own_y = sum((CrossMoments.of(y[part], y[part]) for part in parts[1:]), CrossMoments.of(y[parts[0]], y[parts[0]]))
    assert cka_value(cross, own_x, own_y, "debiased") == pytest.approx(song_2012(x, y), abs=1e-10)
    assert cka_value(cross, own_x, own_y, "biased") == pytest.approx(kornblith_2019(x, y), abs=1e-10)


@pytest.mark.parametrize("estimator", ["debiased", "biased"])
def test_cka_is_one_with_itself_unchanged_by_rotation_and_isotropic_scaling_not_by_other_scaling(
    features, estimator
) -> None:  # type: ignore[no-untyped-def]
    x, y = features
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    assert linear_cka(x, x, estimator) == pytest.approx(1.0, abs=1e-12)
    before = linear_cka(x, y, estimator)
    assert linear_cka(x @ rotation, y, estimator) == pytest.approx(before, abs=1e-10)
    assert linear_cka(7.5 * x, y, estimator) == pytest.approx(before, abs=1e-10)
    stretched = x * np.linspace(0.1, 3.0, 12)  # each feature scaled by its own factor
    assert abs(linear_cka(stretched, y, estimator) - before) > 0.02


def test_constant_features_have_no_cka_and_too_few_samples_are_refused() -> None:
    x = np.random.default_rng(2).normal(size=(10, 3))
    assert np.isnan(linear_cka(np.ones((10, 4)), x))
    with pytest.raises(ValueError, match="at least 4 samples, got 3"):
        linear_cka(x[:3], x[:3])


def test_pooling_averages_each_bin_of_cells_even_where_the_size_does_not_divide() -> None:
    maps = np.arange(5.0)[None, :, None, None] * np.ones((1, 1, 3, 2))  # rows 0..4, 3 columns, 2 channels
    pooled = pool_to(maps, (2, 1))
    # rows 0-2 (bin 0: floor(0*5/2)=0 .. ceil(5/2)=3) and rows 2-4 (floor(5/2)=2 .. 5): the middle row in both
    np.testing.assert_allclose(pooled[0, :, 0, 0], [1.0, 3.0])
    assert as_samples(maps, "positions", (2, 1)).shape == (2, 2)
    np.testing.assert_allclose(as_samples(maps, "mean"), [[2.0, 2.0]])


# --- two models over images ---------------------------------------------------------------------------------------


def small_cnn(keras, seed: int):  # type: ignore[no-untyped-def]
    """Three conv layers over 32x32 RGB (a Rescaling first), random weights drawn with ``seed``."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="conv2"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="conv3"),
        ],
        name=f"small_{seed}",
    )


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """24 pictures of 32x32: smooth random colour fields with a bright bar at a random place."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(5)
    for number in range(24):
        field = np.kron(rng.uniform(0, 200, (4, 4, 3)), np.ones((8, 8, 1)))
        row, col = rng.integers(0, 24, 2)
        field[row : row + 8, col : col + 3] = 255.0
        write_image(folder / f"{number:02d}.png", field.astype(np.uint8))
    return folder


def test_a_model_with_itself_is_one_on_the_diagonal_and_unchanged_in_every_unit(keras, pictures) -> None:  # type: ignore[no-untyped-def]
    model = small_cnn(keras, 0)
    result = compare_models(model, [pictures], CompareOptions(other=model))
    assert result.layers_a == result.layers_b == ["conv1", "conv2", "conv3"]
    np.testing.assert_allclose(np.diag(result.cka), 1.0, atol=1e-9)
    np.testing.assert_allclose(result.cka, result.cka.T, atol=1e-9)
    assert (result.cka[np.triu_indices(3, 1)] < 0.99).all()  # different layers are different
    for drift in result.drift:
        assert (drift.weight_change == 0).all() and (drift.top_overlap == 1).all()
        np.testing.assert_allclose(drift.correlation[np.isfinite(drift.correlation)], 1.0, atol=1e-9)
    assert result.samples == 24


def test_two_random_models_score_clearly_lower_than_a_model_with_itself_and_the_order_only_transposes(
    keras, pictures
) -> None:  # type: ignore[no-untyped-def]
    first, second = small_cnn(keras, 0), small_cnn(keras, 1)
    both = compare_models(first, [pictures], CompareOptions(other=second))
    swapped = compare_models(second, [pictures], CompareOptions(other=first))
    np.testing.assert_allclose(swapped.cka, both.cka.T, atol=1e-9)  # each model's maps are its own
    assert np.diag(both.cka).max() < 0.9
    assert [drift.layer for drift in both.drift] == ["conv1", "conv2", "conv3"]
    assert all(np.median(drift.weight_change) > 0.5 for drift in both.drift)  # independent draws


def fine_tuned_shapes(keras, photos: Path):  # type: ignore[no-untyped-def]
    """The bundled model fine-tuned on new data, as the Keras guide to transfer learning does it: a new head
    trained on the frozen base, then every layer for a few steps at a low rate. The new task: which sample photo a
    crop comes from."""
    keras.utils.set_random_seed(0)
    base = ModelRef("shapes").load()
    arrays = [np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) for path in sorted(photos.glob("*.png"))]
    inputs = keras.Input((None, None, 3))
    features = inputs
    for layer in base.layers[:-1]:  # up to the pooling: the classes of the bundled task go
        features = layer(features)
    tuned = keras.Model(inputs, keras.layers.Dense(5, name="photo")(features), name="shapes_tuned")
    labels = np.arange(len(arrays)) % 5
    for rate, epochs, trainable in ((1e-2, 5, False), (1e-3, 3, True)):
        for layer in tuned.layers[:-1]:
            layer.trainable = trainable
        tuned.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy")
        tuned.fit(np.stack(arrays), labels, epochs=epochs, batch_size=16, verbose=0)
    return tuned


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """48 crops of 64x64 of the sample photos, crop i from photo i % 5."""
    folder = tmp_path_factory.mktemp("crops")
    photos = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".jpg", ".png"))
    rng = np.random.default_rng(1)
    for number in range(48):
        with Image.open(photos[number % len(photos)]) as image:
            source = image.convert("RGB")
        side = int(rng.integers(64, min(source.size)))
        left, top = (int(rng.integers(0, extent - side)) for extent in source.size)
        source.crop((left, top, left + side, top + side)).resize((64, 64)).save(folder / f"{number:02d}.png")
    return folder


@pytest.fixture(scope="module")
def tuned_file(crops, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    from cnnviz._keras import keras_module

    path = tmp_path_factory.mktemp("tuned") / "tuned.keras"
    fine_tuned_shapes(keras_module(), crops).save(path)
    return path


def test_fine_tuning_moves_the_last_layers_more_than_the_first(crops, tuned_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    options = CompareOptions(other=ModelRef(str(tuned_file)), pairs=0)
    result = run_compare(ModelRef("shapes").load(), [crops], tmp_path, options)
    first, last = result.drift[0], result.drift[-1]
    assert (first.layer, last.layer) == ("edges", "shapes")
    assert 0.5 < last.cka < first.cka < 1.0  # what the layer computes, over the crops
    assert last.top_overlap.mean() < first.top_overlap.mean()  # which crops excite its units most
    drift = Image.open(tmp_path / "drift.png")
    assert drift.size[0] > 2 * drift.size[1] and len(set(drift.convert("L").getdata())) > 20  # two drawn panels


def test_the_command_prints_the_table_writes_the_pictures_and_records_and_draws_pairs_as_top_draws_them(
    crops, tuned_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    records, table = tmp_path / "cka.json", tmp_path / "cka.csv"
    args = [str(crops), "-o", str(tmp_path / "out"), "-k", "3", "--pairs", "2", "--json", str(records)]
    done = CliRunner().invoke(main, ["compare", "shapes", str(tuned_file), *args, "--csv", str(table)])
    assert done.exit_code == 0, done.output
    lines = printed(done.output).splitlines()
    assert lines[0] == "linear CKA (debiased, positions features) over 48 images: shapes vs tuned.keras"
    assert [line.split()[0] for line in lines[2:5]] == ["edges", "parts", "shapes"]
    found = json.loads(records.read_text())
    assert [(r["layer_a"], r["layer_b"]) for r in found][:4] == [
        ("edges", "edges"),
        ("edges", "parts"),
        ("edges", "shapes"),
        ("parts", "edges"),
    ]
    assert len(found) == 9 and all(0.0 < r["cka"] <= 1.0 for r in found)
    assert table.read_text().splitlines()[0] == "layer_a,layer_b,cka"
    folder = tmp_path / "out" / "shapes" / "vs-tuned"
    assert len((folder / "units.csv").read_text().splitlines()) == 1 + 8 + 16 + 32
    pairs = sorted(path.name for path in folder.glob("units_*.png"))
    assert pairs and (folder / "cka.png").is_file() and (folder / "drift.png").is_file()
    # the left half of a pair picture is what `cnnviz top --maximize` draws for those units of the first model
    layer = pairs[0][len("units_") : -len(".png")]
    units = _drawn_units(folder / "units.csv", layer, 2)
    top = CliRunner().invoke(
        main,
        ["top", str(crops), "--model", "shapes", "--layer", layer, "--filters", ",".join(map(str, units)), "-k", "3"]
        + ["--maximize", "-o", str(tmp_path / "top"), "-q"],
    )
    assert top.exit_code == 0, top.output
    alone = np.asarray(Image.open(tmp_path / "top" / "shapes" / f"top_{layer}.png").convert("RGB"))
    pair = np.asarray(Image.open(folder / pairs[0]).convert("RGB"))
    assert pair.shape[1] > 2 * alone.shape[1]
    np.testing.assert_array_equal(pair[: alone.shape[0], : alone.shape[1]], alone)


def _drawn_units(units_csv: Path, layer: str, count: int) -> list[int]:
    """The units of ``layer`` among the ``count`` of lowest map correlation over every layer (the pairs drawn)."""
    rows = [line.split(",") for line in units_csv.read_text().splitlines()[1:]]
    ranked = sorted((float(row[3]), -float(row[2]), row[0], int(row[1])) for row in rows if row[3])
    return sorted(unit for *_, name, unit in ranked[:count] if name == layer)


def test_refusals_say_what_to_do(crops, tmp_path) -> None:  # type: ignore[no-untyped-def]
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(crops.glob("*.png"))[:3]:
        (few / path.name).write_bytes(path.read_bytes())
    runner = CliRunner()
    done = runner.invoke(
        main, ["compare", "shapes", "shapes", str(few), "--features", "mean", "-o", str(tmp_path / "out")]
    )
    assert done.exit_code == 2
    assert "the debiased estimator needs at least 4: 3 given. Give more images, or choose --features positions" in (
        printed(done.output)
    )
    done = runner.invoke(
        main, ["compare", "shapes", "shapes", str(few), "--layer-a", "nope", "-o", str(tmp_path / "out")]
    )
    assert done.exit_code != 0 and "nope" in done.output and "edges" in done.output
    with pytest.raises(OptionError, match="second model"):
        CompareOptions()
    with pytest.raises(OptionError, match="ModelRef"):
        CompareOptions(other=object(), engine="ray")


def test_models_of_different_input_sizes_compare_on_the_same_pixels_where_they_can(keras, crops) -> None:  # type: ignore[no-untyped-def]
    small, shapes = small_cnn(keras, 0), ModelRef("shapes").load()  # 32x32 fixed; any size
    # the bundled model takes the small one's 32x32 pixels; the small one reads the 64x64 crops again at 32x32
    for first, second in ((small, shapes), (shapes, small)):
        result = compare_models(first, [crops], CompareOptions(other=second))
        assert result.samples == 48 and not result.failures and np.isfinite(result.cka).all()
        assert result.drift == []
        assert result.notes[-1].startswith("the two models share no conv layer")
