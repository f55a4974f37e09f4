"""bfloat16: the model computes in it through twins of its layers; cnnviz reduces and draws in float32. Agreement
with float32 is checked here on small models; bench/ measures speed."""

from __future__ import annotations

import json
import shutil
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz import OptionError, feature_maps, filter_stats, gradcam, load_model
from cnnviz.cli import main
from cnnviz.inputs.reader import FeedSettings, ReadingSettings
from cnnviz.methods.extract import build_extractor
from cnnviz.methods.stats import ROUNDED_VERDICTS
from cnnviz.methods.top import TopQuery
from cnnviz.models.precision import resolve_precision
from tests.conftest import square_picture

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(str(path) for path in (ROOT / "sample_images").glob("*.jpg"))


def test_bfloat16_maps_agree_with_float32_and_come_back_in_float32() -> None:
    shapes = load_model("shapes")

    exact = feature_maps(shapes, SAMPLES[:2], ["parts"], ReadingSettings(size=(96, 96)))["parts"]
    brief = feature_maps(shapes, SAMPLES[:2], ["parts"], ReadingSettings(size=(96, 96), precision="bfloat16"))["parts"]

    assert (
        brief.dtype == np.float32
        and build_extractor(shapes, feeding=FeedSettings(precision="bfloat16")).precision == "bfloat16"
    )
    assert not np.array_equal(brief, exact)  # computed otherwise,
    np.testing.assert_allclose(brief, exact, atol=0.03 * float(exact.max()))  # to bfloat16's three digits


def test_the_same_dead_filters_in_bfloat16() -> None:
    shapes = load_model("shapes")

    exact = filter_stats(shapes, SAMPLES, reading=ReadingSettings(size=(96, 96))).layers
    rounded = filter_stats(shapes, SAMPLES, reading=ReadingSettings(size=(96, 96), precision="bfloat16"))
    brief = rounded.layers

    assert [layer.dead.tolist() for layer in brief] == [layer.dead.tolist() for layer in exact]
    assert rounded.notes[-1] == ROUNDED_VERDICTS  # and says where it could differ
    for ours, theirs in zip(brief, exact, strict=True):
        np.testing.assert_allclose(ours.maxima, theirs.maxima, rtol=0.02)


def test_in_bfloat16_the_layers_up_to_the_first_conv_compute_in_float32(keras) -> None:  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(2)
    inputs = keras.Input((12, 12, 3))
    first = keras.layers.Conv2D(4, 3, name="first")(keras.layers.Rescaling(1 / 255, name="scale")(inputs))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="second")(first))
    pixels = np.random.default_rng(3).uniform(0, 255, (2, 12, 12, 3)).astype(np.float32)

    exact = feature_maps(model, pixels)
    brief = feature_maps(model, pixels, None, ReadingSettings(precision="bfloat16"))

    np.testing.assert_array_equal(brief["first"], exact["first"])  # the pixels and the first conv: float32
    assert not np.array_equal(brief["second"], exact["second"])  # the rest in bfloat16
    np.testing.assert_allclose(brief["second"], exact["second"], atol=0.02 * float(np.abs(exact["second"]).max()))


def test_grad_cam_in_bfloat16_correlates_with_float32(square_finder) -> None:  # type: ignore[no-untyped-def]
    picture = square_picture()[None]

    exact = gradcam(square_finder, picture, 1).heatmaps[0]
    brief = gradcam(square_finder, picture, 1, reading=ReadingSettings(precision="bfloat16")).heatmaps[0]

    assert np.corrcoef(exact.ravel(), brief.ravel())[0, 1] > 0.99


