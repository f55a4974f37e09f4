"""What is explained, as values: the target (output, region, layer), a batch's forward pass read as what is
explained, and a layer's maps with their gradient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnnviz.errors import OptionError

#: Perturbed inputs per model call: large enough to keep the cores busy, small enough for VGG16's maps at 224 px.
PERTURBED_BATCH = 32
#: What a perturbed copy's value is read as (:func:`cnnviz.methods.target.scores.explained_values`).
VALUE_KINDS = ("probability", "logit")


@dataclass(frozen=True)
class Target:
    """What an attribution explains, beside the class.

    Attributes:
        output: for a model of several outputs, the one to explain (the first by default).
        region: for a segmentation output, ``(top, left, bottom, right)`` pixels of the model input to sum the
            class's logits over (end exclusive), instead of the pixels predicted as the class.
        layer: the layer of the class activation maps (the last conv layer with maps larger than 1x1 by default).
    """

    output: str | None = None
    region: Sequence[int] | None = None
    layer: str | None = None


@dataclass(frozen=True)
class Scored:
    """A batch's forward pass, read as what is explained.

    Attributes:
        scores: the pre-softmax scores, ``(N, classes)`` or for segmentation ``(N, rows, cols, classes)``.
        outputs: the model's explained output, the same shape (probabilities after a softmax).
        classes: ``(N,)`` the class explained for each image.
        cotangent: the shape of ``scores``: the weight of each score in what is explained (a one-hot row, or for
            segmentation the class's pixels), so that ``(scores * cotangent).sum()`` per image is ``targets``.
        targets: ``(N,)`` the value of the score explained.
        pixels: for segmentation, ``(N,)`` how many of the output's pixels the score sums over.
    """

    scores: np.ndarray
    outputs: np.ndarray
    classes: np.ndarray
    cotangent: np.ndarray
    targets: np.ndarray
    pixels: np.ndarray | None = None

    def repeated(self, copies: int) -> Scored:
        """The same read of ``copies`` copies of each image, each image's rows together (what the methods that
        explain noisy copies of an image give the model)."""
        pixels = None if self.pixels is None else np.repeat(self.pixels, copies, axis=0)
        scores, outputs, classes, cotangent, targets = (
            np.repeat(one, copies, axis=0)
            for one in (self.scores, self.outputs, self.classes, self.cotangent, self.targets)
        )
        return Scored(scores, outputs, classes, cotangent, targets, pixels)


@dataclass(frozen=True)
class LayerPass:
    """A conv layer's maps for a batch, channels last, with the explained score's gradient with respect to them
    (None where it was not asked for), and the pass's :class:`Scored`."""

    maps: np.ndarray
    grads: np.ndarray | None
    scored: Scored


def checked_region(region: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    """``(top, left, bottom, right)`` in pixels of the model input, end exclusive, or None."""
    if region is None:
        return None
    box = tuple(int(value) for value in region)
    if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] <= box[0] or box[3] <= box[1]:
        raise OptionError(f"a region is TOP,LEFT,BOTTOM,RIGHT with TOP < BOTTOM and LEFT < RIGHT, got {list(region)}")
    return box
