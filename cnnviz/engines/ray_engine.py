"""The Ray engine: any method (:mod:`cnnviz.methods.shape`) over data sets on Ray Data, for users who outgrow one
machine.

The job is the local engine spread out: ``ray.data.read_binary_files`` reads the files (local folders, or
anything pyarrow's filesystems reach: ``s3://``, ``gs://``), and ``map_batches`` hands blocks of them to a pool of
actors. Each actor loads the model once, from a :class:`cnnviz.engines.naming.ModelRef` any node can follow (a
keras.applications name, the bundled model, or a file every node can read), sets the method up once, and runs
the local engine's loop (:func:`cnnviz.methods.shape.scan_all`) over each block, numbered by the files' places in
the whole run. The driver merges the blocks' partials with the method's ``merge``, which is exact, so the result
is the local engine's (counts exactly, float sums up to the order of additions). Files are read as bytes and
decoded by cnnviz, not by ``read_images``: a damaged file is then one failed image, reported by name, not a
failed job. Nothing here knows what a method computes.

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
from pathlib import PurePosixPath
from typing import Any, TypeVar

from cnnviz._keras import chosen_backend, native_stderr_silenced
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import CnnvizError, ModelRunError, OptionError, brief
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.inputs.images import input_suffixes
from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.methods.shape import Method, Scanned, stop_scan

P = TypeVar("P")

INSTALL_HINT = "`engine` ray needs Ray Data: pip install 'cnnviz[ray]'"
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


class _MethodWorker:
    """Any method's scan of each block of files (:func:`cnnviz.methods.shape.scan_all`, the local engine's loop).
    The model is loaded once per actor, quietly, and the method set up on it; an error in doing so (a model file
    this node cannot read, a layer name that is not there) is sent back with the first block, as data, instead of
    failing the actor (which Ray would retry and report in pages of tracebacks). Every block comes back as one row:
    ``error``, ``images`` (how many were in it), ``failures`` (JSON ``[[path, error], ...]``) and ``payload`` (the
    pickled partial, notes, precision and how the block was read); errors as :func:`_sent` writes them."""

    def __init__(self, inputs: dict[str, Input], spec: ModelRef, method: type[Method[Any]], *args: Any) -> None:
        self.inputs = inputs
        self.error = ""
        options, reading, self.numbers = args
        try:
            from cnnviz._keras import keras_module
            from cnnviz.inputs.reader import Reader

            keras_module()
            model = spec.load(include_top=method.include_top)
            self.method = method(model, Reader(model, reading), options)
        except Exception as exc:  # every kind goes back to the driver, named
            self.error = _sent(exc)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from cnnviz.methods.shape import scan_all

        paths = [self.inputs[_row_key(str(path))].path for path in batch["path"]]
        failures: list[tuple[str, str]] = []
        payload = b""
        if not self.error:
            data = dict(zip(paths, (bytes(data) for data in batch["bytes"]), strict=True))
            scanned = scan_all(self.method, paths, numbers=self.numbers, data=data)
            failures = [(path, _sent(error)) for path, error in scanned.failures]
            step = self.method.reader.preprocessing
            reading = (step.name, step.description, scanned.fit)
            payload = pickle.dumps((scanned.partial, scanned.notes, scanned.precision, reading))
        return {
            "error": np.array([self.error], dtype=object),
            "images": np.array([len(paths)]),
            "failures": np.array([json.dumps(failures)], dtype=object),
            "payload": np.array([payload], dtype=object),
        }


def scan_on_ray(
    method: type[Method[P]], options: Any, spec: ModelRef, inputs: Sequence[Input], reading: Any, job: Job
) -> Scanned[P]:
    """:func:`cnnviz.methods.shape.scan_all` on Ray: ``method`` set up with ``options`` on each actor's model
    (loaded from ``spec``) and a reader of ``reading`` settings, each block's partial merged here as it comes
    (merges are exact: any order gives the same answer). The driver never loads the model (nor Keras).

    Returns:
        The merged partial, the failures in input order, and the actors' notes and precision.

    Raises:
        ModelLoadError, LayerNotFound, NotAConvLayer, UnsupportedModel, OptionError: from the actors, as the local
            engine raises them.
        ModelRunError: the job failed otherwise.
    """
    numbers = {item.path: index for index, item in enumerate(inputs)}
    result: Scanned[P] = Scanned(None)
    order = lambda failure: numbers.get(failure[0], len(numbers))  # noqa: E731
    try:
        for batch in _run(job, inputs, _MethodWorker, (spec, method, options, reading, numbers)):
            for blob in batch["payload"]:
                partial, result.notes, result.precision, (name, description, result.fit) = pickle.loads(blob)
                result.preprocessing = Preprocessing.described(name, description)
                if partial is not None:
                    result.partial = partial if result.partial is None else method.merge(result.partial, partial)
            result.failures.extend(_failures(batch))
    except BaseException as exc:  # Ctrl-C, or a worker's error: what merged so far goes with it
        result.failures.sort(key=order)
        stop_scan(exc, result)
        raise
    result.failures.sort(key=order)
    return result
