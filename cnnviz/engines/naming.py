"""Which model a run draws, and how it is named: in headers, manifests and output folders.

:class:`ModelRef` is the model as a user names it (``vgg16 --weights none``, ``my_model.keras``): it loads the
model, names its output folder, and gives the :class:`Naming` every run takes, so the CLI, scripts and the Ray
engine's workers name a model the same way. A run given a Keras model directly names it by ``model.name``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz._keras import chosen_backend
from cnnviz.errors import OptionError
from cnnviz.models.load import load_model, names_a_file
from cnnviz.models.zoo import APPLICATIONS
from cnnviz.output.files import safe_name


@dataclass(frozen=True)
class Naming:
    """How a run names the model in headers and manifests.

    Attributes:
        model_label: the name in headers (``vgg16 (random weights)``); the Keras model's own name when None.
        weights: how the weights came (``imagenet``, ``random``, a file), for the manifest.
        source: what identifies the model and its weights across runs (a file's full path), for the manifest.
    """

    model_label: str | None = None
    weights: str | None = None
    source: str | None = None

    def label_of(self, model: Any) -> str:
        """The model's name in headers: ``model_label``, else the Keras model's own name."""
        return self.model_label or str(getattr(model, "name", "model"))

    def about(self, name: str) -> dict[str, Any]:
        """The manifest's record of the model and the Keras backend it ran on; ``name`` stands in for a missing
        ``model_label``."""
        return {
            "model": self.model_label or name,
            "weights": self.weights,
            "source": self.source,
            "backend": chosen_backend(),
        }


@dataclass(frozen=True)
class ModelRef:
    """A model as a user names it, and how to load it.

    Attributes:
        model: a keras.applications name (``vgg16``), a bundled model's name (``shapes``), or the path of a
            ``.keras`` / ``.h5`` file or SavedModel folder.
        weights: for keras.applications names ``imagenet`` (the default), ``none`` (random) or a weights file; for
            a model file, a weights file to load into it.
        size: for keras.applications names, the (rows, cols) the model is built at.
        unsafe: allow model files that run Python code when loaded.
        imports: modules (dotted names or ``.py`` files) to import first, for custom layer classes.
    """

    model: str = "vgg16"
    weights: str | None = None
    size: tuple[int, int] | None = None
    unsafe: bool = False
    imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.unsafe or self.imports) and self.is_application:
            chosen = (("`unsafe`", self.unsafe), ("`imports`", self.imports))
            given = " and ".join(name for name, value in chosen if value)
            raise OptionError(
                f"{given}: for model files that need code of their own to load; '{self.model}' is a "
                "keras.applications model, which Keras builds itself: leave them out"
            )

    def load(self, need_weights: bool = True, include_top: bool = False) -> Any:
        """The Keras model (:func:`cnnviz.models.load.load_model`).

        Args:
            need_weights: False when only the architecture matters (``layers``): a keras.applications model is
                then built without weights, and ``weights`` is not loaded at all.
            include_top: build a keras.applications model with its classifier head (Grad-CAM needs the class
                scores).
        """
        weights = self.weights if need_weights else ("none" if self.is_application else None)
        return load_model(
            self.model, weights, include_top=include_top, size=self.size, unsafe=self.unsafe, imports=self.imports
        )

    def resolved(self) -> ModelRef:
        """The same model with files named by their full paths, to be loaded from another working folder (a Ray
        worker's)."""

        def full(path: str | None) -> str | None:
            return str(Path(path).resolve()) if path is not None and Path(path).exists() else path

        imports = tuple(full(item) or item for item in self.imports)
        return dataclasses.replace(
            self, model=full(self.model) or self.model, weights=full(self.weights), imports=imports
        )

    @property
    def is_application(self) -> bool:
        """Whether ``model`` names a keras.applications model rather than a file."""
        return self.model.lower() in APPLICATIONS and not names_a_file(self.model)

    @property
    def weights_kind(self) -> str:
        """How the weights come: ``imagenet``, ``random``, a weights file's path, or ``model file``."""
        if self.weights is None:
            return "imagenet" if self.is_application else "model file"
        lowered = self.weights.lower()
        if lowered in ("none", "imagenet"):
            return "random" if lowered == "none" else lowered
        return self.weights

    @property
    def name(self) -> str:
        """The model's name: a file's name, or the lower-cased model name."""
        return Path(self.model).name if names_a_file(self.model) else self.model.lower()

    @property
    def label(self) -> str:
        """How headers and manifests name the model: its name, and the weights where they are not the model's
        own: ``vgg16 (random weights)``."""
        kind = self.weights_kind
        if kind in ("imagenet", "model file"):
            return self.name
        return f"{self.name} ({'random weights' if kind == 'random' else 'weights ' + Path(kind).name})"

    @property
    def source(self) -> str:
        """What identifies the model and its weights across runs: full paths for files, names otherwise."""
        model = str(Path(self.model).resolve()) if names_a_file(self.model) else self.model.lower()
        kind = self.weights_kind
        weights = kind if kind in ("imagenet", "model file", "random") else str(Path(kind).resolve())
        return f"{model} with {weights}" if kind != "model file" else model

    @property
    def folder(self) -> str:
        """The output subfolder for this model, so that different models' (and weights') grids never mix:
        ``vgg16``, ``vgg16-random``, ``my_model``, ``my_model-finetuned`` (for ``--weights finetuned.weights.h5``).

        >>> ModelRef("vgg16", "none").folder, ModelRef("vgg16").label, ModelRef("vgg16", "none").label
        ('vgg16-random', 'vgg16', 'vgg16 (random weights)')
        """
        path = Path(self.model)
        name = path.name.split(".")[0] if names_a_file(self.model) else self.model.lower()
        kind = self.weights_kind
        if kind in ("imagenet", "model file"):
            return safe_name(name)
        return safe_name(f"{name}-{'random' if kind == 'random' else Path(kind).name.split('.')[0]}")

    def naming(self) -> Naming:
        """How runs name this model: its label, how its weights came and its source."""
        return Naming(self.label, self.weights_kind, self.source)
