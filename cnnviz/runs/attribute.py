"""An attribution run, from a model and image files to pictures on disk: what ``cnnviz explain`` and ``cnnviz
gradcam`` call.

Each image gets one picture. In the ``columns`` layout (``explain``): the image, then one column per method, each
the method's attribution blended onto the image, with the class explained and its score in the header. In the
``single`` layout (``gradcam``: one method): the image beside its heatmap, the header naming the method, the layer
and the model's top classes. With ``save_raw`` each attribution is also written as ``.npy`` at the model's input
size. The scan runs on the engine the
options choose (:func:`cnnviz.engines.dispatch.scan_inputs`): the pictures are drawn and written where the batch
is explained, here or in a Ray worker, so both engines write the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.headers import format_values
from cnnviz.draw.overlay import DEFAULT_ALPHA, HEAT_CMAP, heatmap_picture, heatmaps_picture
from cnnviz.draw.render import Header, Picture, palette
from cnnviz.engines.dispatch import EngineReading, scan_inputs
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.attribution import METHODS, Attributions, AttributionSettings, Attributor, check_methods
from cnnviz.methods.attribution.gradcam import GRADCAMS
from cnnviz.methods.shape import stopped_scan
from cnnviz.methods.target import Target, checked_region
from cnnviz.models.labels import class_name
from cnnviz.output.files import Folder, safe_name, save_bytes, save_npy, save_png
from cnnviz.runs.contract import Naming, Progress, RunResult, counted
from cnnviz.runs.explaining import ExplainingMethod, are_probabilities, explaining_line, top_classes


@dataclass(frozen=True)
class AttributeOptions(Naming, EngineReading):
    """What ``explain`` computes and draws, besides the shared parts (:class:`cnnviz.engines.naming.Naming`,
    :class:`cnnviz.engines.dispatch.EngineReading`: how images are read, and where the scan runs).

    Attributes:
        methods: method names (:data:`cnnviz.methods.attribution.METHODS`), one column each in this order.
        settings: the methods' own settings (:class:`cnnviz.methods.attribution.AttributionSettings`); one that
            none of the methods reads is refused.
        target: the class to explain in every image, an index or a name; each image's top class when None.
        layer: the layer of the class activation maps; the last conv layer with maps larger than 1x1 when None.
        labels_file: class names, one per line; ImageNet's for 1,000-class models without it.
        cmap: the heat's colormap.
        alpha: the opacity of the hottest places, 0..1.
        save_raw: also write each attribution as ``.npy`` (rows x cols at the input size; CAMs upsampled).
        labels: draw the header and the column titles.
        top: how many of the model's top classes to report per image.
        output: for a model of several outputs, the name of the one to explain.
        region: for a segmentation output, ``(top, left, bottom, right)`` in pixels of the model input.
        json: write the per-image, per-method records to this file.
        layout: ``columns`` (``attributions_<class>.png``: the image, then a column per method) or ``single`` (one
            method: ``<method>_<class>.png``, the image beside its heatmap, as ``gradcam`` draws it).

    Raises:
        OptionError: when made with a value that cannot work.
    """

    methods: Sequence[str] = ("gradcam",)
    settings: AttributionSettings = field(default_factory=AttributionSettings)
    target: str | int | None = None
    layer: str | None = None
    labels_file: str | None = None
    cmap: str = HEAT_CMAP
    alpha: float = DEFAULT_ALPHA
    save_raw: bool = False
    labels: bool = True
    top: int = 5
    output: str | None = None
    region: tuple[int, int, int, int] | None = None
    json: str | os.PathLike[str] | None = None
    layout: str = "columns"

    def __post_init__(self) -> None:
        self.check_engine_reading()
        object.__setattr__(self, "methods", check_methods(list(self.methods), self.settings))
        if self.layout not in LAYOUTS:
            raise OptionError(f"unknown layout '{self.layout}'; choose one of: {', '.join(LAYOUTS)}")
        if self.layout == "single" and len(self.methods) != 1:
            raise OptionError(f"the single layout draws one method; {len(self.methods)} are chosen")
        palette(self.cmap)
        if not 0.0 <= self.alpha <= 1.0:
            raise OptionError(f"alpha is an opacity from 0 to 1, got {self.alpha}")
        if self.top < 1:
            raise OptionError(f"top must be at least 1, got {self.top}")
        if self.layer is not None and not any(METHODS[name].needs_layer for name in self.methods):
            raise OptionError("`layer` is for the class activation maps; none of the methods chosen is one")
        checked_region(self.region)


@dataclass(frozen=True)
class GradcamOptions(AttributeOptions):
    """What ``gradcam`` explains: ``explain`` with one method, Grad-CAM or Grad-CAM++ (``method``), in the
    ``single`` layout (see :class:`AttributeOptions` for the rest)."""

    method: str = "gradcam"

    def __post_init__(self) -> None:
        if self.method not in GRADCAMS:
            raise OptionError(f"unknown method '{self.method}'; choose one of: {', '.join(GRADCAMS)}")
        object.__setattr__(self, "methods", (self.method,))
        object.__setattr__(self, "layout", "single")
        super().__post_init__()


@dataclass(frozen=True)
class AttributedImage:
    """One image's attributions: the class explained and its value, the model's top classes, the picture, and
    each method's raw file (with ``save_raw``) and peak."""

    path: str
    target: int
    target_name: str
    value: float
    top: list[tuple[str, float]]
    picture: Path
    raw: dict[str, Path]
    peaks: dict[str, float]


