"""Explanation metrics: known answers after xplique's tests, every metric against a plain NumPy reference written
here from the definitions, the square finder's ranking of an oracle, Grad-CAM and noise, the randomisation check,
attributions from files, and the command (Ray in test_ray_engine, JAX in test_backends)."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from cnnviz.cli import main
from cnnviz.errors import OptionError
from cnnviz.methods.attribution import METHODS, AttributionSettings, attribute
from cnnviz.methods.attribution.base import Attributed, Attribution, AttributionBatch
from cnnviz.methods.evaluation import EvaluationSettings, Evaluator
from cnnviz.methods.evaluation.statistics import auc, spearman, ssim
from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images
from tests.conftest import printed, write_image

# -- references, from the definitions, step by step -------------------------------------------------------------


def ref_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged, by comparing every pair (slow and plain)."""
    flat = np.asarray(values, np.float64).ravel()
    below = (flat[None, :] < flat[:, None]).sum(axis=1)
    equal = (flat[None, :] == flat[:, None]).sum(axis=1)
    return below + (equal + 1) / 2.0


def ref_spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ref_ranks(a), ref_ranks(b))[0, 1])


def ref_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM over every 7x7 window, sample covariances, K1 0.01, K2 0.03, data range 1."""
    wx, wy = sliding_window_view(x, (7, 7)), sliding_window_view(y, (7, 7))
    mx, my = wx.mean(axis=(-1, -2)), wy.mean(axis=(-1, -2))
    vx, vy = wx.var(axis=(-1, -2), ddof=1), wy.var(axis=(-1, -2), ddof=1)
    cov = ((wx - mx[..., None, None]) * (wy - my[..., None, None])).sum(axis=(-1, -2)) / 48
    c1, c2 = 0.01**2, 0.03**2
    return float((((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


def ref_cells(rows: int, cols: int, grid: int | None) -> tuple[np.ndarray, int]:
    if grid is None:
        return np.arange(rows * cols).reshape(rows, cols), rows * cols
    return (np.arange(rows) * grid // rows)[:, None] * grid + (np.arange(cols) * grid // cols)[None, :], grid * grid


def ref_curve(model, image, attribution, baseline, steps, grid, deleting, cls):  # type: ignore[no-untyped-def]
    """Deletion or insertion of one image: features by attribution (mean over the feature's pixels), highest
    first; k = np.linspace(0, n, S + 1) of them deleted (inserted); the class's probability; the trapezoid area."""
    cells, n = ref_cells(*attribution.shape, grid)
    order = np.argsort(-np.array([attribution[cells == f].mean() for f in range(n)]), kind="stable")
    scores = []
    for k in np.linspace(0, n, steps + 1).astype(int):
        changed = np.isin(cells, order[:k])[..., None]
        x = np.where(changed, baseline, image) if deleting else np.where(changed, image, baseline)
        scores.append(float(np.asarray(model(x[None].astype(np.float32)))[0, cls]))
    return float(np.trapezoid(scores, np.linspace(0, 1, steps + 1))), scores


def ref_mufidelity(model, image, attribution, baseline, grid, samples, fraction, seed, number, cls):  # type: ignore[no-untyped-def]
    cells, n = ref_cells(*attribution.shape, grid)
    rng = np.random.default_rng([seed, number])
    full = float(np.asarray(model(image[None]))[0, cls])
    drops, sums = [], []
    for _ in range(samples):
        removed = np.isin(cells, rng.choice(n, size=max(1, int(n * fraction)), replace=False))
        x = np.where(removed[..., None], baseline, image).astype(np.float32)
        drops.append(full - float(np.asarray(model(x[None]))[0, cls]))
        sums.append(attribution[removed].sum())
    return ref_spearman(np.array(drops), np.array(sums))


# -- models ------------------------------------------------------------------------------------------------------


def _sum_model(keras, shape=(8, 8, 3)):  # type: ignore[no-untyped-def]
    """f(x) = sum(x): a regression of one value."""
    inputs = keras.Input(shape)
    out = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, out, name="sum")


