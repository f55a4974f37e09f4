"""The atlas run: a linkable page for every unit of every chosen conv layer, what ``cnnviz atlas`` calls.

Two kinds of work, each on the engine the options choose:

1. **One pass over the images** for every chosen layer at once (:class:`cnnviz.methods.atlas.AtlasScan`): each
   unit's ``stats`` verdict, its ``top`` images with their positions, and its maximum on every image. The pass is
   kept beside the site, in ``.atlas-scan.pickle`` (the site is what you publish), with what it was computed from,
   so running the command again skips it.
2. **Work over units**: ``maximize`` for every unit (:class:`cnnviz.methods.maximize.MaximizeUnits`), in fixed
   chunks of ``chunk`` units of one layer, run here or on Ray actors (:func:`cnnviz.engines.units.run_units`).
   Each unit's picture and page are written as its chunk finishes; a unit whose picture exists is not computed
   again, so a run stopped by Ctrl-C or killed leaves a working site and the same command does only the rest.

The pages (:mod:`cnnviz.output.atlas_site`) come from the data alone, in a fixed order and without times or
absolute paths: the same settings and seed give the same bytes whatever the engine, the workers or the stops.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.render import Picture
from cnnviz.draw.tiling import upscale
from cnnviz.draw.top import drawable_input
from cnnviz.engines.dispatch import EngineReading, scan_inputs
from cnnviz.engines.naming import ModelRef, Naming
from cnnviz.engines.units import run_units
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Images
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.methods.atlas import AtlasQuery, AtlasScan, LayerData, atlas_layers
from cnnviz.methods.maximize import DEFAULT_SIZE, DEFAULT_STEPS, Maximized, MaximizeOptions, MaximizeUnits, MaximizeWork
from cnnviz.methods.stats import DEFAULT_RARE
from cnnviz.methods.top import DEFAULT_K, TopScan
from cnnviz.methods.units import UnitChunk
from cnnviz.methods.wiring import head_classes, strongest_inputs, strongest_readers
from cnnviz.models.graph import ConvLayer, shape_text, trace
from cnnviz.models.labels import class_name, class_names
from cnnviz.output import atlas_site as site
from cnnviz.output.files import Folder, save_png, write_atomic
from cnnviz.runs.contract import Progress, RunResult, counted, find_inputs
from cnnviz.runs.top import Patches, TopOptions, top_record
from cnnviz.selection import check_selection, parse_selection

#: The side of the whole-image thumbnails the pages show, in pixels.
THUMB = 160
#: The side of a unit's top patches in the site, in pixels (a page shows them at 96).
PATCH = 64
#: Bins of a unit's histogram of maxima.
BINS = 20
#: The units per layer a layer page's strip (on the index) shows: the most active.
STRIP = 8


@dataclass(frozen=True)
class AtlasOptions(Naming, EngineReading):
    """What ``atlas`` computes, besides the shared parts (:class:`cnnviz.engines.naming.Naming`,
    :class:`cnnviz.engines.dispatch.EngineReading`: how images are read, and where both kinds of work run).

    Attributes:
        layers: conv layer names, paths or patterns; every conv layer with 2-D maps when None.
        filters: the units of each layer, a selection such as ``0:16``; all when None.
        k: the top images kept per unit.
        threshold: what counts as active in layers without a ReLU of their own (as ``stats``).
        rare: a unit active at fewer than this share of positions (but not dead) is rarely active.
        maximize: compute each unit's ``maximize`` picture (False: a data-only atlas, in the time of one scan).
        steps: ``maximize``'s gradient-ascent steps.
        side: ``maximize``'s images' side in pixels.
        seed: ``maximize``'s seed; the same seed gives the same site, byte for byte.
        chunk: units of one layer optimised together (``maximize``'s batch).

    Raises:
        OptionError: when made with a value that cannot work.
    """

    layers: Sequence[str] | None = None
    filters: str | None = None
    k: int = DEFAULT_K
    threshold: float = 0.0
    rare: float = DEFAULT_RARE
    maximize: bool = True
    steps: int = DEFAULT_STEPS
    side: int = DEFAULT_SIZE
    seed: int = 0
    chunk: int = MaximizeOptions.batch_size

    def __post_init__(self) -> None:
        self.check_engine_reading()
        AtlasQuery(self.layers, self.k, self.threshold)
        self.maximizing  # noqa: B018 - checks steps, side and chunk
        if self.filters is not None:
            check_selection(self.filters, "filter")
        if not 0.0 <= self.rare <= 1.0:
            raise OptionError(f"rare is a share of positions from 0 to 1, got {self.rare}")

    @property
    def maximizing(self) -> MaximizeWork:
        """What each unit's ``maximize`` is set up with (``cnnviz maximize``'s settings for the same values)."""
        options = MaximizeOptions(steps=self.steps, size=self.side, seed=self.seed, batch_size=self.chunk)
        return MaximizeWork(options, self.feeding)

    def shared(self, kind: type) -> dict[str, Any]:
        """The fields of ``kind`` (a part these options share) and their values."""
        return {item.name: getattr(self, item.name) for item in fields(kind)}


@dataclass
class AtlasResult(RunResult):
    """What an atlas run did: :class:`cnnviz.runs.contract.RunResult`, the site's folder and its counts."""

    folder: Path | None = None
    layers: list[str] = field(default_factory=list)
    units: int = 0
    maximized: int = 0
    computed: int = 0


