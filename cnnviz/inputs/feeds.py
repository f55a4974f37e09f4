"""What a model's inputs other than the image input get: arrays fed the same for every image, or one row per image."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.models.graph import model_inputs, shape_text


@dataclass
class Feeds:
    """What the inputs of a model other than the image input get: an array each, the same for every image or one
    row per image (``per_image``), in the model's input order, with the images at ``image_index``.

    Attributes:
        names: every input's name, in the model's order.
        image_index: the place of the image input.
        arrays: the other inputs' arrays, by place.
        per_image: the places whose arrays have one row per image (in the run's input order).
        notes: what to tell the user (inputs given zeros).
    """

    names: list[str]
    image_index: int
    arrays: dict[int, np.ndarray]
    per_image: set[int]
    notes: list[str] = field(default_factory=list)

    def inputs(self, batch: np.ndarray, images: Sequence[int] | None) -> list[np.ndarray]:
        """The model's inputs for a batch of images numbered ``images`` in the run's input order."""
        count = len(batch)
        given: list[np.ndarray] = []
        for place in range(len(self.names)):
            if place == self.image_index:
                given.append(batch)
            elif place in self.per_image:
                if images is None:
                    raise OptionError(f"input '{self.names[place]}' is fed one row per image: number the images")
                given.append(self.arrays[place][list(images)])
            else:
                given.append(np.broadcast_to(self.arrays[place], (count, *self.arrays[place].shape)))
        return given

    def check_rows(self, count: int) -> None:
        """Raise :class:`OptionError` where an input fed one row per image has another number of rows."""
        for place in sorted(self.per_image):
            rows = len(self.arrays[place])
            if rows != count:
                raise OptionError(
                    f"`feed` {self.names[place]} has {rows} rows, one per image, but the run has {count} "
                    f"image{'' if count == 1 else 's'}"
                )


def resolve_feeds(
    model: Any, image_index: int, feed: Mapping[str, str | os.PathLike[str] | np.ndarray] | None
) -> Feeds | None:
    """What the model's other inputs get: the arrays (or ``.npy`` files) of ``feed`` by input name, zeros for the
    others (a note says so, naming the option); None for a model of one input.

    Raises:
        OptionError: a name that is not one of the model's other inputs, an array of the wrong shape, or a free-size
            input without a feed.
    """
    inputs = model_inputs(model)
    names = [name for name, _ in inputs]
    feed = dict(feed or {})
    if len(inputs) == 1:
        if feed:
            raise OptionError(f"model '{model.name}' has one input; `feed` is for models of several")
        return None
    others = [name for number, name in enumerate(names) if number != image_index]
    for name in feed:
        if name not in others:
            what = "takes the images" if name == names[image_index] else "is not one of its inputs"
            raise OptionError(f"`feed` {name}: '{name}' {what}; the model's other inputs are: {', '.join(others)}")
    result = Feeds(names, image_index, {}, set())
    for number, (name, shape) in enumerate(inputs):
        if number == image_index:
            continue
        value = feed.get(name)
        if value is None:
            if None in shape:
                raise OptionError(
                    f"input '{name}' has a free shape ({shape_text(shape)}): give it `feed` {name}=FILE.npy"
                )
            result.arrays[number] = np.zeros([int(n or 0) for n in shape], dtype=np.float32)
            result.notes.append(f"input '{name}' gets zeros; give it values with `feed` {name}=FILE.npy")
            continue
        array = _feed_array(name, value)
        if _fits(shape, array.shape):
            result.arrays[number] = array
        elif array.ndim == len(shape) + 1 and _fits(shape, array.shape[1:]):
            result.arrays[number] = array
            result.per_image.add(number)
        else:
            raise OptionError(
                f"`feed` {name}: an array of shape {shape_text(array.shape)}; input '{name}' takes "
                f"{shape_text(shape)} (the same for every image) or N x {shape_text(shape)} (one row per image)"
            )
    return result


def fed_description(value: str | os.PathLike[str] | np.ndarray | None) -> str:
    """How a run names what an input was fed, in manifests and on the report's page.

    >>> fed_description("ages.npy"), fed_description(np.zeros((4, 2))), fed_description(None)
    ('ages.npy', 'an array of shape (4, 2)', 'zeros')
    """
    if value is None:
        return "zeros"
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else f"an array of shape {np.shape(value)}"


def _feed_array(name: str, value: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    try:
        return np.load(value, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise OptionError(f"`feed` {name}={os.fspath(value)}: not a readable .npy array ({exc})") from exc


def _fits(shape: Sequence[int | None], given: Sequence[int]) -> bool:
    return len(shape) == len(given) and all(want in (None, have) for want, have in zip(shape, given, strict=True))
