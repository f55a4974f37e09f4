"""The CI script's gallery: every link leads to a file, names are escaped, nothing comes from the network."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from tests.conftest import ROOT, load_script


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in ("href", "src")]
        self._in_heading = tag == "h2"

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings.append(data)
            self._in_heading = False


def test_gallery_links_every_grid_relatively_and_escapes_names(tmp_path: Path) -> None:
    images = tmp_path / "in"
    (images / "odd").mkdir(parents=True)
    shutil.copy(ROOT / "sample_images" / "cat.jpg", images / "odd" / 'a<b>&"c" #1.jpg')
    shutil.copy(ROOT / "sample_images" / "camera.png", images / "camera.png")
    (images / "broken.jpg").write_text("<script>not a picture</script>")
    out = tmp_path / "gallery"

    status = load_script("ci_gallery").main([str(images), "--model", "shapes", "-o", str(out)])

    assert status == 1  # the broken file, listed on the page
    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    # filters of 3 layers, then 2 images x 3 layers, each an <a href> and an <img src> to the same file
    assert len(parser.links) == 2 * (3 + 2 * 3)
    for target in parser.links:
        assert not target.startswith(("/", "http", "file:")) and (out / unquote(target)).is_file(), target
    assert parser.headings == ["Filters", "camera", 'odd/a<b>&"c" #1', "Could not be drawn"]
    assert "a&lt;b&gt;&amp;&quot;c&quot; #1" in page and "<b>" not in page and "<script>" not in page
    assert "%23" in page  # a '#' in a file name is quoted, not read as a fragment
    assert "http" not in page
