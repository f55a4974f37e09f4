"""Where work over units runs (:mod:`cnnviz.methods.units`: an optimisation per filter, not a scan of images).

:func:`run_units` runs the chunks here (local) or on Ray actors that each load the model once and take chunks as
they come free, and hands every result to ``done`` as it arrives, so a caller can write it at once (and a run
stopped half way has kept what finished).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cnnviz._keras import chosen_backend
from cnnviz.engines.dispatch import EngineSettings, for_workers, loaded_here
from cnnviz.engines.naming import ModelRef
from cnnviz.methods.units import UnitChunk, UnitWork

R = TypeVar("R")


def run_units(
    work: type[UnitWork[R]],
    options: Any,
    model: Any,
    chunks: Sequence[UnitChunk],
    where: EngineSettings,
    done: Callable[[UnitChunk, R], object],
) -> None:
    """Run ``work`` (set up with ``options``) on every chunk, on the engine ``where`` names, calling ``done`` with
    each chunk and its result as it finishes (in order on the local engine; as they come on Ray).

    Raises:
        OptionError: a Keras model for the Ray engine (its workers load the model: give a ModelRef).
    """
    if not chunks:
        return
    if where.engine == "ray":
        _on_ray(work, options, for_workers(model), chunks, where, done)
        return
    made = work(loaded_here(model, work.include_top), options)
    for chunk in chunks:
        done(chunk, made.run(chunk))


def _on_ray(
    work: type[UnitWork[R]],
    options: Any,
    spec: ModelRef,
    chunks: Sequence[UnitChunk],
    where: EngineSettings,
    done: Callable[[UnitChunk, R], object],
) -> None:
    from cnnviz.engines.ray_engine import _ray, _rebuilt, connect

    ray = _ray()
    cluster = connect(where.address)
    # No reading tasks run beside unit work: an actor per CPU (or as many as asked, up to that), each computing on
    # the one CPU it holds (TensorFlow would otherwise spread every actor over all of a node's cores).
    fits = max(1, math.floor(cluster.cpus))
    count = min(where.ray_workers or fits, fits, len(chunks))
    threads = dict.fromkeys(("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"), "1")
    environment = {"env_vars": {**threads, "KERAS_BACKEND": chosen_backend()}}
    actor = ray.remote(num_cpus=min(1.0, cluster.cpus), runtime_env=environment)(_UnitActor)
    actors = [actor.remote(spec, work, options) for _ in range(count)]
    pool = ray.util.ActorPool(actors)
    try:
        for number, (error, result) in pool.map_unordered(lambda one, item: one.run.remote(*item), enumerate(chunks)):
            if error:
                raise _rebuilt(error)
            done(chunks[number], result)
    finally:
        for one in actors:
            ray.kill(one)


class _UnitActor:
    """A Ray actor holding the model and the work set up on it; errors come back as data (``ClassName\\tmessage``),
    as the scan's workers send them."""

    def __init__(self, spec: ModelRef, work: type[UnitWork[Any]], options: Any) -> None:
        self.error = ""
        try:
            from cnnviz._keras import keras_module

            keras_module()
            self.work = work(spec.load(include_top=work.include_top), options)
        except Exception as exc:  # every kind goes back to the driver, named
            self.error = f"{type(exc).__name__}\t{exc}"

    def run(self, number: int, chunk: UnitChunk) -> tuple[int, tuple[str, Any]]:
        if self.error:
            return number, (self.error, None)
        try:
            return number, ("", self.work.run(chunk))
        except Exception as exc:
            return number, (f"{type(exc).__name__}\t{exc}", None)
