"""Which files a run reads: image files, folders searched recursively, and glob patterns, each input with the
output folder its grids go to, mirroring the input tree so that ``a/cat.jpg`` and ``b/cat.jpg`` stay apart."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cnnviz.errors import OptionError
from cnnviz.inputs.images import input_suffixes


@dataclass(frozen=True)
class Input:
    """One input file and where its outputs go.

    Attributes:
        path: the file, as given or found.
        key: its output folder below the run's folder, ``/``-separated: the path below the folder or glob it
            was found under, without its suffix (``a/cat`` for ``photos/a/cat.jpg`` found in ``photos``).
    """

    path: str
    key: str


#: The images a run is given: files, folders and glob patterns, or inputs already gathered.
Images = Sequence[str | os.PathLike[str] | Input]


def _is_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path.resolve() == folder or folder in path.resolve().parents)


def gather_inputs(
    items: Sequence[str | os.PathLike[str] | Input], exclude: str | os.PathLike[str] | None = None
) -> list[Input]:
    """The input files named by ``items``, in order, each with a distinct output key.

    A folder stands for every image (and ``.npy``) file below it, sorted, hidden files and folders left out;
    a glob pattern (``'photos/**/*.jpg'``, quoted so that cnnviz expands it) for the files it matches. A
    repeated key gets ``-2``, ``-3``... (``cat.jpg`` and ``cat.png`` side by side). Files found under
    ``exclude`` (the run's own output folder) are left out, so a second run over ``.`` does not read the
    grids of the first.

    Raises:
        OptionError: a name that is neither a file, a folder nor a pattern that matches files; a folder or
            pattern with no input files in it.
    """
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[Input] = []
    for item in items:
        if isinstance(item, Input):
            found.append(item)
            continue
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            files = _below(path, sorted(p for p in path.rglob("*") if p.is_file()), skip)
            if not files:
                raise OptionError(f"folder {path} holds no image files")
            found.extend(files)
        elif path.exists() or not _is_glob(text):
            if not path.exists():
                raise OptionError(f"no such file or folder: {text}")
            found.append(Input(text, path.stem or "image"))
        else:
            base = _glob_base(text)
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            files = _below(base, matches, skip)
            if not files:
                raise OptionError(f"no image files match {text}")
            found.extend(files)
    return _distinct(found)


def _below(base: Path, files: Iterable[Path], skip: Path | None) -> list[Input]:
    """The input files among ``files`` (all below ``base``), keyed by their path below it."""
    suffixes = input_suffixes()
    chosen = []
    for file in files:
        relative = file.relative_to(base)
        if file.suffix.lower() in suffixes and not _hidden(relative) and not _inside(file, skip):
            chosen.append(Input(str(file), PurePosixPath(*relative.with_suffix("").parts).as_posix()))
    return chosen


def _glob_base(pattern: str) -> Path:
    """The folder a glob pattern searches: its leading parts without wildcards."""
    parts = Path(pattern).parts
    plain = parts[: next(i for i, part in enumerate(parts) if _is_glob(part))]
    return Path(*plain) if plain else Path(".")


def _distinct(inputs: list[Input]) -> list[Input]:
    """The same inputs, each file once, with ``-2``, ``-3``... added to repeated keys."""
    taken: set[str] = set()
    seen: set[str] = set()
    result = []
    for item in inputs:
        if item.path in seen:
            continue
        seen.add(item.path)
        key, number = item.key, 1
        while key in taken:
            number += 1
            key = f"{item.key}-{number}"
        taken.add(key)
        result.append(Input(item.path, key))
    return result
