"""``cnnviz report``: one static HTML page about a model and some images, with every picture cnnviz draws.

The page needs no server and loads nothing from the network: it is ``index.html`` beside the folders of PNGs it
shows, all linked by relative paths, so the folder can be zipped, mailed or published as it is. It holds the
conv-layer table, Grad-CAM for each image, and for every conv layer its filters, its dead-filter statistics, its
feature maps for each image and, with 9 images or more, the images and patches that excite each filter most.
Pictures load lazily, a sticky index on the left leads to each layer, and every name that came from the model or
a file is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cnnviz._keras import chosen_backend
from cnnviz.errors import CnnvizError, OptionError
from cnnviz.inputs.feeds import fed_description
from cnnviz.inputs.gather import Images, Input, gather_inputs
from cnnviz.methods.attribution import AttributionSettings, check_methods
from cnnviz.methods.attribution.base import REPORT_METHODS
from cnnviz.methods.evaluation import EvaluationSettings, check_metrics
from cnnviz.methods.stats import DEFAULT_RARE, LayerStats
from cnnviz.methods.top import DEFAULT_K, TopQuery, scan_top
from cnnviz.models.graph import input_shape, shape_text
from cnnviz.models.layer_table import layer_rows
from cnnviz.output.files import Folder, safe_name, save_bytes
from cnnviz.output.manifest import read_manifest
from cnnviz.output.report_page import (
    ComparisonBlock,
    Figure,
    LayerSection,
    Quality,
    ReportPage,
    figure_of,
    report_html,
)
from cnnviz.runs.contract import Naming, Progress, ReadingSettings, RunResult, counted
from cnnviz.runs.featuremaps import MapOptions, render_feature_maps
from cnnviz.runs.filters import FilterOptions, render_filters
from cnnviz.runs.stats import StatsOptions, run_stats
from cnnviz.runs.top import TopOptions, top_result

#: Feature maps drawn per layer and image in a report: a page of 512-map grids would be slow to scroll.
REPORT_MAX_MAPS = 64


@dataclass(frozen=True)
class ReportOptions(Naming, ReadingSettings):
    """What ``report`` puts on the page, besides the shared parts (:class:`cnnviz.runs.contract.Naming`: the
    model's name on the page and in every picture's header; ``ReadingSettings``: how images are read).

    Attributes:
        attributions: explain each image's top class (needs a model that ends in class scores; else a note on the page
            says why it is missing).
        methods: the attribution methods shown side by side for each image (:mod:`cnnviz.methods.attribution`);
            by default the four that take one forward and one backward pass each.
        quality: metrics (:data:`cnnviz.methods.evaluation.METRICS`) that score those methods on the images in
            an "explanation quality" block (``cnnviz evaluate``'s run); none for no block.
        settings: the methods' settings (:class:`cnnviz.methods.attribution.AttributionSettings`).
        evaluation: the metrics' settings (:class:`cnnviz.methods.evaluation.EvaluationSettings`).
        compare: a second model to compare the first with (``cnnviz compare``'s run, with its default settings):
            a Keras model or a :class:`cnnviz.engines.naming.ModelRef`; None for no comparison.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    attributions: bool = True
    methods: Sequence[str] = REPORT_METHODS
    quality: Sequence[str] = ()
    settings: AttributionSettings = field(default_factory=AttributionSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    compare: Any = None

    def __post_init__(self) -> None:
        self.check_reading()
        object.__setattr__(self, "methods", check_methods(list(self.methods), self.settings))
        if self.quality or self.evaluation.given():
            object.__setattr__(self, "quality", check_metrics(list(self.quality), self.evaluation))
            if not self.attributions:
                raise OptionError("the explanation quality block scores the attributions, which are left out")


@dataclass
class ReportResult(RunResult):
    """What ``write_report`` did: :class:`cnnviz.runs.contract.RunResult` (its notes are the page's), the page
    and how many pictures it shows."""

    page: Path | None = None
    pictures: int = 0


def write_report(
    model: Any, images: Images, out_dir: Folder, options: ReportOptions | None = None, progress: Progress | None = None
) -> ReportResult:
    """Draw everything for ``model`` and ``images`` into ``out_dir`` and write ``out_dir/index.html``, through the
    same runs as the commands (featuremaps, filters, stats, top, explain, evaluate), each naming the model as
    ``options`` does.

    Args:
        model: a Keras model.
        images: image files, folders and patterns, as ``featuremaps`` takes them.
        out_dir: the report's folder: ``index.html`` and the folders ``maps``, ``filters``, ``stats``, ``top``,
            ``attributions`` and ``quality``.
        options: how the model is named, how images are read, and which attribution methods and metrics to show.
        progress: called with (images just done, images times the passes over them).

    Raises:
        OptionError, LayerNotFound, UnsupportedModel, ...: when the model cannot be drawn at all.
    """
    options = options if options is not None else ReportOptions()
    from cnnviz.runs.attribute import AttributeOptions, render_attributions

    root = Path(out_dir)
    label = options.label_of(model)
    naming = Naming(label, options.weights, options.source)
    #: what every run of the report shares: the model's naming and how images are read
    shared = {**vars(naming), **{field.name: getattr(options, field.name) for field in fields(ReadingSettings)}}
    inputs = gather_inputs(images, exclude=root)
    names = {item.path: Path(item.path).name for item in inputs}
    ranked = len(inputs) >= DEFAULT_K  # a top-images block needs at least k images to rank
    passes = 2 + options.attributions + ranked + bool(options.quality) + (options.compare is not None)

    def advance(done: int, total: int) -> None:
        if progress is not None:
            progress(done, len(inputs) * passes)

    map_options = MapOptions(**shared, max_maps=REPORT_MAX_MAPS)
    maps = render_feature_maps(model, inputs, root / "maps", map_options, advance)
    notes = list(maps.notes) + [f"left out: {error}" for _, error in maps.failures]
    drawn = read_manifest(root / "maps" / "manifest.json").get("images", {})
    sections = [LayerSection(r["name"], r["kind"], r["kernel"], r["output"], r["params"]) for r in layer_rows(model)]
    for section in sections:
        try:
            written = render_filters(model, root / "filters", FilterOptions(**vars(naming), layer=section.name))
        except CnnvizError as exc:
            notes.append(f"filters of {section.name}: {exc}")
            continue
        section.filters = figure_of(written.written[0], root, f"{section.name}: learned kernels, one row per filter")
        notes.extend(note for note in written.notes if note not in notes)
        for item in inputs:
            record = drawn.get(item.path, {}).get("layers", {}).get(section.name)
            if record:
                section.maps.append(figure_of(Path(record["png"]), root, f"{names[item.path]}: {section.name}"))
    _add_stats(model, inputs, root, StatsOptions(**shared), sections, notes, advance)
    planes = [section.name for section in sections if section.output.count("x") == 2]  # top needs 2-D maps
    if ranked and planes:
        _add_top(model, inputs, root, TopOptions(**shared, layer=planes), sections, notes, advance)
    explained: list[Figure] = []
    if options.attributions:
        try:
            chosen = AttributeOptions(**shared, methods=options.methods, settings=options.settings)
            run = render_attributions(model, inputs, root / "attributions", chosen, advance)
            for result in run.images:
                best = ", ".join(f"{name} {value:.3f}" for name, value in result.top[:3])
                caption = f"{names[result.path]}: {result.target_name} (top: {best})"
                explained.append(figure_of(result.picture, root, caption))
        except CnnvizError as exc:
            notes.append(f"attributions left out: {exc}")
    quality = _quality(model, inputs, root, options, shared, notes, advance) if options.quality else None
    comparison = _comparison(model, inputs, root, options, shared, notes, advance) if options.compare else None
    facts = [
        ("model", label),
        ("weights", options.weights or "the model's own"),
        ("input", shape_text(input_shape(model, options.input))),
        ("preprocessing", maps.preprocessing.name if maps.preprocessing else options.preprocess),
        ("fit", maps.fit),
        ("computed on", f"Keras's {chosen_backend()} backend, in {maps.precision}"),
        ("images", ", ".join(names[item.path] for item in inputs)),
    ]
    if len(model.inputs) > 1:  # which input took the images, and what the others got
        given = options.feed or {}
        facts.insert(3, ("images into input", options.input or "the image-shaped one"))
        facts.insert(
            4,
            (
                "other inputs",
                ", ".join(f"{name}: {fed_description(value)}" for name, value in given.items()) or "zeros",
            ),
        )
    from cnnviz.methods.attribution import METHODS

    titles = [METHODS[method].title for method in options.methods]
    page = ReportPage(
        f"cnnviz report: {label}", facts, sections, explained, notes, titles, quality, comparison, _atlas(root, label)
    )
    target = save_bytes(report_html(page).encode("utf-8"), root / "index.html")
    shown = (len(s.maps) + (s.filters is not None) + (s.chart is not None) + (s.top is not None) for s in sections)
    pictures = sum(shown) + len(explained) + (quality is not None and quality.figure is not None)
    pictures += len(comparison.figures) if comparison is not None else 0
    return ReportResult(
        written=[target],
        failures=maps.failures,
        notes=notes,
        preprocessing=maps.preprocessing,
        fit=maps.fit,
        inputs=len(inputs),
        precision=maps.precision,
        page=target,
        pictures=pictures,
    )


def _atlas(root: Path, label: str) -> tuple[str, dict[str, str]] | None:
    """The atlas of this model beside the report, where ``cnnviz atlas`` writes with the same ``-o``
    (``root/<model>/atlas``, or ``root/atlas``): its path from the page, and the layers it has pages for, each with
    its folder; None where there is none."""
    for index in [root / "atlas" / "index.json", *sorted(root.glob("*/atlas/index.json"))]:
        try:
            record = json.loads(index.read_text(encoding="utf-8"))
            if record["model"] != label:
                continue
            layers = {layer["layer"]: safe_name(layer["layer"]) for layer in record["layers"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return index.parent.relative_to(root).as_posix(), layers
    return None


def _quality(
    model: Any,
    inputs: Sequence[Input],
    root: Path,
    options: ReportOptions,
    shared: dict[str, Any],
    notes: list[str],
    advance: Progress,
) -> Quality | None:
    """The "explanation quality" block: ``cnnviz evaluate``'s run of the report's methods and metrics."""
    from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images

    chosen = EvaluateOptions(
        **shared,
        methods=options.methods,
        metrics=options.quality,
        settings=options.settings,
        evaluation=options.evaluation,
    )
    try:
        run = evaluate_images(model, inputs, root / "quality", chosen, advance)
    except CnnvizError as exc:
        notes.append(f"explanation quality left out: {exc}")
        return None
    rows = [(r.metric, r.method, r.mean, r.std, r.count, r.better) for r in run.summary()]
    figure = None
    if run.picture is not None:
        figure = figure_of(run.picture, root, f"mean curves over {len(run.images)} images")
    said = [f"FAILS the randomization check: {', '.join(run.flagged())}"] if run.flagged() else []
    if run.undecided():
        said.append(
            f"UNDECIDED on the randomization check (its last step ranked nothing): {', '.join(run.undecided())}"
        )
    return Quality(rows, figure, said)


def _comparison(
    model: Any,
    inputs: Sequence[Input],
    root: Path,
    options: ReportOptions,
    shared: dict[str, Any],
    notes: list[str],
    advance: Progress,
) -> ComparisonBlock | None:
    """The comparison with ``options.compare``: ``cnnviz compare``'s run, into ``root/compare``."""
    from cnnviz.runs.compare import CompareOptions, run_compare

    try:
        run = run_compare(model, inputs, root / "compare", CompareOptions(**shared, other=options.compare), advance)
    except CnnvizError as exc:
        notes.append(f"comparison left out: {exc}")
        return None
    captions = {
        "cka.png": f"CKA of every layer of {run.label_a} (rows) with every layer of {run.label_b} (columns)",
        "drift.png": "per layer both share: its CKA with its twin, its units' map correlation, its weight change",
    }
    figures = [
        figure_of(path, root, captions.get(path.name, f"{path.stem[len('units_') :]}: the units that moved most"))
        for path in run.written
        if path.suffix == ".png"
    ]
    return ComparisonBlock(run.label_b, run.heading, run.best_matches(), figures, list(run.notes))


#: Filters ranked per layer in a report's top-images blocks: a 512-row picture would be slow to scroll.
REPORT_TOP_FILTERS = 16


def _add_top(
    model: Any,
    inputs: Sequence[Input],
    root: Path,
    options: TopOptions,
    sections: list[LayerSection],
    notes: list[str],
    progress: Progress,
) -> None:
    """The top images of each of ``options.layer`` (conv layers with 2-D maps): one scan over the images for all."""
    try:
        scan = scan_top(model, inputs, TopQuery(options.layers, options.k), options, counted(progress, len(inputs)))
        run = top_result(model, scan, root / "top", replace(options, max_filters=REPORT_TOP_FILTERS))
    except CnnvizError as exc:
        notes.append(f"top images left out: {exc}")
        return
    notes.extend(note for note in run.notes if note not in notes)
    pictures = iter(path for path in run.written if path.suffix == ".png")
    for section, picture in zip((s for s in sections if s.name in run.layers), pictures, strict=False):
        caption = f"{section.name}: the {options.k} images whose maps peak highest, per filter, and where"
        section.top = figure_of(picture, root, caption)


def _add_stats(
    model: Any,
    inputs: Sequence[Input],
    root: Path,
    options: StatsOptions,
    sections: list[LayerSection],
    notes: list[str],
    progress: Progress,
) -> None:
    """Dead-filter statistics over the images, a line and a chart per layer."""
    try:
        run = run_stats(model, inputs, root / "stats", options, progress)
    except CnnvizError as exc:
        notes.append(f"statistics left out: {exc}")
        return
    notes.extend(note for note in run.notes if note not in notes)
    by_layer: dict[str, LayerStats] = {stats.layer: stats for stats in run.layers}
    chart_of = dict(zip([stats.layer for stats in run.layers], run.written, strict=True))
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
