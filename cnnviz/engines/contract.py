"""The shape every run shares.

A run is one function per command, ``run(model, [inputs,] out_dir, options, progress=None) -> RunResult``:

- ``options`` is one frozen object built from small parts (:class:`cnnviz.engines.naming.Naming`: how the model
  is named; :class:`ReadingSettings`: how images are read; :class:`ViewSettings`: how grids are drawn) and the run's own
  fields. It checks itself when it is made (``__post_init__``), once, so a bad value fails before any model work,
  whoever builds it: the CLI, the callback, the report, a script. An option a run cannot honour is refused there
  too, never ignored.
- ``progress(advance, total)`` is called as work gets done: ``advance`` units (images, filter-steps) just done
  out of ``total``.
- the result is a :class:`RunResult` (what was written, notes for the user, the inputs that failed), or a subclass
  that adds the run's own findings (:class:`cnnviz.engines.stats_run.StatsResult`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.draw.render import check_norm, palette
from cnnviz.engines.naming import Naming
from cnnviz.errors import CnnvizError, OptionError
from cnnviz.inputs.gather import Input, gather_inputs
from cnnviz.inputs.images import check_fit
from cnnviz.inputs.preprocess import MODES, Preprocessing
from cnnviz.models.precision import check_precision

__all__ = [
    "ENGINES",
    "Naming",
    "Progress",
    "ReadingSettings",
    "RunResult",
    "ViewSettings",
    "check_engine",
    "find_inputs",
]

#: ``progress(advance, total)``: ``advance`` units of work just done, of ``total`` in the whole run.
Progress = Callable[[int, int], object]
ENGINES = ("local", "ray")


@dataclass
class RunResult:
    """What a run did: files written, inputs that failed, and notes for the user; ``inputs`` counts the input
    files found and ``skipped`` those left out as already drawn (``--skip-existing``); ``preprocessing`` and
    ``fit`` say how images were read, for runs that read them, and ``precision`` what the model computed in."""

    written: list[Path] = field(default_factory=list)
    failures: list[tuple[str, CnnvizError]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    preprocessing: Preprocessing | None = None
    fit: str = "none"
    inputs: int = 0
    skipped: int = 0
    precision: str = "float32"

    def note(self, text: str) -> None:
        """Add a note for the user, once."""
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class ReadingSettings:
    """How the runs that feed images to the model read them.

    Attributes:
        preprocess: ``auto`` (follow the model) or a name from :data:`cnnviz.inputs.preprocess.MODES`.
        size: a (rows, cols) input size for models of free input size.
        fit: ``crop``, ``pad`` or ``stretch``, for a fixed input size of another shape.
        batch_size: images per forward pass.
        input: for a model of several inputs, the one that takes the images; the only image-shaped one when None.
        feed: for a model of several inputs, what the others get, by name: an array (or ``.npy`` file) of the
            input's shape for every image, or with a leading axis of one row per image; zeros where not given.
        precision: what the model computes in: ``float32``, ``bfloat16`` (about twice as fast where the CPU has
            AVX512-BF16 or AMX; pictures agree to a colour level or two) or ``auto`` (bfloat16 where native).
    """

    preprocess: str = "auto"
    size: tuple[int, int] | None = None
    fit: str = "crop"
    batch_size: int = 8
    input: str | None = None
    feed: Mapping[str, Any] | None = None
    precision: str = "float32"

    def check_reading(self) -> None:
        """Raise :class:`OptionError` for reading settings that cannot work."""
        if self.preprocess not in MODES:
            raise OptionError(f"unknown preprocessing '{self.preprocess}'; choose one of: {', '.join(MODES)}")
        check_fit(self.fit)
        if self.batch_size < 1:
            raise OptionError(f"the batch size must be at least 1, got {self.batch_size}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise OptionError(f"a size is (rows, cols) of at least 1 pixel, got {self.size}")
        check_precision(self.precision)
        if self.feed is not None and not all(isinstance(name, str) and name for name in self.feed):
            raise OptionError(f"feed maps input names to arrays or .npy files, got {list(self.feed)}")

    @property
    def choice(self) -> dict[str, Any]:
        """The input choice and precision, as :func:`cnnviz.methods.extract.build_extractor` takes them."""
        return {"input": self.input, "feed": self.feed, "precision": self.precision}


@dataclass(frozen=True)
class ViewSettings:
    """How grids are drawn.

    Attributes:
        norm: the normalisation; each run has its own choices and default.
        cmap: a matplotlib colormap name.
        scale: integer nearest-neighbour enlargement; None picks one.
        labels: draw the header strip and colorbar.
        index: number the tiles.
    """

    norm: str = ""
    cmap: str = "viridis"
    scale: int | None = None
    labels: bool = True
    index: bool = True

    def check_view(self, norms: tuple[str, ...], what: str) -> None:
        """Raise :class:`OptionError` for a normalisation not in ``norms``, an unknown colormap or a bad scale."""
        check_norm(self.norm, norms, what)
        palette(self.cmap)
        if self.scale is not None and self.scale < 1:
            raise OptionError(f"the scale must be at least 1, got {self.scale}")


def check_engine(engine: str) -> None:
    """Raise :class:`OptionError` unless ``engine`` is one of :data:`ENGINES`."""
    if engine not in ENGINES:
        raise OptionError(f"unknown engine '{engine}'; choose one of: {', '.join(ENGINES)}")


def find_inputs(
    images: Sequence[str | os.PathLike[str] | Input], exclude: str | os.PathLike[str] | None, engine: str = "local"
) -> list[Input]:
    """The input files of a run: files, folders and glob patterns (:func:`cnnviz.inputs.gather.gather_inputs`),
    and with the Ray engine also URIs (``s3://bucket/images/``), which only Ray's readers reach.

    Raises:
        OptionError: nothing found, or a URI for the local engine.
    """
    from cnnviz.engines.ray_engine import find_inputs as ray_inputs
    from cnnviz.engines.ray_engine import is_uri

    check_engine(engine)
    if engine == "ray":
        return ray_inputs([item.path if isinstance(item, Input) else os.fspath(item) for item in images], exclude)
    if any(is_uri(os.fspath(item)) for item in images if not isinstance(item, Input)):
        raise OptionError("URIs such as s3://bucket/images/ are read by the Ray engine: add --engine ray")
    return gather_inputs(images, exclude=exclude)
