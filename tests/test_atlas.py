"""``cnnviz atlas``: every page and link of the site, a unit's data equal to what ``top``, ``stats`` and ``maximize``
write for the same settings, and a site stopped half way (Ctrl-C, a killed process) and run again equal to one built
in one go, byte for byte."""

from __future__ import annotations

import html.parser
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, ROOT, needs_chromium

SAMPLES = ROOT / "sample_images"
#: A small atlas: 4 units a layer, few steps, chunks of 2 (two chunks a layer); the bundled model reads at 48 px.
QUICK = ["--filters", "0:4", "--steps", "4", "--chunk", "2", "-k", "3"]
SHAPES = [*QUICK, "--size", "48"]


class _Links(html.parser.HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.extend(value for name, value in attrs if name in ("href", "src") and value)


def check_site(site: Path) -> dict[str, int]:
    """Every link and picture of every page resolves to a file of the site; no absolute path or URL appears.
    Returns how many pages and links were checked."""
    pages = sorted(site.rglob("*.html"))
    links = 0
    for page in pages:
        parser = _Links()
        text = page.read_text()
        parser.feed(text)
        assert "://" not in text and str(site) not in text and "/tmp" not in text, page
        for link in parser.found:
            if link == "#":
                continue
            assert not link.startswith("/") and ":" not in link, (page, link)
            target = (page.parent / link).resolve()
            assert target.is_file() and site.resolve() in target.parents, (page, link)
            links += 1
    return {"pages": len(pages), "links": links}


def site_bytes(site: Path) -> dict[str, bytes]:
    """Every file of a site, by its path in the site."""
    return {str(path.relative_to(site)): path.read_bytes() for path in sorted(site.rglob("*")) if path.is_file()}


def build(out: Path, *more: str, model: str = "shapes") -> Path:
    quick = SHAPES if model == "shapes" else QUICK
    result = CliRunner().invoke(main, ["atlas", str(SAMPLES), "--model", model, *quick, "-o", str(out), *more])
    assert result.exit_code == 0, result.output
    return out / Path(model).stem / "atlas"


@pytest.fixture(scope="module")
def shapes_site(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return build(tmp_path_factory.mktemp("atlas"))


def test_every_page_exists_and_every_link_resolves(shapes_site: Path) -> None:
    index = json.loads((shapes_site / "index.json").read_text())
    assert [layer["layer"] for layer in index["layers"]] == ["edges", "parts", "shapes"]
    for layer in index["layers"]:
        assert (shapes_site / layer["layer"] / "index.html").is_file()
        for unit in range(4):
            for suffix in ("html", "json"):
                assert (shapes_site / layer["layer"] / f"{unit}.{suffix}").is_file()
            assert (shapes_site / layer["layer"] / "img" / f"{unit}_max.png").is_file()
        assert not (shapes_site / layer["layer"] / "4.html").exists()  # --filters 0:4
    counted = check_site(shapes_site)
    assert counted["pages"] == 1 + 3 + 12 and counted["links"] > 150
    unit = json.loads((shapes_site / "edges" / "1.json").read_text())
    assert unit["kernel"]["picture"] == "img/1_kernel.png"  # the first layer's colour patches
    nexts = json.loads((shapes_site / "parts" / "0.json").read_text())["next"]["units"]
    assert nexts and all(link["layer"] == "shapes" for link in nexts)  # the next conv layer's units
    classes = json.loads((shapes_site / "shapes" / "0.json").read_text())["classes"]
    assert len(classes["classes"]) == 6 and "pooled" in classes["how"]  # the last conv feeds the head


def test_a_units_data_is_what_top_stats_and_maximize_write(shapes_site: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    top_json, stats_json = tmp_path / "top.json", tmp_path / "stats.json"
    common = ["--model", "shapes", "--size", "48", "-o", str(tmp_path)]
    for command in (
        ["top", str(SAMPLES), "--layer", "parts", "--filters", "0:4", "-k", "3", "--json", str(top_json)],
        ["stats", str(SAMPLES), "--layer", "parts", "--json", str(stats_json), "--no-charts"],
        ["maximize", "--layer", "parts", "--filters", "0:2", "--steps", "4", "--save-raw"],
    ):
        result = runner.invoke(main, [*command, *common])
        assert result.exit_code == 0, result.output
    tops = json.loads(top_json.read_text())
    stats = json.loads(stats_json.read_text())
    raw = np.load(tmp_path / "shapes" / "maximize_parts.npy")
    for unit in range(2):
        record = json.loads((shapes_site / "parts" / f"{unit}.json").read_text())
        keys = ("filter", "rank", "image", "value", "position", "box")
        assert [{key: top[key] for key in keys} for top in record["top"]] == [
            {key: top[key] for key in keys} for top in tops if top["filter"] == unit
        ]
        assert record["stats"] == next(row for row in stats if row["filter"] == unit)
        picture = np.asarray(Image.open(shapes_site / "parts" / "img" / f"{unit}_max.png"))
        assert np.array_equal(picture, np.rint(np.clip(raw[unit], 0, 1) * 255).astype(np.uint8))


def test_a_stopped_run_leaves_a_working_site_and_finishes_to_the_same_bytes(
    shapes_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnviz.methods.maximize import MaximizeUnits

    real, calls = MaximizeUnits.run, []

    def interrupted(self, chunk):  # type: ignore[no-untyped-def]
        calls.append(chunk)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, chunk)

    monkeypatch.setattr(MaximizeUnits, "run", interrupted)
    stopped = CliRunner().invoke(main, ["atlas", str(SAMPLES), "--model", "shapes", *SHAPES, "-o", str(tmp_path)])
    assert stopped.exit_code == 130 and "run the same command again" in stopped.output
    site = tmp_path / "shapes" / "atlas"
    check_site(site)  # a working site of what finished
    pictures = sorted(site.rglob("*_max.png"))
    assert len(pictures) == 4  # two chunks of two
    assert "not computed yet" in (site / "parts" / "0.html").read_text()
    monkeypatch.setattr(MaximizeUnits, "run", real)
    again = CliRunner().invoke(main, ["atlas", str(SAMPLES), "--model", "shapes", *SHAPES, "-o", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "was done before" in again.output and "8 of 12 units" in again.output  # only the rest
    assert site_bytes(site) == site_bytes(shapes_site)


def test_a_killed_process_leaves_a_site_the_same_command_finishes(shapes_site: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "cnnviz", "atlas", str(SAMPLES), "--model", "shapes", *SHAPES, "-o", str(tmp_path)]
    site = tmp_path / "shapes" / "atlas"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        while process.poll() is None and not list(site.rglob("*_max.png")):
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert list(site.rglob("*.html")), "the process was killed before it wrote a page"
    finished = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert finished.returncode == 0, finished.stderr
    assert site_bytes(site) == site_bytes(shapes_site)


def test_a_nested_model_gets_pages_named_by_their_paths(keras, nested_model, tmp_path: Path) -> None:
    file = tmp_path / "transfer.keras"
    nested_model.save(file)
    site = build(tmp_path, model=str(file))
    index = json.loads((site / "index.json").read_text())
    layers = [layer["layer"] for layer in index["layers"]]
    assert layers == ["base/conv_a", "base/conv_b", "base/depthwise", "base/conv_c"]
    assert (site / "base__conv_a" / "0.html").is_file()
    check_site(site)
    record = json.loads((site / "base__conv_c" / "0.json").read_text())
    assert record["classes"]["classes"] and record["kernel"]["how"].startswith("not computed")  # after an Add


def test_data_only_atlas_computes_no_unit(tmp_path: Path) -> None:
    site = build(tmp_path, "--no-maximize")
    assert not list(site.rglob("*_max.png"))
    assert "not computed yet" in (site / "edges" / "0.html").read_text()
    check_site(site)


@pytest.mark.ray
def test_ray_builds_the_local_site_byte_for_byte(cluster, shapes_site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    site = build(tmp_path, "--engine", "ray", "--workers", "2")
    assert site_bytes(site) == site_bytes(shapes_site)


@needs_chromium
def test_a_browser_walks_the_site_from_disk(shapes_site: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_context().new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto((shapes_site / "index.html").as_uri())
        page.click("text=parts")  # a layer
        assert page.url.endswith("/parts/index.html")
        page.click("a[href='2.html']")  # a unit
        assert page.url.endswith("/parts/2.html")
        assert page.text_content("h1").startswith("parts #2")
        page.click("a[href^='../shapes/']")  # a unit of the next layer that weighs it
        assert "/shapes/" in page.url
        pictures = page.eval_on_selector_all(
            "img", "all => all.map(img => [img.getAttribute('src'), img.naturalWidth])"
        )
        assert len(pictures) > 8 and all(width > 0 for _, width in pictures), pictures
        browser.close()
    assert requests and all(url.startswith("file://") for url in requests)


def test_a_report_beside_an_atlas_links_to_it(shapes_site: Path, tmp_path: Path) -> None:
    import shutil

    from cnnviz.engines.naming import ModelRef
    from cnnviz.runs.report import ReportOptions, write_report

    shutil.copytree(shapes_site, tmp_path / "shapes" / "atlas")  # where 'cnnviz atlas ... -o tmp_path' writes it
    ref = ModelRef("shapes")
    options = ReportOptions(**vars(ref.naming()), attributions=False, size=(48, 48))
    write_report(ref.load(include_top=True), [str(SAMPLES / "cat.jpg")], tmp_path, options)
    page = (tmp_path / "index.html").read_text()  # where 'cnnviz report ... -o tmp_path' writes it
    assert 'href="shapes/atlas/index.html"' in page and 'href="shapes/atlas/parts/index.html"' in page
    counted = check_site(tmp_path / "shapes" / "atlas")
    assert counted["pages"] == 16


def test_a_layer_of_1d_maps_is_left_out_and_the_index_says_so(keras, tmp_path: Path) -> None:
    inputs = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="grid")(inputs)
    steps = keras.layers.Conv1D(3, 3, name="along")(keras.layers.Reshape((256, 4))(maps))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(steps))
    file = tmp_path / "mixed.keras"
    keras.Model(inputs, outputs, name="mixed").save(file)
    site = build(tmp_path, "--no-maximize", model=str(file))
    index = json.loads((site / "index.json").read_text())
    assert [layer["layer"] for layer in index["layers"]] == ["grid"]
    assert index["left_out"] == ["along (Conv1D, 1-D maps)"]
    assert "Left out" in (site / "index.html").read_text() and not (site / "along").exists()
    check_site(site)
