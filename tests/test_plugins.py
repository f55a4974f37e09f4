"""A method and a metric defined here, in the test file only, each with a setting of its own: the registries derive
their options for ``explain``, ``evaluate``, the report and the explorer's method menu, and refuse each setting
where its method or metric is not chosen. No line of cnnviz names them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz.cli import main
from cnnviz.methods.attribution import METHODS, AttributionSettings, attribute
from cnnviz.methods.attribution.base import Attributed, Attribution, AttributionBatch
from cnnviz.methods.evaluation.metrics import METRICS, Measured, Metric, Scoring, Subject
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel
from tests.conftest import printed, write_image

GAMMA = Setting("gamma", float, 1.0, "the power the brightness is raised to", minimum=0)
SHARE = Setting("share", float, 0.25, "the fraction of pixels counted as the peak", minimum=0, maximum=1, above=True)


class Brightness(Attribution):
    """Each pixel's mean over its channels, raised to ``gamma``: an attribution a test computes by hand."""

    name = "brightness"
    title = "Brightness"
    settings = (GAMMA,)

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        return Attributed((batch.inputs.astype(np.float64).mean(axis=-1) ** self.values.gamma).astype(np.float32))


def peak_share(attribution: np.ndarray, share: float) -> float:
    """The part of the attribution's total held by its highest ``share`` of pixels."""
    flat = np.sort(np.abs(np.asarray(attribution, np.float64)).ravel())[::-1]
    return float(flat[: max(1, int(round(share * flat.size)))].sum() / flat.sum())


class PeakShare(Metric):
    """How concentrated an attribution is: :func:`peak_share` at ``share``."""

    name = "peak-share"
    title = "Peak share"
    makes = {"peak-share": "the part of the total in the top pixels"}
    settings = (SHARE,)

    def measure(self, scoring: Scoring, subjects: Sequence[Subject]) -> list[list[Measured]]:  # noqa: D102
        return [[Measured(self.name, peak_share(one.attribution, scoring.settings.share))] for one in subjects]


@pytest.fixture
def plugins() -> Iterator[None]:
    METHODS.add(Brightness)
    METRICS.add(PeakShare)
    yield
    METHODS.pop(Brightness.name)
    METRICS.pop(PeakShare.name)


