"""The shape of every method that goes over images, which every engine runs unchanged.

A method is a class: made once on a model, a :class:`cnnviz.inputs.reader.Reader` and its own options (the
constructor builds what its batches need: an extractor, a replay), it then

- ``scan``\\ s one batch into a *partial* result,
- ``merge``\\ s two partials into one, exactly: any split of the inputs, in any order, merges to the same answer
  (partials keep sums, counts and ranked lists, not means), and
- ``finish``\\ es the merged partial into the method's result.

:func:`scan_all` is the loop over batches: read, scan, merge, set aside what fails. An engine
(:mod:`cnnviz.engines.dispatch`) knows nothing of what a method computes: the local engine runs :func:`scan_all`
over the run's inputs in this process, the Ray engine (:mod:`cnnviz.engines.ray_engine`) runs it in its workers
over blocks of files and merges their partials. A new method is one class; no engine changes. Drawing and writing
stay with the runs (``draw/``, ``output/``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cnnviz.errors import CnnvizError, ForwardPassError, brief
from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.inputs.reader import Batch, ImagePath, Reader
from cnnviz.models.graph import shape_text
from cnnviz.models.precision import DEFAULT_PRECISION

P = TypeVar("P")


class Method(ABC, Generic[P]):
    """A method over images: :meth:`scan` a batch, :meth:`merge` partials, :meth:`finish` (see the module).

    Attributes:
        reader: how its inputs are read.
        notes: what a run of it tells the user (inputs fed zeros, layers left in float32).
        precision: what the model computes in, ``float32`` or ``bfloat16``.
    """

    #: Whether the model must be loaded with its classifier head (keras.applications models): class scores.
    include_top: bool = False

    def __init__(self, model: Any, reader: Reader, options: Any) -> None:
        self.reader = reader
        self.options = options
        self.notes: list[str] = []
        self.precision = DEFAULT_PRECISION

    @abstractmethod
    def scan(self, batch: Batch) -> P:
        """One batch's partial result.

        Raises:
            ForwardPassError: the model could not run on these inputs (its cause is the backend's error); the
                engine reports each input of the batch as failed and goes on.
        """

    @staticmethod
    @abstractmethod
    def merge(first: P, second: P) -> P:
        """Two partials as one, exactly as if their batches had been scanned as one (``first``'s inputs before
        ``second``'s where order breaks ties)."""

    def close(self, stopped: bool) -> P | None:
        """Called once by :func:`scan_all` after the last batch, or when the scan was stopped (Ctrl-C): a method
        that keeps work in flight across batches (drawing while the model runs on the next) waits for it and
        hands back its partial; when ``stopped``, only what had finished (the rest is dropped). None by default."""
        return None

    def finish(self, partial: P | None) -> Any:
        """The method's result from all batches merged (None where no input could be read)."""
        return partial

    def batch_failures(self, batch: Batch, error: ForwardPassError) -> list[tuple[str, CnnvizError]]:
        """Each input of a batch the model could not run on, with its own error."""
        cause = error.__cause__ if error.__cause__ is not None else error
        failures: list[tuple[str, CnnvizError]] = []
        for path, array in zip(batch.paths, batch.arrays, strict=True):
            failure = ForwardPassError(
                f"{path}: the model could not run on it at {shape_text(array.shape)}: {brief(cause)}"
            )
            failure.__cause__ = cause
            failures.append((path, failure))
        return failures


@dataclass
class Scanned(Generic[P]):
    """What an engine hands back from scanning a method over inputs.

    Attributes:
        partial: all batches' partials merged; None where no input could be read.
        failures: the inputs that failed, each with its error, in the run's input order.
        notes: the method's notes (:attr:`Method.notes`).
        precision: what the model computed in.
        method: the method as set up, where it ran in this process (None where an engine ran it elsewhere).
        preprocessing: how pixels were prepared (:attr:`cnnviz.inputs.reader.Reader.preprocessing`), where the
            method was set up (None where it never was: no input).
        fit: how images got the model's input size: the settings' fit, or ``none`` where they kept their shape.
    """

    partial: P | None
    failures: list[tuple[str, CnnvizError]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    precision: str = DEFAULT_PRECISION
    method: Method[P] | None = None
    preprocessing: Preprocessing | None = None
    fit: str = "none"


#: The attribute of an exception that stopped a scan where :func:`stopped_scan` finds what was done.
_DONE = "cnnviz_scanned"


def stop_scan(error: BaseException, done: Scanned[Any]) -> None:
    """Attach to ``error``, which is ending a scan (Ctrl-C, a file that could not be written), what the scan had
    done: the error goes on as it is, and whoever must record that work (a manifest) finds it."""
    setattr(error, _DONE, done)


def stopped_scan(error: BaseException) -> Scanned[Any] | None:
    """What a scan had done when ``error`` ended it (:func:`stop_scan`); None for an error from elsewhere."""
    return getattr(error, _DONE, None)


def scan_all(
    method: Method[P],
    paths: Sequence[ImagePath],
    progress: Callable[[int], object] | None = None,
    numbers: Mapping[str, int] | None = None,
    data: Mapping[str, bytes] | None = None,
) -> Scanned[P]:
    """Scan every batch of ``paths`` with ``method`` and merge the partials.

    An input that cannot be read, or that the model cannot run on, is set aside with its error and the others go
    on. ``progress(count)`` is called with the inputs done (read or failed) as the scan goes.

    Args:
        method: a method made on the model and the reader.
        paths: the inputs.
        progress: a progress hook.
        numbers: each path's place in the whole run, for a part of a run's inputs (a Ray worker's block).
        data: the files' bytes by path, read already (a Ray worker's block); then nothing is read ahead.

    Returns:
        The merged partial, the failures in input order, and the method's notes and precision.

    Raises:
        BaseException: whatever ends the scan (Ctrl-C, an error of the method's), carrying what was done, work in
            flight that had finished included (:func:`stopped_scan`).
    """
    failures: list[tuple[str, CnnvizError]] = []

    def failed(path: Any, error: CnnvizError) -> None:
        failures.append((os.fspath(path), error))
        if progress is not None:
            progress(1)

    total: P | None = None
    merge = type(method).merge

    def add(partial: P | None) -> None:
        nonlocal total
        if partial is not None:
            total = partial if total is None else merge(total, partial)

    try:
        for batch in method.reader.batches(paths, numbers, failed, data, read_ahead=data is None):
            try:
                partial = method.scan(batch)
            except ForwardPassError as exc:
                for path, error in method.batch_failures(batch, exc):
                    failed(path, error)
                continue
            add(partial)
            if progress is not None:
                progress(len(batch.paths))
        add(method.close(stopped=False))
    except BaseException as exc:
        add(method.close(stopped=True))  # and its threads are let go
        stop_scan(exc, _scanned(method, total, _in_order(failures, paths, numbers)))
        raise
    return _scanned(method, total, _in_order(failures, paths, numbers))


def _in_order(
    failures: list[tuple[str, CnnvizError]], paths: Sequence[ImagePath], numbers: Mapping[str, int] | None
) -> list[tuple[str, CnnvizError]]:
    places = numbers if numbers is not None else {os.fspath(path): place for place, path in enumerate(paths)}
    return sorted(failures, key=lambda failure: places.get(failure[0], len(places)))


def _scanned(method: Method[P], total: P | None, failures: list[tuple[str, CnnvizError]]) -> Scanned[P]:
    reader = method.reader
    return Scanned(total, failures, list(method.notes), method.precision, None, reader.preprocessing, reader.fit)
