"""The atlas's static site: HTML pages with relative links, each page's data as JSON beside it, every file written
atomically. Nothing here computes: :mod:`cnnviz.runs.atlas` hands over records, and this module lays them out.

Addresses a person can guess and send: ``index.html``; ``<layer>/index.html`` (the layer's name made safe by
:func:`cnnviz.output.files.safe_name`, as every other output names it); ``<layer>/<unit>.html``. Pictures sit in
``<layer>/img/`` and ``images/`` (each input image once, as the model saw it); boxes on whole images are drawn by
the page (CSS), not into copies of the image. Every name is escaped; no page fetches anything from the network.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz.output.files import safe_name, write_atomic

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em; }
a { color: #0b5cad; text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
nav { margin-bottom: 1em; color: #666; } nav a { margin-right: .6em; }
.muted { color: #777; } .tag { border-radius: 3px; padding: 0 .35em; font-size: .85em; }
.dead { background: #f3d0d0; } .rare { background: #f5e7c4; }
table { border-collapse: collapse; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { width: 150px; border: 1px solid #ddd; border-radius: 4px; padding: 4px; }
.card img { width: 72px; height: 72px; image-rendering: pixelated; vertical-align: top; }
.strip img { width: 64px; height: 64px; margin-right: 4px; image-rendering: pixelated; }
.pics { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.pics figure { margin: 0; text-align: center; font-size: .85em; }
.big { width: 192px; height: 192px; image-rendering: pixelated; }
.patch { width: 96px; height: 96px; image-rendering: pixelated; }
.whole { position: relative; display: inline-block; width: 160px; }
.whole img { width: 160px; display: block; }
.box { position: absolute; border: 2px solid #ff2a2a; box-sizing: border-box; }
.hist rect { fill: #5b8cc4; } .hist text { font-size: 10px; fill: #555; }
"""


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically (a temporary file renamed into place), creating folders."""
    write_atomic(path, text.encode("utf-8"))
    return path


def write_json(path: Path, data: Any) -> Path:
    """Write a page's data beside it, sorted and indented, so the same data gives the same bytes."""
    return write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def escaped(value: Any) -> str:
    """Text made safe for HTML."""
    return html.escape(str(value), quote=True)


def layer_folder(layer: str) -> str:
    """A layer's folder in the site: its path made safe."""
    return safe_name(layer)


def page(title: str, body: str, depth: int) -> str:
    """A whole HTML page: ``depth`` folders below the site's root (for the style sheet's relative link)."""
    up = "../" * depth
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{escaped(title)}</title>'
        f'<link rel="stylesheet" href="{up}style.css"></head>\n<body>\n{body}\n</body></html>\n'
    )


def unit_link(layer: str, unit: int, depth: int, text: str | None = None) -> str:
    """A link to a unit's page from a page ``depth`` folders below the root."""
    href = f"{'../' * depth}{layer_folder(layer)}/{unit}.html"
    return f'<a href="{escaped(href)}">{escaped(text if text is not None else f"{layer} #{unit}")}</a>'


def histogram_svg(counts: Sequence[int], edges: Sequence[float]) -> str:
    """A bar chart of a histogram as inline SVG (no script, no external file)."""
    width, height, top = 320, 90, max([1, *counts])
    bar = width / max(1, len(counts))
    bars = "".join(
        f'<rect x="{index * bar:.1f}" y="{height - 70 * count / top:.1f}" width="{max(bar - 1, 1):.1f}" '
        f'height="{70 * count / top:.1f}"><title>{count} images</title></rect>'
        for index, count in enumerate(counts)
    )
    low, high = (f"{edges[0]:.3g}", f"{edges[-1]:.3g}") if len(edges) else ("", "")
    return (
        f'<svg class="hist" width="{width}" height="{height + 14}" role="img" aria-label="histogram">{bars}'
        f'<text x="0" y="{height + 12}">{escaped(low)}</text>'
        f'<text x="{width}" y="{height + 12}" text-anchor="end">{escaped(high)}</text></svg>'
    )


def whole_image(src: str, box: Sequence[int] | None, shape: Sequence[int], caption: str) -> str:
    """A whole input image with the receptive field's box drawn over it (in percent of the image's size)."""
    drawn = ""
    if box is not None and shape[0] and shape[1]:
        top, left, bottom, right = box
        rows, cols = shape[0], shape[1]
        drawn = (
            f'<span class="box" style="top:{100 * top / rows:.2f}%;left:{100 * left / cols:.2f}%;'
            f'height:{100 * (bottom - top) / rows:.2f}%;width:{100 * (right - left) / cols:.2f}%"></span>'
        )
    return (
        f'<figure><span class="whole"><img src="{escaped(src)}" alt="{escaped(caption)}">{drawn}</span>'
        f"<figcaption>{escaped(caption)}</figcaption></figure>"
    )


def verdict_tag(record: dict[str, Any]) -> str:
    """The dead or rare mark of a unit's statistics record (nothing for a unit that is neither)."""
    if record.get("dead"):
        return '<span class="tag dead">dead</span>'
    if record.get("rare"):
        return '<span class="tag rare">rare</span>'
    return ""
