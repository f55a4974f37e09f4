"""An atlas site served by the explorer (``cnnviz explore --atlas DIR``): its files are listed once, when the
explorer starts, and a request names an entry of that list, never a path on disk; each filter card links to its
unit's page where the atlas has one."""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.output.files import safe_name


@dataclass(frozen=True)
class AtlasFiles:
    """An atlas's files by their path in the site, and the units each layer has pages for."""

    files: dict[str, Path] = field(default_factory=dict)
    units: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: str | None) -> AtlasFiles:
        """The atlas in ``folder`` (an empty one for None); hidden files are left out."""
        if folder is None:
            return cls()
        root = Path(folder)
        files = {
            path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
        }
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
        units = {}
        for layer in index.get("layers", []):
            listing = root / safe_name(layer["layer"]) / "index.json"
            if listing.is_file():
                units[layer["layer"]] = [card["unit"] for card in json.loads(listing.read_text())["units"]]
        return cls(files, units)

    def record(self) -> dict[str, Any]:
        """What ``/api/model`` says of the atlas: each layer's folder and units with pages."""
        return {layer: {"folder": safe_name(layer), "units": units} for layer, units in self.units.items()}

    def get(self, name: str) -> tuple[bytes, str] | None:
        """A file's bytes and type by its path in the site (``""`` is the index), or None."""
        path = self.files.get(name or "index.html")
        if path is None:
            return None
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return path.read_bytes(), kind