def test_a_layer_a_twin_cannot_copy_runs_in_float32_with_a_note(keras) -> None:  # type: ignore[no-untyped-def]
    class Wrapped(keras.layers.Layer):
        """Keeps its weights in a sublayer: a twin made from its config would have weights of its own."""

        def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(2)

        def call(self, x):  # type: ignore[no-untyped-def]
            return self.inner(x)

    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, Wrapped(name="wrapped")(keras.layers.Conv2D(2, 3, name="conv")(inputs)))
    arrays = np.random.default_rng(0).normal(size=(1, 6, 6, 1)).astype(np.float32)

    extractor = build_extractor(model, ["conv"], feeding=FeedSettings(precision="bfloat16"))

    assert extractor.notes == ["layer 'wrapped' (Wrapped) runs in float32: cnnviz cannot make a bfloat16 twin of it"]
    exact = feature_maps(model, arrays, ["conv"])["conv"]
    np.testing.assert_allclose(extractor(arrays)["conv"], exact, rtol=0.02, atol=0.02)


def test_a_model_trained_in_mixed_float16_computes_in_float32(keras) -> None:  # type: ignore[no-untyped-def]
    """A model saved with the mixed_float16 policy would compute in float16 as it is: slower than float32 on a CPU
    and to three digits. At --precision float32 every layer computes in float32, as the same model built in
    float32 does."""

    def build(policy: str):  # type: ignore[no-untyped-def]
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(6)
            inputs = keras.Input((16, 16, 3))
            x = keras.layers.Conv2D(8, 3, activation="relu", name="first")(inputs)
            x = keras.layers.BatchNormalization(name="norm")(keras.layers.MaxPooling2D()(x))
            return keras.Model(inputs, keras.layers.Conv2D(4, 3, name="second")(x))
        finally:
            keras.mixed_precision.set_global_policy("float32")

    halves, plain = build("mixed_float16"), build("float32")
    plain.set_weights(halves.get_weights())
    pixels = np.random.default_rng(4).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    in_float16 = keras.ops.convert_to_numpy(halves(pixels)).astype(np.float32)
    exact = keras.ops.convert_to_numpy(plain(pixels))

    extractor = build_extractor(halves, ["second"])
    maps = extractor(pixels)["second"]

    assert maps.dtype == np.float32 and extractor.notes == []
    np.testing.assert_allclose(maps, exact, rtol=1e-5, atol=1e-5)
    assert not np.allclose(in_float16, exact, rtol=1e-5, atol=1e-5)  # as it was, it computed otherwise
    brief = build_extractor(halves, ["second"], feeding=FeedSettings(precision="bfloat16"))(pixels)["second"]
    np.testing.assert_allclose(brief, exact, atol=0.03 * float(np.abs(exact).max()))

    # weights stored in float16 themselves: no policy computes float32 on them; they run as they are, and say so
    stored = build("float16")
    stored.set_weights([weight.astype(np.float16) for weight in halves.get_weights()])
    extractor = build_extractor(stored, ["second"])
    assert extractor.notes == [
        "the layers whose weights are stored in float16 run in float16 (the first: 'first'): cnnviz cannot make "
        "float32 twins of them"
    ]
    np.testing.assert_allclose(extractor(pixels)["second"], in_float16, rtol=0.01, atol=0.01)
    brief = build_extractor(
        stored, ["second"], feeding=FeedSettings(precision="bfloat16")
    )  # twins after the first conv, as ever
    np.testing.assert_allclose(brief(pixels)["second"], exact, atol=0.03 * float(np.abs(exact).max()))

    # a layer's linear twin (Grad-CAM's head, maximize's layer) computes in float32 for either mixed policy
    from cnnviz.models.graph import layer_twin

    for policy in ("mixed_float16", "mixed_bfloat16"):
        layer = build(policy).get_layer("second")
        assert layer_twin(layer, (None, 7, 7, 8), activation="linear").compute_dtype == "float32", policy


