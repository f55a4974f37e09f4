"""The Ray engine against the local one, on a local 2-CPU Ray started here: same statistics, same grids."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnnviz.cli import main
from cnnviz.engines.naming import ModelRef
from cnnviz.engines.ray_engine import Cluster, find_inputs
from cnnviz.errors import LayerNotFound, ModelLoadError, OptionError
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.methods.stats import filter_stats
from cnnviz.runs.compare import CompareOptions, compare_models
from cnnviz.runs.stats import StatsOptions, run_stats
from cnnviz.runs.top import render_top
from tests.conftest import ROOT

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def photos(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The sample photos in two folders, and a damaged file among them."""
    folder = tmp_path_factory.mktemp("photos")
    for index, source in enumerate(sorted((ROOT / "sample_images").glob("*.jpg"))):
        target = folder / ("a" if index % 2 else "b") / source.name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source, target)
    (folder / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return folder


def test_stats_equal_the_local_engines_with_a_bad_image_reported(cluster, photos) -> None:  # type: ignore[no-untyped-def]
    inputs = find_inputs([str(photos)])
    assert len(inputs) == 5
    local = filter_stats(ModelRef("shapes").load(), inputs, reading=ReadingSettings(size=(96, 96), batch_size=2))
    options = StatsOptions(size=(96, 96), charts=False, batch_size=2, engine="ray")
    distributed = run_stats(ModelRef("shapes"), inputs, photos, options)
    assert [path for path, _ in distributed.failures] == [path for path, _ in local.failures]
    assert [Path(path).name for path, _ in distributed.failures] == ["broken.jpg"]
    assert [(type(error), str(error)) for _, error in distributed.failures] == [
        (type(error), str(error)) for _, error in local.failures
    ]
    for ours, theirs in zip(distributed.layers, local.layers, strict=True):
        assert ours.layer == theirs.layer and ours.images == theirs.images == 4
        for counts in ("active", "positions", "images_active"):
            assert np.array_equal(getattr(ours, counts), getattr(theirs, counts))
        assert np.array_equal(ours.maxima, theirs.maxima)
        np.testing.assert_allclose(ours.sums, theirs.sums, rtol=1e-9)
    assert distributed.layers[0].active.sum() > 0  # the comparison is over real activity, not zeros


def test_compare_equals_the_local_engines(cluster, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    twin = ModelRef("shapes").load()
    rng = np.random.default_rng(3)
    for layer in twin.layers:  # a twin whose every weight moved a little: CKA and drift below 1, not 0
        layer.set_weights([w + rng.normal(0, 0.2 * float(np.std(w)) + 1e-3, w.shape) for w in layer.get_weights()])
    twin.save(tmp_path / "twin.keras")
    inputs = find_inputs([str(photos)])
    options = CompareOptions(other=ModelRef(str(tmp_path / "twin.keras")), size=(64, 64), batch_size=2, pairs=0)
    local = compare_models(ModelRef("shapes").load(), inputs, options)
    distributed = compare_models(ModelRef("shapes"), inputs, replace(options, engine="ray"))
    assert [Path(path).name for path, _ in distributed.failures] == ["broken.jpg"] and distributed.samples == 4
    assert local.cka.min() > 0.5 and np.diag(local.cka).max() < 0.9999
    np.testing.assert_allclose(distributed.cka, local.cka, rtol=1e-9)
    for ours, theirs in zip(distributed.drift, local.drift, strict=True):
        assert ours.layer == theirs.layer
        assert np.array_equal(ours.weight_change, theirs.weight_change)
        assert np.array_equal(ours.top_overlap, theirs.top_overlap)
        np.testing.assert_allclose(ours.correlation, theirs.correlation, rtol=1e-9)


def test_stats_over_a_uri_lists_files_through_pyarrow(cluster, photos) -> None:  # type: ignore[no-untyped-def]
    uri = f"file://{photos}/"
    inputs = find_inputs([uri])
    assert sorted(item.key for item in inputs) == ["a/broken", "a/cat", "a/rocket", "b/astronaut", "b/coffee"]
    assert all(item.path.startswith("file:///") for item in inputs)
    options = StatsOptions(layers=["edges"], size=(64, 64), charts=False)
    run = run_stats(ModelRef("shapes"), inputs, photos, replace(options, engine="ray", ray_workers=1))
    assert run.layers[0].images == 4 and [Path(path).name for path, _ in run.failures] == ["broken.jpg"]
    with pytest.raises(OptionError, match="not both"):
        find_inputs([uri, str(photos)])
    with pytest.raises(OptionError, match="no such file or folder"):
        find_inputs([f"file://{photos}/missing/"])


def test_featuremaps_on_ray_write_the_local_engines_bytes_and_skip_across_engines(cluster, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    common = ["--model", "shapes", "--size", "96", "-q"]
    local = runner.invoke(main, ["featuremaps", str(photos / "b"), *common, "-o", str(tmp_path / "local")])
    ray = runner.invoke(main, ["featuremaps", str(photos), *common, "--engine", "ray", "-o", str(tmp_path / "ray")])
    assert local.exit_code == 0, local.output
    assert ray.exit_code == 1 and "broken.jpg" in ray.output  # the bad image fails alone
    assert "ray:" not in ray.output  # -q: errors only
    drawn = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.png"))
    assert len(drawn) == 4 * 3  # 4 photos x 3 layers
    for path in (tmp_path / "local").rglob("*.png"):
        relative = path.relative_to(tmp_path / "local")
        # the local run saw folder b alone, so its keys lack the b/ prefix
        twin = tmp_path / "ray" / relative.parts[0] / "b" / Path(*relative.parts[1:])
        assert path.read_bytes() == twin.read_bytes()
    manifest = json.loads((tmp_path / "ray" / "shapes" / "manifest.json").read_text())
    assert len(manifest["images"]) == 4 and [Path(p).name for p in manifest["failures"]] == ["broken.jpg"]
    record = manifest["images"][str(photos / "a" / "cat.jpg")]
    assert record["folder"] == "a/cat" and set(record["layers"]) == {"edges", "parts", "shapes"}
    # A local run with --skip-existing leaves out what the Ray run drew, and the other way round.
    again = runner.invoke(
        main,
        [
            "featuremaps",
            str(photos),
            "--model",
            "shapes",
            "--size",
            "96",
            "--skip-existing",
            "-o",
            str(tmp_path / "ray"),
        ],
    )
    assert "skipped 4 images drawn before" in again.output
    back = runner.invoke(
        main,
        [
            "featuremaps",
            str(photos / "b"),
            *common[:-1],
            "--skip-existing",
            "--engine",
            "ray",
            "-o",
            str(tmp_path / "local"),
        ],
    )
    assert back.exit_code == 0 and "skipped 2 images drawn before" in back.output
    assert "ray: local cluster, 2 CPUs, 1 workers" in back.output


def test_a_worker_that_cannot_set_up_fails_the_job_with_the_local_engines_error(cluster, photos) -> None:  # type: ignore[no-untyped-def]
    inputs = find_inputs([str(photos / "b")])
    with pytest.raises(LayerNotFound, match="no layer 'nope'; conv layers are: shapes, edges, parts"):
        run_stats(ModelRef("shapes"), inputs, photos, StatsOptions(layers=["nope"], charts=False, engine="ray"))
    with pytest.raises(ModelLoadError, match="no-such-model"):
        run_stats(ModelRef("no-such-model.keras"), inputs, photos, StatsOptions(charts=False, engine="ray"))


def test_workers_are_capped_so_reading_is_never_starved() -> None:
    assert [Cluster("x", cpus).actors() for cpus in (1, 2, 3, 8, 64)] == [1, 1, 2, 7, 63]
    assert Cluster("x", 2).actors(2) == 1 and Cluster("x", 8).actors(3) == 3
    assert Cluster("x", 1).actor_cpus() == 0.75 and Cluster("x", 2).actor_cpus() == 1.0


def test_without_ray_the_engine_says_what_to_install(monkeypatch: pytest.MonkeyPatch, photos) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    result = CliRunner().invoke(main, ["stats", str(photos), "--model", "shapes", "--engine", "ray", "--no-charts"])
    assert result.exit_code == 2
    assert "pip install 'cnnviz[ray]'" in result.output


def test_the_local_engine_points_uris_to_ray(photos) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["stats", f"file://{photos}/", "--model", "shapes", "--no-charts"])
    assert result.exit_code == 2 and "add --engine ray" in result.output


def test_top_on_ray_gives_the_local_engines_records(cluster, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.runs.top import TopOptions

    inputs = find_inputs([str(photos)])
    options = TopOptions(layer="edges", filters="0:4", k=3, size=(64, 64), batch_size=2)
    local = render_top(ModelRef("shapes").load(), inputs, tmp_path / "local", options)
    distributed = render_top(ModelRef("shapes"), inputs, tmp_path / "ray", replace(options, engine="ray"))

    assert len(local.records) == 4 * 3
    for ours, theirs in zip(distributed.records, local.records, strict=True):
        assert {k: v for k, v in ours.items() if k != "value"} == {k: v for k, v in theirs.items() if k != "value"}
        assert ours["value"] == pytest.approx(theirs["value"], rel=1e-6)
    assert [Path(path).name for path, _ in distributed.failures] == ["broken.jpg"]
    local_picture = (tmp_path / "local" / "top_edges.png").read_bytes()
    assert (tmp_path / "ray" / "top_edges.png").read_bytes() == local_picture


def test_stats_and_top_on_ray_say_what_the_local_runs_say(cluster, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The notes and the precision come from the actors' extractors, as the local runs' do from theirs."""
    from cnnviz.methods.stats import ROUNDED_VERDICTS
    from cnnviz.methods.top import ROUNDED_RANKS
    from cnnviz.runs.top import TopOptions

    inputs = find_inputs([str(photos)])
    model = ModelRef("shapes").load()
    options = StatsOptions(layers=["edges"], size=(64, 64), charts=False, precision="bfloat16")
    local = run_stats(model, inputs, tmp_path / "local", options)
    distributed = run_stats(ModelRef("shapes"), inputs, tmp_path / "ray", replace(options, engine="ray", ray_workers=1))
    assert distributed.notes == local.notes == [ROUNDED_VERDICTS]
    assert distributed.precision == local.precision == "bfloat16"

    ranked = TopOptions(layer="edges", filters="0:2", k=2, size=(64, 64), precision="bfloat16")
    local_top = render_top(model, inputs, tmp_path / "local", ranked)
    distributed_top = render_top(ModelRef("shapes"), inputs, tmp_path / "ray", replace(ranked, engine="ray"))
    assert ROUNDED_RANKS in distributed_top.notes and distributed_top.notes == local_top.notes


def test_every_attribution_method_on_ray_writes_the_local_engines_bytes(  # type: ignore[no-untyped-def]
    cluster, photos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnviz.methods.attribution import AttributionSettings, general_methods
    from cnnviz.runs.attribute import AttributeOptions, render_attributions

    inputs = find_inputs([str(photos)])
    settings = AttributionSettings(samples=4, masks=64, steps=8)
    options = AttributeOptions(
        methods=tuple(general_methods()), settings=settings, size=(64, 64), batch_size=2, save_raw=True
    )
    local = render_attributions(ModelRef("shapes").load(include_top=True), inputs, tmp_path / "local", options)

    def not_on_the_driver(self: ModelRef, **choice: object) -> None:
        raise AssertionError("the driver of a Ray run loads no model; its workers do")

    monkeypatch.setattr(ModelRef, "load", not_on_the_driver)  # the workers' processes keep the real one
    distributed = render_attributions(ModelRef("shapes"), inputs, tmp_path / "ray", replace(options, engine="ray"))

    assert len(local.images) == 4 and (distributed.layer, distributed.score) == (local.layer, local.score)
    assert [Path(path).name for path, _ in distributed.failures] == ["broken.jpg"]
    written = sorted(path.relative_to(tmp_path / "local") for path in local.written)
    assert len(written) == 4 * (1 + len(general_methods()))
    for relative in written:
        ours, theirs = tmp_path / "ray" / relative, tmp_path / "local" / relative
        if relative.suffix == ".png":
            assert ours.read_bytes() == theirs.read_bytes(), relative
        else:
            np.testing.assert_allclose(np.load(ours), np.load(theirs), rtol=1e-5, atol=1e-7, err_msg=str(relative))


def test_every_metric_on_ray_gives_the_local_engines_scores(cluster, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz.methods.evaluation import METRICS, EvaluationSettings
    from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images

    inputs = find_inputs([str(photos)])
    evaluation = EvaluationSettings(steps=6, samples=12, grid=4)
    options = EvaluateOptions(
        methods=("gradcam", "gradient"), metrics=tuple(METRICS), evaluation=evaluation, size=(64, 64), batch_size=3
    )
    local = evaluate_images(ModelRef("shapes").load(include_top=True), inputs, tmp_path / "local", options)
    distributed = evaluate_images(ModelRef("shapes"), inputs, tmp_path / "ray", replace(options, engine="ray"))

    assert [Path(path).name for path, _ in distributed.failures] == ["broken.jpg"]
    ours, theirs = distributed.records(), local.records()
    assert len(theirs) == 4 * 2 * 5  # images x methods x (deletion, insertion, mufidelity, randomization and SSIM)
    assert [(r["image"], r["method"], r["metric"]) for r in ours] == [
        (r["image"], r["method"], r["metric"]) for r in theirs
    ]
    for mine, local_one in zip(ours, theirs, strict=True):
        assert mine["value"] == pytest.approx(local_one["value"], abs=1e-5), mine
        np.testing.assert_allclose(mine.get("curve", []), local_one.get("curve", []), atol=1e-5)
    assert (tmp_path / "ray" / "evaluation_curves.png").read_bytes() == local.picture.read_bytes()