def _min_model(keras):  # type: ignore[no-untyped-def]
    """f(x) = min(x): 0 as soon as any pixel is at the baseline 0."""
    inputs = keras.Input((8, 8, 1))
    low = keras.layers.Rescaling(-1.0)(keras.layers.GlobalMaxPooling2D()(keras.layers.Rescaling(-1.0)(inputs)))
    return keras.Model(inputs, low, name="min")


def _max_model(keras):  # type: ignore[no-untyped-def]
    """f(x) = max(x): 1 for an image of ones as soon as any pixel is not at the baseline 0."""
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.GlobalMaxPooling2D()(inputs), name="max")


@pytest.fixture(scope="module")
def small(keras):  # type: ignore[no-untyped-def]
    """A small CNN of fixed random weights ending in a softmax over 3 classes, on 9x11 inputs of 2 channels."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((9, 11, 2))
    maps = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(pooled), name="small")


# -- statistics --------------------------------------------------------------------------------------------------


def test_the_statistics_equal_their_plain_references() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    tied = np.round(a * 2) / 2  # ties
    assert spearman(a, b) == pytest.approx(ref_spearman(a, b), abs=1e-12)
    assert spearman(tied, b) == pytest.approx(ref_spearman(tied, b), abs=1e-12)
    assert spearman(a, 3 * a + 1) == 1.0 and spearman(a, -a) == -1.0
    assert np.isnan(spearman(a, np.ones(40)))  # no order to agree with: undefined, not 0
    x, y = rng.uniform(size=(12, 15)), rng.uniform(size=(12, 15))
    assert ssim(x, y) == pytest.approx(ref_ssim(x, y), abs=1e-12)
    assert ssim(x, x) == pytest.approx(1.0)
    curve = rng.uniform(size=21)
    assert auc(curve) == pytest.approx(float(np.trapezoid(curve, np.linspace(0, 1, 21))), abs=1e-12)


# -- known answers (xplique's tests) -----------------------------------------------------------------------------


def test_mufidelity_of_the_sum_model_is_1_for_the_input_and_minus_1_for_its_negative(keras) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 1.0, (3, 8, 8, 3)).astype(np.float32)
    settings = EvaluationSettings(baseline=0.0, samples=40, grid=4)
    scored = Evaluator(_sum_model(keras), (), ("mufidelity",), settings=settings, given=("x", "minus x"))(
        x, given={"x": x, "minus x": -x}
    )
    for row in range(3):
        assert scored.measured[(row, "x")][0].value == pytest.approx(1.0, abs=1e-9)
        assert scored.measured[(row, "minus x")][0].value == pytest.approx(-1.0, abs=1e-9)


def test_deletion_is_near_0_and_insertion_near_1_for_models_that_need_every_pixel_or_any(keras) -> None:  # type: ignore[no-untyped-def]
    ones = np.ones((2, 8, 8, 1), np.float32)
    attribution = np.random.default_rng(2).normal(size=(2, 8, 8))
    settings = EvaluationSettings(baseline=0.0, steps=20)
    low = Evaluator(_min_model(keras), (), ("deletion",), settings=settings, given=("a",))(
        ones, given={"a": attribution}
    )
    high = Evaluator(_max_model(keras), (), ("insertion",), settings=settings, given=("a",))(
        ones, given={"a": attribution}
    )
    for row in range(2):
        deletion, insertion = low.measured[(row, "a")][0], high.measured[(row, "a")][0]
        assert deletion.curve == (1.0, *[0.0] * 20) and deletion.value == pytest.approx(0.025)  # 1/(2S): ~0
        assert insertion.curve == (0.0, *[1.0] * 20) and insertion.value == pytest.approx(0.975)  # ~1


# -- every metric against its reference ------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [None, 3])
@pytest.mark.parametrize("baseline", [0.0, "mean"])
def test_every_metric_equals_its_numpy_reference(small, grid, baseline) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    images = rng.uniform(0.0, 1.0, (2, 9, 11, 2)).astype(np.float32)
    attributions = rng.normal(size=(2, 9, 11, 2))  # with channels: averaged
    settings = EvaluationSettings(steps=7, grid=grid, baseline=baseline, samples=12, subset=0.3, seed=5)
    evaluator = Evaluator(small, (), ("deletion", "insertion", "mufidelity"), settings=settings, given=("mine",))
    scored = evaluator(images, [2, 0], images=[4, 9], given={"mine": attributions})
    for row, (cls, number) in enumerate([(2, 4), (0, 9)]):
        image, attribution = images[row], attributions[row].mean(axis=-1)
        base = image.mean(axis=(0, 1), keepdims=True) * np.ones_like(image) if baseline == "mean" else 0.0
        values = {m.metric: m for m in scored.measured[(row, "mine")]}
        for name, deleting in (("deletion", True), ("insertion", False)):
            area, curve = ref_curve(small, image, attribution, base, 7, grid, deleting, cls)
            np.testing.assert_allclose(values[name].curve, curve, atol=1e-6)
            assert values[name].value == pytest.approx(area, abs=1e-6)
        expected = ref_mufidelity(small, image, attribution, base, grid or 9, 12, 0.3, 5, number, cls)
        assert values["mufidelity"].value == pytest.approx(expected, abs=1e-6)


def test_randomization_equals_its_reference_and_puts_the_weights_back(small, keras) -> None:  # type: ignore[no-untyped-def]
    images = np.random.default_rng(4).uniform(0.0, 1.0, (2, 9, 11, 2)).astype(np.float32)
    before = [np.array(w) for w in small.get_weights()]
    settings = EvaluationSettings(seed=11)
    scored = Evaluator(small, ("gradient",), ("randomization",), settings=settings)(images, 1)
    assert all((np.array(w) == b).all() for w, b in zip(small.get_weights(), before, strict=True))
    original = attribute(small, images, ["gradient"], 1).heatmaps["gradient"]
    # the reference: reset the head, then the conv (from the top), each from np.random.default_rng([seed, step]):
    # Glorot-uniform kernels, zero biases (their initializer); explain again after each
    expected: list[list[tuple[float, float]]] = [[], []]
    for step, name in enumerate(["head", "conv"]):
        layer = small.get_layer(name)
        rng = np.random.default_rng([11, step])
        kernel_shape = layer.kernel.shape
        fan_in = int(np.prod(kernel_shape[:-1]))
        fan_out = int(kernel_shape[-1] * np.prod(kernel_shape[:-2]))
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        layer.set_weights([rng.uniform(-limit, limit, kernel_shape), np.zeros(layer.bias.shape)])
        again = attribute(small, images, ["gradient"], 1).heatmaps["gradient"]
        for row in range(2):
            a, b = np.abs(original[row]), np.abs(again[row])
            expected[row].append((ref_spearman(a, b), ref_ssim(a / a.max(), b / b.max())))
    small.set_weights(before)
    for row in range(2):
        rank, similar = scored.measured[(row, "gradient")]
        assert rank.points == similar.points == ("head", "conv")
        np.testing.assert_allclose(rank.curve, [e[0] for e in expected[row]], atol=1e-6)
        np.testing.assert_allclose(similar.curve, [e[1] for e in expected[row]], atol=1e-6)
        assert (rank.value, similar.value) == (rank.curve[-1], similar.curve[-1])


# -- the square finder: an oracle, Grad-CAM, noise; a method that ignores the model --------------------------------

PLACES = [(2, 3), (20, 20), (12, 5), (4, 22), (22, 2), (10, 14)]


class InputMethod(Attribution):
    """An 'attribution' that returns the image itself (mean over channels): it ignores the model."""

    name = "input"
    title = "Input"

    def explain(self, model, batch: AttributionBatch) -> Attributed:  # type: ignore[no-untyped-def]  # noqa: D102
        return Attributed(np.asarray(batch.inputs, np.float32).mean(axis=-1))


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """Six noise pictures with the square at PLACES; an oracle folder (the square's mask) and a noise folder."""
    root = tmp_path_factory.mktemp("squares")
    rng = np.random.default_rng(5)
    for folder in ("images", "oracle", "noise"):
        (root / folder).mkdir()
    for number, (row, col) in enumerate(PLACES):
        picture = rng.uniform(0, 80, (32, 32, 3)).astype(np.float32)
        picture[row : row + 8, col : col + 8] = 255.0
        write_image(root / "images" / f"p{number}.png", picture.astype(np.uint8))
        oracle = np.zeros((32, 32), np.float32)
        oracle[row : row + 8, col : col + 8] = 1.0
        np.save(root / "oracle" / f"p{number}.npy", oracle)
        np.save(root / "noise" / f"p{number}.npy", rng.uniform(size=(32, 32)).astype(np.float32))
    return root / "images", root / "oracle", root / "noise"


def _means(result) -> dict[tuple[str, str], float]:  # type: ignore[no-untyped-def]
    return {(row.metric, row.method): row.mean for row in result.summary()}


def test_the_oracle_scores_best_noise_worst_and_grad_cam_between(square_finder, squares, tmp_path) -> None:  # type: ignore[no-untyped-def]
    images, oracle, noise = squares
    # the logit on a blurred baseline (Petsiuk et al.'s insertion): the probability saturates near 1 for every
    # attribution that finds the square, and a black square-free picture is itself a strong "no square"
    evaluation = EvaluationSettings(steps=16, baseline="blur", score="logit")
    base = EvaluateOptions(methods=("gradcam",), target=1, preprocess="none", evaluation=evaluation)
    runs = [
        evaluate_images(
            square_finder, [images], tmp_path / "a", replace(base, explanation=oracle, json=tmp_path / "a.json")
        ),
        evaluate_images(square_finder, [images], tmp_path / "b", replace(base, methods=(), explanation=noise)),
    ]
    means = {**_means(runs[0]), **_means(runs[1])}
    print(means)
    for metric, order in (("deletion", 1), ("insertion", -1)):
        oracle_, gradcam, noise_ = (means[(metric, name)] * order for name in ("oracle", "gradcam", "noise"))
        assert oracle_ < gradcam < noise_, (metric, means)
    assert [row.method for row in runs[0].summary()] == ["oracle", "gradcam"] * 2
    records = json.loads((tmp_path / "a.json").read_text())
    assert len(records) == 6 * 2 * 2 and {r["image"] for r in records} == {str(images / f"p{n}.png") for n in range(6)}
    assert all(len(r["curve"]) == 17 and r["class"] == 1 for r in records)
    # the picture: two panels of curves on white
    picture = np.asarray(Image.open(runs[0].picture).convert("RGB"))
    assert picture.shape[1] > picture.shape[0] > 300 and (picture == 255).all(axis=-1).mean() > 0.6


def test_randomization_flags_a_method_that_ignores_the_model_and_passes_grad_cam(  # type: ignore[no-untyped-def]
    square_finder, squares, tmp_path, monkeypatch
) -> None:
    from cnnviz.methods.evaluation import metrics as module

    monkeypatch.setitem(METHODS, "input", InputMethod)
    before = [np.array(w) for w in square_finder.get_weights()]
    untouched, reset = [], []
    cascade = module.cascade

    def watched(model, seed):  # type: ignore[no-untyped-def]
        for path in cascade(model, seed):  # the given model, read while the test has a layer reset
            untouched.append(
                all((np.array(w) == b).all() for w, b in zip(square_finder.get_weights(), before, strict=True))
            )
            reset.append(model.source is not square_finder)
            yield path

    monkeypatch.setattr(module, "cascade", watched)
    options = EvaluateOptions(methods=("gradcam", "input"), metrics=("randomization",), target=1, preprocess="none")
    result = evaluate_images(square_finder, [squares[0]], tmp_path, options)
    assert len(untouched) == 3 and all(untouched) and all(reset)  # a server using the model never sees a reset
    assert all((np.array(w) == b).all() for w, b in zip(square_finder.get_weights(), before, strict=True))
    means = _means(result)
    assert result.flagged() == ["input"]
    assert means[("randomization", "input")] == pytest.approx(1.0) and means[("randomization-ssim", "input")] == 1.0
    assert means[("randomization", "gradcam")] < 0.5
    points = result.images[0].measured["gradcam"][0].points
    assert points == ("predictions", "conv2", "conv1")  # from the top


def test_files_of_a_methods_attributions_score_as_the_method_does(square_finder, squares, tmp_path) -> None:  # type: ignore[no-untyped-def]
    images = squares[0]
    runner = CliRunner()
    model = tmp_path / "squares.keras"
    square_finder.save(model)
    made = runner.invoke(
        main,
        [
            "explain",
            str(images),
            "-m",
            str(model),
            "--class",
            "1",
            "--save-raw",
            "--preprocess",
            "none",
            "-o",
            str(tmp_path / "explained"),
            "-q",
        ],
    )
    assert made.exit_code == 0, made.output
    mine = tmp_path / "mine"
    mine.mkdir()
    for raw in (tmp_path / "explained").rglob("gradcam_*.npy"):
        shutil.copy(raw, mine / f"{raw.parent.name}.npy")
    assert len(list(mine.iterdir())) == 6
    args = [
        "evaluate",
        str(images),
        "-m",
        str(model),
        "--class",
        "1",
        "--preprocess",
        "none",
        "--method",
        "gradcam",
        "--explanation",
        str(mine),
        "--metric",
        "deletion,insertion,mufidelity",
        "--samples",
        "20",
        "--steps",
        "10",
        "-o",
        str(tmp_path / "out"),
        "--csv",
        str(tmp_path / "s.csv"),
    ]
    done = runner.invoke(main, args)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 6 * 2 * 3
    by = {(r["image"], r["metric"], r["method"]): float(r["value"]) for r in rows}
    for image, metric, method in by:
        if method == "gradcam":
            assert by[(image, metric, "mine")] == by[(image, metric, "gradcam")], (image, metric)
    text = printed(done.output)
    assert "deletion: area under the deletion curve (lower is better)" in text
    assert "mufidelity: Spearman correlation of drops and attributions (higher is better)" in text
    assert f"-> {tmp_path / 'out' / 'squares' / 'evaluation_curves.png'}" in text


def test_what_a_run_cannot_honour_is_refused(squares, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError, match="randomization test explains the images again"):
        EvaluateOptions(explanation=squares[1], metrics=("randomization",))
    with pytest.raises(OptionError, match="unknown metric 'nope'"):
        EvaluateOptions(metrics=("nope",))
    with pytest.raises(OptionError, match="`patch` is a setting of occlusion"):
        EvaluateOptions(settings=AttributionSettings(patch=4))
    with pytest.raises(OptionError, match="subset"):
        EvaluationSettings(subset=1.5)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OptionError, match=r"no attribution for .*p0\.png in .*empty: looked for .*p0\.npy"):
        evaluate_images(None, [squares[0]], tmp_path, EvaluateOptions(explanation=empty, methods=()))
    done = CliRunner().invoke(main, ["evaluate", str(squares[0]), "--metric", "bogus"])
    assert done.exit_code == 2 and "unknown metric 'bogus'" in done.output


