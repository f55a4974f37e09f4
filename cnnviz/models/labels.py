"""Class names: the 1,000 ImageNet classes shipped with cnnviz (so they work offline), or a user's own file."""

from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from cnnviz.errors import OptionError

BUNDLED_DIR = Path(__file__).parent.parent / "bundled"
IMAGENET_LABELS = BUNDLED_DIR / "imagenet_labels.txt"
#: How many classes an ImageNet classifier has: a model with this many outputs gets the ImageNet names.
IMAGENET_CLASSES = 1000


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The ImageNet class names in class-index order, as Keras's ``decode_predictions`` names them.

    >>> labels = imagenet_labels()
    >>> len(labels), labels[0], labels[281], labels[999]
    (1000, 'tench', 'tabby', 'toilet_tissue')
    """
    return tuple(IMAGENET_LABELS.read_text(encoding="utf-8").splitlines())


def read_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Class names from a text file, one per line in class-index order (blank lines at the end are ignored).

    Raises:
        OptionError: the file cannot be read or has no names.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"cannot read the labels file {path}: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise OptionError(f"the labels file {path} has no class names (one per line expected)")
    return tuple(line.strip() for line in lines)


def bundled_labels(model_name: str) -> tuple[str, ...] | None:
    """The class names of a model bundled with cnnviz (``shapes``), from its description; None for others.

    >>> bundled_labels("shapes")[8:]
    ('circles', 'squares', 'triangles')
    """
    description = BUNDLED_DIR / f"{model_name}.json"
    if not description.is_file():
        return None
    classes = json.loads(description.read_text(encoding="utf-8")).get("classes")
    return tuple(classes) if classes else None


def class_names(
    classes: int, labels_file: str | os.PathLike[str] | None = None, model_name: str | None = None
) -> tuple[str, ...] | None:
    """Names for a classifier with ``classes`` outputs: the file's; else a bundled model's own (``model_name``);
    else ImageNet's for 1,000 classes; else None.

    Raises:
        OptionError: the file names a different number of classes than the model has.
    """
    if labels_file is not None:
        names = read_labels(labels_file)
        if len(names) != classes:
            raise OptionError(f"the labels file {labels_file} names {len(names)} classes; the model has {classes}")
        return names
    own = bundled_labels(model_name) if model_name else None
    if own is not None and len(own) == classes:
        return own
    return imagenet_labels() if classes == IMAGENET_CLASSES else None


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def resolve_class(spec: str | int, classes: int, names: Sequence[str] | None) -> int:
    """The class index a ``--class`` value means: an index, or a class name (case and ``_``/space ignored).

    >>> resolve_class("281", 1000, None), resolve_class("Tiger cat", 1000, imagenet_labels())
    (281, 282)

    Raises:
        OptionError: the index is out of range, or no class has that name (the message suggests close ones).
    """
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < classes:
            raise OptionError(f"class {index} is out of range: the model has {classes} classes (0-{classes - 1})")
        return index
    if names is None:
        raise OptionError(
            f"class '{text}' is a name, but this model's {classes} classes have none; give an index or `labels_file`"
        )
    keys = [_key(name) for name in names]
    if _key(text) in keys:
        return keys.index(_key(text))
    close = difflib.get_close_matches(_key(text), keys, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(names[keys.index(key)] for key in close)}?" if close else ""
    raise OptionError(f"no class named '{text}'{hint}")


def class_name(index: int, names: Sequence[str] | None) -> str:
    """How a class is named to the user: its name, or ``class N``."""
    return names[index] if names is not None else f"class {index}"
