"""What every run shares: the report of what it did, and the option checks that come before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnnviz.draw.render import check_norm, palette
from cnnviz.errors import CnnvizError
from cnnviz.inputs.preprocess import Preprocessing


@dataclass
class Report:
    """What a run did: files written, images that failed, and notes for the user; ``inputs`` counts the input
    files found and ``skipped`` those left out as already drawn (``--skip-existing``)."""

    written: list[Path] = field(default_factory=list)
    failures: list[tuple[str, CnnvizError]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    preprocessing: Preprocessing | None = None
    fit: str = "none"
    inputs: int = 0
    skipped: int = 0


def _check_choices(norm: str, norms: tuple[str, ...], what: str, cmap: str) -> None:
    """Refuse a bad normalisation or colormap before any model work is done."""
    check_norm(norm, norms, what)
    palette(cmap)