def build_atlas(
    model: Any,
    images: Images,
    out_dir: Folder,
    options: AtlasOptions | None = None,
    progress: Progress | None = None,
    tell: Callable[[str], object] | None = None,
) -> AtlasResult:
    """Write the atlas of ``model`` over ``images`` to ``out_dir/atlas/`` (see the module). ``model`` is a Keras
    model or a :class:`cnnviz.engines.naming.ModelRef` (which the Ray engine needs). ``progress`` is called with
    (images scanned, images), then (units done, units to compute); ``tell`` with what the run is about to do.

    Raises:
        OptionError: no images, a selection out of range.
        LayerNotFound, NotAConvLayer, UnsupportedLayer, UnsupportedModel: before any image is read.
    """
    options = options if options is not None else AtlasOptions()
    say = tell if tell is not None else (lambda text: None)
    out = Path(out_dir) / "atlas"
    inputs = find_inputs(images, out_dir, options.engine)
    if not inputs:
        raise OptionError("no images given")
    loaded = model.load() if isinstance(model, ModelRef) else model
    layers, left = atlas_layers(loaded, options.layers, options.input)
    if not layers:
        raise OptionError(f"model '{loaded.name}' has no conv layers with 2-D maps for an atlas")
    chosen = {conv.path: _units(options.filters, conv) for conv in layers}
    result = AtlasResult(folder=out, layers=list(chosen), fit=options.fit, inputs=len(inputs))
    result.notes.extend(f"left out: {text}" for text in left)
    data, scanned = _data_pass(model, loaded, layers, inputs, out, options, progress, say)
    result.failures, result.precision = scanned["failures"], scanned["precision"]
    result.notes.extend(note for note in scanned["notes"] if note not in result.notes)
    writer = SiteWriter(loaded, options, layers, chosen, data, scanned["inputs"], out, left)
    writer.write_data()
    result.units = sum(len(units) for units in chosen.values())
    chunks = writer.missing_chunks() if options.maximize else []
    result.computed = sum(len(chunk.units) for chunk in chunks)
    if chunks:
        say(
            f"maximize: {result.computed} of {result.units} units in {len(chunks)} chunks of up to {options.chunk}, "
            f"{options.steps} steps at {options.side} px"
        )
        clock = _Clock(result.computed, say)

        def finished(chunk: UnitChunk, found: Maximized) -> None:
            writer.unit_done(chunk, found)
            clock.done(len(chunk.units))
            if progress is not None:
                progress(len(chunk.units), result.computed)

        try:
            run_units(MaximizeUnits, options.maximizing, model, chunks, options.where, finished)
        finally:
            writer.write_indexes()  # a stopped run leaves a site of what finished
    else:
        writer.write_indexes()
    result.maximized = writer.maximized_count()
    result.written.append(out / "index.html")
    return result


def _units(selection: str | None, conv: ConvLayer) -> list[int]:
    count = int(conv.output_shape[-1] or 0)
    return parse_selection(selection, count, "filter") if selection is not None else list(range(count))


class _Clock:
    """What the unit work will take, said once after its first chunk (from that chunk's time)."""

    def __init__(self, total: int, say: Callable[[str], object]) -> None:
        self.total, self.say, self.count, self.start = total, say, 0, time.monotonic()

    def done(self, count: int) -> None:
        first = self.count == 0
        self.count += count
        if first and self.count < self.total:
            each = (time.monotonic() - self.start) / self.count
            self.say(f"maximize: about {each:.2f} s a unit, {each * (self.total - self.count) / 60:.1f} min left")


