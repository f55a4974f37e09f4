"""What ``cnnviz explore`` serves and how: one options object that checks itself, and the options of each command
whose pictures the explorer serves, made from it (so a view and the command's file match byte for byte)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.draw.render import MAP_NORMS, MAP_ORDERS
from cnnviz.draw.view import MapView
from cnnviz.engines.naming import Naming
from cnnviz.errors import OptionError
from cnnviz.inputs.reader import FeedSettings, ReadingSettings
from cnnviz.methods.attribution import METHODS, AttributionSettings
from cnnviz.methods.top import DEFAULT_K, check_ranking
from cnnviz.runs.contract import check_view

#: The address the server listens on unless told otherwise: this machine only.
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
#: Uploads larger than this many MiB are refused.
DEFAULT_UPLOAD_MB = 20
MIN_TOKEN = 16


@dataclass(frozen=True)
class ExploreOptions(Naming, ReadingSettings, MapView):
    """How the explorer reads images, draws feature maps (:class:`cnnviz.draw.view.MapView`), ranks top images and
    serves, besides the shared parts (:class:`cnnviz.engines.naming.Naming`,
    :class:`cnnviz.inputs.reader.ReadingSettings`).

    Attributes:
        k: the images kept per filter in its top images.
        by: how top images are ranked, ``max`` or ``mean``.
        labels_file: class names for Grad-CAM, one per line.
        output: for a model of several outputs, the one Grad-CAM explains.
        host: the address to listen on; other than loopback, every machine that reaches it can ask.
        port: the port; 0 picks a free one.
        token: what every request must carry; a random one when None.
        cache_mb: the cap on the views kept in memory, in MiB; sized for the machine when None.
        upload_mb: the largest upload, in MiB.
        gradcam: serve Grad-CAM (off for a model loaded without its classifier head).
        settings: the attribution methods' settings, each used by the methods of the menu that read it.
        atlas: the folder of an atlas of this model (``cnnviz atlas``'s ``OUTPUT/<model>/atlas``): served under
            ``/atlas/``, and each filter card links to its unit's page.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    k: int = DEFAULT_K
    by: str = "max"
    labels_file: str | None = None
    output: str | None = None
    host: str = LOOPBACK
    port: int = DEFAULT_PORT
    token: str | None = None
    cache_mb: int | None = None
    upload_mb: int = DEFAULT_UPLOAD_MB
    gradcam: bool = True
    settings: AttributionSettings = dataclasses.field(default_factory=AttributionSettings)
    atlas: str | None = None

    def __post_init__(self) -> None:
        self.check_reading()
        if self.atlas is not None and not (Path(self.atlas) / "index.json").is_file():
            raise OptionError(
                f"{self.atlas} is not an atlas: no index.json in it (cnnviz atlas writes OUTPUT/<model>/atlas)"
            )
        check_view(self, MAP_NORMS, "feature map normalisation")
        if self.order not in MAP_ORDERS:
            raise OptionError(f"unknown map order '{self.order}'; choose one of: {', '.join(MAP_ORDERS)}")
        if self.max_maps is not None and self.max_maps < 1:
            raise OptionError(f"max_maps must be at least 1, got {self.max_maps}")
        check_ranking(self.by, self.k)
        if not 0 <= self.port <= 65535:
            raise OptionError(f"a port is 0 to 65535, got {self.port}")
        if self.token is not None and len(self.token) < MIN_TOKEN:
            raise OptionError(f"a token of at least {MIN_TOKEN} characters, please (got {len(self.token)})")
        if self.cache_mb is not None and self.cache_mb < 16:
            raise OptionError(f"cache_mb must be at least 16, got {self.cache_mb}")
        if self.upload_mb < 1:
            raise OptionError(f"upload_mb must be at least 1, got {self.upload_mb}")

    def _parts(self, *kinds: type) -> dict[str, Any]:
        """This object's values of the fields of ``kinds`` (shared parts such as ``Naming``), as keywords."""
        return {f.name: getattr(self, f.name) for kind in kinds for f in dataclasses.fields(kind)}

    def map_options(self) -> Any:
        """The ``featuremaps`` options that draw the grids the explorer serves."""
        from cnnviz.runs.featuremaps import MapOptions

        return MapOptions(**self._parts(Naming, ReadingSettings, MapView))

    def attribute_options(self, method: str, target: int | None = None, layout: str = "columns") -> Any:
        """The ``explain`` options for one method and class (each image's top class when None), with the settings
        it reads, in ``layout`` (``single``: as ``gradcam`` draws it)."""
        from cnnviz.runs.attribute import AttributeOptions

        reading = self._parts(Naming, ReadingSettings)
        settings = self.settings.only(setting.name for setting in METHODS[method].settings)
        return AttributeOptions(
            **reading,
            methods=(method,),
            settings=settings,
            target=target,
            labels_file=self.labels_file,
            output=self.output,
            layout=layout,
        )

    def top_options(self, layer: str, filter_index: int | None = None) -> Any:
        """The ``top`` options for one layer (and one filter's picture)."""
        from cnnviz.runs.top import TopOptions

        chosen = None if filter_index is None else str(filter_index)
        return TopOptions(**self._parts(Naming, ReadingSettings), layer=layer, filters=chosen, k=self.k, by=self.by)

    def maximize_options(self, layer: str, filter_index: int) -> Any:
        """The ``maximize`` options for one filter."""
        from cnnviz.runs.maximize import MaximizeRunOptions

        return MaximizeRunOptions(**self._parts(Naming, FeedSettings), layer=layer, filters=str(filter_index))

    def filter_options(self, layer: str, filter_index: int) -> Any:
        """The ``filters`` options for one filter's kernels."""
        from cnnviz.runs.filters import FilterOptions

        return FilterOptions(**self._parts(Naming), layer=layer, filters=str(filter_index))
