"""``cnnviz report``: the page's content, and the page in a real headless Chromium (Debian's ``chromium``):
it renders, its console shows no errors, every picture loads, and a screenshot is taken."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz._keras import chosen_backend
from cnnviz.cli import main
from tests.conftest import CHROMIUM, needs_chromium, square_picture
from tests.conftest import CHROMIUM_FLAGS as BROWSER_FLAGS

#: The command line's flags: headless, with no scrollbars in the screenshots.
CHROMIUM_FLAGS = ["--headless", *BROWSER_FLAGS, "--hide-scrollbars"]


@pytest.fixture(scope="module")
def report(square_finder, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A report on the square finder for two pictures, one with an awkward name."""
    root = tmp_path_factory.mktemp("report")
    model = root / "finder.keras"
    square_finder.save(model)
    pictures = root / "pictures"
    pictures.mkdir()
    Image.fromarray(square_picture().astype(np.uint8)).save(pictures / "square.png")
    Image.fromarray(square_picture(seed=5)[::-1].astype(np.uint8)).save(pictures / "a <b> & 'c'.png")
    command = ["report", str(pictures), "--model", str(model), "-o", str(root / "out"), "--quality", "deletion"]
    result = CliRunner().invoke(main, [*command, "--quality", "insertion"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"wrote {root / 'out' / 'index.html'} with 11 pictures"
    return root / "out" / "index.html"


def test_the_page_holds_every_section_with_relative_escaped_links(report: Path) -> None:
    text = report.read_text()

    sources = re.findall(r'<img src="([^"]+)"', text)
    # per layer (conv1, conv2): filters, a statistics chart, the maps of 2 pictures; 2 Grad-CAM pictures; the
    # explanation quality's curves
    assert len(sources) == 11
    assert all(not src.startswith(("/", "http", "file:")) for src in sources)
    assert all((report.parent / unquote(html.unescape(src))).is_file() for src in sources)
    assert "a &lt;b&gt; &amp; &#x27;c&#x27;.png" in text and "a <b>" not in text  # the awkward name, escaped
    assert text.count('loading="lazy"') == 11
    assert '<a href="#layer-0">conv1</a>' in text and '<a href="#layer-1">conv2</a>' in text
    assert "8 filters over 2 images: " in text and "16 filters over 2 images: " in text
    assert "Where the model looks: Grad-CAM, Layer-CAM, Eigen-CAM, Gradient" in text
    explained = [src for src in sources if src.startswith("attributions/")]
    assert len(explained) == 2 and all(src.endswith("/attributions_class_1.png") for src in explained)
    assert f"Keras&#x27;s {chosen_backend()} backend, in float32" in text  # what the model computed on
    assert re.search(r"square\.png: class 1 \(top: class 1 (0\.9\d\d|1\.000)", text)
    assert "http://" not in text and "https://" not in text  # nothing from the network
    # the explanation quality block: every method scored on both metrics, best first, and the curves
    quality = text[text.index('<section id="quality">') :]
    quality = quality[: quality.index("</section>")]
    scored = re.findall(r"<tr><td>(deletion|insertion)</td><td>([a-z]+)</td><td class=\"num\">([0-9.]+)</td>", quality)
    assert [(metric, method) for metric, method, _ in scored if metric == "deletion"] == [
        ("deletion", method)
        for method, _ in sorted(
            ((method, float(value)) for metric, method, value in scored if metric == "deletion"), key=lambda x: x[1]
        )
    ]
    assert {method for _, method, _ in scored} == {"gradcam", "layercam", "eigencam", "gradient"} and len(scored) == 8
    assert 'src="quality/evaluation_curves.png"' in quality and '<a href="#quality">' in text


@needs_chromium
def test_chromium_renders_the_page_with_every_picture_and_no_console_errors(report: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    url = report.resolve().as_uri()
    # A window tall enough that every lazily loaded picture is in view and loads.
    dom = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,12000",
            "--virtual-time-budget=10000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None
    assert 'data-loaded="11"' in body.group(1) and 'data-missing="0"' in body.group(1)

    shot = tmp_path / "report.png"
    taken = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (900, 1280, 3)
    # the index on the left is grey-backed, the main column white: the layout rendered, not a blank page
    assert tuple(pixels[450, 40]) == (247, 248, 250)
    assert (pixels[:, 1270] == 255).all(axis=-1).mean() > 0.5  # the main column's margin, beside the pictures
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text and pictures


@needs_chromium
def test_a_missing_picture_is_counted_and_outlined(report: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    moved = tmp_path / "moved.html"
    shutil.copy(report, moved)  # the page without its folders: every picture is missing
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--window-size=1280,12000"]
        + ["--virtual-time-budget=10000", "--dump-dom", moved.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert re.search(r'<body[^>]*data-missing="11"', dom.stdout)
    assert dom.stdout.count('class="missing"') == 11


@needs_chromium
def test_a_comparison_with_a_second_model_renders_with_every_picture(square_finder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert CHROMIUM is not None
    square_finder.save(tmp_path / "finder.keras")
    rng = np.random.default_rng(0)
    for layer in square_finder.layers:  # its twin: every weight moved a little
        layer.set_weights([w + rng.normal(0, 0.1 * float(np.std(w)) + 1e-3, w.shape) for w in layer.get_weights()])
    square_finder.save(tmp_path / "twin.keras")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for seed in range(3):
        Image.fromarray(square_picture(seed=seed).astype(np.uint8)).save(pictures / f"{seed}.png")
    command = ["report", str(pictures), "--model", str(tmp_path / "finder.keras"), "-o", str(tmp_path / "out")]
    done = CliRunner().invoke(main, [*command, "--compare", str(tmp_path / "twin.keras"), "--no-attributions"])
    assert done.exit_code == 0, done.output
    text = (tmp_path / "out" / "index.html").read_text()
    section = text[text.index('<section id="compare">') :]
    section = section[: section.index("</section>")]
    assert "<h2>Compared with twin.keras</h2>" in section and '<a href="#compare">Comparison</a>' in text
    assert re.findall(r"<tr><td>(conv\d)</td>", section) == ["conv1", "conv2"]
    shown = re.findall(r'<img src="(compare/[^"]+)"', section)
    assert shown[:2] == ["compare/cka.png", "compare/drift.png"] and len(shown) >= 3  # and the units that moved
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--window-size=1280,12000"]
        + ["--virtual-time-budget=10000", "--dump-dom", (tmp_path / "out" / "index.html").resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None and 'data-missing="0"' in body.group(1)
    assert f'data-loaded="{text.count("<img ")}"' in body.group(1)