@pytest.fixture
def ramp(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 32x32 picture of known pixels (the bundled model takes them as they are: preprocessing none)."""
    rows, cols = np.mgrid[0:32, 0:32]
    pixels = np.stack([rows * 8, cols * 8, (rows + cols) * 4], axis=-1).astype(np.uint8)
    return write_image(tmp_path / "ramp.png", pixels), pixels


def run(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_explain_runs_a_method_of_the_test_with_its_setting_as_an_option(plugins, ramp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    image, pixels = ramp
    done = run(
        "explain", image, "--model", "shapes", "--method", "brightness", "--gamma", 2, "--save-raw", "-o", tmp_path
    )
    assert done.exit_code == 0, done.output
    (raw,) = (tmp_path / "shapes").rglob("*brightness*.npy")
    np.testing.assert_allclose(np.load(raw), pixels.astype(np.float64).mean(axis=-1) ** 2, rtol=1e-6)
    assert "--gamma FLOAT" in run("explain", "-h").output and "--gamma" not in run("featuremaps", "-h").output

    refused = run("explain", image, "--model", "shapes", "--method", "gradcam", "--gamma", 2)
    assert refused.exit_code == 2
    assert "--gamma is a setting of brightness, which is not among the methods chosen" in refused.output
    below = run("explain", image, "--model", "shapes", "--method", "brightness", "--gamma", -1)
    assert below.exit_code == 2 and "Invalid value for '--gamma': it must be at least 0; got -1" in below.output


def test_evaluate_scores_the_tests_method_by_the_tests_metric_each_with_its_setting(plugins, ramp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    image, pixels = ramp
    args = ["evaluate", image, "--model", "shapes", "--method", "brightness", "--metric", "peak-share"]
    done = run(*args, "--gamma", 3, "--share", 0.1, "--json", tmp_path / "r.json", "-o", tmp_path)
    assert done.exit_code == 0, done.output
    (record,) = json.loads((tmp_path / "r.json").read_text())
    expected = peak_share(pixels.astype(np.float64).mean(axis=-1) ** 3, 0.1)
    assert (record["method"], record["metric"]) == ("brightness", "peak-share")
    assert record["value"] == pytest.approx(expected, rel=1e-6) and 0.1 < expected < 0.5
    assert (record["method_settings"], record["metric_settings"]) == ({"gamma": 3.0}, {"share": 0.1})
    assert "peak-share: the part of the total in the top pixels (higher is better)" in printed(done.output)

    for extra, refusal in (
        (
            ["--metric", "deletion", "--share", 0.1],
            "--share is a setting of peak-share, which is not among the metrics",
        ),
        (["--method", "gradient", "--gamma", 2], "--gamma is a setting of brightness, which is not among the methods"),
    ):
        refused = run("evaluate", image, "--model", "shapes", *extra)
        assert refused.exit_code == 2 and refusal in refused.output, refused.output


def test_the_report_shows_the_tests_method_and_metric_with_their_settings(plugins, ramp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    image, pixels = ramp
    done = run(
        "report", image, "--model", "shapes", "--method", "brightness", "--gamma", 2,
        "--quality", "peak-share", "--share", 0.5, "-o", tmp_path / "report",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    page = (tmp_path / "report" / "index.html").read_text()
    expected = peak_share(pixels.astype(np.float64).mean(axis=-1) ** 2, 0.5)
    assert "Brightness" in page and "peak-share" in page and f"{expected:.3f}" in page

    refused = run("report", image, "--model", "shapes", "--share", 0.5)
    assert refused.exit_code == 2 and "--share is a setting of peak-share" in refused.output


def test_the_explorers_menu_offers_the_tests_method_with_its_setting(plugins, ramp, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    import cnnviz.explorer.serve
    from cnnviz.explorer.app import build_app
    from cnnviz.explorer.views import Explorer

    image, pixels = ramp
    made: dict[str, Any] = {}

    def prepare(model: Any, images: list[str], options: Any) -> Any:
        made.update(model=model, options=options)
        raise click.exceptions.Exit(0)

    monkeypatch.setattr(cnnviz.explorer.serve, "prepare", prepare)
    done = run("explore", image, "--model", "shapes", "--gamma", 2, "--no-browser")
    assert done.exit_code == 0, done.output
    options = made["options"]
    assert options.settings == AttributionSettings(gamma=2)
    scoring = run("explore", image, "--model", "shapes", "--share", 0.5)  # the explorer scores nothing
    assert scoring.exit_code == 2 and "No such option '--share'" in scoring.output

    explorer = Explorer(made["model"], [str(image)], options)
    try:
        token = "a-token-for-the-tests-only-0123"
        client = TestClient(build_app(explorer, token, 8765), base_url="http://127.0.0.1:8765")
        headers = {"authorization": f"token {token}"}
        menu = [method["name"] for method in client.get("/api/model", headers=headers).json()["methods"]]
        assert menu[-1] == "brightness"
        served = client.get("/api/explain/0.png", params={"method": "brightness"}, headers=headers)
        assert served.status_code == 200, served.text
        written = run("explain", image, "--model", "shapes", "--method", "brightness", "--gamma", 2, "-o", tmp_path)
        assert written.exit_code == 0, written.output
        (picture,) = (tmp_path / "shapes").rglob("attributions_*.png")
        assert served.content == picture.read_bytes()
    finally:
        explorer.close()
    heat = attribute(made["model"], [str(image)], ["brightness"], settings=AttributionSettings(gamma=2)).heatmaps
    np.testing.assert_allclose(heat["brightness"][0], pixels.astype(np.float64).mean(axis=-1) ** 2, rtol=1e-6)


def test_evaluate_sets_a_methods_steps_and_a_metrics_steps_apart(ramp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Integrated Gradients' steps and deletion's steps share a name; both are set, and both are used: the curve
    has the metric's steps, and the value is the one of the method's attribution at its own steps."""
    image, _ = ramp
    from cnnviz.engines.naming import ModelRef

    model = ModelRef("shapes").load(include_top=True)
    maps = tmp_path / "ig8"
    maps.mkdir()
    ig8 = attribute(model, [str(image)], ["integrated-gradients"], settings=AttributionSettings(steps=8))
    ig64 = attribute(model, [str(image)], ["integrated-gradients"], settings=AttributionSettings(steps=64))
    np.save(maps / "ramp.npy", ig8.heatmaps["integrated-gradients"][0])
    assert not np.allclose(ig8.heatmaps["integrated-gradients"], ig64.heatmaps["integrated-gradients"])

    common = ["evaluate", image, "--model", "shapes", "--metric", "deletion", "--steps", 5, "-o", tmp_path]
    done = run(*common, "--method", "integrated-gradients", "--method-steps", 8, "--json", tmp_path / "m.json")
    assert done.exit_code == 0, done.output
    files = run(*common, "--explanation", maps, "--method", "", "--json", tmp_path / "f.json")
    assert files.exit_code == 0, files.output
    (method,), (given,) = (json.loads((tmp_path / name).read_text()) for name in ("m.json", "f.json"))
    assert method["method_settings"] == {"steps": 8, "baseline": "black"}
    assert method["metric_settings"] == {"steps": 5, "grid": None, "baseline": "black", "score": "probability"}
    assert len(method["curve"]) == 6
    assert method["value"] == pytest.approx(given["value"], abs=1e-6) and method["curve"] == pytest.approx(
        given["curve"], abs=1e-6
    )
