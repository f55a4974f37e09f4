"""The pictures of a comparison of two models: the CKA heatmap of their layers, and the drift of the layers they
share (matplotlib draws charts; grids stay numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnviz.output.figure import figure_png

#: Above this many cells a side, the heatmap leaves the numbers out of its cells (they would not be legible).
ANNOTATED_CELLS = 16


def cka_chart(
    matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], label_a: str, label_b: str, title: str
) -> bytes:
    """A PNG of a CKA matrix: the first model's layers down the side (graph order, first at the top), the second's
    along the bottom, each cell's colour its CKA on a fixed 0..1 scale (so two pictures compare), its value written
    in it where the matrix is small enough; an undefined cell (constant features) is grey and marked ``n/a``."""
    from matplotlib.figure import Figure

    height = min(2.4 + 0.32 * len(rows), 18.0)
    width = min(max(5.5, 3.2 + 0.38 * len(cols)), 22.0)
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    shown = np.ma.masked_invalid(matrix)
    cmap = _cmap("magma")
    image = axes.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    axes.set_yticks(np.arange(len(rows)), rows, fontsize=7)
    axes.set_xticks(np.arange(len(cols)), cols, fontsize=7, rotation=60, ha="right")
    axes.set_ylabel(label_a)
    axes.set_xlabel(label_b)
    axes.set_title(title, fontsize=8, wrap=True)
    if max(len(rows), len(cols)) <= ANNOTATED_CELLS:
        for (i, j), value in np.ndenumerate(matrix):
            text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
            colour = "black" if np.isfinite(value) and value > 0.6 else "white"
            axes.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, label="linear CKA", shrink=0.8)
    return figure_png(figure)


def drift_chart(drifts: Sequence[Any], label_a: str, label_b: str) -> bytes:
    """A PNG of how far each layer both models have moved (:class:`cnnviz.runs.compare.LayerDrift`, in graph
    order): on the left the layer's CKA with its twin and the median correlation of its units' maps (1: computes
    the same), on the right the median relative change of its units' weights."""
    from matplotlib.figure import Figure

    names = [drift.layer for drift in drifts]
    x = np.arange(len(names))
    figure = Figure(figsize=(max(6.0, 1.0 + 0.55 * len(names)) * 1.6, 4.2), dpi=100, layout="constrained")
    same, moved = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    similar = [drift.cka for drift in drifts]
    correlated = [_median(drift.correlation) for drift in drifts]
    same.plot(x, similar, marker="o", color="C0", label="CKA of the layer with its twin")
    same.plot(x, correlated, marker="s", color="C1", label="median correlation of its units' maps")
    # scaled to the values, so that small moves show: a fine-tuned layer is often at 0.97 against 0.99
    lowest = min([value for value in similar + correlated if np.isfinite(value)], default=0.0)
    margin = max(0.01, 0.15 * (1.0 - lowest))
    same.set_ylim(lowest - margin, 1.0 + margin / 2)
    same.set_ylabel("similarity (1: unchanged)")
    same.set_title(f"what the layers compute: {label_a} vs {label_b}", fontsize=9)
    same.legend(fontsize=8, frameon=False, loc="best")
    moved.bar(x, [_median(drift.weight_change) for drift in drifts], color="C3")
    moved.set_ylabel("median ||w_b - w_a|| / ||w_a|| per unit")
    moved.set_title("how far the weights moved", fontsize=9)
    for axes in (same, moved):
        axes.set_xticks(x, names, fontsize=7, rotation=60, ha="right")
        axes.spines[["top", "right"]].set_visible(False)
    return figure_png(figure)


def _median(values: np.ndarray) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if len(finite) else float("nan")


def _cmap(name: str) -> Any:
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="#bbbbbb")


def training_chart(steps: Sequence[int], values: dict[str, list[float]], unit: str, title: str) -> bytes:
    """A PNG of each layer's CKA with itself at the start of training (``values``, a list per layer, one value
    per step in ``steps``): one line per layer from 1 at step 0 (the start), the first layers in dark colours and
    the last in light ones, on a scale fitted to the values (1: computes what it did at the start)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.0, 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    shades = colormaps["viridis"](np.linspace(0.0, 0.9, max(len(values), 1)))
    for colour, (layer, line) in zip(shades, values.items(), strict=False):
        axes.plot([0, *steps], [1.0, *line], marker="o", markersize=3, color=colour, label=layer)
    finite = [value for line in values.values() for value in line if np.isfinite(value)]
    lowest = min(finite, default=0.0)
    margin = max(0.01, 0.15 * (1.0 - lowest))
    axes.set_ylim(lowest - margin, 1.0 + margin / 2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(unit)
    axes.set_ylabel("linear CKA with the layer at the start")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes.spines[["top", "right"]].set_visible(False)
    return figure_png(figure)
