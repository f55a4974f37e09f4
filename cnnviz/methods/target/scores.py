"""Reading what is explained from a model's scores and outputs: which class each image is explained for and the
weight of each score in it (:func:`scored`), and the explained class's value in passes over perturbed copies
(:func:`explained_values`), for class scores, a regression value and a segmentation alike."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.methods.target.values import VALUE_KINDS, Scored


def scored(
    head: str,
    region: tuple[int, int, int, int] | None,
    scores: np.ndarray,
    outputs: np.ndarray,
    classes: Sequence[int] | int | None,
    input_size: tuple[int, ...],
) -> Scored:
    """Which class each image is explained for (each image's top class when ``classes`` is None), and the score
    explained, from a forward pass's ``scores`` and ``outputs`` of a ``head`` (``classes``, ``regression``,
    ``segmentation``: over the pixels predicted as the class, or over ``region`` of an input of ``input_size``)."""
    count = len(scores)
    cotangent = np.zeros_like(scores)
    if head == "segmentation":
        chosen, mask = _segmentation_targets(classes, scores, region, input_size)
        cotangent[np.arange(count), :, :, chosen] = mask
        pixels: np.ndarray | None = mask.reshape(count, -1).sum(axis=1)
    else:
        chosen = _chosen_classes(classes, scores, count)
        cotangent[np.arange(count), chosen] = 1.0
        pixels = None
    targets = (scores * cotangent).reshape(count, -1).sum(axis=1)
    return Scored(scores, outputs, chosen, cotangent, targets, pixels)


def explained_values(
    head: str,
    squashing: str | None,
    scores: np.ndarray,
    outputs: np.ndarray,
    scored: Scored,
    rows: np.ndarray,
    kind: str = "probability",
) -> np.ndarray:
    """The explained class's value in a pass over perturbed copies of a batch's images: ``(M,)`` float32.

    Args:
        head: ``classes``, ``regression`` or ``segmentation``.
        squashing: how the model squashes its scores: ``softmax``, ``sigmoid``, ``output`` (read the output: cnnviz
            could not look past it) or None.
        scores: the copies' pre-softmax scores, ``(M, ...)``.
        outputs: the copies' outputs.
        scored: the unperturbed batch's :class:`Scored`.
        rows: ``(M,)`` each copy's image, a row of that batch.
        kind: ``probability``, the model's softmax (or sigmoid) of its pre-squashing scores computed here in
            float32, or the softmax of the scores where the model ends without one; or ``logit``, the
            pre-softmax score. A regression's value is its output either way; a segmentation's is the mean
            over the pixels its score sums over.
    """
    if kind not in VALUE_KINDS:
        raise OptionError(f"unknown score '{kind}'; choose one of: {', '.join(VALUE_KINDS)}")
    rows = np.asarray(rows, dtype=np.int64)
    chosen = np.asarray(scored.classes, dtype=np.int64)[rows]
    if head == "regression":
        return np.asarray(scores[:, 0], dtype=np.float32)
    if kind == "logit":
        read = np.asarray(scores, dtype=np.float32)
    elif squashing == "output":
        read = np.asarray(outputs, dtype=np.float32)
    elif squashing == "sigmoid":
        read = (1.0 / (1.0 + np.exp(-np.asarray(scores, np.float64)))).astype(np.float32)
    else:  # a softmax, or none: the softmax of the scores
        read = _softmax(scores)
    every = np.arange(len(read))
    if head == "segmentation":
        masks = scored.cotangent[rows, ..., chosen]
        share = np.maximum(masks.reshape(len(rows), -1).sum(axis=1), 1.0)
        picked = np.moveaxis(read, -1, 0)[chosen, every]
        return ((picked * masks).reshape(len(rows), -1).sum(axis=1) / share).astype(np.float32)
    return np.asarray(read[every, chosen], dtype=np.float32)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.asarray(scores, dtype=np.float64) - np.max(scores, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def _segmentation_targets(
    classes: Sequence[int] | int | None,
    scores: np.ndarray,
    region: tuple[int, int, int, int] | None,
    input_size: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """(the class explained per image, the ``(N, rows, cols)`` mask of output pixels its score sums over).

    Without ``classes``, each image's class is the one predicted at the most pixels. The mask is the pixels
    predicted as that class, or ``region`` (pixels of the model input, scaled to the output's grid).
    """
    count, rows, cols, number = scores.shape
    predicted = np.argmax(scores, axis=-1)
    if classes is None:
        chosen = np.array([np.bincount(one.ravel(), minlength=number).argmax() for one in predicted], dtype=np.int32)
    else:
        chosen = np.broadcast_to(np.asarray(classes, dtype=np.int32), (count,)).copy()
        if chosen.size and (chosen.min() < 0 or chosen.max() >= number):
            raise OptionError(f"class {int(chosen.max())} is out of range: the output has {number} classes")
    if region is None:
        mask = (predicted == chosen[:, None, None]).astype(np.float32)
    else:
        top, left, bottom, right = region
        in_rows, in_cols = input_size[0], input_size[1]
        mask = np.zeros((count, rows, cols), dtype=np.float32)
        mask[
            :,
            top * rows // in_rows : -(-bottom * rows // in_rows),
            left * cols // in_cols : -(-right * cols // in_cols),
        ] = 1.0
    return chosen, mask


def _chosen_classes(classes: Sequence[int] | int | None, scores: np.ndarray, count: int) -> np.ndarray:
    if classes is None:
        return np.argmax(scores, axis=-1).astype(np.int32)
    chosen = np.broadcast_to(np.asarray(classes, dtype=np.int32), (count,)).copy()
    if chosen.size and (chosen.min() < 0 or chosen.max() >= scores.shape[-1]):
        raise OptionError(f"class {int(chosen.max())} is out of range: the model has {scores.shape[-1]} classes")
    return chosen