def _fingerprint(inputs: Sequence[Any], layers: Sequence[ConvLayer], options: AtlasOptions, model: Any) -> str:
    """What the data pass depends on: the inputs (paths, sizes, times), the layers and the reading settings."""
    files = []
    for item in inputs:
        try:
            stat = os.stat(item.path)
            files.append([item.path, stat.st_size, stat.st_mtime_ns])
        except OSError:
            files.append([item.path, None, None])
    reading = {name: repr(value) for name, value in options.shared(ReadingSettings).items()}
    what = {
        "files": files,
        "layers": [conv.path for conv in layers],
        "k": options.k,
        "threshold": options.threshold,
        "reading": reading,
        "model": [str(getattr(model, "name", "")), int(model.count_params())],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _data_pass(
    model: Any,
    loaded: Any,
    layers: list[ConvLayer],
    inputs: Sequence[Any],
    out: Path,
    options: AtlasOptions,
    progress: Progress | None,
    say: Callable[[str], object],
) -> tuple[dict[str, LayerData], dict[str, Any]]:
    """The pass over the images, from ``.atlas-scan.pickle`` beside the site where it was computed from the same
    things."""
    kept = out.parent / ".atlas-scan.pickle"
    key = _fingerprint(inputs, layers, options, loaded)
    if kept.exists():
        try:
            saved = pickle.loads(kept.read_bytes())
            if saved.get("key") == key:
                say(f"the pass over the {len(inputs)} images was done before ({kept.name}): using it")
                return saved["data"], saved
        except Exception:  # a file from another version, or damaged: computed again
            pass
    say(f"one pass over {len(inputs)} images for {len(layers)} layers")
    query = AtlasQuery([conv.path for conv in layers], options.k, options.threshold)
    scanned = scan_inputs(AtlasScan, query, model, inputs, options, counted(progress, len(inputs)))
    method = scanned.method if isinstance(scanned.method, AtlasScan) else None
    data = (method or AtlasScan(loaded, _reader(loaded, options), query)).finish(scanned.partial)
    saved = {
        "key": key,
        "data": data,
        "inputs": [item.path for item in inputs],
        "failures": scanned.failures,
        "notes": scanned.notes,
        "precision": scanned.precision,
    }
    write_atomic(kept, pickle.dumps(saved))
    return data, saved


def _reader(model: Any, options: AtlasOptions) -> Any:
    from cnnviz.inputs.reader import Reader

    return Reader(model, options)


class SiteWriter:
    """The atlas's pages from the data pass and the units' pictures (see the module)."""

    def __init__(
        self,
        model: Any,
        options: AtlasOptions,
        layers: list[ConvLayer],
        chosen: dict[str, list[int]],
        data: dict[str, LayerData],
        inputs: list[str],
        out: Path,
        left: Sequence[str] = (),
    ) -> None:
        self.model, self.options, self.layers, self.chosen = model, options, layers, chosen
        self.data, self.inputs, self.out, self.left = data, inputs, out, list(left)
        self.traced = trace(model, input=options.input)
        top_options = TopOptions(
            **options.shared(Naming), **options.shared(EngineReading), layer=list(chosen), k=options.k
        )
        self.patches = Patches(model, top_options, inputs, {})
        self.shapes: dict[int, tuple[int, int]] = {}
        outputs = getattr(model, "outputs", None) or []
        classes = int(outputs[0].shape[-1]) if len(outputs) == 1 and len(outputs[0].shape) == 2 else 0
        self.names = class_names(classes, None, model.name) if classes else None
        self.records: dict[tuple[str, int], dict[str, Any]] = {}

    # -- paths -------------------------------------------------------------------------------------------------

    def _maximize_file(self, layer: str, unit: int) -> Path:
        return self.out / site.layer_folder(layer) / "img" / f"{unit}_max.png"

    def maximized_count(self) -> int:
        """How many units' ``maximize`` pictures the site holds."""
        return sum(self._maximize_file(layer, unit).exists() for layer, units in self.chosen.items() for unit in units)

    def missing_chunks(self) -> list[UnitChunk]:
        """The fixed chunks of every layer's units (``options.chunk`` at a time) with a picture still missing."""
        chunks = []
        for layer, units in self.chosen.items():
            for start in range(0, len(units), self.options.chunk):
                part = tuple(units[start : start + self.options.chunk])
                if not all(self._maximize_file(layer, unit).exists() for unit in part):
                    chunks.append(UnitChunk(layer, part))
        return chunks

    # -- the data pages ----------------------------------------------------------------------------------------

    def write_data(self) -> None:
        """The style sheet, the images, every unit's page from the data (its picture where it exists), and the
        index pages."""
        site.write_text(self.out / "style.css", site.STYLE.lstrip())
        for conv in self.layers:
            self._layer_units(conv)
        self.write_indexes()

    def _thumb(self, number: int) -> str:
        """The site's copy of input ``number`` as the model saw it (written once), relative to the site's root."""
        name = f"images/{number}.png"
        target = self.out / name
        if number not in self.shapes:
            array, ready = self.patches.decoded(number)
            pixels = drawable_input(array, ready)
            if pixels.ndim == 2:
                pixels = np.repeat(pixels[..., None], 3, axis=-1)
            self.shapes[number] = (int(pixels.shape[0]), int(pixels.shape[1]))
            if not target.exists():
                save_png(Picture(_thumbnail(pixels), None), target)
        return name

    def _layer_units(self, conv: ConvLayer) -> None:
        layer, data = conv.path, self.data[conv.path]
        units = self.chosen[layer]
        scan = TopScan([conv], {layer: data.top}, self.inputs, [])
        cut = self.patches.cut_winners(scan, {layer: units}, PATCH)
        stats = data.stats.rows(self.options.rare)
        folder = self.out / site.layer_folder(layer)
        for unit in units:
            tops = []
            for rank in range(self.options.k):
                image = int(data.top.image[unit, rank])
                if image < 0:
                    break
                box, patch = cut[layer, unit, rank]
                position = (int(data.top.row[unit, rank]), int(data.top.col[unit, rank]))
                record = top_record(
                    layer, unit, rank, self.inputs[image], float(data.top.value[unit, rank]), position, box
                )
                patch_name = f"img/{unit}_top{rank + 1}.png"
                save_png(Picture(np.ascontiguousarray(patch), None), folder / patch_name)
                thumb = self._thumb(image)
                tops.append({**record, "patch": patch_name, "thumb": f"../{thumb}", "shape": self.shapes[image]})
            quantiles = [
                {"quantile": q, "image": self.inputs[n], "value": v, "thumb": f"../{self._thumb(n)}"}
                for q, n, v in data.quantile_images(unit)
            ]
            values = data.maxima[:, unit]
            counts, edges = np.histogram(values, bins=BINS) if len(values) else (np.zeros(0, int), np.zeros(0))
            self.records[layer, unit] = {
                "layer": layer,
                "unit": unit,
                "kind": conv.kind,
                "stats": stats[unit],
                "top": tops,
                "quantiles": quantiles,
                "histogram": {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]},
                **self._wiring(conv, unit),
            }
            self._write_unit(layer, unit)

    def _wiring(self, conv: ConvLayer, unit: int) -> dict[str, Any]:
        first = self.traced.convs and self.traced.convs[0].path == conv.path
        colours = _colour_kernel(conv) if first else None
        kernel: dict[str, Any]
        if conv.tokens is not None:
            kernel = {"how": "a transformer block has no kernel"}
        elif colours is not None:
            name = f"img/{unit}_kernel.png"
            save_png(_kernel_picture(colours, unit), self.out / site.layer_folder(conv.path) / name)
            kernel = {"picture": name, "how": "the first layer's kernel, its weights as colours"}
        else:
            links, how = strongest_inputs(self.traced, conv, unit)
            kernel = {"inputs": [self._linked(link) for link in links], "how": how}
        readers, read_how = strongest_readers(self.traced, conv, unit)
        classes, class_how = head_classes(self.traced, conv, unit)
        named = [{**vars(link), "name": class_name(link.unit, self.names)} for link in classes]
        return {
            "kernel": kernel,
            "next": {"units": [self._linked(link) for link in readers], "how": read_how},
            "classes": {"classes": named, "how": class_how},
        }

    def _linked(self, link: Any) -> dict[str, Any]:
        """A linked unit's record, with whether the atlas has its page."""
        return {**vars(link), "page": link.unit in self.chosen.get(link.layer, ())}

    # -- units ---------------------------------------------------------------------------------------------------

    def unit_done(self, chunk: UnitChunk, found: Maximized) -> None:
        """Write a finished chunk's pictures, then their units' pages."""
        for unit, image in zip(chunk.units, found.images, strict=True):
            pixels = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
            if pixels.shape[-1] == 1:
                pixels = np.repeat(pixels, 3, axis=-1)
            save_png(Picture(np.ascontiguousarray(pixels[..., :3]), None), self._maximize_file(chunk.layer, unit))
        for unit in chunk.units:
            self._write_unit(chunk.layer, unit)

    def _write_unit(self, layer: str, unit: int) -> None:
        record = dict(self.records[layer, unit])
        done = self._maximize_file(layer, unit).exists()
        record["maximize"] = {
            "picture": f"img/{unit}_max.png" if done else None,
            "settings": self.options.maximizing.options.described,
        }
        folder = self.out / site.layer_folder(layer)
        site.write_json(folder / f"{unit}.json", record)
        site.write_text(
            folder / f"{unit}.html", site.unit_page(record, self._neighbours(layer, unit), self.options.rare)
        )

    def _neighbours(self, layer: str, unit: int) -> tuple[int | None, int | None]:
        units = self.chosen[layer]
        place = units.index(unit)
        return (units[place - 1] if place else None, units[place + 1] if place + 1 < len(units) else None)

    # -- the index pages -----------------------------------------------------------------------------------------

    def write_indexes(self) -> None:
        """Each layer's page and the site's index, from what is done now."""
        summaries = []
        for conv in self.layers:
            layer, data = conv.path, self.data[conv.path]
            stats = data.stats.rows(self.options.rare)
            cards = [
                {
                    "unit": unit,
                    "max": stats[unit]["max"],
                    "mean": stats[unit]["mean"],
                    "dead": stats[unit]["dead"],
                    "rare": stats[unit]["rare"],
                    "maximize": f"img/{unit}_max.png" if self._maximize_file(layer, unit).exists() else None,
                    "patch": f"img/{unit}_top1.png" if int(data.top.image[unit, 0]) >= 0 else None,
                }
                for unit in self.chosen[layer]
            ]
            record = {"layer": layer, "kind": conv.kind, "output": list(conv.output_shape), "units": cards}
            folder = self.out / site.layer_folder(layer)
            site.write_json(folder / "index.json", record)
            site.write_text(folder / "index.html", site.layer_page(record, stats[0]["active_means"] if stats else ""))
            active = sorted(cards, key=lambda card: (-card["mean"], card["unit"]))[:STRIP]
            summaries.append(
                {
                    "layer": layer,
                    "kind": conv.kind,
                    "output": list(conv.output_shape),
                    "units": len(cards),
                    "of": int(conv.output_shape[-1] or 0),
                    "dead": sum(card["dead"] for card in cards),
                    "rare": sum(card["rare"] for card in cards),
                    "strip": [
                        {"unit": card["unit"], "maximize": card["maximize"], "patch": card["patch"]} for card in active
                    ],
                }
            )
        about = self.options.about(self.model.name)
        index: dict[str, Any] = {
            "model": self.options.label_of(self.model),
            "input": shape_text(self.traced.input.shape[1:]),
            "preprocessing": self.patches.step.description,
            "weights": _weights_text(self.options),
            "images": len(self.inputs),
            "backend": about.get("backend"),
            "layers": summaries,
            "left_out": self.left,
        }
        site.write_json(self.out / "index.json", index)
        site.write_text(self.out / "index.html", site.index_page(index))


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    """An image at :data:`THUMB` pixels on its long side: enlarged by a whole factor (crisp) or reduced smoothly."""
    long = max(pixels.shape[:2])
    if long <= THUMB:
        return np.ascontiguousarray(upscale(pixels, max(1, THUMB // long), axes=(0, 1)))
    from PIL import Image

    rows, cols = (max(1, round(side * THUMB / long)) for side in pixels.shape[:2])
    return np.asarray(Image.fromarray(pixels).resize((cols, rows), Image.Resampling.LANCZOS))


def _weights_text(options: AtlasOptions) -> str:
    if options.weights is not None and options.weights.lower() == "none":
        return "random weights"
    return options.weights or "the model's own"


def _colour_kernel(conv: ConvLayer) -> np.ndarray | None:
    """A first layer's 2-D kernel ``(kh, kw, channels, units)`` of 1 or 3 input channels, else None."""
    kernel = getattr(conv.layer, "kernel", None)
    if kernel is None or conv.kind not in ("Conv2D",):
        return None
    array = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel, dtype=np.float32)
    return array if array.ndim == 4 and array.shape[2] in (1, 3) else None


def _kernel_picture(kernel: np.ndarray, unit: int) -> Picture:
    """One unit's first-layer kernel as colours: its weights scaled so the largest |weight| is full, around grey."""
    weights = kernel[..., unit]
    scale = float(np.abs(weights).max()) or 1.0
    pixels = np.rint(127.5 + 127.5 * weights / scale).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    factor = max(1, -(-96 // max(pixels.shape[:2])))
    return Picture(np.ascontiguousarray(upscale(pixels, factor, axes=(0, 1))), None)
