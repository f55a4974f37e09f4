"""The shape of work over units, the engines' second kind of work beside the scans of images
(:mod:`cnnviz.methods.shape`): an optimisation per filter (``maximize``), not a pass over images.

A piece of work is a :class:`UnitWork` class: made once on a model and its options (the constructor builds what its
chunks need: a compiled step per layer), it then ``run``\\ s one :class:`UnitChunk` (a layer and some of its units)
into a result. Chunks are fixed by the caller, not by the engine, and each is computed on its own, so the results
are the same whatever the engine, the number of workers or the order they finish in. The engines run it:
:func:`cnnviz.engines.units.run_units`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class UnitChunk:
    """Some units of one layer, computed together."""

    layer: str
    units: tuple[int, ...]


class UnitWork(ABC, Generic[R]):
    """Work over units (see the module)."""

    #: Whether the model must be loaded with its classifier head (keras.applications models).
    include_top: bool = False

    def __init__(self, model: Any, options: Any) -> None:
        self.model = model
        self.options = options

    @abstractmethod
    def run(self, chunk: UnitChunk) -> R:
        """One chunk's result."""
