"""The manifest of an output folder: ``manifest.json`` lists every grid written there, by this run and earlier
ones, with the model that drew them."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from cnnviz.errors import OutputError
from cnnviz.output.files import write_atomic

#: How long a run waits for another run's merge.
LOCK_SECONDS = 120


def lock_path(manifest: Path) -> Path:
    """The lock a run holds while it merges into ``manifest``: a file in the system's temporary folder named for
    the manifest's full path, so that output folders hold only what the runs drew. (It serialises runs on one
    machine; runs on several machines sharing a folder go through one Ray driver.)"""
    key = hashlib.sha256(str(manifest.resolve()).encode()).hexdigest()[:24]
    user = getattr(os, "getuid", lambda: "")()  # one folder per user: another's lock files are not ours to open
    folder = Path(tempfile.gettempdir()) / f"cnnviz-locks-{user}"
    folder.mkdir(exist_ok=True)
    return folder / f"{key}.lock"


def save_manifest(records: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the run's manifest (what was written, from what, with which options) as JSON, atomically."""
    target = Path(path)
    write_atomic(target, (json.dumps(records, indent=2, sort_keys=True) + "\n").encode())
    return target


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest an earlier run left at ``path``; empty when there is none or it is not a readable manifest
    (it is then replaced, not merged)."""
    try:
        records = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def model_folder(root: str | os.PathLike[str], name: str, source: str) -> Path:
    """The folder under ``root`` for a model's grids: ``root/name``, or ``name-2``, ``name-3``... when that
    folder's manifest records another model (two files called ``best.h5`` in different places), so that runs of
    different models never mix.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = save_manifest({"source": "/a/best.h5"}, Path(root, "best", "manifest.json"))
    ...     model_folder(root, "best", "/a/best.h5").name, model_folder(root, "best", "/b/best.h5").name
    ('best', 'best-2')
    """
    for number in itertools.count(1):
        folder = Path(root) / (name if number == 1 else f"{name}-{number}")
        if read_manifest(folder / "manifest.json").get("source") in (None, source):
            return folder
    raise AssertionError("unreachable")  # pragma: no cover


def update_manifest(
    path: Path,
    about: dict[str, Any],
    *,
    images: dict[str, dict[str, Any]] | None = None,
    failures: list[tuple[str, Any]] | None = None,
    filters: dict[str, dict[str, Any]] | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Merge a run's grids and failures into the manifest earlier runs left in the same folder; ``about`` names
    the model (label, weights, source). ``sections`` are a run's own records by section and key (``{"top":
    {layer: record}}``), merged over what earlier runs left under the same keys.

    The read, merge and write hold a lock (:func:`lock_path`), so that runs writing into one folder at the same
    time (CI jobs in parallel, a Ray driver beside a local run) all end up in it.

    Raises:
        OutputError: the lock was not given up within :data:`LOCK_SECONDS` (a run hung while holding it).
    """
    images, failures, filters, sections = images or {}, failures or [], filters or {}, sections or {}
    if not images and not failures and not filters and not sections and not path.exists():
        return
    try:
        with FileLock(lock_path(path), timeout=LOCK_SECONDS):
            _merge(path, about, images, failures, filters, sections)
    except Timeout as exc:
        raise OutputError(f"{path} stayed locked by another run for {LOCK_SECONDS} s ({exc.lock_file})") from exc


def _merge(
    path: Path,
    about: dict[str, Any],
    images: dict[str, dict[str, Any]],
    failures: list[tuple[str, Any]],
    filters: dict[str, dict[str, Any]],
    sections: dict[str, dict[str, Any]],
) -> None:
    manifest = read_manifest(path)
    merged: dict[str, Any] = manifest.get("images", {})
    for image, record in images.items():
        layers = {**merged.get(image, {}).get("layers", {}), **record["layers"]}
        merged[image] = {**record, "layers": layers}
    old_failures: dict[str, str] = manifest.get("failures", {})
    merged_failures = {image: reason for image, reason in old_failures.items() if image not in images}
    merged_failures.update({os.fspath(image): str(exc) for image, exc in failures})
    records = {**about, "images": merged, "failures": merged_failures}
    records["filters"] = {**manifest.get("filters", {}), **filters}
    for name in {*manifest, *sections} - {*records, "images", "failures", "filters"}:
        records[name] = {**manifest.get(name, {}), **sections.get(name, {})}
    save_manifest(records, path)
