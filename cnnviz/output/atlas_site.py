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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz.models.graph import shape_text
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


def _nav(depth: int, *extra: str) -> str:
    up = "../" * depth
    return f'<nav><a href="{up}index.html">atlas</a>{"".join(extra)}</nav>'


def index_page(record: dict[str, Any]) -> str:
    """The site's index from its record: the model and its layers."""
    e = escaped
    rows = []
    for layer in record["layers"]:
        folder = layer_folder(layer["layer"])
        strip = "".join(
            f'<a href="{e(folder)}/{one["unit"]}.html"><img src="{e(folder)}/{e(one["maximize"] or one["patch"])}" '
            f'alt="unit {one["unit"]}" title="unit {one["unit"]}"></a>'
            for one in layer["strip"]
            if one["maximize"] or one["patch"]
        )
        units = f"{layer['units']}" + (f" of {layer['of']}" if layer["units"] != layer["of"] else "")
        rows.append(
            f'<tr><td><a href="{e(folder)}/index.html">{e(layer["layer"])}</a></td><td>{e(layer["kind"])}</td>'
            f"<td>{e(shape_text(layer['output']))}</td><td>{units}</td><td>{layer['dead']}</td>"
            f'<td>{layer["rare"]}</td><td class="strip">{strip}</td></tr>'
        )
    body = (
        f"<h1>{e(record['model'])}: atlas</h1>"
        f'<p class="muted">input {e(record["input"])}; preprocessing: '
        f"{e(record['preprocessing'])}; weights: {e(record['weights'])}; {record['images']} images; "
        f"backend {e(record['backend'])}</p>"
        "<h2>Conv layers, in graph order</h2><table><tr><th>layer</th><th>kind</th><th>output</th><th>units</th>"
        "<th>dead</th><th>rare</th><th>most active units</th></tr>" + "".join(rows) + "</table>"
    )
    if record["left_out"]:
        left = "".join(f"<li>{e(text)}</li>" for text in record["left_out"])
        body += f"<p>Left out: the atlas draws layers of 2-D maps.</p><ul>{left}</ul>"
    return page(f"{record['model']}: atlas", body, 0)


def layer_page(record: dict[str, Any], rule: str) -> str:
    """A layer's page from its record: a card per unit, sortable by unit or by activity."""
    e = escaped
    cards = []
    for card in record["units"]:
        pictures = "".join(
            f'<img src="{e(card[name])}" alt="{name}">' for name in ("maximize", "patch") if card[name] is not None
        )
        mark = verdict_tag(card)
        cards.append(
            f'<div class="card" data-unit="{card["unit"]}" data-mean="{card["mean"]:.6g}">'
            f'<a href="{card["unit"]}.html">#{card["unit"]}</a> {mark}<br>{pictures}<br>'
            f'<span class="muted">max {card["max"]:.3g}</span></div>'
        )
    script = (
        "<script>function sortBy(key){const c=document.getElementById('cards');[...c.children].sort((a,b)=>"
        "key==='unit'?a.dataset.unit-b.dataset.unit:b.dataset.mean-a.dataset.mean).forEach(n=>c.appendChild(n));}"
        "</script>"
    )
    body = (
        _nav(1) + f'<h1>{e(record["layer"])}</h1><p class="muted">{e(record["kind"])}, output '
        f"{e(shape_text(record['output']))}; active means {e(rule)}</p>"
        '<p>sort: <a href="#" onclick="sortBy(\'unit\');return false">by unit</a> · '
        '<a href="#" onclick="sortBy(\'mean\');return false">by activity</a></p>'
        f'<div class="cards" id="cards">{"".join(cards)}</div>{script}'
    )
    return page(record["layer"], body, 1)


def _links(links: list[dict[str, Any]], depth: int) -> str:
    """Units as links where the atlas has their pages (``page`` True), as text where it has not."""
    shown = []
    for link in links:
        text = f"{link['layer']} #{link['unit']} ({link['weight']:.3g})"
        shown.append(unit_link(link["layer"], link["unit"], depth, text) if link["page"] else escaped(text))
    return ", ".join(shown)


