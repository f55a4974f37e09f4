"""``cnnviz explore``'s page in a real headless Chromium (Debian's ``chromium``, driven by Playwright, which never
downloads a browser of its own here): open the address, choose a layer, see the tiles, click one, see its filter
card fill in (maximize, top patches, stats), reload the linked view, upload an image and see its maps, and Grad-CAM.
Screenshots of each step go to ``$CNNVIZ_SCREENSHOTS`` when it is set (to look at them), else to the test's folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from cnnviz.methods.attribution import general_methods
from cnnviz.output.files import safe_name
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, needs_chromium

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"
#: Long enough for a maximize of VGG16 on two cores.
WAIT_MS = 240_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM is not None, "CI needs Debian's chromium"
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def shots(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("CNNVIZ_SCREENSHOTS") or tmp_path) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ExplorerPage:
    """The explorer's page, as a user works it."""

    def __init__(self, browser: Any, url: str, folder: Path) -> None:
        origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=origin)
        self.page = self.context.new_page()
        self.url, self.folder = url, folder
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self) -> None:
        self.page.goto(self.url)

    def state(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(urlparse(self.page.url).query).items()}

    def wait_for_grid(self, image: str, layer: str) -> None:
        self.page.wait_for_selector(f"#grid[data-ready='{image} {layer}']", timeout=WAIT_MS)

    def choose_layer(self, layer: str) -> None:
        self.page.click(f"button.layer[data-layer='{layer}']")

    def layout(self, image: str, layer: str) -> dict[str, Any]:
        from urllib.parse import quote

        response = self.page.request.get(f"/api/maps/{image}/{quote(layer, safe='')}.json")
        assert response.ok, response.text()
        return response.json()  # type: ignore[no-any-return]

    def click_tile(self, image: str, layer: str, channel: int) -> None:
        """Click the middle of the tile of ``channel``, wherever the grid's layout puts it."""
        layout = self.layout(image, layer)
        place = layout["channels"].index(channel)
        row, col = divmod(place, layout["grid"][1])
        (tile_rows, tile_cols), pad = layout["tile"], layout["padding"]
        grid = self.page.locator("#grid")
        natural = grid.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        box = grid.bounding_box()
        top = natural[1] - layout["size"][0]
        x = (col * (tile_cols + pad) + tile_cols / 2) * box["width"] / natural[0]
        y = (top + row * (tile_rows + pad) + tile_rows / 2) * box["height"] / natural[1]
        grid.click(position={"x": x, "y": y})

    def wait_for_card(self) -> None:
        for picture in ("overlay", "kernel", "maximize", "top"):
            self.page.wait_for_selector(f"#card-{picture}[data-loaded]", state="attached", timeout=WAIT_MS)
        self.page.wait_for_selector("#card-stats[data-verdict]", state="attached", timeout=WAIT_MS)

    def text(self, selector: str) -> str:
        return self.page.text_content(selector) or ""

    def natural_size(self, selector: str) -> list[int]:
        return self.page.locator(selector).evaluate("img => [img.naturalWidth, img.naturalHeight]")  # type: ignore[no-any-return]

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)


@pytest.fixture
def shapes_server() -> Iterator[Any]:
    import cnnviz
    from cnnviz.engines.naming import ModelRef

    ref = ModelRef("shapes")
    images = [SAMPLES / "cat.jpg", SAMPLES / "camera.png", SAMPLES / "coffee.jpg"]
    server = cnnviz.explore(ref.load(include_top=True), images, port=0, k=3, **vars(ref.naming()))
    yield server
    server.stop()


