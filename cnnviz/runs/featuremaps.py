"""The feature-map run, from a model and files to PNG grids on disk: what ``cnnviz featuremaps`` calls.

The drawing is a method like any other (:class:`WriteMaps`: each batch's grids written, their manifest records as
the partial), so the engine the options choose runs it (:func:`cnnviz.engines.dispatch.scan_inputs`): here, or on
Ray's workers, which write into the output folder (a filesystem every node shares) while the driver writes the
manifest.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.headers import map_header
from cnnviz.draw.overlay import overlay_grid
from cnnviz.draw.render import MAP_NORMS, MAP_ORDERS, Header, Picture, channel_ranges, feature_map_grid
from cnnviz.draw.view import MapView
from cnnviz.engines.dispatch import scan_inputs
from cnnviz.errors import OptionError
from cnnviz.inputs.feeds import fed_description
from cnnviz.inputs.gather import Images, Input, gather_inputs
from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.extract import Extractor, build_extractor
from cnnviz.methods.shape import Method, stopped_scan
from cnnviz.models.graph import ConvLayer, sized_input_shape
from cnnviz.output.files import Folder, safe_name, save_npy, save_png
from cnnviz.output.manifest import read_manifest, update_manifest
from cnnviz.runs.contract import EngineReading, Naming, Progress, RunResult, check_view, counted


@dataclass(frozen=True)
class MapOptions(Naming, EngineReading, MapView):
    """How ``featuremaps`` selects, reads, normalises and draws (see :func:`cnnviz.draw.render.feature_map_grid`,
    which it is handed whole as its view).

    Besides the shared parts (:class:`cnnviz.runs.contract.Naming`, :class:`cnnviz.engines.dispatch.EngineReading`,
    :class:`cnnviz.draw.view.MapView`: ``norm``, ``cmap``, ``scale``, ``labels``, ``index``, ``max_maps``,
    ``order``):

    Attributes:
        layers: conv layer names, paths or patterns; all conv layers when None.
        save_raw: also write each layer's activations as ``.npy``.
        skip_existing: leave out images whose grids the manifest lists and that are on disk.
        overlay: blend each map onto the image (``<layer>_overlay.png``); the local engine only (Ray's workers do
            not keep the pixels).
        workers: threads drawing and writing grids; one per CPU when None.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    layers: Sequence[str] | None = None
    save_raw: bool = False
    skip_existing: bool = False
    overlay: bool = False
    workers: int | None = None

    def __post_init__(self) -> None:
        self.check_engine_reading()
        check_view(self, MAP_NORMS, "feature map normalisation")
        if self.engine != "local" and self.overlay:
            raise OptionError("overlays (`overlay`) run with the local engine: Ray's workers do not keep the pixels")
        if self.order not in MAP_ORDERS:
            raise OptionError(f"unknown map order '{self.order}'; choose one of: {', '.join(MAP_ORDERS)}")
        if self.max_maps is not None and self.max_maps < 1:
            raise OptionError(f"max_maps must be at least 1, got {self.max_maps}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"workers must be at least 1, got {self.workers}")


#: Overlay grids draw each map at the image's size, so big layers are cut to this many maps unless ``max_maps``
#: says otherwise.
DEFAULT_OVERLAY_MAPS = 64


def render_feature_maps(
    model: Any, images: Images, out_dir: Folder, options: MapOptions | None = None, progress: Progress | None = None
) -> RunResult:
    """Write one PNG grid per image and conv layer: ``out_dir/<image key>/<layer>.png``.

    ``images`` are files, folders (searched recursively; the output mirrors their tree) and glob patterns, as
    :func:`cnnviz.inputs.gather.gather_inputs` reads them. All selected layers come from one extractor, one forward
    pass per batch of images. The stages overlap: a background thread reads the next batch while the model runs,
    and a pool of threads draws and writes the previous batch's grids meanwhile (numpy, zlib and Pillow release
    the GIL); at most one batch of each is in flight, so memory is bounded by the batch size, not by the number
    of images. An image that cannot be read is reported in ``RunResult.failures`` and the others are still written.
    ``out_dir/manifest.json`` lists every grid written there, by this run and by earlier ones; it is also written
    when the run is interrupted (Ctrl-C), with what finished.

    Args:
        model: a Keras model.
        images: image files, folders and patterns (and ``.npy`` arrays for models that do not take images).
        out_dir: the output folder, created if needed.
        options: what to draw and how, and how the model is named; ``options.skip_existing`` leaves out images
            whose grids the manifest already lists and that are on disk. ``options.source`` tells later runs
            whether ``out_dir`` is theirs (:func:`cnnviz.output.manifest.model_folder`).
        progress: called with (images just done, images in the run) as images are finished.

    Raises:
        LayerNotFound, NotAConvLayer, UnsupportedLayer, UnsupportedModel, OptionError: before anything is written.
        ModelRunError: the model cannot run on any input.
    """
    options = options if options is not None else MapOptions()
    out = Path(out_dir)
    inputs = gather_inputs(images, exclude=out)
    report = RunResult(inputs=len(inputs))
    if options.skip_existing:
        layers = plan_maps(_loaded(model), options).extractor.layers
        done = finished_inputs(out, inputs, layers, options.save_raw)
        inputs = [item for item in inputs if item.path not in done]
        report.skipped = len(done)
    writing = MapWriting(options, str(out), {item.path: item.key for item in inputs})
    records: dict[str, dict[str, Any]] = {}
    try:
        if inputs:
            scanned = scan_inputs(WriteMaps, writing, model, inputs, options, counted(progress, len(inputs)))
            records = scanned.partial or {}
            report.failures, report.notes, report.precision = scanned.failures, scanned.notes, scanned.precision
            report.preprocessing, report.fit = scanned.preprocessing, scanned.fit
    except BaseException as exc:  # Ctrl-C, a full disk: the manifest still lists every grid on disk
        stopped = stopped_scan(exc)
        if stopped is not None:
            records, report.failures = stopped.partial or {}, stopped.failures
        raise
    finally:
        about = options.about(getattr(model, "name", "model"))
        update_manifest(out / "manifest.json", about, images=records, failures=report.failures)
    for record in records.values():
        for layer in record["layers"].values():
            report.written.extend(Path(layer[kind]) for kind in ("png", "npy") if kind in layer)
    return report


def _loaded(model: Any) -> Any:
    """A Keras model, or the one a :class:`cnnviz.engines.naming.ModelRef` loads."""
    from cnnviz.engines.naming import ModelRef

    return model.load() if isinstance(model, ModelRef) else model


@dataclass(frozen=True)
class MapWriting:
    """What :class:`WriteMaps` is set up with: the run's options, the output folder, and each input's folder key."""

    options: MapOptions
    out: str
    folders: dict[str, str]


class WriteMaps(Method[dict[str, dict[str, Any]]]):
    """Feature-map grids as a method: each batch's grids drawn and written by a pool of threads while the model
    runs on the next batch (numpy, zlib and Pillow release the GIL); the partial is the manifest records of the
    images whose grids are all written, by path. At most one batch of drawings is in flight, so memory is bounded
    by the batch size, not by the number of images."""

    def __init__(self, model: Any, reader: Reader, options: MapWriting) -> None:
        super().__init__(model, reader, options)
        self.plan = plan_maps(model, options.options, reader)
        self.label = options.options.label_of(model)
        self.notes, self.precision = list(self.plan.notes), self.plan.extractor.precision
        self.pool: ThreadPoolExecutor | None = None  # made for each scan (a Ray worker's block), closed after
        self.jobs: deque[tuple[str, ConvLayer, Future[tuple[dict[str, Any], list[Path]]]]] = deque()
        self.drawing: dict[str, dict[str, Any]] = {}  # images whose grids are being written

    def scan(self, batch: Batch) -> dict[str, dict[str, Any]]:  # noqa: D102
        plan, out, folders = self.plan, Path(self.options.out), self.options.folders
        maps = plan.extractor.forward(batch)
        overlay = plan.options.overlay
        if self.pool is None:
            workers = plan.options.workers or os.cpu_count() or 1
            self.pool = ThreadPoolExecutor(max_workers=workers, initializer=_yield_to_the_model)
        for index, (path, pixels) in enumerate(zip(batch.paths, batch.pixels, strict=True)):
            self.drawing[path] = image_record(folders[path], plan)
            for conv in plan.extractor.layers:
                args = (out / folders[path], conv, maps[conv.path][index], path, self.label, plan)
                self.jobs.append((path, conv, self.pool.submit(write_maps, *args, pixels if overlay else None)))
        # The previous batch's drawings finish while the model runs on the next one; no more wait.
        return self._collect(len(batch.paths) * len(plan.extractor.layers))

    def _collect(self, leave: int) -> dict[str, dict[str, Any]]:
        """The records of images whose grids are all written, waiting for all but the last ``leave`` jobs. Until
        they are handed back, every record stays in ``drawing``: a Ctrl-C while waiting leaves them to close()."""
        done = []
        while len(self.jobs) > leave:
            path, conv, job = self.jobs[0]
            self._record(path, conv, job.result()[0])
            self.jobs.popleft()
            if len(self.drawing[path]["layers"]) == len(self.plan.extractor.layers):
                done.append(path)
        return {path: self.drawing.pop(path) for path in done}

    def _record(self, path: str, conv: ConvLayer, record: dict[str, Any]) -> None:
        self.drawing[path]["layers"][conv.path] = record

    def close(self, stopped: bool) -> dict[str, dict[str, Any]] | None:
        """Wait for the drawings in flight; when stopped, grids already being written finish (each atomically),
        queued ones are dropped, and the records list every grid on disk, of whole images and of part ones."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=stopped)
            self.pool = None
        if not stopped:
            return self._collect(0)
        for path, conv, job in self.jobs:
            if job.done() and not job.cancelled() and job.exception() is None:
                self._record(path, conv, job.result()[0])
        self.jobs.clear()
        drawn = {path: image for path, image in self.drawing.items() if image["layers"]}
        self.drawing.clear()
        return drawn

    @staticmethod
    def merge(first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:  # noqa: D102
        merged = dict(first)
        for path, record in second.items():
            if path in merged:  # an image whose layers came in two parts (an interrupted run)
                merged[path] = {**merged[path], "layers": {**merged[path]["layers"], **record["layers"]}}
            else:
                merged[path] = record
        return merged


@dataclass(frozen=True)
class MapPlan:
    """What a feature-map run needs before it reads any image, made the same way by every engine.

    Attributes:
        extractor: over the selected layers.
        preprocessing: the step applied to pixels.
        options: the run's options, ``max_maps`` set where overlays cap big layers.
        fit: how headers and the manifest name the fit: ``options.fit``, or ``none`` where images keep their shape.
        notes: what to tell the user (layers left out).
    """

    extractor: Extractor
    preprocessing: Preprocessing
    options: MapOptions
    fit: str
    notes: tuple[str, ...] = ()


def plan_maps(model: Any, options: MapOptions, reader: Reader | None = None) -> MapPlan:
    """Build the extractor of a feature-map run, and its reader where none is given.

    Raises:
        LayerNotFound, NotAConvLayer, UnsupportedLayer, UnsupportedModel, OptionError: a bad choice.
    """
    extractor = build_extractor(model, options.layers, feeding=options)
    sized_input_shape(model, options.size, options.input)  # refuses a size that a fixed-size model cannot take
    reader = reader if reader is not None else Reader(model, options)
    notes = [
        f"skipped {conv.path}: a {conv.kind} has {len(conv.output_shape) - 1}-D maps" for conv in extractor.skipped
    ]
    notes += extractor.run_notes()
    if options.overlay:
        if not reader.taken.takes_images:
            raise OptionError("`overlay` draws maps over images; this model takes arrays (.npy), not images")
        widest = max(int(conv.output_shape[-1] or 0) for conv in extractor.layers)
        if options.max_maps is None and widest > DEFAULT_OVERLAY_MAPS:
            options = replace(options, max_maps=DEFAULT_OVERLAY_MAPS)
            notes.append(
                f"overlays: drawing maps 0-{DEFAULT_OVERLAY_MAPS - 1} of layers with more (up to {widest}); "
                "choose with `max_maps`"
            )
    return MapPlan(extractor, reader.preprocessing, options, reader.fit, tuple(notes))


def image_record(folder: str, plan: MapPlan) -> dict[str, Any]:
    """An image's manifest entry before its layers are added; for a model of several inputs, also which input took
    the image and what the others got (a file's path, ``array`` or ``zeros``)."""
    record: dict[str, Any] = {"folder": folder, "preprocessing": plan.preprocessing.name, "fit": plan.fit}
    if plan.extractor.precision != "float32":
        record["precision"] = plan.extractor.precision
    feeds = plan.extractor.feeds
    if feeds is not None:
        given = plan.options.feed or {}
        record["input"] = feeds.names[feeds.image_index]
        record["feed"] = {
            name: fed_description(given.get(name))
            for number, name in enumerate(feeds.names)
            if number != feeds.image_index
        }
    record["layers"] = {}
    return record


#: How much lower than the rest of the process the drawing threads run (a ``nice`` increment).
DRAWING_NICENESS = 5


def _yield_to_the_model() -> None:
    """Lower the calling thread's scheduling priority by :data:`DRAWING_NICENESS`, where the system allows it
    per thread (Linux). TensorFlow splits each layer of the forward pass across all cores and waits for its
    slowest part, so a drawing thread that takes a core mid-layer stalls the whole pass; at a lower priority
    drawing takes the gaps instead (bench/bench_runs.py: about 0.5 s less on 64 VGG16 images on 2 cores)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + DRAWING_NICENESS)
    except OSError:  # pragma: no cover - a sandbox that refuses it; drawing still works at the same priority
        pass


def finished_inputs(out: Path, inputs: Sequence[Input], layers: Sequence[ConvLayer], save_raw: bool) -> set[str]:
    """The inputs whose grids for all ``layers`` the manifest in ``out`` lists and that are on disk."""
    listed = read_manifest(out / "manifest.json").get("images", {})
    kinds = ("png", "npy") if save_raw else ("png",)
    done = set()
    for item in inputs:
        records = listed.get(item.path, {}).get("layers", {})
        on_disk = (
            conv.path in records and kind in records[conv.path] and Path(records[conv.path][kind]).is_file()
            for conv in layers
            for kind in kinds
        )
        if all(on_disk):
            done.add(item.path)
    return done


def write_maps(
    folder: Path,
    conv: ConvLayer,
    activation: np.ndarray,
    image: str,
    label: str,
    plan: MapPlan,
    pixels: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Draw and write one image's grid for one layer into ``folder`` as ``plan`` says (its options, and the fit its
    headers name); returns its manifest record and the files written. With ``options.overlay`` and the image's
    ``pixels`` (2-D maps only), each map is blended onto the image, into ``<layer>_overlay.png``."""
    options, fit = plan.options, plan.fit
    ranges = channel_ranges(activation)
    overlaid = False
    if options.overlay and pixels is not None and activation.ndim == 3:
        picture = overlay_picture(label, conv, activation, Path(image).name, options, pixels, fit)
        overlaid = True
    else:
        picture = map_picture(label, conv, activation, Path(image).name, options, ranges, fit)
    target = folder / f"{safe_name(conv.path)}{'_overlay' if overlaid else ''}.png"
    written = [save_png(picture, target)]
    record: dict[str, Any] = {
        "png": str(target),
        "norm": options.norm,
        "shape": list(activation.shape),
        "min": float(ranges[0].min()),
        "max": float(ranges[1].max()),
    }
    if overlaid:
        record["overlay"] = True
    if options.save_raw:
        written.append(save_npy(activation, folder / f"{safe_name(conv.path)}.npy"))
        record["npy"] = str(written[-1])
    return record, written


def map_picture(
    label: str,
    conv: ConvLayer,
    activation: np.ndarray,
    image_name: str,
    options: MapOptions,
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
    fit: str | None = None,
) -> Picture:
    """One image's feature-map grid of one layer, with its header unless ``options.labels`` is off.

    Args:
        label: the model's name in the header (and anything to say with it, such as the epoch).
        conv: the layer.
        activation: its maps for the image, channels last.
        image_name: the image's name in the header.
        options: how to normalise and draw.
        ranges: the maps' :func:`cnnviz.draw.render.channel_ranges`, if known already.
        fit: how the header names the fit; ``options.fit`` by default.
    """
    ranges = ranges if ranges is not None else channel_ranges(activation)
    header = _map_header(label, conv, activation, image_name, options, ranges, fit) if options.labels else None
    return feature_map_grid(activation, options, header=header, ranges=ranges)


def _map_header(
    label: str,
    conv: ConvLayer,
    activation: np.ndarray,
    image_name: str,
    options: MapOptions,
    ranges: tuple[np.ndarray, np.ndarray],
    fit: str | None = None,
) -> Header:
    return map_header(
        label, conv, activation, image_name, options, fit=options.fit if fit is None else fit, ranges=ranges
    )


def overlay_picture(
    label: str,
    conv: ConvLayer,
    activation: np.ndarray,
    image_name: str,
    options: MapOptions,
    pixels: np.ndarray,
    fit: str | None = None,
) -> Picture:
    """One image's feature maps of one layer blended onto the image (:func:`cnnviz.draw.overlay.overlay_grid`), with
    the feature-map header and a line saying how to read it, unless ``options.labels`` is off; ``fit`` is how the
    header names the fit (``options.fit`` by default)."""
    ranges = channel_ranges(activation)
    header = None
    if options.labels:
        base = _map_header(label, conv, activation, image_name, options, ranges, fit)
        note = "each map upsampled onto the image: colour where the filter fires, the photo where it does not"
        header = replace(base, lines=[*base.lines, note])
    return overlay_grid(activation, pixels, options, header=header, ranges=ranges)
