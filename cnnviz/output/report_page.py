"""The report's page: one HTML document with its style and script inline, every picture linked by a relative
path, and every name that came from the model or a file escaped. :mod:`cnnviz.runs.report` fills it."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from cnnviz._version import __version__


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
    top: Figure | None = None
    stats: str = ""
    maps: list[Figure] = field(default_factory=list)


@dataclass
class Quality:
    """The page's "explanation quality" block: one row per metric and method (metric, method, mean, standard
    deviation, images, which way is better), the picture of the curves, and what to say under them."""

    rows: list[tuple[str, str, float, float, int, str]]
    figure: Figure | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ComparisonBlock:
    """The page's comparison with a second model (``report --compare``): a line per layer of the first model
    (its CKA with the second's layer of the same name, and the second's best match), the pictures, and notes."""

    other: str
    heading: str
    rows: list[tuple[str, str, str]]
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportPage:
    """Everything the page holds, ready to be written as HTML by :func:`report_html`."""

    title: str
    facts: list[tuple[str, str]]
    layers: list[LayerSection]
    attributions: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The attribution methods of the ``attributions`` figures, as their pictures title them.
    methods: list[str] = field(default_factory=lambda: ["Grad-CAM"])
    #: Scores of those methods (``report --quality``), or None.
    quality: Quality | None = None
    #: The comparison with a second model (``report --compare``), or None.
    comparison: ComparisonBlock | None = None
    #: The atlas of the model beside the page (``cnnviz atlas`` with the same ``-o``): its folder from the page, and
    #: the layers it has pages for, by name, each with its folder; None where there is no atlas.
    atlas: tuple[str, dict[str, str]] | None = None


def figure_of(path: Path, root: Path, caption: str) -> Figure:
    with Image.open(path) as image:
        width, height = image.size
    return Figure(Path(os.path.relpath(path, root)).as_posix(), width, height, caption)


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


def _quality(quality: Quality) -> str:
    """The "explanation quality" section: the scores' table, best first per metric, and the curves."""
    rows = "".join(
        f'<tr><td>{_text(metric)}</td><td>{_text(method)}</td><td class="num">{mean:.3f}</td>'
        f'<td class="num">{std:.3f}</td><td class="num">{count}</td><td>{_text(better)}</td></tr>'
        for metric, method, mean, std, count, better in quality.rows
    )
    table = (
        '<table><thead><tr><th>metric</th><th>method</th><th class="num">mean</th><th class="num">std</th>'
        f'<th class="num">images</th><th>better</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    notes = "".join(f"<li>{_text(note)}</li>" for note in quality.notes)
    figure = _img(quality.figure) if quality.figure is not None else ""
    return (
        f'<section id="quality"><h2>Explanation quality</h2>{table}'
        f"{f'<ul class=notes>{notes}</ul>' if notes else ''}{figure}</section>"
    )


def _comparison(block: ComparisonBlock) -> str:
    """The comparison section: the table of each layer's CKA, then the heatmap, the drift and the moved units."""
    rows = "".join(
        f'<tr><td>{_text(layer)}</td><td class="num">{_text(same)}</td><td>{_text(best)}</td></tr>'
        for layer, same, best in block.rows
    )
    table = (
        '<table><thead><tr><th>layer</th><th class="num">CKA with the same layer</th><th>best match</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )
    notes = "".join(f"<li>{_text(note)}</li>" for note in block.notes)
    figures = "".join(_img(figure) for figure in block.figures)
    return (
        f'<section id="compare"><h2>Compared with {_text(block.other)}</h2><p>{_text(block.heading)}</p>{table}'
        f"{f'<ul class=notes>{notes}</ul>' if notes else ''}{figures}</section>"
    )


def _atlas_link(atlas: tuple[str, dict[str, str]] | None) -> str:
    """A link to the atlas beside the page, where there is one."""
    if atlas is None:
        return ""
    return f'<p><a href="{_text(atlas[0])}/index.html">The atlas: a page for every unit of these layers</a></p>'


def report_html(page: ReportPage) -> str:
    """The page as one HTML document: inline style and script, every picture by a relative link.

    >>> layer = LayerSection("base/conv<1>", "Conv2D", "3x3", "8x8x4", 112)
    >>> page = ReportPage("a <b> & c", [("model", "x<y")], [layer])
    >>> text = report_html(page)
    >>> "<title>a &lt;b&gt; &amp; c</title>" in text, 'href="#layer-0">base/conv&lt;1&gt;</a>' in text, "x&lt;y" in text
    (True, True, True)
    """
    index = ['<li><a href="#model">Model</a></li>', '<li><a href="#layers">Conv layers</a></li>']
    if page.attributions:
        index.append('<li><a href="#attributions">Where it looks</a></li>')
    if page.quality is not None:
        index.append('<li><a href="#quality">Explanation quality</a></li>')
    if page.comparison is not None:
        index.append('<li><a href="#compare">Comparison</a></li>')
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
        _atlas_link(page.atlas),
        f'<ul class="notes">{notes}</ul></section>' if notes else "</section>",
        '<section id="layers"><h2>Conv layers</h2><table><thead><tr><th>layer</th><th>kind</th><th>kernel</th>'
        f'<th>output</th><th class="num">params</th></tr></thead><tbody>{rows}</tbody></table></section>',
    ]
    if page.attributions:
        figures = "".join(_img(figure) for figure in page.attributions)
        methods = _text(", ".join(page.methods))
        parts.append(f'<section id="attributions"><h2>Where the model looks: {methods}</h2>{figures}</section>')
    if page.quality is not None:
        parts.append(_quality(page.quality))
    if page.comparison is not None:
        parts.append(_comparison(page.comparison))
    for number, section in enumerate(page.layers):
        about = f"{section.kind}, kernel {section.kernel}, output {section.output}, {section.params:,} params"
        body = [f'<section id="layer-{number}"><h2>{_text(section.name)} <small>{_text(about)}</small></h2>']
        if section.stats:
            body.append(f'<p class="stats">{_text(section.stats)}</p>')
        if page.atlas is not None and section.name in page.atlas[1]:
            href = f"{page.atlas[0]}/{page.atlas[1][section.name]}/index.html"
            body.append(f'<p><a href="{_text(href)}">its units in the atlas</a></p>')
        body += [_img(figure) for figure in (section.filters, section.chart) if figure is not None]
        if section.top is not None:
            body.append("<h3>Top images</h3>" + _img(section.top))
        if section.maps:
            body.append("<h3>Feature maps</h3>" + "".join(_img(figure) for figure in section.maps))
        body.append("</section>")
        parts.append("".join(body))
    parts.append(f'<p class="notes">Made by cnnviz {_text(__version__)}.</p></main>')
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
