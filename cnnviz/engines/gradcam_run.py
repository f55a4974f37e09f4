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
from cnnviz.draw.render import Header, palette
from cnnviz.engines.contract import Naming, Progress, ReadingSettings, RunResult
from cnnviz.errors import CnnvizError, ForwardPassError, OptionError, brief
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.inputs.preprocess import resolve_preprocessing
from cnnviz.methods.extract import input_reader, load_groups, neutral_padding
from cnnviz.methods.gradcam import METHODS, Explanation, GradCam, checked_region
from cnnviz.models.labels import class_name, class_names, resolve_class
from cnnviz.output.files import safe_name, save_npy, save_png


@dataclass(frozen=True)
class GradcamOptions(Naming, ReadingSettings):
    """What ``gradcam`` explains and how it draws it, besides the shared parts
    (:class:`cnnviz.engines.contract.Naming`, ``ReadingSettings``).

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
    """What a Grad-CAM run did: :class:`cnnviz.engines.contract.RunResult`, and the layer explained, what was
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
    explainer = GradCam(
        model, options.layer, options.method, **options.choice, output=options.output, region=options.region
    )
    reader = input_reader(model, options.input)
    classes = explainer.classes
    names = class_names(classes, options.labels_file, model.name)
    target = None if options.target is None else resolve_class(options.target, classes, names)
    step = resolve_preprocessing(model, options.preprocess)
    inputs = gather_inputs(images, exclude=Path(out_dir))
    keys = {item.path: item.key for item in inputs}
    order = {path: number for number, path in enumerate(keys)}
    report = GradcamResult(
        layer=explainer.layer, score=explainer.score, preprocessing=step, fit=options.fit, inputs=len(inputs)
    )
    report.head, report.output, report.precision = explainer.head, explainer.output, explainer.precision
    report.notes.extend(explainer.notes)
    if explainer.feeds is not None:
        explainer.feeds.check_rows(len(keys))
        report.notes.extend(explainer.feeds.notes)
    label = options.label_of(model)

    def advance(count: int) -> None:
        if progress is not None:
            progress(count, len(keys))

    def failed(path: Any, exc: CnnvizError) -> None:
        report.failures.append((os.fspath(path), exc))
        advance(1)

    pad = neutral_padding(reader, step, options.fit)
    groups = load_groups(reader, list(keys), step, options.batch_size, options.size, options.fit, pad, failed, {})
    for pending, batch, ready in groups:
        try:
            explained = explainer(batch, target, [order[os.fspath(path)] for path, _ in pending])
        except CnnvizError:
            raise
        except Exception as exc:  # TensorFlow raises its own error types from inside the graph
            for path, _ in pending:
                failed(path, ForwardPassError(f"{path}: the model could not run on it: {brief(exc)}"))
            continue
        report.probabilities = explained.head == "classes" and _are_probabilities(explained.outputs)
        for index, (path, array) in enumerate(pending):
            pixels = None if ready or array.shape[-1] not in (1, 3) else array
            folder = Path(out_dir) / keys[os.fspath(path)]
            result = _write_one(folder, os.fspath(path), pixels, explained, index, names, label, options)
            report.images.append(result)
            report.written.extend(path for path in (result.picture, result.raw) if path is not None)
            advance(1)
    return report


def _are_probabilities(outputs: np.ndarray) -> bool:
    """Whether the model's outputs read as probabilities: in 0..1, each row summing to 1 (a softmax)."""
    return bool(outputs.size and outputs.min() >= 0 and outputs.max() <= 1 and np.allclose(outputs.sum(-1), 1, 1e-3))


def _write_one(
    folder: Path,
    path: str,
    pixels: np.ndarray | None,
    explained: Explanation,
    index: int,
    names: Sequence[str] | None,
    label: str,
    options: GradcamOptions,
) -> ImageResult:
    outputs = explained.outputs[index]
    chosen = int(explained.classes[index])
    if explained.head == "segmentation":  # each class's share of the predicted pixels
        counts = np.bincount(np.argmax(outputs, axis=-1).ravel(), minlength=outputs.shape[-1])
        outputs = counts / max(int(counts.sum()), 1)
    order = np.argsort(-outputs, kind="stable")[: options.top]
    top = [(class_name(int(k), names), float(outputs[k])) for k in order]
    heatmap = explained.heatmaps[index]
    peak = float(heatmap.max(initial=0.0))
    name = explained.output if explained.head == "regression" else class_name(chosen, names)
    stem = f"{explained.method.replace('++', 'pp')}_{safe_name(name)}"
    header = _header(label, explained, Path(path).name, chosen, name, outputs, top, peak) if options.labels else None
    picture = heatmap_picture(pixels, heatmap, cmap=options.cmap, alpha=options.alpha, header=header)
    written = save_png(picture, folder / f"{stem}.png")
    raw = save_npy(heatmap, folder / f"{stem}.npy") if options.save_raw else None
    return ImageResult(path, chosen, name, top, written, raw, peak)


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
    ranked = ", ".join(f"{top_name} {top_value:.3f}" for top_name, top_value in top)
    if explained.head == "regression":
        explaining = f"regression output '{explained.output}' = {float(outputs[0]):.4g}"
    elif explained.head == "segmentation":
        explaining = f"segmentation output '{explained.output}': {name} (class {chosen}); share of pixels: {ranked}"
    else:
        value = "p" if _are_probabilities(outputs[None]) else "score"
        explaining = f"explaining {name} (class {chosen}, {value} {float(outputs[chosen]):.3f}); top: {ranked}"
    lines = [f"{label} | {method} at {explained.layer} | {image}", explaining, f"gradient of {explained.score}"]
    if peak <= 0:
        lines.append("no place in the image raises this class's score at this layer: the heatmap is empty")
    low, high = format_values(0.0, peak)
    return Header(lines, low, high)
