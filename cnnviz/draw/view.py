"""How grids are drawn, as the settings objects the drawing functions take whole.

:class:`ViewSettings` is what every grid has (normalisation, colormap, scale, header, numbers); :class:`MapView`
adds what feature-map grids choose (how many maps, in which order) and :class:`FilterView` what kernel grids
choose (colour patches, a fixed value range). The runs' options inherit them, so a run hands its options to the
drawing functions as they are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSettings:
    """How grids are drawn.

    Attributes:
        norm: the normalisation; each grid has its own choices and default ("": the grid's default).
        cmap: a matplotlib colormap name.
        scale: integer nearest-neighbour enlargement; None picks one.
        labels: draw the header strip and colorbar.
        index: number the tiles.
    """

    norm: str = ""
    cmap: str = "viridis"
    scale: int | None = None
    labels: bool = True
    index: bool = True


@dataclass(frozen=True)
class MapView(ViewSettings):
    """How feature-map grids are drawn (:class:`ViewSettings`, and):

    Attributes:
        norm: ``map`` (each map min-max), ``layer`` (one scale for the layer) or ``standardize``.
        max_maps: draw only the first this many maps (in ``order``).
        order: ``channel``, or ``activation``: the maps with the highest mean first, each numbered by its channel.
    """

    norm: str = "map"
    max_maps: int | None = None
    order: str = "channel"


@dataclass(frozen=True)
class FilterView(ViewSettings):
    """How kernel grids are drawn (:class:`ViewSettings`, and):

    Attributes:
        norm: ``global`` (min-max over the layer), ``filter`` (min-max per filter) or ``symmetric`` (0 at the
            colormap's middle).
        rgb: draw each filter's three input channels as one colour patch.
        value_range: a fixed ``(low, high)`` for ``global`` and ``symmetric`` instead of the kernels' own range, so
            grids of one layer at different times share one scale.
    """

    norm: str = "global"
    rgb: bool = False
    value_range: tuple[float, float] | None = None


__all__ = ["FilterView", "MapView", "ViewSettings"]