def test_an_attribution_file_that_does_not_fit_is_named_in_the_error(square_finder, squares, tmp_path) -> None:  # type: ignore[no-untyped-def]
    images, oracle, _ = squares
    bad = tmp_path / "bad"
    shutil.copytree(oracle, bad)
    np.save(bad / "p3.npy", np.zeros((16, 16), np.float32))  # the image's size is 32x32
    (bad / "p4.npy").write_bytes(b"not an array")
    options = EvaluateOptions(methods=(), explanation=bad, preprocess="none", batch_size=1)
    with pytest.raises(
        OptionError, match=r"p3\.npy: an attribution of shape \[16, 16\] does not fit an input of 32x32"
    ):
        evaluate_images(square_finder, [images / "p3.png"], tmp_path / "out", options)
    with pytest.raises(OptionError, match=r"p4\.npy is not a NumPy \.npy array of numbers"):
        evaluate_images(square_finder, [images / "p4.png"], tmp_path / "out", options)


def test_randomization_reaches_a_frozen_nested_base_and_skips_preprocessing_constants(keras) -> None:  # type: ignore[no-untyped-def]
    base = keras.Sequential(
        [keras.Input((10, 10, 2)), keras.layers.Conv2D(3, 3, name="conv"), keras.layers.BatchNormalization(name="bn")],
        name="base",
    )
    base.trainable = False  # transfer learning: the base is frozen
    inputs = keras.Input((10, 10, 2))
    scaled = keras.layers.Normalization(mean=0.5, variance=0.25, name="norm")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(base(scaled))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(pooled))
    images = np.random.default_rng(6).uniform(size=(1, 10, 10, 2)).astype(np.float32)
    before = [np.array(w) for w in model.weights]
    scored = Evaluator(model, ("gradient",), ("randomization",))(images, 0)
    assert scored.measured[(0, "gradient")][0].points == ("head", "base/bn", "base/conv")
    assert all((np.array(w) == b).all() for w, b in zip(model.weights, before, strict=True))