@dataclass
class AttributionResult(RunResult):
    """What an attribution run did: :class:`cnnviz.runs.contract.RunResult`, the methods, the layer of the CAMs,
    what was differentiated, whether the outputs read as probabilities, and each image's result."""

    methods: list[str] = field(default_factory=list)
    layer: str = ""
    score: str = ""
    probabilities: bool = False
    head: str = "classes"
    output: str = ""
    images: list[AttributedImage] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """One record per image and method, as ``json`` writes them."""
        return [
            {
                "image": image.path,
                "method": method,
                "class": image.target,
                "class_name": image.target_name,
                "score": image.value,
                "picture": str(image.picture),
                "file": str(image.raw[method]) if method in image.raw else None,
                "peak": image.peaks[method],
            }
            for image in self.images
            for method in self.methods
        ]


@dataclass(frozen=True)
class AttributeWriting:
    """What :class:`AttributeImages` is set up with: the run's options, the output folder, each input's key."""

    options: AttributeOptions
    out: str
    folders: dict[str, str]


@dataclass(frozen=True)
class Described:
    """What was explained, as the process that explained it saw it: the layer of the CAMs, what was differentiated,
    the head and the output (a Ray run's driver learns them from its workers, and loads no model)."""

    layer: str
    score: str
    head: str
    output: str


#: :class:`AttributeImages`' partial: each image's result by its place in the run, whether every batch's
#: outputs read as probabilities, and what was explained.
Attributed = tuple[dict[int, AttributedImage], bool, Described]


class AttributeImages(ExplainingMethod[Attributed]):
    """Attributions over images as a method: each batch explained by every method of the run, each image's
    picture (and raw files) written; the partial is each image's :class:`AttributedImage` by its place."""

    def __init__(self, model: Any, reader: Reader, options: AttributeWriting) -> None:
        super().__init__(model, reader, options)
        chosen = options.options
        self.attributor = Attributor(
            model,
            chosen.methods,
            chosen.layer,
            Target(chosen.output, chosen.region),
            reader.settings,
            chosen.settings,
            reader.preprocessing,
        )
        self.explaining(model, self.attributor.model, chosen, len(options.folders))

    def scan(self, batch: Batch) -> Attributed:  # noqa: D102
        attributed = self.guarded(lambda: self.attributor(batch.data, self.target, batch.numbers))
        probabilities = attributed.head == "classes" and are_probabilities(attributed.outputs)
        results = {}
        chosen = self.options.options
        for index, (path, pixels) in enumerate(zip(batch.paths, batch.pixels, strict=True)):
            drawn = draw_image(path, pixels, attributed, index, self.names, self.label, chosen)
            folder = Path(self.options.out) / self.options.folders[path]
            results[batch.numbers[index]] = write_attributions(folder, path, drawn, chosen.save_raw)
        model = self.attributor.model
        return results, probabilities, Described(model.layer, model.score, model.head, model.output)

    @staticmethod
    def merge(first: Attributed, second: Attributed) -> Attributed:  # noqa: D102
        return {**first[0], **second[0]}, first[1] and second[1], first[2]


