"""``cnnviz report``: one static HTML page about a model and some images, with every picture cnnviz draws.

The page needs no server and loads nothing from the network: it is ``index.html`` beside the folders of PNGs it
shows, all linked by relative paths, so the folder can be zipped, mailed or published as it is. It holds the
conv-layer table, Grad-CAM for each image, and for every conv layer its filters, its dead-filter statistics and its
feature maps for each image. Pictures load lazily, a sticky index on the left leads to each layer, and every name
that came from the model or a file is escaped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.engines.featuremaps_run import MapOptions, render_feature_maps
from cnnviz.engines.filters_run import FilterOptions, render_filters
from cnnviz.errors import CnnvizError
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.methods.stats import DEFAULT_RARE, LayerStats, filter_stats
from cnnviz.models.graph import shape_text
from cnnviz.models.layer_table import layer_rows
from cnnviz.output.files import save_bytes
from cnnviz.output.manifest import read_manifest
from cnnviz.output.report_page import Figure, LayerSection, ReportPage, figure_of, report_html
from cnnviz.output.stats_report import write_stats

#: Feature maps drawn per layer and image in a report: a page of 512-map grids would be slow to scroll.
REPORT_MAX_MAPS = 64


@dataclass
class ReportResult:
    """What ``write_report`` did: the page, the notes it shows, the images that failed (of ``inputs`` found) and how
    many pictures the page shows."""

    page: Path
    notes: list[str]
    failures: list[tuple[str, CnnvizError]]
    pictures: int
    inputs: int = 0


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
        section.filters = figure_of(written.written[0], root, f"{section.name}: learned kernels, one row per filter")
        notes.extend(note for note in written.notes if note not in notes)
        for item in inputs:
            record = drawn.get(item.path, {}).get("layers", {}).get(section.name)
            if record:
                section.maps.append(figure_of(Path(record["png"]), root, f"{names[item.path]}: {section.name}"))
    _add_stats(model, inputs, root, label, sections, notes, preprocess, fit, batch_size)
    explained: list[Figure] = []
    if gradcam:
        try:
            run = render_gradcam(model, inputs, root / "gradcam", GradcamOptions(preprocess=preprocess, fit=fit))
            for result in run.results:
                ranked = ", ".join(f"{name} {value:.3f}" for name, value in result.top[:3])
                caption = f"{names[result.path]}: {result.target_name} (top: {ranked})"
                explained.append(figure_of(result.picture, root, caption))
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
        section.chart = figure_of(chart_of[section.name], root, f"{section.name}: share of active positions per filter")
