"""Where a method runs: the engine a run's options choose, here or on Ray, behind one call.

:func:`scan_inputs` takes any method (:mod:`cnnviz.methods.shape`) with its options, the model, the inputs, the
reading settings and the engine settings, and hands back the method's merged partial: the local engine scans in
this process, the Ray engine in its workers. Runs call it; the CLI never picks an engine itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cnnviz.engines.naming import ModelRef
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Input
from cnnviz.inputs.reader import Reader, ReadingSettings
from cnnviz.methods.shape import Method, Scanned, scan_all

P = TypeVar("P")
ENGINES = ("local", "ray")
#: Where a run goes unless asked otherwise: this process.
DEFAULT_ENGINE = ENGINES[0]


def check_engine(engine: str) -> None:
    """Raise :class:`OptionError` unless ``engine`` is one of :data:`ENGINES`."""
    if engine not in ENGINES:
        raise OptionError(f"unknown engine '{engine}'; choose one of: {', '.join(ENGINES)}")


@dataclass(frozen=True)
class EngineSettings:
    """Where a run over many images runs.

    Attributes:
        engine: ``local`` (this process) or ``ray`` (Ray Data: a cluster at ``address``, else a local Ray).
        address: the Ray cluster's address (``RAY_ADDRESS`` or a running local cluster when None).
        ray_workers: Ray's model workers (one CPU each); one per CPU the reading leaves free when None.
    """

    engine: str = DEFAULT_ENGINE
    address: str | None = None
    ray_workers: int | None = None

    def check_engine_settings(self) -> None:
        """Raise :class:`OptionError` for an unknown engine, or Ray settings without the Ray engine."""
        check_engine(self.engine)
        if self.ray_workers is not None and self.ray_workers < 1:
            raise OptionError(f"ray_workers must be at least 1, got {self.ray_workers}")
        given = [name for name in ("address", "ray_workers") if getattr(self, name) is not None]
        if self.engine != "ray" and given:
            named = " and ".join(f"`{name}`" for name in given)
            raise OptionError(
                f"{named} {'are' if len(given) > 1 else 'is'} for the Ray engine: choose it with `engine` ray"
            )


@dataclass(frozen=True)
class EngineReading(ReadingSettings, EngineSettings):
    """How a run over many images reads them, and where it runs: the parts of every such run's options."""

    def check_engine_reading(self) -> None:
        """Raise :class:`OptionError` for reading or engine settings that cannot work."""
        self.check_reading()
        self.check_engine_settings()

    @property
    def where(self) -> EngineSettings:
        """The engine settings alone."""
        return EngineSettings(self.engine, self.address, self.ray_workers)


def ray_cluster(where: EngineSettings) -> tuple[Any, int]:
    """Connect to the Ray cluster ``where`` names and size the job: (the cluster, the actors that fit)."""
    from cnnviz.engines.ray_engine import connect

    cluster = connect(where.address)
    return cluster, cluster.actors(where.ray_workers)


def for_workers(model: Any) -> ModelRef:
    """The model as Ray's workers load it, each on its own node.

    Raises:
        OptionError: a Keras model in memory, which a worker cannot load.
    """
    if not isinstance(model, ModelRef):
        raise OptionError(
            "the Ray engine's workers load the model themselves: give a ModelRef (a keras.applications name, "
            "'shapes' or a model file every node can read), not a model in memory"
        )
    return model.resolved()


def loaded_here(model: Any, include_top: bool = False) -> Any:
    """The model for work in this process: a Keras model as it is, a ModelRef loaded."""
    return model.load(include_top=include_top) if isinstance(model, ModelRef) else model


def scan_inputs(
    method: type[Method[P]],
    options: Any,
    model: Any,
    inputs: Sequence[Input],
    settings: EngineReading,
    progress: Callable[[int], object] | None = None,
) -> Scanned[P]:
    """Scan ``inputs`` with ``method`` (set up with ``options``) on the engine ``settings`` chooses.

    Args:
        method: a :class:`cnnviz.methods.shape.Method` class.
        options: what the method is set up with.
        model: a Keras model, or a :class:`cnnviz.engines.naming.ModelRef` (loaded here for the local engine, by
            each worker for Ray, which needs one).
        inputs: the run's inputs.
        settings: how inputs are read, and where the method runs.
        progress: called with the inputs done as the scan goes.

    Returns:
        The merged partial, failures, notes and precision; on the local engine :attr:`Scanned.method` is the method
        as set up.

    Raises:
        OptionError: a Keras model for the Ray engine (its workers load the model: give a ModelRef).
    """
    if settings.engine == "ray":
        from cnnviz.engines.ray_engine import Job, scan_on_ray

        cluster, actors = ray_cluster(settings.where)
        job = Job(cluster, actors, settings.batch_size, progress)
        return scan_on_ray(method, options, for_workers(model), inputs, settings.reading, job)
    loaded = loaded_here(model, method.include_top)
    made = method(loaded, Reader(loaded, settings), options)
    scanned = scan_all(made, [item.path for item in inputs], progress)
    scanned.method = made
    return scanned
