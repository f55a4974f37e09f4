"""Keras's backends: the same results on TensorFlow and JAX, the backend chosen by the user, and what is refused.

The agreement test runs each backend in a child process of its own (Keras picks its backend once per process) on
the same saved model and images, whichever backend this test run is on. .ci/run installs the jax extra and runs
the suite once more under KERAS_BACKEND=jax, so every other test runs on both backends too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz._keras import check_backend_installed, chosen_backend, keras_module
from cnnviz.cli import main
from cnnviz.errors import OptionError
from cnnviz.methods.attribution import general_methods
from tests.conftest import ROOT, SQUARE_AT, square_pictures, write_image

#: A developer without the jax extra skips the cross-backend tests; CI (which installs it) must run them.
needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None and not os.environ.get("CI"), reason="the jax extra is not installed"
)

#: Run in a child process on one backend: every method on the saved model and the pictures, into an .npz.
RUN_ALL = """
import sys
import numpy as np
from cnnviz import load_model
from cnnviz.methods.extract import build_extractor
from cnnviz.methods.gradcam import gradcam
from cnnviz.methods.maximize import MaximizeOptions, Maximizer
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.methods.stats import filter_stats
from cnnviz.methods.top import TopQuery, scan_top
from cnnviz.backends import name

model_path, folder, out = sys.argv[1:4]
model = load_model(model_path)
pictures = np.load(folder + "/pictures.npy")
files = sorted(str(p) for p in __import__("pathlib").Path(folder).glob("*.png"))
found = {"backend": np.array(name())}
maps = build_extractor(model)(pictures)
found.update({"maps_" + layer: array for layer, array in maps.items()})
stats = filter_stats(model, files, reading=ReadingSettings(preprocess="none")).layers
for layer in stats:
    found["dead_" + layer.layer], found["max_" + layer.layer] = layer.dead, layer.maxima
top = scan_top(model, files, TopQuery(["conv1", "conv2"], k=3), ReadingSettings(preprocess="none")).tops
for layer, ranking in top.items():
    found["top_" + layer] = np.stack([ranking.image, ranking.row, ranking.col])
    found["topvalue_" + layer] = ranking.value
explained = gradcam(model, pictures, layer="conv2")
found["heatmaps"], found["classes"] = explained.heatmaps, explained.classes
maximizer = Maximizer(model, "conv2", MaximizeOptions(steps=8, size=32, seed=3))
first = maximizer([0, 5])
found["maximize_1"], found["reached"] = first.images, first.activations
found["maximize_2"] = Maximizer(model, "conv2", MaximizeOptions(steps=8, size=32, seed=3))([0, 5]).images
from cnnviz.methods.attribution import general_methods, AttributionSettings, attribute
from cnnviz.methods.target import Target
settings = AttributionSettings(samples=8, masks=256, steps=16)
attributed = attribute(model, pictures, general_methods(), 1, target=Target(layer="conv2"), settings=settings)
found.update({"attribution_" + method: heat for method, heat in attributed.heatmaps.items()})
from cnnviz.methods.evaluation import METRICS, EvaluationSettings, Evaluator
evaluation = EvaluationSettings(steps=8, samples=16, grid=4, baseline="blur")
evaluator = Evaluator(model, ("gradcam", "gradient"), tuple(METRICS), Target(layer="conv2"), settings=evaluation)
scored = evaluator(pictures, 1)
for (row, method), values in scored.measured.items():
    for value in values:
        found[f"evaluation_{method}_{value.metric}_{row}"] = np.array([value.value, *value.curve])
