"""The only module that writes files: PNGs, raw ``.npy`` activations and the run manifest, all atomically."""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from cnnviz.draw.render import PNG_COMPRESS_LEVEL, Picture
from cnnviz.errors import OutputError

#: A folder or file a run writes into.
Folder = str | os.PathLike[str]


def safe_name(layer_path: str) -> str:
    """A file-name stem for a layer path: nested names' ``/`` become ``__``, unsafe characters ``_``.

    >>> safe_name("vgg16/block1_conv1")
    'vgg16__block1_conv1'
    >>> safe_name("a b:c")
    'a_b_c'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", layer_path.replace("/", "__"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    Raises:
        OutputError: the folder cannot be made or the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def save_png(
    picture: Picture,
    path: str | os.PathLike[str],
    compress_level: int = PNG_COMPRESS_LEVEL,
) -> Path:
    """Write a picture as a PNG, atomically (a temporary file renamed into place), creating folders.

    Returns:
        The path written.
    """
    target = Path(path)
    write_atomic(target, picture.png_bytes(compress_level))
    return target


def save_bytes(data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write already encoded data (a chart, a table), atomically, creating folders."""
    target = Path(path)
    write_atomic(target, data)
    return target


def save_npy(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an array as ``.npy``, atomically."""
    target = Path(path)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    write_atomic(target, buffer.getvalue())
    return target


def check_writable(folder: str | os.PathLike[str]) -> None:
    """Make ``folder`` (with its parents) and make sure files can be written into it, before any slow work starts.

    Raises:
        OutputError: a file stands in the way, or the folder cannot be made or written into.
    """
    target = Path(folder)
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write into {target}: {existing} is a file, not a folder")
    # Permissions alone do not tell (root passes every access check, and a read-only mount or /proc refuses
    # anyway): make the folder and a scratch file in it.
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write into {target}: {exc.strerror or exc}") from exc