# -- what ranks nothing is scored by nothing -------------------------------------------------------------------


class ConstantMethod(Attribution):
    """An 'attribution' that is the same everywhere: it ranks no pixel before another."""

    name = "constant"
    title = "Constant"

    def explain(self, model, batch: AttributionBatch) -> Attributed:  # type: ignore[no-untyped-def]  # noqa: D102
        return Attributed(np.full(np.asarray(batch.inputs).shape[:3], 0.25, np.float32))


class EdgeMethod(Attribution):
    """An 'attribution' that is the image's edges (the gradient magnitude of its channel mean): it ignores the
    model, as an explanation that only shows the input does."""

    name = "edges"
    title = "Edges"

    def explain(self, model, batch: AttributionBatch) -> Attributed:  # type: ignore[no-untyped-def]  # noqa: D102
        grey = np.asarray(batch.inputs, np.float32).mean(axis=-1)
        rows, cols = np.gradient(grey, axis=(1, 2))
        return Attributed(np.hypot(rows, cols))


def test_an_attribution_that_ranks_nothing_is_undefined_for_every_metric(
    keras, square_finder, squares, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 1.0, (2, 8, 8, 3)).astype(np.float32)
    broken = x.mean(axis=-1)
    broken[0, 0, 0] = np.nan
    settings = EvaluationSettings(baseline=0.0, samples=20, grid=4, steps=4)
    metrics = ("deletion", "insertion", "mufidelity")
    given = {"x": x.mean(axis=-1), "flat": np.full((2, 8, 8), 0.3), "broken": broken}
    scored = Evaluator(_sum_model(keras), (), metrics, settings=settings, given=tuple(given))(x, given=given)
    same = "the attribution is the same everywhere: it ranks nothing"
    for row in (0, 1):
        assert [(m.metric, m.defined, m.reason) for m in scored.measured[row, "flat"]] == [
            (metric, False, same) for metric in metrics
        ]
        assert all(m.defined and not m.reason for m in scored.measured[row, "x"])
    assert {m.reason for m in scored.measured[0, "broken"]} == {"the attribution has values that are not finite"}
    assert all(m.defined for m in scored.measured[1, "broken"])
    # through a run: the randomization check too, and the records, table and verdict say so
    monkeypatch.setitem(METHODS, "constant", ConstantMethod)
    options = EvaluateOptions(methods=("gradcam", "constant"), metrics=("randomization",), target=1, preprocess="none")
    result = evaluate_images(square_finder, [squares[0]], tmp_path, options)
    records = [r for r in result.records() if r["method"] == "constant"]
    assert {(r["value"], r["reason"]) for r in records} == {(None, same)} and len(records) == 2 * 6
    rows = {(row.metric, row.method): row for row in result.summary()}
    assert rows["randomization", "constant"].undefined == 6 and rows["randomization", "constant"].count == 0
    assert result.verdicts()["randomization"] == {"gradcam": "passes", "constant": "undecided"}


