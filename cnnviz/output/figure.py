"""A matplotlib figure as PNG bytes: the one way the charts (stats, evaluation, comparison) are encoded."""

from __future__ import annotations

import io
from typing import Any


def figure_png(figure: Any) -> bytes:
    """The PNG of a ``matplotlib.figure.Figure``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