def walk_through(page: ExplorerPage, layer: str, channel: int, classes: bool = True) -> None:
    """Every step a user takes, checked, with a screenshot of each."""
    page.open()
    page.page.wait_for_selector("#grid[data-ready]", timeout=WAIT_MS)
    first = page.state()
    assert first["image"] == "0" and "token" not in page.page.url  # the token moved into a cookie
    page.shot("1-opened")

    page.choose_layer(layer)
    page.wait_for_grid("0", layer)
    layout = page.layout("0", layer)
    about = page.text(f"button.layer[data-layer='{layer}'] .about")
    assert "?" not in about  # a model of free input size: the shape for this image
    assert page.natural_size("#grid")[0] == layout["size"][1]
    assert page.text("#view-status").startswith(f"{layer}: {len(layout['channels'])} maps")
    page.shot("2-layer")

    page.click_tile("0", layer, channel)
    page.page.wait_for_selector("#card:not([hidden])")
    assert page.text("#card-title") == f"{layer} · filter {channel}"
    assert page.state() == {"layer": layer, "image": "0", "filter": str(channel)}
    page.wait_for_card()
    assert page.natural_size("#card-maximize")[0] > 0 and page.natural_size("#card-top")[0] > 0
    assert "active at" in page.text("#card-stats")
    enlarged = page.page.locator("#card-map")  # the chosen tile of the grid, cut out and enlarged
    assert f"/api/maps/0/{layer}.png" in (enlarged.get_attribute("style") or "")
    box = enlarged.bounding_box()
    assert box is not None and abs(box["height"] / box["width"] - layout["tile"][0] / layout["tile"][1]) < 0.02
    low, high = layout["min"][channel], layout["max"][channel]
    # the page writes each end with JavaScript's toPrecision(4), which keeps trailing zeros as "#.4g" does
    assert page.text("#card-range") == f"on {page.text('button.thumb.chosen span')}: {low:#.4g} to {high:#.4g}"
    page.shot("3-filter-card")

    page.page.reload()  # the view lives in the address
    page.wait_for_grid("0", layer)
    page.page.wait_for_selector("#card:not([hidden])")
    assert page.text("#card-title") == f"{layer} · filter {channel}"

    before = len(page.page.query_selector_all("button.thumb"))
    page.page.set_input_files("#upload", str(SAMPLES / "rocket.jpg"))
    page.page.wait_for_selector(f"button.thumb[data-image='{before}'].chosen", timeout=WAIT_MS)
    page.wait_for_grid(str(before), layer)
    assert page.text(f"button.thumb[data-image='{before}']") == "rocket.jpg"
    page.wait_for_card()  # the card follows the image: its map over the new one, top and stats over all four
    assert page.text("#card-range").startswith("on rocket.jpg: ")
    assert f"on {before + 1} of {before + 1} images" in page.text("#card-stats")
    page.shot("4-uploaded")

    if classes:
        page.page.click("#tab-gradcam")
        page.page.wait_for_selector("#gradcam[data-loaded]", state="attached", timeout=WAIT_MS)
        assert len(page.page.query_selector_all("#classes option")) == 5
        assert page.state()["view"] == "gradcam"
        chosen = page.text("#classes option:checked").split(" (")[0]  # as the command names its file
        assert page.page.get_attribute("#save", "download") == f"gradcam_{safe_name(chosen)}.png"
        page.shot("5-gradcam")
        offered = len(page.page.query_selector_all("#method option"))
        assert offered == len(general_methods())  # every method that applies to a CNN, from its declaration
        page.page.select_option("#method", "occlusion")  # many model calls: a task with a progress bar
        page.page.wait_for_selector("#gradcam[data-method='occlusion']", state="attached", timeout=WAIT_MS)
        assert page.state()["method"] == "occlusion"
        assert page.page.get_attribute("#save", "download") == f"attributions_{safe_name(chosen)}.png"
        assert page.text("#view-status").startswith(f"Occlusion: {chosen}")
        page.shot("6-occlusion")
    assert page.errors == []


@needs_chromium
def test_the_page_on_the_bundled_model(browser: Any, shapes_server: Any, tmp_path: Path) -> None:
    page = ExplorerPage(browser, shapes_server.url, shots(tmp_path, "shapes"))
    walk_through(page, "parts", 5)


@needs_chromium
def test_a_bad_upload_says_why_on_the_page(browser: Any, shapes_server: Any, tmp_path: Path) -> None:
    page = ExplorerPage(browser, shapes_server.url, shots(tmp_path, "bad-upload"))
    page.open()
    page.wait_for_grid("0", "edges")
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    page.page.set_input_files("#upload", str(notes))
    page.page.wait_for_selector("#upload-error:not([hidden])")
    assert page.text("#upload-error").startswith("notes.jpg: ") and "image" in page.text("#upload-error")
    assert len(page.page.query_selector_all("button.thumb")) == 3


@needs_chromium
def test_an_image_dropped_on_the_page_is_uploaded(browser: Any, shapes_server: Any, tmp_path: Path) -> None:
    import base64

    page = ExplorerPage(browser, shapes_server.url, shots(tmp_path, "drop"))
    page.open()
    page.wait_for_grid("0", "edges")
    photo = base64.b64encode((SAMPLES / "astronaut.jpg").read_bytes()).decode()
    dropped = page.page.evaluate_handle(
        """photo => {
            const bytes = Uint8Array.from(atob(photo), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
            return data;
        }""",
        photo,
    )
    page.page.dispatch_event("body", "dragover", {"dataTransfer": dropped})
    page.page.dispatch_event("body", "drop", {"dataTransfer": dropped})
    page.page.wait_for_selector("button.thumb[data-image='3'].chosen", timeout=WAIT_MS)
    page.wait_for_grid("3", "edges")
    assert page.text("button.thumb[data-image='3']") == "dropped.jpg"
    assert page.errors == []


@needs_chromium
def test_a_page_without_the_token_gets_nothing(browser: Any, shapes_server: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(shapes_server.url.split("?")[0])
    assert response.status == 403 and "token" in (page.text_content("body") or "")
    context.close()


@pytest.mark.slow
@needs_chromium
def test_the_page_on_vgg16(browser: Any, tmp_path: Path) -> None:
    import cnnviz
    from cnnviz.engines.naming import ModelRef

    ref = ModelRef("vgg16", "none")
    model = ref.load(include_top=True)
    server = cnnviz.explore(model, [SAMPLES / "cat.jpg", SAMPLES / "coffee.jpg"], port=0, k=2, **vars(ref.naming()))
    try:
        page = ExplorerPage(browser, server.url, shots(tmp_path, "vgg16"))
        walk_through(page, "block3_conv3", 17)
    finally:
        server.stop()
