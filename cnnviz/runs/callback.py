"""Watch a network learn: a Keras callback that draws filters and feature maps while the model trains.

Every ``every`` epochs (or ``every_batches`` batches) it writes the same grids as ``cnnviz filters`` and
``cnnviz featuremaps`` into one folder per step, ``out/epoch_001/filters_conv2d.png`` and
``out/epoch_001/cat/conv2d.png``, and at the end of training turns each grid's frames into a looping GIF
(:func:`cnnviz.output.animate.animate_folder`): ``out/filters_conv2d.gif``, ``out/cat/conv2d.gif``. With ``tensorboard``
it also logs the grids as image summaries and each layer's dead-filter count as a scalar, one step per drawing.
With ``cka`` it measures, at each drawing, each layer's linear CKA with the same layer of the model as it was when
training began, over the callback's images (``cnnviz compare``'s method): ``out/cka.png`` draws it over the steps,
and TensorBoard gets a scalar per layer (``cka_vs_start/<layer>``) and the picture.

The extractor is built once, from the model being trained (no reload), the first time it draws, and runs in
inference mode: dropout and batch normalisation neither change the drawing nor the training.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.draw.render import (
    FIXED_RANGE_NORMS,
    Picture,
    dead_filters,
)
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import gather_inputs
from cnnviz.inputs.images import read_image
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.compare import CompareQuery, Comparison
from cnnviz.methods.evaluation.randomize import model_copy
from cnnviz.methods.extract import Extractor, build_extractor
from cnnviz.methods.filters import layer_kernels
from cnnviz.models.graph import ConvLayer
from cnnviz.output.animate import DEFAULT_DURATION_MS, animate_folder
from cnnviz.output.compare_charts import training_chart
from cnnviz.output.files import safe_name, save_bytes, save_png
from cnnviz.output.summaries import SummaryLog
from cnnviz.runs.contract import RunResult
from cnnviz.runs.featuremaps import MapOptions, map_picture
from cnnviz.runs.filters import FilterOptions, filter_picture

keras = keras_module()

#: The run folder inside ``tensorboard``, beside the ``train`` and ``validation`` runs of Keras' own callback.
TENSORBOARD_RUN = "cnnviz"


@dataclass(frozen=True)
class CallbackOptions:
    """When and what :class:`VisualizeCallback` draws.

    Attributes:
        every: draw after every this many epochs (1 by default).
        every_batches: draw after every this many training batches instead (step folders ``step_000040``, numbered
            by batches since the callback's first training; a second ``fit`` goes on counting, as epochs go on from
            Keras' ``initial_epoch``).
        tensorboard: a TensorBoard log folder; grids and dead-filter counts go to its ``cnnviz`` run
            (:mod:`cnnviz.output.summaries`). Writing needs only TensorFlow; install ``tensorboard`` to look at them.
        names: names for the rows of an ``images`` array (``sample_0``, ``sample_1``... by default).
        filter_options: how filter grids are drawn, as ``cnnviz filters`` takes them. With ``global`` or
            ``symmetric`` normalisation and no ``value_range``, each layer's scale is fixed at its first drawing,
            so a change of colour between frames is a change of weights.
        map_options: how feature-map grids are drawn and images read, as ``cnnviz featuremaps`` takes them. The
            callback's own ``layers`` chooses the layers, and it draws plain grids into its step folders: options
            that do otherwise (``layers``, ``overlay``, ``save_raw``, ``skip_existing``, ``workers``, an engine
            other than ``local``) are refused, as are ``filter_options.layer`` and, in either, ``weights`` and
            ``source``, which only a manifest records.
        filters: draw the filter grids (the kernels of each layer).
        cka: at each drawing, each layer's linear CKA with itself at the start of training, over the images
            (:class:`cnnviz.methods.compare.Comparison`, with its default features): which layers the training
            changes. Needs images.
        animate: write the GIFs when training ends.
        duration_ms: how long each GIF frame shows.

    Raises:
        OptionError: a bad interval, or an option the callback cannot honour.
    """

    every: int | None = None
    every_batches: int | None = None
    tensorboard: str | os.PathLike[str] | None = None
    names: Sequence[str] | None = None
    filter_options: FilterOptions | None = None
    map_options: MapOptions | None = None
    filters: bool = True
    cka: bool = False
    animate: bool = True
    duration_ms: int = DEFAULT_DURATION_MS

    def __post_init__(self) -> None:
        if self.every is not None and self.every_batches is not None:
            raise OptionError("give every (epochs) or every_batches, not both")
        for name in ("every", "every_batches", "duration_ms"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OptionError(f"{name} must be at least 1, got {value}")
        filters = self.filter_options if self.filter_options is not None else FilterOptions()
        maps = self.map_options if self.map_options is not None else MapOptions()
        _refuse_what_the_callback_cannot_do(filters, maps)
        object.__setattr__(self, "filter_options", filters)
        object.__setattr__(self, "map_options", maps)


class VisualizeCallback(keras.callbacks.Callback):  # type: ignore[name-defined]
    """Draw filters and feature maps of conv layers during training, and animate them afterwards.

    Example::

        model.fit(x, y, epochs=20, callbacks=[
            cnnviz.VisualizeCallback(images=["sample_images/cat.jpg"], layers=["conv2d", "conv2d_1"],
                                     out="viz/", tensorboard="logs/")])

    Args:
        images: image files, folders or glob patterns whose feature maps to draw, read and preprocessed as
            ``cnnviz featuremaps`` reads them; or a model-ready array ``(N, rows, cols, channels)``, such as a few
            samples of the training data, fed as it is. None or empty draws filters only.
        layers: conv layer names, paths or patterns; all conv layers when None.
        out: the folder for the per-step folders and the GIFs.
        options: when and what to draw (:class:`CallbackOptions`); or give its fields as keywords (``settings``:
            ``every=2``, ``tensorboard="logs/"``, ...).

    Raises:
        OptionError: a bad interval or image name, an option the callback cannot honour, or both ``options`` and
            keywords.
    """

    def __init__(
        self,
        images: Sequence[str | os.PathLike[str]] | np.ndarray | None = None,
        layers: Sequence[str] | None = None,
        out: str | os.PathLike[str] = "viz",
        options: CallbackOptions | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        if options is not None and settings:
            raise OptionError("give the callback's options or their fields as keywords, not both")
        options = options if options is not None else CallbackOptions(**settings)
        assert options.filter_options is not None and options.map_options is not None
        self.options = options
        self.every = None if options.every_batches is not None else (options.every or 1)
        self.every_batches = options.every_batches
        self.out = Path(out)
        self.tensorboard = Path(options.tensorboard) / TENSORBOARD_RUN if options.tensorboard is not None else None
        self.layers = list(layers) if layers is not None else None
        self.filter_options = options.filter_options
        self.map_options = options.map_options
        self.draw_filters = options.filters
        self.animate = options.animate
        self.duration_ms = options.duration_ms
        self._sources = _image_sources(images, options.names)
        #: The fixed (low, high) colour scale of each layer's filters, from its first drawing or filter_options.
        self.filter_ranges: dict[str, tuple[float, float]] = {}
        #: What the callback has to say once (layers cut to 64 filters, ...), printed at its first drawing.
        self.notes: list[str] = []
        self.steps_drawn = 0
        self._extractor: Extractor | None = None
        self._inputs: list[tuple[list[str], np.ndarray]] = []
        self._log: SummaryLog | None = None
        self._batches = 0
        if options.cka and not self._sources:
            raise OptionError("cka compares the layers' maps on images: give the callback images")
        #: The model as training began, for ``cka``; and each drawing's step and CKA per layer.
        self._start: Any = None
        self._comparison: Comparison | None = None
        self.cka_history: list[tuple[int, dict[str, float]]] = []

    # Keras' hooks.

    def set_model(self, model: Any) -> None:
        """Keras hands the callback its model; another model than last time starts afresh (a new extractor, new
        fixed scales, a new start for ``cka``)."""
        if model is not self._model:
            self._extractor = None
            self._inputs = []
            self.filter_ranges = {}
            self._start, self._comparison, self.cka_history = None, None, []
        super().set_model(model)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:  # noqa: D102
        if self.options.cka and self._start is None and self.model.built:
            self._start = _frozen_copy(self.model)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:  # noqa: D102
        if self.options.cka and self._start is None and self.model.built:
            self._say("cka: the model had no weights before its first batch; its start is after that batch")
            self._start = _frozen_copy(self.model)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:  # noqa: D102
        self._batches += 1
        if self.every_batches is not None and self._batches % self.every_batches == 0:
            self.draw(f"step_{self._batches:06d}", f"step {self._batches}", self._batches)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:  # noqa: D102
        if self.every is not None and (epoch + 1) % self.every == 0:
            self.draw(f"epoch_{epoch + 1:03d}", f"epoch {epoch + 1}", epoch + 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:  # noqa: D102
        if self._log is not None:
            self._log.flush()
        if self.animate and self.steps_drawn:
            animate_folder(self.out, duration_ms=self.duration_ms)

    # The drawing.

    def draw(self, folder: str, caption: str, step: int) -> list[Path]:
        """Draw every grid now, into ``out/folder``, with ``caption`` (``epoch 3``) in each header and ``step``
        as the TensorBoard step. Keras calls it at the end of epochs or batches; after ``set_model(model)`` it
        can be called at other times too (``draw("epoch_000", "before training", 0)``).

        Returns:
            The PNG files written.
        """
        extractor = self._ready()
        filter_label = f"{self.filter_options.label_of(self.model)} | {caption}"
        map_label = f"{self.map_options.label_of(self.model)} | {caption}"
        target = self.out / folder
        written = []
        report = RunResult()
        log = self._summaries()

        def keep(picture: Picture, name: str, tag: str) -> None:
            written.append(save_png(picture, target / name))
            if log is not None:
                log.image(tag, picture, step)

        for conv in extractor.layers:
            kernels = layer_kernels(conv)
            if log is not None:
                log.scalar(f"dead_filters/{conv.path}", int(dead_filters(kernels).sum()), step)
            if self.draw_filters:
                options = self._filter_options(conv, kernels)
                picture = filter_picture(filter_label, conv, kernels, options, report)
                keep(picture, f"filters_{safe_name(conv.path)}.png", f"filters/{conv.path}")
        first = 0
        for names, batch in self._inputs:
            maps = extractor(batch, range(first, first + len(names)))  # images numbered in the order given
            first += len(names)
            for index, name in enumerate(names):
                for conv in extractor.layers:
                    picture = map_picture(map_label, conv, maps[conv.path][index], name, self.map_options)
                    keep(picture, f"{name}/{safe_name(conv.path)}.png", f"featuremaps/{name}/{conv.path}")
        for note in report.notes:
            self._say(note)
        if self.options.cka:
            chart = self._measure_cka(caption, step)
            written.append(save_bytes(chart, self.out / "cka.png"))
            if log is not None:
                log.image("cka_vs_start", _as_picture(chart), step)
        self.steps_drawn += 1
        return written

    def _measure_cka(self, caption: str, step: int) -> bytes:
        """Each layer's CKA with itself at the start, over the callback's images: logged, kept in
        :attr:`cka_history`, and drawn over the steps so far (the chart's PNG)."""
        from cnnviz.runs.compare import CompareOptions, compared

        if self._start is None:  # drawn before training: the start is now
            self._start = _frozen_copy(self.model)
        if self._comparison is None:
            query = CompareQuery(self._start, self.layers, self.layers)
            self._comparison = Comparison(self.model, Reader(self.model, self.map_options), query)
        method = self._comparison
        partial = None
        first = 0
        for names, batch in self._inputs:
            numbers = list(range(first, first + len(names)))
            first += len(names)
            found = method.scan(Batch(names, numbers, list(batch), True, batch))
            partial = found if partial is None else method.merge(partial, found)
        assert partial is not None
        label = self.map_options.label_of(self.model)
        result = compared(method, partial, CompareOptions(other=self._start, pairs=0), label)
        values = {drift.layer: drift.cka for drift in result.drift}
        self.cka_history.append((step, values))
        log = self._summaries()
        if log is not None:
            for layer, value in values.items():
                log.scalar(f"cka_vs_start/{layer}", value, step)
        steps = [done for done, _ in self.cka_history]
        lines = {layer: [found.get(layer, float("nan")) for _, found in self.cka_history] for layer in values}
        unit = "batch" if self.every_batches is not None else "epoch"
        title = f"{label}: each layer against itself at the start of training\n{result.measure} ({caption})"
        return training_chart(steps, lines, unit, title)

    def _ready(self) -> Extractor:
        """The extractor and the model-ready inputs, built at the first drawing (a Sequential model without an
        Input has no graph until its first batch)."""
        if self._extractor is None:
            extractor = build_extractor(self.model, self.layers, feeding=self.map_options)
            if extractor.feeds is not None:
                extractor.feeds.check_rows(len(self._sources))
            for note in extractor.run_notes():
                self._say(note)
            reader = Reader(self.model, self.map_options)
            arrays = []
            for name, source in self._sources:
                if isinstance(source, np.ndarray):
                    arrays.append((name, source.astype(np.float32)))
                    continue
                array, ready = reader.read(source)
                arrays.append((name, array if ready else reader.preprocessing(array[None])[0]))
            inputs = _batches(arrays, self.map_options.batch_size)
            self._extractor, self._inputs = extractor, inputs
        return self._extractor

    def _say(self, note: str) -> None:
        """Tell the user ``note`` on standard error, once per callback."""
        if note not in self.notes:
            self.notes.append(note)
            print(f"cnnviz: {note}", file=sys.stderr)

    def _filter_options(self, conv: ConvLayer, kernels: np.ndarray) -> FilterOptions:
        """The filter options with this layer's fixed scale: the one given, else the range of the first kernels
        drawn that were not all equal (a layer initialised to zeros has no range yet)."""
        options = self.filter_options
        if options.norm not in FIXED_RANGE_NORMS or options.rgb:
            return options
        if conv.path not in self.filter_ranges:
            lo, hi = float(kernels.min()), float(kernels.max())
            if options.value_range is None and not lo < hi:
                return options
            self.filter_ranges[conv.path] = options.value_range or (lo, hi)
        return replace(options, value_range=self.filter_ranges[conv.path])

    def _summaries(self) -> SummaryLog | None:
        if self._log is None and self.tensorboard is not None:
            self._log = SummaryLog(self.tensorboard)
        return self._log


#: How runs record the model in their manifests: the callback writes none (its headers use ``model_label``).
_NAMING = (
    ("weights", None, "the callback writes no manifest to record them in"),
    ("source", None, "the callback writes no manifest to record it in"),
)
#: Options the callback cannot honour, by the options object's name: (field, what it would take, why not).
_REFUSED = {
    "map_options": (
        ("layers", None, "the callback's own layers= chooses the layers"),
        ("overlay", False, "the callback draws plain grids"),
        ("save_raw", False, "the callback writes grids, not arrays"),
        ("skip_existing", False, "each step draws into a folder of its own"),
        ("workers", None, "the callback draws in the training's own thread"),
        ("engine", "local", "the callback draws in the training's own process"),
        ("address", None, "the callback draws in the training's own process"),
        ("ray_workers", None, "the callback draws in the training's own process"),
        *_NAMING,
    ),
    "filter_options": (("layer", None, "the callback's own layers= chooses the layers"), *_NAMING),
}


def _refuse_what_the_callback_cannot_do(filter_options: FilterOptions, map_options: MapOptions) -> None:
    """Raise :class:`OptionError` naming the first option the callback would otherwise ignore."""
    for name, options in (("filter_options", filter_options), ("map_options", map_options)):
        for field, default, why in _REFUSED[name]:
            value = getattr(options, field)
            if value != default:
                raise OptionError(f"VisualizeCallback cannot honour {name}.{field}={value!r}: {why}")


def _frozen_copy(model: Any) -> Any:
    """A copy of ``model`` with its weights as they are now, which the training does not touch
    (:func:`cnnviz.methods.evaluation.randomize.model_copy`).

    Raises:
        OptionError: Keras cannot rebuild the model from its config, so there is no start to compare with.
    """
    copy = model_copy(model)
    if copy is model:
        raise OptionError(f"cka needs a copy of model '{model.name}' as training begins; Keras cannot rebuild it")
    return copy


def _as_picture(png: bytes) -> Picture:
    """A chart's PNG as a :class:`cnnviz.draw.render.Picture`, for a TensorBoard image summary."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return Picture(np.asarray(image.convert("RGB")), None)


def _image_sources(
    images: Sequence[str | os.PathLike[str]] | np.ndarray | None, names: Sequence[str] | None
) -> list[tuple[str, str | np.ndarray]]:
    """(output name, file or model-ready array) for each image whose feature maps are drawn."""
    if images is None:
        return []
    if isinstance(images, np.ndarray):
        labels = list(names) if names is not None else [f"sample_{index}" for index in range(len(images))]
        if len(labels) != len(images):
            raise OptionError(f"{len(labels)} names for {len(images)} images")
        if len(set(labels)) != len(labels) or any(not label or "/" in label for label in labels):
            raise OptionError(f"image names must be distinct and not empty, without '/': {labels}")
        return list(zip(labels, images, strict=True))
    if names is not None:
        raise OptionError("names are for an array of images; image files are named by their paths")
    found = gather_inputs(images)
    for item in found:  # a broken file fails now, not after the first epoch's training
        if Path(item.path).suffix.lower() != ".npy":
            read_image(item.path).close()
    return [(item.key, item.path) for item in found]


def _batches(arrays: list[tuple[str, np.ndarray]], size: int) -> list[tuple[list[str], np.ndarray]]:
    """Stack named inputs into batches of up to ``size`` inputs of one shape, in order."""
    batches: list[tuple[list[str], list[np.ndarray]]] = []
    for name, array in arrays:
        if not batches or len(batches[-1][0]) >= size or batches[-1][1][0].shape != array.shape:
            batches.append(([], []))
        batches[-1][0].append(name)
        batches[-1][1].append(array)
    return [(names, np.stack(group)) for names, group in batches]
