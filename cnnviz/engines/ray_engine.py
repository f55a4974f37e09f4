"""``stats`` and ``featuremaps`` over data sets on Ray Data, for users who outgrow one machine.

The job is the local pipeline spread out: ``ray.data.read_binary_files`` reads the files (local folders, or
anything pyarrow's filesystems reach: ``s3://``, ``gs://``), and ``map_batches`` hands them to a pool of actors.
Each actor loads the model once, from a :class:`cnnviz.engines.naming.ModelRef` any node can follow (a
keras.applications name, the bundled model, or a file every node can read), builds its extractor once, and
decodes, preprocesses and runs its batches with the same code as a local run. Files are read as bytes and
decoded by cnnviz, not by ``read_images``: a damaged file is then one failed image, reported by name, not a
failed job.

- ``stats``: each actor returns its batch's partial statistics (sums, maxima, counts); the driver merges them
  with :class:`cnnviz.methods.stats.LayerStats` ``+``, so the result is the local engine's (counts exactly, sums up to
  float rounding: the order of additions differs).
- ``featuremaps``: each actor writes its images' grids into the output folder (a filesystem every node shares) and
  returns their manifest records; the driver writes the manifest.

CPU budget: an actor takes one CPU and a reading task a quarter of one, and the pool has one actor per CPU left
after reading (``floor(CPUs - 0.25)``, at least one; on a 1-CPU cluster the actor asks for 0.75). On a 2-CPU
machine that is one actor; TensorFlow inside it still uses both cores. More actors than fit would starve the
reading tasks and the job would never finish (Ray 2.60, 2 CPUs, two 1-CPU actors: it hangs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cnnviz._keras import chosen_backend, native_stderr_silenced
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import CnnvizError, ModelRunError, OptionError, brief
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.inputs.images import input_suffixes

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'cnnviz[ray]'"
#: CPUs a reading task asks for; an actor asks for one.
READ_CPUS = 0.25


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster a job runs on: its address (``local`` for one started here) and its CPUs."""

    address: str
    cpus: float

    def actors(self, requested: int | None = None) -> int:
        """How many actors fit beside the reading tasks: ``requested``, capped at what fits."""
        fits = max(1, math.floor(self.cpus - READ_CPUS))
        return fits if requested is None else max(1, min(requested, fits))

    def actor_cpus(self) -> float:
        """CPUs each actor asks for: one, or what a single-CPU cluster leaves beside a reading task."""
        return min(1.0, max(self.cpus - READ_CPUS, READ_CPUS))


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray without its data extra has no ray.data
    except ImportError as exc:
        raise OptionError(INSTALL_HINT) from exc
    return ray


