"""What the runs that explain classes share (``gradcam``, ``explain``, ``evaluate``): the model with its head, the
class names and the class asked for, the notes, each input the model could not run on reported as failed, and how
the model's outputs and the class explained are read and said."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from cnnviz.errors import CnnvizError, ForwardPassError, brief
from cnnviz.inputs.reader import Batch
from cnnviz.methods.shape import Method, P
from cnnviz.models.labels import class_name, class_names, resolve_class

R = TypeVar("R")


class ExplainingMethod(Method[P]):
    """What the methods that explain classes share (Grad-CAM, the attribution methods, their scores): the model
    with its classifier head, the class names and the class asked for, the notes of the model explained, and
    each input of a batch the model could not run on reported as failed."""

    include_top = True

    def explaining(self, model: Any, explained: Any, options: Any, rows: int) -> None:
        """Set up the class names, the class asked for (``options.target``, ``options.labels_file``), the label,
        precision and notes from ``explained`` (a :class:`cnnviz.methods.target.TargetModel`); check that inputs
        fed one row per image have ``rows`` rows."""
        self.names = class_names(explained.classes, options.labels_file, model.name)
        self.target = None if options.target is None else resolve_class(options.target, explained.classes, self.names)
        self.label = options.label_of(model)
        self.precision = explained.precision
        self.notes = list(explained.notes)
        if explained.feeds is not None:
            explained.feeds.check_rows(rows)
            self.notes.extend(explained.feeds.notes)

    @staticmethod
    def guarded(call: Callable[[], R]) -> R:
        """``call()``, a backend's own error from inside the graph raised as :class:`ForwardPassError`."""
        try:
            return call()
        except CnnvizError:
            raise
        except Exception as exc:  # TensorFlow raises its own error types from inside the graph
            raise ForwardPassError(f"the model could not run on these inputs: {brief(exc)}") from exc

    def batch_failures(self, batch: Batch, error: ForwardPassError) -> list[tuple[str, CnnvizError]]:  # noqa: D102
        return each_failed(batch, error)


def each_failed(batch: Batch, error: ForwardPassError) -> list[tuple[str, CnnvizError]]:
    """Each input of a batch the model could not run on, with the backend's error (an explaining method's
    :meth:`cnnviz.methods.shape.Method.batch_failures`)."""
    cause = error.__cause__ if error.__cause__ is not None else error
    return [(path, ForwardPassError(f"{path}: the model could not run on it: {brief(cause)}")) for path in batch.paths]


def are_probabilities(outputs: np.ndarray) -> bool:
    """Whether the model's outputs read as probabilities: in 0..1, each row summing to 1 (a softmax)."""
    return bool(outputs.size and outputs.min() >= 0 and outputs.max() <= 1 and np.allclose(outputs.sum(-1), 1, 1e-3))


def top_classes(
    outputs: np.ndarray, head: str, names: Sequence[str] | None, count: int
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """One image's outputs as the header reads them (for segmentation, each class's share of the predicted
    pixels), and its ``count`` top classes with their values."""
    if head == "segmentation":
        counts = np.bincount(np.argmax(outputs, axis=-1).ravel(), minlength=outputs.shape[-1])
        outputs = counts / max(int(counts.sum()), 1)
    order = np.argsort(-outputs, kind="stable")[:count]
    return outputs, [(class_name(int(k), names), float(outputs[k])) for k in order]


def explaining_line(
    head: str, output: str, name: str, chosen: int, outputs: np.ndarray, top: list[tuple[str, float]]
) -> str:
    """The header's line saying what is explained: the class and its value, and the top classes (a regression's
    value; a segmentation's share of pixels)."""
    ranked = ", ".join(f"{top_name} {top_value:.3f}" for top_name, top_value in top)
    if head == "regression":
        return f"regression output '{output}' = {float(outputs[0]):.4g}"
    if head == "segmentation":
        return f"segmentation output '{output}': {name} (class {chosen}); share of pixels: {ranked}"
    value = "p" if are_probabilities(outputs[None]) else "score"
    return f"explaining {name} (class {chosen}, {value} {float(outputs[chosen]):.3f}); top: {ranked}"