from cnnviz.runs.compare import CompareOptions, compare_models
found["cka"] = compare_models(model, files, CompareOptions(other=model, preprocess="none", grid=4)).cka
np.savez(out, **found)
"""


def _run_on(backend: str, model_path: Path, folder: Path, out: Path) -> dict[str, np.ndarray]:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_ALL, str(model_path), str(folder), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as found:
        return dict(found)


@pytest.fixture(scope="module")
def both_backends(square_finder, tmp_path_factory) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("backends")
    model_path = folder / "square_finder.keras"
    square_finder.save(model_path)
    pictures, _ = square_pictures(6, seed=21)
    pictures[0, 4:12, 20:28] = 255.0  # a square in the first, at a place the others do not share
    np.save(folder / "pictures.npy", pictures)
    for number, picture in enumerate(pictures):
        write_image(folder / f"{number}.png", picture.astype(np.uint8))
    return (
        _run_on("tensorflow", model_path, folder, folder / "tensorflow.npz"),
        _run_on("jax", model_path, folder, folder / "jax.npz"),
    )


@needs_jax
def test_every_method_agrees_on_tensorflow_and_jax(both_backends) -> None:  # type: ignore[no-untyped-def]
    tf, jax = both_backends
    assert (str(tf["backend"]), str(jax["backend"])) == ("tensorflow", "jax")
    for key in tf:
        if key.startswith("maps_") or key.startswith("max_") or key.startswith("topvalue_"):
            np.testing.assert_allclose(jax[key], tf[key], rtol=1e-4, atol=1e-4, err_msg=key)
    for layer in ("conv1", "conv2"):
        assert (jax["dead_" + layer] == tf["dead_" + layer]).all()
        assert (jax["top_" + layer] == tf["top_" + layer]).all(), layer  # images, rows and cols: the same ranking
    assert (jax["classes"] == tf["classes"]).all()
    np.testing.assert_allclose(jax["cka"], tf["cka"], rtol=1e-4, atol=1e-5)
    assert 0.1 < tf["cka"].min() < 0.99  # different layers of the model differ
    np.testing.assert_allclose(jax["heatmaps"], tf["heatmaps"], rtol=1e-4, atol=1e-5 * tf["heatmaps"].max())
    # maximize: each backend gives the same bytes twice for one seed, and the two backends nearly the same images
    # and activations. Adam's step is normalised, so a gradient's last digits can tip a pixel's early steps: on
    # the square finders trained here, images apart by 0.005 to 0.014 on average (of 0..1), 0.035 at most.
    for found in (tf, jax):
        assert (found["maximize_1"] == found["maximize_2"]).all()
    apart = np.abs(jax["maximize_1"] - tf["maximize_1"])
    assert apart.mean() < 0.03 and apart.max() < 0.1
    np.testing.assert_allclose(jax["reached"], tf["reached"], rtol=0.05)


@needs_jax
def test_every_attribution_method_agrees_on_tensorflow_and_jax(both_backends) -> None:  # type: ignore[no-untyped-def]
    tf, jax = both_backends
    methods = [key for key in tf if key.startswith("attribution_")]
    assert len(methods) == len(general_methods()) == 16
    for key in methods:
        scale = np.abs(tf[key]).max()
        assert scale > 0, key
        np.testing.assert_allclose(jax[key], tf[key], rtol=1e-3, atol=1e-4 * scale, err_msg=key)


@needs_jax
def test_every_metric_agrees_on_tensorflow_and_jax(both_backends) -> None:  # type: ignore[no-untyped-def]
    tf, jax = both_backends
    scores = [key for key in tf if key.startswith("evaluation_")]
    assert len(scores) == 6 * 2 * 5  # pictures x methods x values recorded
    for key in scores:
        np.testing.assert_allclose(jax[key], tf[key], rtol=1e-3, atol=2e-3, err_msg=key)


@needs_jax
def test_grad_cam_peaks_on_the_square_on_both_backends(both_backends) -> None:  # type: ignore[no-untyped-def]
    for found in both_backends:
        heatmap = found["heatmaps"][0]
        row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        assert 4 <= row < 12 and 20 <= col < 28, (str(found["backend"]), row, col)
        assert heatmap[4:12, 20:28].mean() > 3 * heatmap.mean()


def test_a_missing_backend_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))

    with pytest.raises(
        OptionError, match=r"^the jax backend needs the jax package, not installed: pip install 'cnnviz\[jax\]'$"
    ):
        check_backend_installed("jax")
    result = CliRunner().invoke(main, ["--backend", "jax", "layers", "--model", "shapes"])
    assert result.exit_code == 2
    assert "pip install 'cnnviz[jax]'" in result.output


def test_a_backend_the_environment_or_keras_json_chose_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as before Keras is imported: the check first
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(OptionError) as caught:
        keras_module()
    assert str(caught.value) == (
        "KERAS_BACKEND=jax asks for the jax backend, which needs the jax package, not installed: "
        "pip install 'cnnviz[jax]', or run with --backend tensorflow"
    )
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    with pytest.raises(OptionError, match=rf"^{tmp_path / 'keras.json'} asks for the jax backend, which needs"):
        keras_module()


def test_backends_cnnviz_does_not_run_on_are_refused_with_what_to_use() -> None:
    result = CliRunner().invoke(main, ["--backend", "torch", "layers", "--model", "shapes"])

    assert result.exit_code == 2
    assert "cnnviz does not run on Keras's torch backend yet" in result.output
    assert "use --backend tensorflow or --backend jax" in result.output


def test_the_backend_comes_from_keras_json_when_the_environment_does_not_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as before Keras is imported

    assert chosen_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert chosen_backend() == "torch"


@needs_jax
def test_backend_option_runs_the_command_on_jax_and_says_so(tmp_path: Path) -> None:
    picture = np.zeros((32, 32, 3), dtype=np.uint8)
    picture[SQUARE_AT] = 255
    image = write_image(tmp_path / "square.png", picture)
    done = subprocess.run(
        [sys.executable, "-m", "cnnviz", "--backend", "jax", "featuremaps", str(image), "--model", "shapes"]
        + ["-o", str(tmp_path / "out")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert "backend: jax" in done.stdout
    assert done.stderr == ""  # no TensorFlow or JAX start-up lines
    manifest = json.loads((tmp_path / "out" / "shapes" / "manifest.json").read_text())
    assert manifest["backend"] == "jax"


@needs_jax
def test_a_keras_2_model_calling_tensorflow_is_refused_on_jax_with_what_to_do(tmp_path: Path) -> None:
    """The TensorFlow tutorial's transfer-learning model keeps preprocess_input as Keras 2 TFOpLambda layers
    (tf.math.truediv, tf.math.subtract): TensorFlow calls, which another backend cannot run."""
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.applications.mobilenet_v2.preprocess_input(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 3, name="conv")(x))
    path = tmp_path / "tutorial.h5"
    model.save(path)

    command = [sys.executable, "-m", "cnnviz", "--backend", "jax", "layers", "--model", str(path)]
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)

    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"Error: {path} is a Keras 2 model that calls TensorFlow's tf.math.truediv, which runs on the TensorFlow "
        "backend only, not on jax: run cnnviz with --backend tensorflow\n"
    )
    command[4] = "tensorflow"  # and on TensorFlow it loads
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == 0 and "conv" in done.stdout, done.stderr
