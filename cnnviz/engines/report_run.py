"""``cnnviz report``: one static HTML page about a model and some images, with every picture cnnviz draws.

The page needs no server and loads nothing from the network: it is ``index.html`` beside the folders of PNGs it
shows, all linked by relative paths, so the folder can be zipped, mailed or published as it is. It holds the
conv-layer table, Grad-CAM for each image, and for every conv layer its filters, its dead-filter statistics and its
feature maps for each image. Pictures load lazily, a sticky index on the left leads to each layer, and every name
that came from the model or a file is escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image

from cnnviz import __version__
from cnnviz.engines.runs import FilterOptions, MapOptions, layer_rows, render_feature_maps, render_filters
from cnnviz.errors import CnnvizError
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.methods.stats import DEFAULT_RARE, LayerStats, filter_stats
from cnnviz.models.graph import shape_text
from cnnviz.output.files import read_manifest, save_bytes
from cnnviz.output.stats_report import write_stats

#: Feature maps drawn per layer and image in a report: a page of 512-map grids would be slow to scroll.
REPORT_MAX_MAPS = 64


@dataclass(frozen=True)
class Figure:
    """A picture on the page: its path relative to the page, its size in pixels and a caption."""

    src: str
    width: int
    height: int
    caption: str


@dataclass
class LayerSection:
    """What the page shows for one conv layer."""

    name: str
    kind: str
    kernel: str
    output: str
    params: int
    filters: Figure | None = None
    chart: Figure | None = None
    stats: str = ""
    maps: list[Figure] = field(default_factory=list)


@dataclass
class ReportPage:
    """Everything the page holds, ready to be written as HTML by :func:`report_html`."""

    title: str
    facts: list[tuple[str, str]]
    layers: list[LayerSection]
    gradcam: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    """What ``write_report`` did: the page, the notes it shows, the images that failed (of ``inputs`` found) and how
    many pictures the page shows."""

    page: Path
    notes: list[str]
    failures: list[tuple[str, CnnvizError]]
    pictures: int
    inputs: int = 0


def _figure(path: Path, root: Path, caption: str) -> Figure:
    with Image.open(path) as image:
        width, height = image.size
    return Figure(Path(os.path.relpath(path, root)).as_posix(), width, height, caption)


def write_report(
    model: Any,
    images: Sequence[str | os.PathLike[str] | Input],
    out_dir: str | os.PathLike[str],
    *,
    model_label: str | None = None,
    weights: str | None = None,
    preprocess: str = "auto",
    fit: str = "crop",
    batch_size: int = 8,
    gradcam: bool = True,
) -> ReportResult:
    """Draw everything for ``model`` and ``images`` into ``out_dir`` and write ``out_dir/index.html``.

    Args:
        model: a Keras model.
        images: image files, folders and patterns, as ``featuremaps`` takes them.
        out_dir: the report's folder: ``index.html`` and the folders ``maps``, ``filters``, ``stats``, ``gradcam``.
        model_label: the model's name on the page and in headers.
        weights: how the weights came, for the page.
        preprocess, fit, batch_size: how images are read, as for ``featuremaps``.
        gradcam: explain each image's top class (needs a model that ends in class scores; else a note says why
            it is missing).

    Raises:
        OptionError, LayerNotFound, UnsupportedModel, ...: when the model cannot be drawn at all.
    """
    from cnnviz.engines.gradcam_run import GradcamOptions, render_gradcam

    root = Path(out_dir)
    label = model_label or model.name
    inputs = gather_inputs(images, exclude=root)
    names = {item.path: Path(item.path).name for item in inputs}
    options = MapOptions(max_maps=REPORT_MAX_MAPS, preprocess=preprocess, fit=fit, batch_size=batch_size)
    maps = render_feature_maps(model, inputs, root / "maps", options, model_label=label, weights=weights)
    notes = list(maps.notes) + [f"left out: {error}" for _, error in maps.failures]
    drawn = read_manifest(root / "maps" / "manifest.json").get("images", {})
    sections = [LayerSection(r["name"], r["kind"], r["kernel"], r["output"], r["params"]) for r in layer_rows(model)]
    for section in sections:
        try:
            written = render_filters(model, section.name, root / "filters", FilterOptions(), model_label=label)
        except CnnvizError as exc:
            notes.append(f"filters of {section.name}: {exc}")
            continue
        section.filters = _figure(written.written[0], root, f"{section.name}: learned kernels, one row per filter")
        notes.extend(note for note in written.notes if note not in notes)
        for item in inputs:
            record = drawn.get(item.path, {}).get("layers", {}).get(section.name)
            if record:
                section.maps.append(_figure(Path(record["png"]), root, f"{names[item.path]}: {section.name}"))
    _add_stats(model, inputs, root, label, sections, notes, preprocess, fit, batch_size)
    explained: list[Figure] = []
    if gradcam:
        try:
            run = render_gradcam(model, inputs, root / "gradcam", GradcamOptions(preprocess=preprocess, fit=fit))
            for result in run.results:
                ranked = ", ".join(f"{name} {value:.3f}" for name, value in result.top[:3])
                caption = f"{names[result.path]}: {result.target_name} (top: {ranked})"
                explained.append(_figure(result.picture, root, caption))
        except CnnvizError as exc:
            notes.append(f"Grad-CAM left out: {exc}")
    facts = [
        ("model", label),
        ("weights", weights or "the model's own"),
        ("input", shape_text(model.inputs[0].shape[1:])),
        ("preprocessing", maps.preprocessing.name if maps.preprocessing else preprocess),
        ("fit", maps.fit),
        ("images", ", ".join(names[item.path] for item in inputs)),
    ]
    page = ReportPage(f"cnnviz report: {label}", facts, sections, explained, notes)
    target = save_bytes(report_html(page).encode("utf-8"), root / "index.html")
    pictures = sum(len(s.maps) + (s.filters is not None) + (s.chart is not None) for s in sections) + len(explained)
    return ReportResult(target, notes, maps.failures, pictures, len(inputs))


def _add_stats(
    model: Any,
    inputs: Sequence[Input],
    root: Path,
    label: str,
    sections: list[LayerSection],
    notes: list[str],
    preprocess: str,
    fit: str,
    batch_size: int,
) -> None:
    """Dead-filter statistics over the images, a line and a chart per layer."""
    try:
        run = filter_stats(model, inputs, preprocess=preprocess, fit=fit, batch_size=batch_size)
    except CnnvizError as exc:
        notes.append(f"statistics left out: {exc}")
        return
    by_layer: dict[str, LayerStats] = {stats.layer: stats for stats in run.layers}
    charts = write_stats(run.layers, root / "stats", label)
    chart_of = dict(zip([stats.layer for stats in run.layers], charts, strict=True))
    for section in sections:
        stats = by_layer.get(section.name)
        if stats is None:
            continue
        dead, rare = int(stats.dead.sum()), int(stats.rare(DEFAULT_RARE).sum())
        section.stats = (
            f"{stats.filters} filters over {stats.images} image{'' if stats.images == 1 else 's'}: {dead} dead "
            f"(never active), {rare} rarely active (under {100 * DEFAULT_RARE:g}% of positions); active means "
            f"{stats.rule}"
        )
        section.chart = _figure(chart_of[section.name], root, f"{section.name}: share of active positions per filter")


_STYLE = """
:root { --ink: #1d2330; --muted: #5d6677; --line: #d9dde5; --accent: #2c5d9e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       display: grid; grid-template-columns: 15rem minmax(0, 1fr); }
nav { position: sticky; top: 0; align-self: start; height: 100vh; overflow-y: auto; padding: 1rem;
      border-right: 1px solid var(--line); background: #f7f8fa; font-size: 13px; }
nav h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 .5rem; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav li a { display: block; padding: .15rem .3rem; color: var(--accent); text-decoration: none;
           overflow-wrap: anywhere; border-radius: 3px; }
nav li a:hover { background: #e6ebf3; }
main { padding: 1rem 2rem 4rem; min-width: 0; }
h1 { font-size: 1.5rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; margin-top: 2.5rem; }
h2 small { color: var(--muted); font-weight: normal; }
section { scroll-margin-top: 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { color: var(--muted); font-size: 13px; }
img.missing { outline: 3px solid #c0392b; min-height: 2rem; }
.notes li { color: var(--muted); }
.stats { margin: .3rem 0; }
@media (max-width: 900px) {
  body { display: block; }
  nav { position: static; height: auto; border-right: 0; border-bottom: 1px solid var(--line); }
  nav ul { display: flex; flex-wrap: wrap; gap: .2rem .6rem; }
  main { padding: 1rem; }
}
"""

# Counts the pictures that loaded and those that did not (outlined in red: a page moved without its folders), on
# the body's data-loaded / data-missing, for a person's eye and for tests.
_SCRIPT = """
(function () {
  var loaded = 0, missing = 0, body = document.body;
  function mark() { body.setAttribute("data-loaded", loaded); body.setAttribute("data-missing", missing); }
  Array.prototype.forEach.call(document.images, function (img) {
    if (img.complete && img.naturalWidth > 0) { loaded += 1; return; }
    img.addEventListener("load", function () { loaded += 1; mark(); });
    img.addEventListener("error", function () { missing += 1; img.classList.add("missing"); mark(); });
  });
  mark();
})();
"""


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(figure: Figure) -> str:
    src = _text(quote(figure.src))
    return (
        f'<figure><img src="{src}" width="{figure.width}" height="{figure.height}" loading="lazy" '
        f'alt="{_text(figure.caption)}"><figcaption>{_text(figure.caption)}</figcaption></figure>'
    )


def report_html(page: ReportPage) -> str:
    """The page as one HTML document: inline style and script, every picture by a relative link.

    >>> layer = LayerSection("base/conv<1>", "Conv2D", "3x3", "8x8x4", 112)
    >>> page = ReportPage("a <b> & c", [("model", "x<y")], [layer])
    >>> text = report_html(page)
    >>> "<title>a &lt;b&gt; &amp; c</title>" in text, 'href="#layer-0">base/conv&lt;1&gt;</a>' in text, "x&lt;y" in text
    (True, True, True)
    """
    index = ['<li><a href="#model">Model</a></li>', '<li><a href="#layers">Conv layers</a></li>']
    if page.gradcam:
        index.append('<li><a href="#gradcam">Grad-CAM</a></li>')
    index += [f'<li><a href="#layer-{n}">{_text(s.name)}</a></li>' for n, s in enumerate(page.layers)]
    facts = "".join(f"<dt>{_text(key)}</dt><dd>{_text(value)}</dd>" for key, value in page.facts)
    notes = "".join(f"<li>{_text(note)}</li>" for note in page.notes)
    rows = "".join(
        f'<tr><td><a href="#layer-{n}">{_text(s.name)}</a></td><td>{_text(s.kind)}</td><td>{_text(s.kernel)}</td>'
        f'<td>{_text(s.output)}</td><td class="num">{s.params:,}</td></tr>'
        for n, s in enumerate(page.layers)
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(page.title)}</title><style>{_STYLE}</style></head>",
        f'<body><nav aria-label="Contents"><h2>Contents</h2><ul>{"".join(index)}</ul></nav><main>',
        f'<section id="model"><h1>{_text(page.title)}</h1><dl class="facts">{facts}</dl>',
        f'<ul class="notes">{notes}</ul></section>' if notes else "</section>",
        '<section id="layers"><h2>Conv layers</h2><table><thead><tr><th>layer</th><th>kind</th><th>kernel</th>'
        f'<th>output</th><th class="num">params</th></tr></thead><tbody>{rows}</tbody></table></section>',
    ]
    if page.gradcam:
        figures = "".join(_img(figure) for figure in page.gradcam)
        parts.append(f'<section id="gradcam"><h2>Where the model looks: Grad-CAM</h2>{figures}</section>')
    for number, section in enumerate(page.layers):
        about = f"{section.kind}, kernel {section.kernel}, output {section.output}, {section.params:,} params"
        body = [f'<section id="layer-{number}"><h2>{_text(section.name)} <small>{_text(about)}</small></h2>']
        if section.stats:
            body.append(f'<p class="stats">{_text(section.stats)}</p>')
        body += [_img(figure) for figure in (section.filters, section.chart) if figure is not None]
        if section.maps:
            body.append("<h3>Feature maps</h3>" + "".join(_img(figure) for figure in section.maps))
        body.append("</section>")
        parts.append("".join(body))
    parts.append(f'<p class="notes">Made by cnnviz {_text(__version__)}.</p></main>')
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
