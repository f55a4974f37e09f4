"""What the explorer computes: each view of a model as the command that draws it would draw it.

:class:`Explorer` holds the model (fixed at start), its reader and one extractor over every conv layer, the images
(:class:`cnnviz.explorer.shelf.Shelf`), a bounded cache of views and the one thread that runs the model. Every view
is a future: a feature-map grid waits for its image's forward pass (one per image gives every layer's maps, kept
in the cache), then is drawn on a drawing thread by the function ``featuremaps`` draws with, so its PNG has the
bytes of the command's file. Long views (a layer scan over all images, :mod:`cnnviz.explorer.scans`; a filter's
``maximize``) run as tasks of the model thread, with progress, and let map requests through between their steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from cnnviz.draw.png import encode_png
from cnnviz.draw.render import channel_ranges, map_grid_layout
from cnnviz.draw.top import drawable_input
from cnnviz.draw.view import MapView
from cnnviz.errors import CnnvizError, OptionError
from cnnviz.explorer.atlas import AtlasFiles
from cnnviz.explorer.cache import ViewCache, default_cache_mb
from cnnviz.explorer.options import ExploreOptions
from cnnviz.explorer.scans import SCANS, Finished, top_scan
from cnnviz.explorer.shelf import Shelf, Shelved
from cnnviz.explorer.worker import ModelWorker
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.shape import scan_all
from cnnviz.models.graph import ConvLayer
from cnnviz.models.layer_table import layer_rows

#: Threads drawing and encoding pictures, beside the model's own.
DRAWING_THREADS = 2
#: A filter card's map over the image is drawn at the image's size, up to this many pixels on its long side.
MAX_OVERLAY = 512


class NotFound(CnnvizError):
    """A view of an image, layer or filter that the explorer does not have."""


def then(future: Future[Any], step: Callable[[Any], Any], pool: ThreadPoolExecutor) -> Future[Any]:
    """A future of ``step(result)``, run on ``pool`` once ``future`` is done; an error of either is passed on, and
    a cancel either way (a request whose client left, the server stopping) ends it quietly."""
    out: Future[Any] = Future()

    def settle(source: Future[Any]) -> None:
        if out.cancelled():
            return
        if source.cancelled():
            out.cancel()
        elif source.exception() is not None:
            out.set_exception(source.exception())
        else:
            out.set_result(source.result())

    def started(done: Future[Any]) -> None:
        if out.cancelled() or done.cancelled() or done.exception() is not None:
            settle(done)
            return
        pool.submit(step, done.result()).add_done_callback(settle)

    future.add_done_callback(started)
    return out


class Explorer:
    """A model, its images and every view of them, for the explorer's server (and for tests, without one).

    Args:
        model: a Keras model; it is never replaced.
        images: image files, folders and patterns, as the commands take them (may be empty: images can be
            uploaded).
        options: how to read, draw and serve.

    Raises:
        OptionError, UnsupportedModel: the options do not fit the model.
    """

    def __init__(self, model: Any, images: list[str | Input], options: ExploreOptions) -> None:
        from cnnviz.runs.featuremaps import plan_maps

        self.model, self.options = model, options
        self.map_options = options.map_options()
        self.reader = Reader(model, self.map_options)
        if self.reader.feeds is not None and self.reader.feeds.per_image:
            raise OptionError(
                "explore feeds the other inputs the same array for every image (uploads have no row of their own): "
                "give `feed` arrays of one row"
            )
        self.plan = plan_maps(model, self.map_options, self.reader)
        self.layers: dict[str, ConvLayer] = {conv.path: conv for conv in self.plan.extractor.layers}
        self.layer_records = layer_rows(model, options.size)
        self.label = options.label_of(model)
        inputs = gather_inputs(images) if images else []
        self.shelf = Shelf(self.reader, inputs, options.upload_mb << 20)
        # Half the cap for the maps of recent images (VGG16's conv layers hold 54 MB per image), half for the
        # drawn views: a stream of new images then cannot push out the grids just drawn.
        cap = (options.cache_mb or default_cache_mb()) << 20
        self.maps_cache, self.cache = ViewCache(cap // 2), ViewCache(cap - cap // 2)
        self.worker = ModelWorker()
        self.drawing = ThreadPoolExecutor(DRAWING_THREADS, thread_name_prefix="cnnviz-draw")
        self._lock = threading.Lock()
        self._attributors: dict[tuple[str, str], Any] = {}
        #: The attribution methods that apply to the model, by name.
        self.methods = _attribution_methods(model)
        #: The atlas of the model the cards link to, where one was given.
        self.atlas = AtlasFiles.read(options.atlas)

    # -- what there is -----------------------------------------------------------------------------------------

    def model_record(self) -> dict[str, Any]:
        """The model as ``/api/model`` gives it: its label, the layer records of ``cnnviz layers --json`` (with
        whether the explorer draws each one's maps), and how images are read."""
        return {
            "model": self.label,
            "layers": [{**row, "maps": row["name"] in self.layers} for row in self.layer_records],
            "preprocessing": self.reader.preprocessing.name,
            "fit": self.plan.fit,
            "precision": self.plan.extractor.precision,
            "notes": list(self.plan.notes),
            "k": self.options.k,
            "gradcam": self.options.gradcam,
            "methods": [{"name": name, "title": method.title} for name, method in self.methods.items()],
            "atlas": self.atlas.record(),
        }

    def image(self, image_id: str) -> Shelved:
        """The image of an id.

        Raises:
            NotFound: no image has that id.
        """
        found = self.shelf.get(image_id)
        if found is None:
            raise NotFound(f"no image '{image_id}'")
        return found

    def layer(self, name: str) -> ConvLayer:
        """The conv layer of a name (its path, ``outer/inner`` in nested models).

        Raises:
            NotFound: no conv layer of the explorer has that name.
        """
        if name not in self.layers:
            raise NotFound(f"no conv layer '{name}' with maps to draw")
        return self.layers[name]

    def filter_of(self, layer: str, filter_index: int) -> ConvLayer:
        """The layer, with ``filter_index`` checked against its filters.

        Raises:
            NotFound: no such layer or filter.
        """
        conv = self.layer(layer)
        filters = int(conv.output_shape[-1] or 0)
        if not 0 <= filter_index < filters:
            raise NotFound(f"{layer} has filters 0-{filters - 1}, not {filter_index}")
        return conv

    # -- views -------------------------------------------------------------------------------------------------

    def _view(self, key: Hashable, compute: Callable[[], Future[Any]]) -> Future[Any]:
        return self.cache.get(key, compute)

    def _draw(self, key: Hashable, source: Callable[[], Future[Any]], step: Callable[[Any], Any]) -> Future[Any]:
        return self._view(key, lambda: then(source(), step, self.drawing))

    def activations(self, image: Shelved) -> Future[dict[str, np.ndarray]]:
        """Every drawn layer's maps for one image, from one forward pass."""

        def forward() -> dict[str, np.ndarray]:
            batch = self._batch(image)
            maps = self.plan.extractor.forward(batch)
            return {path: values[0] for path, values in maps.items()}

        return self.maps_cache.get(image.id, lambda: self.worker.submit(forward))

    def _batch(self, image: Shelved) -> Batch:
        data = {image.path: image.data} if image.data is not None else None
        numbers = {image.path: int(image.id)}
        return next(iter(self.reader.batches([image.path], numbers, data=data, read_ahead=False)))

    def map_png(self, image: Shelved, layer: str) -> Future[bytes]:
        """The feature-map grid of ``layer`` for ``image``, as ``featuremaps`` writes it."""
        from cnnviz.runs.featuremaps import map_picture

        conv = self.layer(layer)
        options = self.plan.options

        def draw(maps: dict[str, np.ndarray]) -> bytes:
            activation = maps[conv.path]
            picture = map_picture(self.label, conv, activation, image.name, options, None, self.plan.fit)
            return picture.png_bytes()

        return self._draw(("map", image.id, layer), lambda: self.activations(image), draw)

    def map_layout(self, image: Shelved, layer: str) -> Future[dict[str, Any]]:
        """Where each map is in the grid of :meth:`map_png` (for a page to know which tile was clicked), and each
        map's value range."""
        conv = self.layer(layer)
        options = self.plan.options

        def layout(maps: dict[str, np.ndarray]) -> dict[str, Any]:
            activation = maps[conv.path]
            if activation.ndim == 2:
                activation = activation[None]
            low, high = channel_ranges(activation)
            grid = map_grid_layout(activation, max_maps=options.max_maps, scale=options.scale, order=options.order)
            return {
                "channels": grid.channels,
                "grid": list(grid.grid),
                "tile": list(grid.tile),
                "padding": grid.padding,
                "size": list(grid.size),
                "shape": list(maps[conv.path].shape),
                "min": [float(v) for v in low],
                "max": [float(v) for v in high],
            }

        return self._draw(("layout", image.id, layer), lambda: self.activations(image), layout)

    def overlay_png(self, image: Shelved, layer: str, filter_index: int) -> Future[bytes]:
        """One map blended onto its image at the image's size (up to :data:`MAX_OVERLAY` pixels on its long side),
        as ``featuremaps --overlay`` blends each map, without the header."""
        from cnnviz.draw.overlay import overlay_grid

        conv = self.filter_of(layer, filter_index)
        options = self.plan.options

        def draw(maps: dict[str, np.ndarray]) -> bytes:
            one = maps[conv.path][..., filter_index : filter_index + 1]
            pixels, ready = self.shelf.read(image)
            if ready or one.ndim != 3 or pixels.shape[-1] not in (1, 3):
                raise OptionError(f"{image.name}: an overlay needs an image and 2-D maps")
            side = min(MAX_OVERLAY, max(pixels.shape[:2]))
            view = MapView(norm=options.norm, cmap=options.cmap, index=False)
            picture = overlay_grid(one, pixels, view, tile_size=side)
            return picture.png_bytes()

        return self._draw(("overlay", image.id, layer, filter_index), lambda: self.activations(image), draw)

    def image_png(self, image: Shelved) -> Future[bytes]:
        """The image as the model sees it (after ``fit``), as a PNG; a model-ready array as grey."""

        def draw(_: object) -> bytes:
            array, ready = self.shelf.read(image)
            return encode_png(_rgb(drawable_input(array, ready)))

        return self._draw(("image", image.id), _now, draw)

    def kernel_png(self, layer: str, filter_index: int) -> Future[bytes]:
        """A filter's kernels, as ``filters --filters N`` draws them."""
        from cnnviz.methods.filters import layer_kernels
        from cnnviz.runs.contract import RunResult
        from cnnviz.runs.filters import filter_picture

        conv = self.filter_of(layer, filter_index)
        options = self.options.filter_options(layer, filter_index)

        def draw(_: object) -> bytes:
            kernels = self.worker.submit(lambda: layer_kernels(conv)).result()
            return filter_picture(self.label, conv, kernels, options, RunResult()).png_bytes()

        return self._draw(("kernel", layer, filter_index), _now, draw)

    def gradcam(self, image: Shelved, target: str | None) -> Future[tuple[bytes, dict[str, Any]]]:
        """Grad-CAM of ``image`` for the class ``target`` (an index or a name; the top class when None), as
        ``gradcam --class`` writes it: the explain view of Grad-CAM in the single layout, with its record."""
        if not self.options.gradcam:
            raise OptionError("Grad-CAM is off: the explorer was started without it (--no-gradcam)")
        return self.explanation(image, "gradcam", target, layout="single")

    def explanation(
        self, image: Shelved, method: str, target: str | None, layout: str = "columns"
    ) -> Future[tuple[bytes, dict[str, Any]]]:
        """The attribution ``method`` of ``image`` for the class ``target`` (the top class when None), as ``explain
        --method METHOD --class`` writes it (``gradcam`` in the single layout), with a record of the class explained
        and the model's top classes: a task of the model thread, with progress, that lets map requests through
        between its chunks of inputs.

        Raises:
            NotFound: no such method.
        """
        from cnnviz.models.labels import resolve_class
        from cnnviz.runs.attribute import draw_image

        if method not in self.methods:
            raise NotFound(f"no attribution method '{method}'; the explorer serves: {', '.join(self.methods)}")
        key = f"{'explain' if layout == 'columns' else layout} {method} {image.id} {target or ''}".rstrip()

        def run(progress: Callable[[int, int], None]) -> tuple[bytes, dict[str, Any]]:
            made = self._attribution_method(method, layout)
            attributor = made.attributor
            chosen = None if target is None else resolve_class(target, attributor.model.classes, made.names)
            batch = self._batch(image)
            rows, cols = batch.data.shape[1:3]
            channels = attributor.model.layer_channels(batch.data)
            total = max(1, attributor.methods[0].inputs_per_image(rows, cols, channels))
            done = [0]

            def chunk(count: int) -> None:
                done[0] += count
                progress(min(done[0], total), total)

            attributor.model.on_chunk = chunk
            try:
                attributed = attributor(batch.data, chosen, batch.numbers)
            finally:
                attributor.model.on_chunk = None
            options = made.options.options
            drawn = draw_image(image.path, batch.pixels[0], attributed, 0, made.names, self.label, options)
            record = {
                "method": method,
                "class": drawn.target,
                "name": drawn.target_name,
                "head": attributed.head,
                "layer": attributed.layer,
                "top": [{"name": name, "score": score} for name, score in drawn.top],
                "peak": float(drawn.heatmaps[method].max(initial=0.0)),
                "file": f"{drawn.stem}.png",
            }
            return drawn.picture.png_bytes(), record

        return self._view(("explain", layout, image.id, method, target), lambda: self.worker.start_task(key, key, run))

    def _attribution_method(self, method: str, layout: str) -> Any:
        """The ``explain`` command's method over this model for one attribution method, made on first use (on the
        model thread)."""
        from cnnviz.runs.attribute import AttributeImages, AttributeWriting

        if not self.options.gradcam:
            raise OptionError("attributions are off: the explorer was started without them (--no-gradcam)")
        if (method, layout) not in self._attributors:
            options = self.options.attribute_options(method, layout=layout)
            reader = Reader(self.model, options)
            made = AttributeImages(self.model, reader, AttributeWriting(options, "", {}))
            self._attributors[method, layout] = made
        return self._attributors[method, layout]

    def maximize_png(self, layer: str, filter_index: int) -> Future[bytes]:
        """What the filter responds to, as ``maximize --filters N`` draws it: a task (seconds of gradient work)."""
        from cnnviz.runs.maximize import draw_maximize

        self.filter_of(layer, filter_index)
        options = self.options.maximize_options(layer, filter_index)
        key = f"maximize {layer} {filter_index}"

        def run(progress: Callable[[int, int], None]) -> bytes:
            def advance(done: int, total: int, seen: list[int] = [0]) -> None:  # noqa: B006 - a running count
                seen[0] += done
                progress(seen[0], total)

            _, picture = draw_maximize(self.model, options, advance)
            return picture.png_bytes()

        return self._view(("maximize", layer, filter_index), lambda: self.worker.start_task(key, key, run))

    def scanned(self, name: str, layer: str) -> Future[Finished]:
        """The layer scan ``name`` (:data:`cnnviz.explorer.scans.SCANS`) of ``layer`` over every image the explorer
        has now, as a task of the model thread that lets map requests through between batches.

        Raises:
            NotFound: no such scan or layer.
        """
        if name not in SCANS:
            raise NotFound(f"no scan '{name}'; the explorer serves: {', '.join(SCANS)}")
        self.layer(layer)
        chosen = SCANS[name]
        images = list(self.shelf)
        paths = [image.path for image in images]
        data = {image.path: image.data for image in images if image.data is not None}
        numbers = {path: number for number, path in enumerate(paths)}
        key = f"{name} {layer} {len(images)}"

        def run(progress: Callable[[int, int], None]) -> Finished:
            method = chosen.method(self.model, self.reader, chosen.query(self.options, layer))
            done = [0]

            def advance(count: int) -> None:
                done[0] += count
                progress(done[0], len(paths))

            return Finished(method, scan_all(method, paths, advance, numbers, data or None), paths, data)

        return self._view((name, layer, len(images)), lambda: self.worker.start_task(key, key, run))

    def scan_records(self, name: str, layer: str) -> Future[list[dict[str, Any]]]:
        """The records of the layer scan ``name`` (those of its command's ``--json``); a record that names an
        image also gets its id, ``image_id``."""
        ids = {image.path: image.id for image in self.shelf}

        def records(finished: Finished) -> list[dict[str, Any]]:
            found = SCANS[name].records(self.model, finished, self.options, layer)
            return [{**record, "image_id": ids[record["image"]]} if "image" in record else record for record in found]

        return then(self.scanned(name, layer), records, self.drawing)

    def top_png(self, layer: str, filter_index: int) -> Future[bytes]:
        """One filter's top images, as ``top --filters N`` draws them over the same images."""
        from cnnviz.runs.top import draw_top

        self.filter_of(layer, filter_index)
        options = self.options.top_options(layer, filter_index)

        def draw(finished: Finished) -> bytes:
            pictures = draw_top(self.model, top_scan(finished), options).pictures[layer]
            return next(iter(pictures.values())).png_bytes()

        return then(self.scanned("top", layer), draw, self.drawing)

    def tasks(self) -> list[dict[str, Any]]:
        """The long views started so far and how far each has got."""
        return [task.record() for task in list(self.worker.tasks.values())]

    def warm_up(self) -> None:
        """Run the model once on the first image (or on zeros), so the first request does not pay for tracing."""
        images = list(self.shelf)
        if images:
            self.activations(images[0]).result()
            return
        shape = self.reader.taken.channels_last_shape
        if None not in shape[1:]:
            zeros = np.zeros((1, *(int(side or 0) for side in shape[1:])), np.float32)
            batch = Batch(["warm-up"], [0], [zeros[0]], True, zeros)
            self.worker.submit(lambda: self.plan.extractor.forward(batch)).result()

    def close(self) -> None:
        """Stop the model thread and the drawing threads."""
        self.worker.stop()
        self.drawing.shutdown(wait=False, cancel_futures=True)


def _attribution_methods(model: Any) -> dict[str, Any]:
    from cnnviz.methods.attribution import METHODS, methods_for

    return {name: METHODS[name] for name in methods_for(model)}


def _now() -> Future[None]:
    """A future already done: the source of a view drawn from nothing the model computes."""
    done: Future[None] = Future()
    done.set_result(None)
    return done


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """Grey ``(rows, cols)`` or ``(rows, cols, 1)`` pixels as RGB (a 1-D array's ``(steps,)`` as one row); RGB as
    it is."""
    if pixels.ndim == 1:
        pixels = pixels[None]
    grey = pixels if pixels.ndim == 2 else pixels[..., 0] if pixels.shape[-1] == 1 else None
    return pixels if grey is None else np.repeat(grey[..., None], 3, axis=-1)