def test_mufidelity_ties_score_drops_that_float32_cannot_tell_apart() -> None:
    from cnnviz.methods.evaluation.metrics import fidelity

    rng = np.random.default_rng(4)
    full = 0.9
    values = np.repeat(np.float32([0.3, 0.55, 0.8]), 20)  # three real levels of the score, 60 subsets
    taken = (full - values) + rng.normal(0, 0.2, 60)  # the attribution each subset took out: related, noisy
    exact = fidelity(full, values, taken)
    nudged = values.copy()
    pushed = rng.integers(-1, 2, 60)  # one float32 step down, none, or one up: what rounding does
    nudged[pushed == 1] = np.nextafter(nudged[pushed == 1], np.float32(2))
    nudged[pushed == -1] = np.nextafter(nudged[pushed == -1], np.float32(-2))
    assert (nudged != values).sum() > 20
    assert fidelity(full, nudged, taken) == exact
    # ranked as they come, the nudges would reorder the ties and move the value
    assert spearman(full - nudged.astype(np.float64), taken) != pytest.approx(exact, abs=1e-6)


def _head_reset_to_zeros(keras):  # type: ignore[no-untyped-def]
    """A CNN whose head's kernel initializer is zeros: its reset head, as a fresh one, passes no gradient back."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(maps)
    head = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros", name="head")
    model = keras.Model(inputs, head(pooled), name="silent_reset")
    head.set_weights([np.random.default_rng(0).normal(0, 1, (4, 2)).astype(np.float32), np.zeros(2, np.float32)])
    return model


def test_a_reset_network_that_passes_no_gradient_leaves_the_check_undecided(keras, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _head_reset_to_zeros(keras)
    model.save(tmp_path / "silent.keras")
    rng = np.random.default_rng(6)
    for number in range(2):
        write_image(tmp_path / f"{number}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    images = [tmp_path / "0.png", tmp_path / "1.png"]
    options = EvaluateOptions(methods=("gradient",), metrics=("randomization",), target=1, preprocess="none")
    result = evaluate_images(model, images, tmp_path / "out", options)
    measured = result.images[0].measured["gradient"][0]
    assert measured.points == ("head", "conv") and not measured.defined
    assert np.isnan(measured.curve).all()  # the zero head passes nothing back, at every step after it
    assert measured.reason.startswith("2 of 2 steps undefined (the reset network's attribution ranked nothing, first")
    assert result.verdicts() == {"randomization": {"gradient": "undecided"}} and result.flagged() == []
    done = CliRunner().invoke(
        main,
        ["evaluate", *map(str, images), "--model", str(tmp_path / "silent.keras"), "--method", "gradient"]
        + ["--metric", "randomization", "--class", "1", "--preprocess", "none", "-o", str(tmp_path / "cli")]
        + ["--json", str(tmp_path / "scores.json"), "--csv", str(tmp_path / "scores.csv")],
    )
    assert done.exit_code == 0, done.output
    records = json.loads((tmp_path / "scores.json").read_text())
    assert {(r["metric"], r["value"]) for r in records} == {("randomization", None), ("randomization-ssim", None)}
    assert all(r["curve"] == [None, None] and r["reason"] == measured.reason for r in records)
    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert {(row["value"], row["curve"], row["reason"]) for row in rows} == {("", "nan nan", measured.reason)}
    text = printed(done.output)
    assert "UNDECIDED on the randomization check (its last step ranked nothing): gradient" in text
    assert "every method passes" not in text


def test_an_edge_detector_fails_the_check_and_the_gradient_passes(
    square_finder, squares, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(METHODS, "edges", EdgeMethod)
    options = EvaluateOptions(methods=("gradient", "edges"), metrics=("randomization",), target=1, preprocess="none")
    result = evaluate_images(square_finder, [squares[0]], tmp_path, options)
    assert result.verdicts()["randomization"] == {"gradient": "passes", "edges": "fails"}
    assert _means(result)[("randomization", "edges")] == pytest.approx(1.0)