@dataclass(frozen=True)
class DrawnAttributions:
    """One image's attributions drawn, before anything is written: the picture, the file stem
    (``attributions_<class>``, or ``<method>_<class>`` in the single layout), the class as file names say it, the
    class explained and its value, the top classes, and each method's heatmap."""

    picture: Picture
    stem: str
    part: str
    target: int
    target_name: str
    value: float
    top: list[tuple[str, float]]
    heatmaps: dict[str, np.ndarray]


@dataclass(frozen=True)
class Panel:
    """What a layout draws for one image: the image's path and fitted pixels, the batch's attributions, each
    method's heatmap for the image, the header's line saying what is explained, its peak and the model's label."""

    path: str
    pixels: np.ndarray | None
    attributed: Attributions
    heatmaps: dict[str, np.ndarray]
    explaining: str
    label: str


def draw_image(
    path: str,
    pixels: np.ndarray | None,
    attributed: Attributions,
    index: int,
    names: Sequence[str] | None,
    label: str,
    options: AttributeOptions,
) -> DrawnAttributions:
    """Image ``index`` of ``attributed`` as ``options.layout`` draws it (:data:`DRAWINGS`)."""
    outputs, top = top_classes(attributed.outputs[index], attributed.head, names, options.top)
    chosen = int(attributed.classes[index])
    name = attributed.output if attributed.head == "regression" else class_name(chosen, names)
    value = float(outputs[0] if attributed.head == "regression" else outputs[chosen])
    explaining = explaining_line(attributed.head, attributed.output, name, chosen, outputs, top)
    heatmaps = {method: attributed.heatmaps[method][index] for method in options.methods}
    picture, prefix = DRAWINGS[options.layout](Panel(path, pixels, attributed, heatmaps, explaining, label), options)
    part = safe_name(name)
    return DrawnAttributions(picture, f"{prefix}_{part}", part, chosen, name, value, top, heatmaps)


def _columns(panel: Panel, options: AttributeOptions) -> tuple[Picture, str]:
    """``explain``'s picture: the image, then a column per method, each to its own peak."""
    attributed, heatmaps = panel.attributed, panel.heatmaps
    header = None
    titles = None
    if options.labels:
        where = f" | CAMs at {attributed.layer}" if attributed.layer else ""
        lines = [
            f"{panel.label} | {Path(panel.path).name}{where}",
            panel.explaining,
            f"attributions of {attributed.score}",
        ]
        empty = [METHODS[method].title for method, heat in heatmaps.items() if float(heat.max(initial=0.0)) <= 0]
        if empty:
            lines.append(f"nothing raises the class here for: {', '.join(empty)} (empty columns)")
        low, high = format_values(0.0, 1.0)
        header = Header(lines, low, f"{high} (each column to its own peak)")
        titles = [METHODS[method].title for method in options.methods]
        titles = titles if panel.pixels is None else ["image", *titles]
    picture = heatmaps_picture(
        panel.pixels, list(heatmaps.values()), titles=titles, cmap=options.cmap, alpha=options.alpha, header=header
    )
    return picture, "attributions"


def _single(panel: Panel, options: AttributeOptions) -> tuple[Picture, str]:
    """``gradcam``'s picture: the image beside the one method's heatmap, the header naming the method, the layer,
    the class, its score and the top classes."""
    (method,) = options.methods
    attributed, heatmap = panel.attributed, panel.heatmaps[method]
    peak = float(heatmap.max(initial=0.0))
    header = None
    if options.labels:
        where = f" at {attributed.layer}" if attributed.layer else ""
        what = "gradient" if METHODS[method].needs_gradient else "attributions"
        lines = [
            f"{panel.label} | {METHODS[method].title}{where} | {Path(panel.path).name}",
            panel.explaining,
            f"{what} of {attributed.score}",
        ]
        if peak <= 0:
            lines.append("no place in the image raises this class's score at this layer: the heatmap is empty")
        low, high = format_values(0.0, peak)
        header = Header(lines, low, high)
    picture = heatmap_picture(panel.pixels, heatmap, cmap=options.cmap, alpha=options.alpha, header=header)
    return picture, method.replace("++", "pp")