def test_a_bare_operation_between_layers_computes_in_bfloat16_without_a_note(keras) -> None:  # type: ignore[no-untyped-def]
    """``x + y`` on symbolic tensors is an operation of keras.ops, not a layer: no twin, and nothing to say."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 2))
    first = keras.layers.Conv2D(3, 3, padding="same", name="first")(inputs)
    branch = keras.layers.Conv2D(3, 3, padding="same", name="branch")(first)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="last")(first + branch))
    arrays = np.random.default_rng(2).normal(size=(2, 8, 8, 2)).astype(np.float32)

    extractor = build_extractor(model, ["last"], feeding=FeedSettings(precision="bfloat16"))

    assert extractor.notes == []
    exact = feature_maps(model, arrays, ["last"])["last"]
    np.testing.assert_allclose(extractor(arrays)["last"], exact, rtol=0.03, atol=0.03)


def test_dense_and_batch_norm_layers_run_as_bfloat16_twins_on_their_own_weights(keras) -> None:  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.BatchNormalization(name="norm")(keras.layers.Conv2D(3, 3, name="first")(inputs))
    x = keras.layers.Dense(4, name="mix")(x)  # on the channels of each position
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="last")(x))
    norm = model.get_layer("norm")
    norm.set_weights(
        [np.array(v, dtype=np.float32) for v in ([2.0, 0.5, 1.0], [0.1, 0.2, 0.3], [0.5, -0.5, 0.0], [4.0, 1.0, 2.0])]
    )
    arrays = np.random.default_rng(1).normal(size=(2, 8, 8, 2)).astype(np.float32)

    extractor = build_extractor(model, ["last"], feeding=FeedSettings(precision="bfloat16"))

    assert extractor.precision == "bfloat16" and extractor.notes == []  # no layer left in float32
    exact = feature_maps(model, arrays, ["last"])["last"]
    np.testing.assert_allclose(extractor(arrays)["last"], exact, rtol=0.03, atol=0.03)
    norm.moving_variance.assign(np.array([1.0, 1.0, 1.0], dtype=np.float32))  # the twin reads the layer's own
    np.testing.assert_allclose(
        extractor(arrays)["last"], feature_maps(model, arrays, ["last"])["last"], rtol=0.03, atol=0.03
    )
    assert not np.allclose(exact, feature_maps(model, arrays, ["last"])["last"], atol=0.05)


def test_auto_follows_the_cpu_flags_and_unknown_precisions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnviz.models.precision as precision

    monkeypatch.setattr(precision, "native_bfloat16", lambda: True)
    assert resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(precision, "native_bfloat16", lambda: False)
    assert resolve_precision("auto") == "float32"
    assert precision.has_bfloat16_flags("processor : 0\nflags : fpu sse avx512f amx_bf16\n")
    assert not precision.has_bfloat16_flags("processor : 0\nflags : fpu sse avx512f avx512_vnni\n")
    assert resolve_precision("float32") == "float32"
    with pytest.raises(OptionError, match="unknown precision 'half'; choose one of: float32, bfloat16, auto"):
        resolve_precision("half")


def test_auto_asks_the_gpu_first_and_the_cpu_flags_without_one(keras, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    import cnnviz.models.precision as precision
    from cnnviz import backends

    assert backends.parse_capability((8, 6)) == (8, 6) and backends.parse_capability("9.0") == (9, 0)
    if not any(device.startswith("gpu") for device in keras.distribution.list_devices()):
        assert backends.gpu_capability() is None  # this machine: the CPU decides
    cpu_has_it = []
    monkeypatch.setattr(precision, "has_bfloat16_flags", lambda cpuinfo: bool(cpu_has_it))
    try:
        for gpu, native in [((8, 0), True), ((9, 0), True), ((7, 5), False), ((0, 0), False)]:
            monkeypatch.setattr(backends, "gpu_capability", lambda gpu=gpu: gpu)
            cpu_has_it[:] = [not native]  # the CPU's flags do not count where there is a GPU
            precision.native_bfloat16.cache_clear()
            assert precision.native_bfloat16() is native, gpu
        monkeypatch.setattr(backends, "gpu_capability", lambda: None)
        for flags in ([], [True]):
            cpu_has_it[:] = flags
            precision.native_bfloat16.cache_clear()
            assert precision.native_bfloat16() is (bool(flags) and sys.platform.startswith("linux"))
    finally:
        precision.native_bfloat16.cache_clear()


def test_cli_records_the_precision_in_the_manifest(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["featuremaps", SAMPLES[0], "-m", "shapes", "--precision", "bfloat16", "-o", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert "precision: bfloat16 (the model computed in it; cnnviz reduced and drew in float32)" in result.output
    record = json.loads((tmp_path / "shapes" / "manifest.json").read_text())["images"][SAMPLES[0]]
    assert record["precision"] == "bfloat16"


def test_a_model_that_cannot_compute_in_bfloat16_runs_in_float32_with_a_note(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    class PlusOne(keras.layers.Layer):
        """Arithmetic written for float32 alone (as a Keras 2 model's TensorFlow ops with float32 constants): it
        fails on a bfloat16 input."""

        def call(self, x):  # type: ignore[no-untyped-def]
            if keras.backend.standardize_dtype(x.dtype) != "float32":
                raise TypeError(f"float32 only, not {x.dtype}")
            return x + 1.0

    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, PlusOne(name="plus")(keras.layers.Conv2D(2, 3, name="conv")(inputs)), name="strict")

    extractor = build_extractor(model, ["conv"], feeding=FeedSettings(precision="bfloat16"))

    assert extractor.precision == "float32"
    assert len(extractor.notes) == 1 and extractor.notes[0].startswith(
        "model 'strict' runs in float32: it cannot compute in bfloat16 ("
    )
    # the runs say what was computed: float32, and no words on bfloat16's rounding
    from cnnviz.methods.top import scan_top

    array = tmp_path / "x.npy"
    np.save(array, np.random.default_rng(0).normal(size=(6, 6, 1)).astype(np.float32))
    stats = filter_stats(model, [array], reading=ReadingSettings(precision="bfloat16"))
    scan = scan_top(model, [array], TopQuery(["conv"]), ReadingSettings(precision="bfloat16"))
    assert (stats.precision, stats.notes) == (scan.precision, scan.notes) == ("float32", extractor.notes)


def test_a_bfloat16_report_carries_its_runs_notes(tmp_path: Path) -> None:
    """The page's notes are its runs': stats' and top's words on what rounding can decide."""
    from cnnviz.methods.top import ROUNDED_RANKS
    from cnnviz.runs.report import ReportOptions, write_report

    photos = tmp_path / "photos"  # nine: a report ranks top images from as many as it shows per filter
    photos.mkdir()
    for number in range(9):
        shutil.copy(SAMPLES[number % len(SAMPLES)], photos / f"{number}.jpg")
    options = ReportOptions(precision="bfloat16", size=(64, 64), attributions=False)
    result = write_report(load_model("shapes"), [photos], tmp_path / "out", options)

    assert ROUNDED_VERDICTS in result.notes and ROUNDED_RANKS in result.notes
    assert html_escape(ROUNDED_VERDICTS) in (tmp_path / "out" / "index.html").read_text()


def test_top_s_maximize_pictures_and_the_maximize_function_take_the_precision(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import cnnviz.methods.maximize as maximize_module
    from cnnviz.methods.maximize import MaximizeOptions, maximize
    from cnnviz.runs.top import TopOptions, render_top

    built: list[str] = []
    real = maximize_module.Maximizer

    class Recorded(real):  # type: ignore[valid-type, misc]
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            built.append(self.precision)

    monkeypatch.setattr(maximize_module, "Maximizer", Recorded)
    shapes = load_model("shapes")
    options = TopOptions(layer="edges", filters="0:1", k=1, size=(48, 48), maximize=True, precision="bfloat16")
    render_top(shapes, SAMPLES[:2], tmp_path, options)
    maximize(shapes, "edges", [0], MaximizeOptions(steps=2, size=32), feeding=FeedSettings(precision="bfloat16"))

    assert built == ["bfloat16", "bfloat16"]
