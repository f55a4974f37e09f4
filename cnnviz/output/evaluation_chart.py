"""The picture of an evaluation run: the mean deletion and insertion curves of each method on one plot each, and
the randomisation test's curves (matplotlib draws charts; grids stay numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnviz.output.figure import figure_png


def curves_chart(result: Any, title: str = "") -> bytes | None:
    """A PNG of ``result``'s mean curves per method (:class:`cnnviz.runs.evaluate.EvaluationResult`), each
    method in the legend with its mean value; None where the run measured no curve."""
    from matplotlib.figure import Figure

    from cnnviz.methods.evaluation.metrics import METRICS

    drawn = [metric for metric in METRICS.values() if metric.panel[0]]
    panels = [(metric, result.mean_curves(metric.name)) for metric in drawn]
    panels = [(metric, curves) for metric, curves in panels if curves]
    if not panels:
        return None
    means = {(row.metric, row.method): row.mean for row in result.summary()}
    colours = {method: f"C{index % 10}" for index, method in enumerate(result.methods)}
    figure = Figure(figsize=(5.2 * len(panels), 4.2), dpi=100, layout="constrained")
    for place, (metric, curves) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), place)
        heading, xlabel = metric.panel
        for method, (curve, points) in curves.items():
            x = np.arange(len(curve)) if points else np.linspace(0.0, 1.0, len(curve))
            value = means.get((metric.name, method), float("nan"))
            shown = f"{value:.3f}" if np.isfinite(value) else "undefined"
            label = f"{method} ({'final' if points else 'area'} {shown})"
            axes.plot(
                x,
                curve,
                color=colours[method],
                linewidth=1.6,
                marker="o" if points else None,
                markersize=3,
                label=label,
            )
        if any(np.isnan(curve).any() for curve, _ in curves.values()):
            gaps = "gaps: steps where no image's attribution ranked anything (undefined, not scored)"
            axes.text(0.01, 0.01, gaps, transform=axes.transAxes, fontsize=7, color="#555555")
        points = next(iter(curves.values()))[1]
        if points:
            axes.set_xticks(
                np.arange(len(points)), [p.split("/")[-1] for p in points], rotation=60, fontsize=7, ha="right"
            )
            if metric.limit is not None:
                where = "above" if metric.better == "lower" else "below"
                line = f"fails {where} {metric.limit:g}"
                axes.axhline(metric.limit, color="#c0392b", linewidth=0.8, linestyle="--", label=line)
            axes.set_ylim(-0.25, 1.05)
            axes.set_ylabel(f"Spearman {metric.limit_of} of |attribution|")
        else:
            axes.set_xlim(0, 1)
            axes.set_ylabel(f"class {result.score}")
        axes.set_xlabel(xlabel)
        axes.set_title(heading, fontsize=9)
        axes.legend(fontsize=8, frameon=False)
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(alpha=0.25)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure_png(figure)