#: How each layout draws an image, and the file name's prefix.
DRAWINGS = {"columns": _columns, "single": _single}
#: The layouts of an attribution run's pictures.
LAYOUTS = tuple(DRAWINGS)


def write_attributions(folder: Path, path: str, drawn: DrawnAttributions, save_raw: bool) -> AttributedImage:
    """Write one image's picture (and with ``save_raw`` each method's ``.npy``) into ``folder``."""
    written = save_png(drawn.picture, folder / f"{drawn.stem}.png")
    raw = {}
    if save_raw:
        for method, heatmap in drawn.heatmaps.items():
            raw[method] = save_npy(heatmap, folder / f"{method.replace('++', 'pp')}_{drawn.part}.npy")
    peaks = {method: float(heatmap.max(initial=0.0)) for method, heatmap in drawn.heatmaps.items()}
    return AttributedImage(path, drawn.target, drawn.target_name, drawn.value, drawn.top, written, raw, peaks)


def render_attributions(
    model: Any,
    images: Images,
    out_dir: Folder,
    options: AttributeOptions | None = None,
    progress: Progress | None = None,
) -> AttributionResult:
    """Explain each image with every method of ``options`` and write ``out_dir/<image key>/attributions_<class>.png``
    (and ``<method>_<class>.npy`` with ``save_raw``, and ``options.json``): a run of the shared shape
    (:mod:`cnnviz.runs.contract`), ``progress`` called with (images just done, images in the run).

    Raises:
        OptionError: a bad method, setting, class or labels file, before any image is read.
        LayerNotFound, UnsupportedLayer, UnsupportedModel: the layer or the model does not fit.
    """
    options = options if options is not None else AttributeOptions()
    inputs = gather_inputs(images, exclude=Path(out_dir))
    writing = AttributeWriting(options, str(out_dir), {item.path: item.key for item in inputs})
    report = AttributionResult(methods=list(options.methods), fit=options.fit, inputs=len(inputs))
    try:
        scanned = scan_inputs(AttributeImages, writing, model, inputs, options, counted(progress, len(inputs)))
    except BaseException as exc:
        stopped = stopped_scan(exc)
        if stopped is not None and options.json is not None and stopped.partial is not None:
            _write_json(options.json, _collected(report, stopped.partial).records())
        raise
    report.failures, report.notes, report.precision = scanned.failures, scanned.notes, scanned.precision
    report.preprocessing = scanned.preprocessing
    if scanned.partial is not None:
        _collected(report, scanned.partial)
    if options.json is not None:
        report.written.append(_write_json(options.json, report.records()))
    return report


def render_gradcam(
    model: Any, images: Images, out_dir: Folder, options: GradcamOptions | None = None, progress: Progress | None = None
) -> AttributionResult:
    """What ``gradcam`` calls: :func:`render_attributions` of one Grad-CAM, ``out_dir/<image key>/<method>_<class>.png``
    (the image beside its heatmap) and with ``save_raw`` the ``.npy`` beside it."""
    return render_attributions(model, images, out_dir, options if options is not None else GradcamOptions(), progress)


#: What a Grad-CAM run returns (:func:`render_gradcam`).
GradcamResult = AttributionResult


def _collected(report: AttributionResult, partial: Attributed) -> AttributionResult:
    explained, report.probabilities, about = partial
    report.layer, report.score, report.head, report.output = about.layer, about.score, about.head, about.output
    report.images = [explained[number] for number in sorted(explained)]
    report.written = [path for image in report.images for path in (image.picture, *image.raw.values())]
    return report


def _write_json(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> Path:
    return save_bytes((json.dumps(records, indent=2) + "\n").encode("utf-8"), path)
