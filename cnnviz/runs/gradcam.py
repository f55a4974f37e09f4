"""A Grad-CAM run, from a model and image files to pictures on disk: what ``cnnviz gradcam`` calls."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.headers import format_values
from cnnviz.draw.overlay import DEFAULT_ALPHA, heatmap_picture
from cnnviz.draw.render import Header, Picture, palette
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.gradcam import METHODS, Explanation, GradCam, Target, checked_region
from cnnviz.methods.shape import scan_all
from cnnviz.models.labels import class_name
from cnnviz.output.files import safe_name, save_npy, save_png
from cnnviz.runs.contract import Naming, Progress, ReadingSettings, RunResult, counted
from cnnviz.runs.explaining import ExplainingMethod, are_probabilities, explaining_line, top_classes


@dataclass(frozen=True)
class GradcamOptions(Naming, ReadingSettings):
    """What ``gradcam`` explains and how it draws it, besides the shared parts
    (:class:`cnnviz.runs.contract.Naming`, ``ReadingSettings``).

    Attributes:
        target: the class to explain in every image, an index or a name (``"281"``, ``"tabby"``); each image's top
            class when None.
        layer: the layer to explain at; the last conv layer with maps larger than 1x1 when None.
        method: ``gradcam`` or ``gradcam++``.
        labels_file: class names, one per line; the ImageNet names are used for 1,000-class models without it.
        cmap: the heatmap's colormap.
        alpha: the opacity of the hottest places, 0..1.
        save_raw: also write each heatmap as ``.npy`` (rows x cols at the input size, not normalised).
        labels: draw the header.
        top: how many of the model's top classes to report per image.
        output: for a model of several outputs, the name of the one to explain (the first by default).
        region: for a segmentation output, ``(top, left, bottom, right)`` in pixels of the model input (end
            exclusive): the score is the class's logits summed there, instead of over the pixels predicted as it.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    target: str | int | None = None
    layer: str | None = None
    method: str = "gradcam"
    labels_file: str | None = None
    cmap: str = "jet"
    alpha: float = DEFAULT_ALPHA
    save_raw: bool = False
    labels: bool = True
    top: int = 5
    output: str | None = None
    region: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        self.check_reading()
        palette(self.cmap)
        if self.method not in METHODS:
            raise OptionError(f"unknown method '{self.method}'; choose one of: {', '.join(METHODS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise OptionError(f"alpha is an opacity from 0 to 1, got {self.alpha}")
        if self.top < 1:
            raise OptionError(f"top must be at least 1, got {self.top}")
        checked_region(self.region)


@dataclass(frozen=True)
class ImageResult:
    """One image's Grad-CAM: the class explained, the model's top classes and what was written."""

    path: str
    target: int
    target_name: str
    top: list[tuple[str, float]]
    picture: Path
    raw: Path | None
    peak: float


@dataclass
class GradcamResult(RunResult):
    """What a Grad-CAM run did: :class:`cnnviz.runs.contract.RunResult`, and the layer explained, what was
    differentiated (``score``), whether the outputs read as probabilities, and each image's result."""

    layer: str = ""
    score: str = ""
    probabilities: bool = False
    images: list[ImageResult] = field(default_factory=list)
    head: str = "classes"
    output: str = ""


def render_gradcam(
    model: Any,
    images: Sequence[str | os.PathLike[str] | Input],
    out_dir: str | os.PathLike[str],
    options: GradcamOptions | None = None,
    progress: Progress | None = None,
) -> GradcamResult:
    """Explain each image and write ``out_dir/<image key>/<method>_<class>.png`` (and ``.npy`` with
    ``options.save_raw``): the image beside the heatmap blended onto it. ``progress`` is called with (images just
    done, images in the run).

    Raises:
        OptionError: a bad class or labels file, before any image is read.
        LayerNotFound, UnsupportedLayer, UnsupportedModel: the layer or the model does not fit Grad-CAM.
    """
    options = options if options is not None else GradcamOptions()
    inputs = gather_inputs(images, exclude=Path(out_dir))
    writing = GradcamWriting(options, str(out_dir), {item.path: item.key for item in inputs})
    reader = Reader(model, options)
    method = ExplainImages(model, reader, writing)
    report = GradcamResult(
        layer=method.explainer.layer,
        score=method.explainer.score,
        preprocessing=reader.preprocessing,
        fit=options.fit,
        inputs=len(inputs),
    )
    explainer = method.explainer
    report.head, report.output, report.precision = explainer.head, explainer.output, explainer.precision
    report.notes.extend(method.notes)
    scanned = scan_all(method, [item.path for item in inputs], counted(progress, len(inputs)))
    report.failures = scanned.failures
    if scanned.partial is not None:
        explained, report.probabilities = scanned.partial
        report.images = [explained[number] for number in sorted(explained)]
        report.written = [path for image in report.images for path in (image.picture, image.raw) if path is not None]
    return report


@dataclass(frozen=True)
class GradcamWriting:
    """What :class:`ExplainImages` is set up with: the run's options, the output folder, each input's folder key."""

    options: GradcamOptions
    out: str
    folders: dict[str, str]


#: :class:`ExplainImages`' partial: each image's result by its place in the run, and whether every batch's outputs
#: read as probabilities.
Explained = tuple[dict[int, "ImageResult"], bool]


class ExplainImages(ExplainingMethod[Explained]):
    """Grad-CAM over images as a method: each batch explained, each image's picture written (the image beside
    the heatmap blended onto it); the partial is each image's :class:`ImageResult` by its place in the run."""

    def __init__(self, model: Any, reader: Reader, options: GradcamWriting) -> None:
        super().__init__(model, reader, options)
        chosen = options.options
        target = Target(chosen.output, chosen.region)
        self.explainer = GradCam(model, chosen.layer, chosen.method, target, reader.settings)
        self.explaining(model, self.explainer, chosen, len(options.folders))

    def scan(self, batch: Batch) -> Explained:  # noqa: D102
        explained = self.guarded(lambda: self.explainer(batch.data, self.target, batch.numbers))
        probabilities = explained.head == "classes" and are_probabilities(explained.outputs)
        results = {}
        for index, (path, pixels) in enumerate(zip(batch.paths, batch.pixels, strict=True)):
            folder = Path(self.options.out) / self.options.folders[path]
            drawn = draw_explanation(path, pixels, explained, index, self.names, self.label, self.options.options)
            results[batch.numbers[index]] = _write_one(folder, path, drawn, self.options.options.save_raw)
        return results, probabilities

    @staticmethod
    def merge(first: Explained, second: Explained) -> Explained:  # noqa: D102
        return {**first[0], **second[0]}, first[1] and second[1]


@dataclass(frozen=True)
class DrawnExplanation:
    """One image's explanation drawn, before anything is written: the picture, the file stem it goes to
    (``<method>_<class>``), the class explained, the model's top classes and the heatmap's peak."""

    picture: Picture
    stem: str
    target: int
    target_name: str
    top: list[tuple[str, float]]
    heatmap: np.ndarray
    peak: float


def draw_explanation(
    path: str,
    pixels: np.ndarray | None,
    explained: Explanation,
    index: int,
    names: Sequence[str] | None,
    label: str,
    options: GradcamOptions,
) -> DrawnExplanation:
    """Image ``index`` of ``explained`` as ``gradcam`` draws it: the image beside the heatmap blended onto it, with
    the header naming the class, its score and the top classes (unless ``options.labels`` is off)."""
    outputs, top = top_classes(explained.outputs[index], explained.head, names, options.top)
    chosen = int(explained.classes[index])
    heatmap = explained.heatmaps[index]
    peak = float(heatmap.max(initial=0.0))
    name = explained.output if explained.head == "regression" else class_name(chosen, names)
    stem = f"{explained.method.replace('++', 'pp')}_{safe_name(name)}"
    header = _header(label, explained, Path(path).name, chosen, name, outputs, top, peak) if options.labels else None
    picture = heatmap_picture(pixels, heatmap, cmap=options.cmap, alpha=options.alpha, header=header)
    return DrawnExplanation(picture, stem, chosen, name, top, heatmap, peak)


def _write_one(folder: Path, path: str, drawn: DrawnExplanation, save_raw: bool) -> ImageResult:
    written = save_png(drawn.picture, folder / f"{drawn.stem}.png")
    raw = save_npy(drawn.heatmap, folder / f"{drawn.stem}.npy") if save_raw else None
    return ImageResult(path, drawn.target, drawn.target_name, drawn.top, written, raw, drawn.peak)


def _header(
    label: str,
    explained: Explanation,
    image: str,
    chosen: int,
    name: str,
    outputs: np.ndarray,
    top: list[tuple[str, float]],
    peak: float,
) -> Header:
    method = "Grad-CAM++" if explained.method == "gradcam++" else "Grad-CAM"
    explaining = explaining_line(explained.head, explained.output, name, chosen, outputs, top)
    lines = [f"{label} | {method} at {explained.layer} | {image}", explaining, f"gradient of {explained.score}"]
    if peak <= 0:
        lines.append("no place in the image raises this class's score at this layer: the heatmap is empty")
    low, high = format_values(0.0, peak)
    return Header(lines, low, high)
