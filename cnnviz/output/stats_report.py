"""Statistics put before people: a terminal table, CSV and JSON with one row per filter, and a bar chart per
layer (matplotlib draws charts; grids stay numpy)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnviz.methods.stats import DEFAULT_RARE, LayerStats
from cnnviz.output.figure import figure_png
from cnnviz.output.files import Folder, safe_name, save_bytes

#: How many dead filters a layer's line names before it says "..." (the CSV and JSON have them all).
NAMED_DEAD = 8


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def stats_table(layers: Sequence[LayerStats], rare_below: float = DEFAULT_RARE) -> str:
    """A table with a line per layer: filters, dead, rarely active, the most and the least active filter.

    >>> import numpy as np
    >>> stats = LayerStats("conv", "> 0", np.ones(2), np.ones(2), np.array([3, 0]), np.array([4, 4]),
    ...                    np.array([1, 0]), images=1)
    >>> print(stats_table([stats]))
    layer  filters  dead  rare  most active  least active  active means
    conv         2     1     0  #0 75.0%     #1 0.0%       > 0
    over 1 image; dead: never active; rare: active at < 1% of positions
    dead filters: conv #1
    """
    header = ("layer", "filters", "dead", "rare", "most active", "least active", "active means")
    lines = []
    for stats in layers:
        fraction = stats.active_fraction
        most, least = int(np.argmax(fraction)), int(np.argmin(fraction))
        lines.append(
            (
                stats.layer,
                str(stats.filters),
                str(int(stats.dead.sum())),
                str(int(stats.rare(rare_below).sum())),
                f"#{most} {_percent(fraction[most])}",
                f"#{least} {_percent(fraction[least])}",
                stats.rule,
            )
        )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    numeric = {1, 2, 3}

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    text = [line(header), *(line(row) for row in lines)]
    images = layers[0].images if layers else 0
    seen = f"{images} image{'' if images == 1 else 's'}"
    text.append(f"over {seen}; dead: never active; rare: active at < {100 * rare_below:g}% of positions")
    dead = [_dead_names(stats) for stats in layers if stats.dead.any()]
    if dead:
        text.append("dead filters: " + "; ".join(dead))
    return "\n".join(text)


def _dead_names(stats: LayerStats) -> str:
    indices = np.flatnonzero(stats.dead)
    named = ", ".join(f"#{i}" for i in indices[:NAMED_DEAD])
    more = f" and {len(indices) - NAMED_DEAD} more" if len(indices) > NAMED_DEAD else ""
    return f"{stats.layer} {named}{more}"


def stats_csv(layers: Sequence[LayerStats], rare_below: float = DEFAULT_RARE) -> str:
    """The statistics as CSV, one row per filter."""
    rows = [row for stats in layers for row in stats.rows(rare_below)]
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def stats_json(layers: Sequence[LayerStats], rare_below: float = DEFAULT_RARE) -> str:
    """The statistics as a JSON list, one object per filter."""
    return json.dumps([row for stats in layers for row in stats.rows(rare_below)], indent=1) + "\n"


#: Bar colours: live, rarely active, and the mark under a dead filter.
LIVE, RARE, DEAD = "#3b75af", "#ef8636", "#c0392b"


def activity_chart(stats: LayerStats, model_label: str, rare_below: float = DEFAULT_RARE) -> bytes:
    """A PNG bar chart of each filter's share of active positions, rarely active bars in orange and dead
    filters marked with a red x on the axis."""
    from matplotlib.figure import Figure

    fraction = 100 * stats.active_fraction
    rare = stats.rare(rare_below)
    index = np.arange(stats.filters)
    figure = Figure(figsize=(min(16, max(6, 0.12 * stats.filters + 2)), 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.bar(index, fraction, width=0.85, color=[RARE if r else LIVE for r in rare], linewidth=0)
    rare_index = np.flatnonzero(rare)
    if len(rare_index):  # their bars are too short to see: a mark on the axis as well
        axes.plot(rare_index, np.zeros(len(rare_index)), "^", color=RARE, markersize=6, clip_on=False, label="rare")
    dead = np.flatnonzero(stats.dead)
    if len(dead):
        axes.plot(dead, np.zeros(len(dead)), "x", color=DEAD, markersize=7, mew=2, clip_on=False, label="dead")
    axes.axhline(100 * rare_below, color=RARE, linewidth=0.8, linestyle="--", label=f"< {100 * rare_below:g}%")
    axes.set_xlim(-0.7, stats.filters - 0.3)
    axes.set_ylim(0, max(5.0, float(fraction.max(initial=0)) * 1.08))
    axes.set_xlabel("filter")
    axes.set_ylabel("active positions (%)")
    dead_text = f"{len(dead)} dead, {int(rare.sum())} rarely active of {stats.filters}"
    axes.set_title(f"{model_label} {stats.layer}: {dead_text} ({stats.images} images; active {stats.rule})", fontsize=9)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)  # beside the bars
    axes.spines[["top", "right"]].set_visible(False)
    return figure_png(figure)


def write_stats(
    layers: Sequence[LayerStats],
    out_dir: Folder,
    model_label: str,
    rare_below: float = DEFAULT_RARE,
    *,
    charts: bool = True,
    csv_path: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write a chart per layer, ``out_dir/stats_<layer>.png``, and the CSV and JSON tables where asked, each
    atomically.

    Returns:
        The files written.
    """
    written = []
    if charts:
        for stats in layers:
            chart = activity_chart(stats, model_label, rare_below)
            written.append(save_bytes(chart, Path(out_dir) / f"stats_{safe_name(stats.layer)}.png"))
    if csv_path is not None:
        written.append(save_bytes(stats_csv(layers, rare_below).encode(), csv_path))
    if json_path is not None:
        written.append(save_bytes(stats_json(layers, rare_below).encode(), json_path))
    return written
