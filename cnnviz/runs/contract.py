"""The shape every run shares.

A run is one function per command, ``run(model, [inputs,] out_dir, options, progress=None) -> RunResult``:

- ``model`` is a Keras model, or for the runs that take an engine a :class:`cnnviz.engines.naming.ModelRef`
  that the Ray engine's workers load; ``inputs`` are image files, folders (searched recursively; the output
  mirrors their tree) and glob patterns (:data:`cnnviz.inputs.gather.Images`); ``out_dir`` the output folder.

- ``options`` is one frozen object built from small parts (:class:`cnnviz.engines.naming.Naming`: how the model
  is named; :class:`cnnviz.inputs.reader.ReadingSettings`: how images are read, with
  :class:`cnnviz.engines.dispatch.EngineSettings` where the run goes over many images:
  :class:`cnnviz.engines.dispatch.EngineReading`; :class:`ViewSettings`: how grids are drawn) and the run's own
  fields. It checks itself when it is made (``__post_init__``), once, so a bad value fails before any model work,
  whoever builds it: the CLI, the callback, the report, a script. An option a run cannot honour is refused there
  too, never ignored.
- ``progress(advance, total)`` is called as work gets done: ``advance`` units (images, filter-steps) just done
  out of ``total``.
- the result is a :class:`RunResult` (what was written, notes for the user, the inputs that failed), or a subclass
  that adds the run's own findings (:class:`cnnviz.runs.stats.StatsResult`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnnviz.draw.render import check_norm, palette
from cnnviz.draw.view import ViewSettings
from cnnviz.engines.dispatch import DEFAULT_ENGINE, ENGINES, EngineReading, EngineSettings, check_engine
from cnnviz.engines.naming import Naming
from cnnviz.errors import CnnvizError, OptionError
from cnnviz.inputs.gather import Images, Input, gather_inputs
from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.inputs.reader import ReadingSettings
from cnnviz.models.precision import DEFAULT_PRECISION

__all__ = [
    "ENGINES",
    "EngineReading",
    "EngineSettings",
    "Naming",
    "Progress",
    "ReadingSettings",
    "RunResult",
    "ViewSettings",
    "check_engine",
    "counted",
    "find_inputs",
]

#: ``progress(advance, total)``: ``advance`` units of work just done, of ``total`` in the whole run.
Progress = Callable[[int, int], object]


def counted(progress: Progress | None, total: int) -> Callable[[int], object] | None:
    """A run's ``progress(advance, total)`` as a scan's hook ``advance(count)`` over ``total`` inputs."""
    return None if progress is None else (lambda done: progress(done, total))


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
    precision: str = DEFAULT_PRECISION

    def note(self, text: str) -> None:
        """Add a note for the user, once."""
        if text not in self.notes:
            self.notes.append(text)


def check_view(view: ViewSettings, norms: tuple[str, ...], what: str) -> None:
    """Raise :class:`OptionError` for a normalisation of ``view`` not in ``norms`` (named ``what``), an unknown
    colormap or a bad scale: what every grid-drawing run's options check."""
    check_norm(view.norm, norms, what)
    palette(view.cmap)
    if view.scale is not None and view.scale < 1:
        raise OptionError(f"the scale must be at least 1, got {view.scale}")


def find_inputs(
    images: Images,
    exclude: str | os.PathLike[str] | None,
    engine: str = DEFAULT_ENGINE,
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
        raise OptionError("URIs such as s3://bucket/images/ are read by the Ray engine: add `engine` ray")
    return gather_inputs(images, exclude=exclude)