def connect(address: str | None = None, cpus: int | None = None) -> Cluster:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else the one ``ray start`` runs on this machine,
    else start a local one (always a new one with ``cpus`` CPUs when ``cpus`` is given), quietly: no dashboard,
    no worker logs on the terminal, no Ray Data progress bars.

    Raises:
        OptionError: Ray is not installed, or the cluster cannot be reached.
    """
    # Ray's C++ side logs to standard error directly; failures still reach cnnviz as exceptions and are reported.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray = _ray()
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        try:
            with native_stderr_silenced():  # the C++ side's start-up lines; errors come back as exceptions
                ray.init(
                    # with cpus, a Ray of its own even beside a running one (which Ray would join otherwise)
                    address=target or ("local" if cpus is not None else None),
                    num_cpus=None if target else cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=True,
                    # the workers run Keras on the driver's backend (--backend, KERAS_BACKEND or keras.json)
                    runtime_env={"env_vars": {"KERAS_BACKEND": chosen_backend()}},
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise OptionError(f"cannot reach the Ray cluster at {target}: {brief(exc)}") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data"):  # a failed job is reported once, by cnnviz, not by Ray's loggers too
        logging.getLogger(name).setLevel(logging.CRITICAL)
    address_text = address or os.environ.get("RAY_ADDRESS") or "local"
    return Cluster(address_text, float(ray.cluster_resources().get("CPU", 1.0)))


def is_uri(text: str) -> bool:
    """Whether an input names a location in a pyarrow filesystem (``s3://bucket/val/``, ``file:///data/``) rather
    than a local path."""
    return "://" in text


def find_inputs(items: Sequence[str], exclude: str | os.PathLike[str] | None = None) -> list[Input]:
    """The input files, as :func:`cnnviz.inputs.gather.gather_inputs` finds local ones; URIs (``s3://bucket/val/``) are
    listed through pyarrow, recursively, image and ``.npy`` files only, keyed by their path below the URI.

    Raises:
        OptionError: a name that finds no files, local and remote inputs mixed.
    """
    remote = [item for item in items if is_uri(item)]
    if not remote:
        return gather_inputs(items, exclude=exclude)
    if len(remote) != len(items):
        raise OptionError("give either local inputs or URIs (s3://, gs://), not both in one run")
    from pyarrow import fs

    found: list[Input] = []
    suffixes = input_suffixes()
    for uri in remote:
        filesystem, root = fs.FileSystem.from_uri(uri)
        scheme = uri.split("://", 1)[0]
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.File:
            found.append(Input(f"{scheme}://{root}", PurePosixPath(root).stem))
            continue
        if info.type != fs.FileType.Directory:
            raise OptionError(f"no such file or folder: {uri}")
        files = sorted(
            entry.path
            for entry in filesystem.get_file_info(fs.FileSelector(root, recursive=True))
            if entry.type == fs.FileType.File and PurePosixPath(entry.path).suffix.lower() in suffixes
        )
        if not files:
            raise OptionError(f"{uri} holds no image files")
        base = PurePosixPath(root)
        found.extend(
            Input(f"{scheme}://{path}", str(PurePosixPath(path).relative_to(base).with_suffix(""))) for path in files
        )
    return found


def _row_key(path: str) -> str:
    """A file's path as Ray Data reports it (no scheme; absolute for local files), to match rows to inputs."""
    return path.split("://", 1)[1] if is_uri(path) else os.path.abspath(path)


def _dataset(ray: Any, inputs: Sequence[Input]) -> Any:
    paths = [item.path if is_uri(item.path) else os.path.abspath(item.path) for item in inputs]
    return ray.data.read_binary_files(paths, include_paths=True, num_cpus=READ_CPUS)


@dataclass(frozen=True)
class Job:
    """One Ray job's settings: the cluster, the actors, the images per batch and a progress callback."""

    cluster: Cluster
    actors: int
    batch_size: int
    progress: Callable[[int], object] | None = None


def _run(job: Job, inputs: Sequence[Input], worker: type, args: tuple[Any, ...]) -> Iterable[dict[str, Any]]:
    """Stream ``worker``'s output batches back to the driver, reporting images done; raise a worker's error.
    ``worker`` is constructed as ``worker({row key: Input}, *args)``."""
    ray = _ray()
    dataset = _dataset(ray, inputs).map_batches(
        worker,
        fn_constructor_args=({_row_key(item.path): item for item in inputs}, *args),
        batch_size=job.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=job.actors),
        num_cpus=job.cluster.actor_cpus(),
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for error in batch["error"]:
                if error:
                    raise _rebuilt(str(error))
            if job.progress is not None:
                job.progress(int(sum(batch["images"])))
            yield batch
    except CnnvizError:
        raise
    except Exception as exc:  # Ray's own failures: a node lost, an actor killed
        raise ModelRunError(f"the Ray job failed: {brief(exc)}") from exc


def _rebuilt(error: str) -> CnnvizError:
    """A worker's error, sent as ``ClassName\tmessage``, as the cnnviz error it was (ModelRunError otherwise)."""
    from cnnviz import errors

    name, _, message = error.partition("\t")
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, CnnvizError):
        return kind(message)
    return ModelRunError(f"the Ray job failed on a worker: {name}: {message}")


def _sent(error: BaseException) -> str:
    """An error as a worker sends it: ``ClassName\tmessage`` (see :func:`_rebuilt`)."""
    return f"{type(error).__name__}\t{error}"


def _failures(batch: dict[str, Any]) -> list[tuple[str, CnnvizError]]:
    """The images of a batch that failed, each with its error as the local engine raised it."""
    return [(path, _rebuilt(error)) for text in batch["failures"] for path, error in json.loads(text)]


class _Worker:
    """What the stats and feature-map workers share. The model is loaded once, quietly; an error in doing so (a
    model file this node cannot read, a layer name that is not there) is sent back with the first batch, as data,
    instead of failing the actor (which Ray would retry and report in pages of tracebacks). Every batch comes back
    as one row: ``error``, ``images`` (how many were in it), ``failures`` (JSON ``[[path, error], ...]``) and
    ``payload`` (the worker's pickled result); errors as :func:`_sent` writes them."""

    def __init__(self, inputs: dict[str, Input], spec: ModelRef, *args: Any) -> None:
        self.inputs = inputs
        self.error = ""
        try:
            from cnnviz._keras import keras_module

            keras_module()
            self.setup(spec.load(), *args)
        except Exception as exc:  # every kind goes back to the driver, named
            self.error = _sent(exc)

    def setup(self, model: Any, *args: Any) -> None:
        """Build what the batches need from the model."""
        raise NotImplementedError

    def batches(
        self, extractor: Any, step: Any, paths: list[str], data: dict[str, bytes], failed: Any, options: Any
    ) -> Any:
        """This batch's images through ``extractor``, read from the bytes Ray handed over, as one forward pass."""
        from cnnviz.methods.extract import iter_batches

        return iter_batches(
            extractor,
            paths,
            step,
            batch_size=len(paths),
            size=options.size,
            fit=options.fit,
            on_error=failed,
            read_ahead=False,
            data=data,
        )

    def run(self, paths: list[str], data: dict[str, bytes], failed: Callable[[Any, BaseException], None]) -> Any:
        """One batch's result (picklable); ``failed(path, error)`` for each image that fails."""
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        paths = [self.inputs[_row_key(str(path))].path for path in batch["path"]]
        failures: list[tuple[str, str]] = []
        payload = b""
        if not self.error:
            data = dict(zip(paths, (bytes(data) for data in batch["bytes"]), strict=True))
            payload = pickle.dumps(self.run(paths, data, lambda path, error: failures.append((path, _sent(error)))))
        return {
            "error": np.array([self.error], dtype=object),
            "images": np.array([len(paths)]),
            "failures": np.array([json.dumps(failures)], dtype=object),
            "payload": np.array([payload], dtype=object),
        }


class _StatsWorker(_Worker):
    """Partial statistics of each batch: ``({layer: LayerStats}, what the run's summary says: notes, precision)``."""

    def setup(self, model: Any, *args: Any) -> None:  # noqa: D102
        from cnnviz.inputs.preprocess import resolve_preprocessing
        from cnnviz.methods.stats import build_stats_extractor

        (self.options,) = args
        self.extractor = build_stats_extractor(
            model, self.options.layers, self.options.threshold, **self.options.choice
        )
        self.step = resolve_preprocessing(model, self.options.preprocess)

    def run(self, paths: list[str], data: dict[str, bytes], failed: Callable[[Any, BaseException], None]) -> Any:  # noqa: D102
        from cnnviz.methods.stats import ROUNDED_VERDICTS, add_batch, empty_totals

        totals = empty_totals(self.extractor, self.options.threshold)
        for _, reduced in self.batches(self.extractor, self.step, paths, data, failed, self.options):
            add_batch(totals, reduced)
        return totals, {"notes": self.extractor.run_notes(ROUNDED_VERDICTS), "precision": self.extractor.precision}


def ray_stats(spec: ModelRef, inputs: Sequence[Input], out_dir: str | os.PathLike[str], options: Any, job: Job) -> Any:
    """:func:`cnnviz.engines.stats_run.run_stats` on Ray, with the same :class:`cnnviz.engines.stats_run.StatsOptions`:
    the same :class:`cnnviz.engines.stats_run.StatsResult`, merged from the actors' partial statistics. The driver
    never loads the model (nor TensorFlow); the actors do.

    Raises:
        ModelLoadError, LayerNotFound, NotAConvLayer, UnsupportedModel: from the actors, as the local engine
            raises them.
        ModelRunError: the job failed otherwise.
    """
    from cnnviz.engines.stats_run import stats_result
    from cnnviz.methods.stats import LayerStats

    merged: dict[str, LayerStats] = {}
    failures: list[tuple[str, CnnvizError]] = []
    summary: dict[str, Any] = {"notes": [], "precision": "float32"}  # the actors' (all alike), once one has run
    for batch in _run(job, inputs, _StatsWorker, (spec, options)):
        for blob in batch["payload"]:
            partials, summary = pickle.loads(blob)
            for layer, partial in partials.items():
                merged[layer] = merged[layer] + partial if layer in merged else partial
        failures.extend(_failures(batch))
    order = {item.path: index for index, item in enumerate(inputs)}
    failures.sort(key=lambda failure: order.get(failure[0], len(order)))
    label = options.model_label or Path(spec.model).name
    layers = list(merged.values())
    return stats_result(layers, failures, len(inputs), out_dir, options, label, summary["notes"], summary["precision"])


class _MapsWorker(_Worker):
    """Feature-map grids of each batch, written where the driver's output folder is: ``(records by image, what
    the run's summary says: preprocessing, fit, notes)``. (Two batches at once per actor, to draw one while the
    model runs on the next, measured no faster: 26.5-30.1 s against 25.9-26.7 s for 64 VGG16 photos.)"""

    def setup(self, model: Any, *args: Any) -> None:  # noqa: D102
        from cnnviz.engines.featuremaps_run import plan_maps

        options, out = args
        self.label = options.label_of(model)
        self.folders = {item.path: item.key for item in self.inputs.values()}
        self.plan = plan_maps(model, options)
        self.out = Path(out)

    def run(self, paths: list[str], data: dict[str, bytes], failed: Callable[[Any, BaseException], None]) -> Any:  # noqa: D102
        from cnnviz.engines.featuremaps_run import image_record, write_maps

        records = {}
        plan, options = self.plan, self.plan.options
        batches = self.batches(plan.extractor, plan.preprocessing, paths, data, failed, options)
        for batch_paths, maps in batches:
            for index, path in enumerate(os.fspath(p) for p in batch_paths):
                record = image_record(self.folders[path], plan)
                folder = self.out / self.folders[path]
                for conv in plan.extractor.layers:
                    activation = maps[conv.path][index]
                    drawn = write_maps(folder, conv, activation, path, self.label, options, fit=plan.fit)
                    record["layers"][conv.path] = drawn[0]
                records[path] = record
        step = plan.preprocessing
        return records, {"preprocessing": (step.name, step.description), "fit": plan.fit, "notes": plan.notes}


def ray_feature_maps(
    spec: ModelRef, inputs: Sequence[Input], out_dir: str | os.PathLike[str], options: Any, job: Job
) -> Any:
    """:func:`cnnviz.engines.featuremaps_run.render_feature_maps` on Ray, with the same
    :class:`cnnviz.engines.featuremaps_run.MapOptions`: the actors write the grids into ``out_dir`` (a folder all
    nodes share), the driver writes the manifest, also when interrupted. ``options.skip_existing`` leaves out what
    the manifest lists, whichever engine drew it (the driver loads the model to know the layers then; otherwise it
    never does).

    Returns:
        A :class:`cnnviz.engines.contract.RunResult`.

    Raises:
        OptionError: options the Ray engine cannot honour (``overlay``), before any work.
    """
    from cnnviz.engines.contract import RunResult
    from cnnviz.engines.featuremaps_run import finished_inputs, plan_maps
    from cnnviz.inputs.preprocess import Preprocessing
    from cnnviz.output.manifest import update_manifest

    options.check_engine("ray")
    out = Path(out_dir).resolve()
    report = RunResult(inputs=len(inputs))
    if options.skip_existing:
        done = finished_inputs(out, inputs, plan_maps(spec.load(), options).extractor.layers, options.save_raw)
        inputs = [item for item in inputs if item.path not in done]
        report.skipped = len(done)
    written: dict[str, dict[str, Any]] = {}
    try:
        if inputs:
            for batch in _run(job, inputs, _MapsWorker, (spec, options, str(out))):
                for blob in batch["payload"]:
                    records, summary = pickle.loads(blob)
                    written.update(records)
                    report.preprocessing = Preprocessing.described(*summary["preprocessing"])
                    report.fit, report.notes = summary["fit"], list(summary["notes"])
                report.failures.extend(_failures(batch))
    finally:
        update_manifest(out / "manifest.json", options.about(spec.model), images=written, failures=report.failures)
    for record in written.values():
        for layer in record["layers"].values():
            report.written.extend(Path(layer[kind]) for kind in ("png", "npy") if kind in layer)
    return report


class _TopWorker(_Worker):
    """Partial top-k of each batch: ``{layer: TopK}``, images numbered by their place in the run's inputs."""

    def setup(self, model: Any, *args: Any) -> None:  # noqa: D102
        from cnnviz.inputs.preprocess import resolve_preprocessing
        from cnnviz.methods.top import build_top_extractor

        self.options, self.numbers = args
        self.extractor = build_top_extractor(model, [self.options.layer], **self.options.choice)
        self.step = resolve_preprocessing(model, self.options.preprocess)

    def run(self, paths: list[str], data: dict[str, bytes], failed: Callable[[Any, BaseException], None]) -> Any:  # noqa: D102
        from cnnviz.methods.top import add_batch, empty_tops

        tops = empty_tops(self.extractor, self.options.k, self.options.by)
        for batch_paths, reduced in self.batches(self.extractor, self.step, paths, data, failed, self.options):
            add_batch(tops, reduced, [self.numbers[os.fspath(path)] for path in batch_paths])
        return tops


def ray_top(spec: ModelRef, inputs: Sequence[Input], out_dir: str | os.PathLike[str], options: Any, job: Job) -> Any:
    """:func:`cnnviz.engines.top_run.render_top` on Ray, with the same :class:`cnnviz.engines.top_run.TopOptions`:
    the actors scan their batches into partial top-k lists, which merge exactly (by value, then input order); the
    driver then loads the model to cut the winners' patches, as the local run does (:func:`top_result`).

    Raises:
        ModelLoadError, LayerNotFound, NotAConvLayer, UnsupportedLayer: from the actors, as the local engine
            raises them.
        ModelRunError: the job failed otherwise.
    """
    from cnnviz.engines.top_run import top_result
    from cnnviz.methods.top import ROUNDED_RANKS, TopK, TopScan, build_top_extractor

    paths = [item.path for item in inputs]
    numbers = {path: index for index, path in enumerate(paths)}
    merged: dict[str, TopK] = {}
    failures: list[tuple[str, CnnvizError]] = []
    for batch in _run(job, inputs, _TopWorker, (spec, options, numbers)):
        for blob in batch["payload"]:
            for layer, partial in pickle.loads(blob).items():
                merged[layer] = merged[layer].merge(partial) if layer in merged else partial
        failures.extend(_failures(batch))
    failures.sort(key=lambda failure: numbers.get(failure[0], len(numbers)))
    model = spec.load()
    extractor = build_top_extractor(model, [options.layer], **options.choice)
    tops = {
        conv.path: merged.get(conv.path) or TopK.empty(int(conv.output_shape[-1] or 0), options.k, options.by)
        for conv in extractor.layers
    }
    notes = extractor.run_notes(ROUNDED_RANKS)
    scan = TopScan(list(extractor.layers), tops, paths, failures, notes, extractor.precision)
    return top_result(model, scan, out_dir, options)