def unit_page(record: dict[str, Any], around: tuple[int | None, int | None], rare: float) -> str:
    """A unit's page from its record: every part, or why a part does not apply."""
    e = escaped
    layer, unit, stats = record["layer"], record["unit"], record["stats"]
    previous, following = around
    steps = "".join(
        f' <a href="{n}.html">{label} #{n}</a>'
        for n, label in ((previous, "previous"), (following, "next"))
        if n is not None
    )
    maximize = record["maximize"]
    maximized = (
        f'<figure><img class="big" src="{e(maximize["picture"])}" alt="maximize"><figcaption>{e(maximize["settings"])}'
        "</figcaption></figure>"
        if maximize["picture"]
        else '<p class="muted">not computed yet: run the same command again to finish it</p>'
    )
    kernel = record["kernel"]
    if "picture" in kernel:
        kernel_html = (
            f'<img class="patch" src="{e(kernel["picture"])}" alt="kernel"><p class="muted">{e(kernel["how"])}</p>'
        )
    elif kernel.get("inputs"):
        kernel_html = f'<p>{_links(kernel["inputs"], 1)}</p><p class="muted">by {e(kernel["how"])}</p>'
    else:
        kernel_html = f'<p class="muted">{e(kernel["how"])}</p>'
    tops = "".join(
        f'<figure><img class="patch" src="{e(top["patch"])}" alt="rank {top["rank"]}">'
        f"<figcaption>#{top['rank']}: {top['value']:.3g}</figcaption></figure>"
        for top in record["top"]
    )
    wholes = "".join(
        whole_image(top["thumb"], top["box"], top["shape"], f"{os.path.basename(top['image'])}: {top['value']:.3g}")
        for top in record["top"]
    )
    quantiles = "".join(
        f'<figure><img src="{e(q["thumb"])}" alt="quantile" style="width:120px"><figcaption>'
        f"{round(100 * q['quantile'])}th percentile: {q['value']:.3g}<br>{e(os.path.basename(q['image']))}"
        "</figcaption></figure>"
        for q in record["quantiles"]
    )
    histogram = record["histogram"]
    verdict = "dead" if stats["dead"] else "rare" if stats["rare"] else "neither dead nor rare"
    classes = record["classes"]
    class_html = (
        ", ".join(f"{e(one['name'])} ({one['weight']:.3g})" for one in classes["classes"]) if classes["classes"] else ""
    )
    nexts = record["next"]
    body = (
        _nav(1, f' / <a href="index.html">{e(layer)}</a>', steps) + f"<h1>{e(layer)} #{unit} {verdict_tag(stats)}</h1>"
        f'<p class="muted">{e(record["kind"])}; mean {stats["mean"]:.3g}, max {stats["max"]:.3g}, active at '
        f"{100 * stats['active_fraction']:.2f}% of positions on {stats['images_active']} of {stats['images']} images: "
        f"{verdict} (active means {e(stats['active_means'])}; dead: never active; rare: active at under "
        f"{100 * rare:g}% of positions)</p>"
        f'<h2>Maximize</h2><div class="pics">{maximized}</div>'
        f"<h2>Kernel</h2>{kernel_html}"
        f'<h2>Top {len(record["top"])} patches</h2><div class="pics">{tops}</div>'
        f'<h2>Where, in the whole images</h2><div class="pics">{wholes}</div>'
        f'<h2>Ordinary images: the quantiles of its maximum</h2><div class="pics">{quantiles}</div>'
        f"<h2>Its maximum over the images</h2>{histogram_svg(histogram['counts'], histogram['edges'])}"
        f"<h2>Units of the next layer that weigh it most</h2><p>{_links(nexts['units'], 1)}</p>"
        f'<p class="muted">{e(nexts["how"])}</p>'
        f'<h2>Classes it raises most</h2><p>{class_html}</p><p class="muted">{e(classes["how"])}</p>'
    )
    return page(f"{layer} #{unit}", body, 1)
