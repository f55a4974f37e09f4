"""The table of a model's conv layers that ``cnnviz layers`` prints."""

from __future__ import annotations

from typing import Any

from cnnviz.models.graph import shape_text, sized_input_shape, trace


def layer_rows(model: Any, size: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """One row per conv layer (and transformer block, whose kernel is ``tokens``), for ``cnnviz layers``: name,
    kind, kernel, output shape, params.

    Args:
        model: a Keras model.
        size: for a model of free input size, the (rows, cols) to compute output shapes at.

    Raises:
        OptionError: ``size`` differs from a fixed input size.
    """
    return [
        {
            "name": conv.path,
            "kind": conv.kind,
            "kernel": "tokens" if conv.tokens is not None else "x".join(str(k) for k in conv.kernel_size),
            "output": shape_text(conv.output_shape),
            "params": conv.params,
        }
        for conv in trace(model, sized_input_shape(model, size)).convs
    ]
