"""KerasHub presets as models: a preset's name (``resnet_50_imagenet``, downloaded once by KerasHub) or a preset
folder (what ``save_to_preset`` writes, and what KerasHub reads offline) opened as an image classifier where the
preset has one, else as its backbone. KerasHub is the ``hub`` extra; without it these names are unknown."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from cnnviz._keras import keras_module
from cnnviz.errors import ModelLoadError, WeightsDownloadError, brief

INSTALL_HINT = "pip install 'cnnviz[hub]' (or keras-hub)"


def _keras_hub() -> Any | None:
    keras_module()  # keras_hub imports the backend: let it find it already quiet
    try:
        import keras_hub
    except ImportError:
        return None
    return keras_hub


def classifier_presets() -> list[str]:
    """The names of KerasHub's image classifier presets (empty without keras-hub)."""
    hub = _keras_hub()
    return sorted(hub.models.ImageClassifier.presets) if hub is not None else []


def is_preset(spec: str) -> bool:
    """Whether ``spec`` names a KerasHub preset (a classifier's or a backbone's) that keras-hub knows."""
    hub = _keras_hub()
    return hub is not None and (spec in hub.models.ImageClassifier.presets or spec in hub.models.Backbone.presets)


def is_preset_folder(path: Path) -> bool:
    """Whether ``path`` is a KerasHub preset folder: ``config.json`` and ``metadata.json`` side by side."""
    return path.is_dir() and (path / "config.json").is_file() and (path / "metadata.json").is_file()


def _cache_dir() -> Path:
    return Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub")


def load_preset(spec: str | Path, weights: str | None = None) -> Any:
    """The model of a KerasHub preset name or folder: its image classifier (with its preprocessor) where it has
    one, else its backbone. ``weights`` ``none`` builds it with random weights (the config still comes from the
    preset); None or ``imagenet`` loads the preset's own.

    Raises:
        ModelLoadError: keras-hub is missing, or the preset cannot be opened.
        WeightsDownloadError: a named preset could not be downloaded (what, where it is cached, what to do).
    """
    hub = _keras_hub()
    if hub is None:
        raise ModelLoadError(f"{spec} is a KerasHub preset; opening it needs keras-hub: {INSTALL_HINT}")
    if weights is not None and weights.lower() not in ("none", "imagenet"):
        raise ModelLoadError(f"`weights` {weights}: a KerasHub preset takes imagenet (its own) or none (random)")
    load_weights = weights is None or weights.lower() != "none"
    text = os.fspath(spec)
    folder = Path(text)
    has_task = not folder.is_dir() or (folder / "task.json").is_file()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if has_task:
                try:
                    return hub.models.ImageClassifier.from_preset(text, load_weights=load_weights)
                except ValueError:
                    pass  # a preset of a backbone only (or of another task): its backbone
            return hub.models.Backbone.from_preset(text, load_weights=load_weights)
    except Exception as exc:
        if not folder.is_dir():
            raise WeightsDownloadError(
                f"could not fetch the KerasHub preset '{text}' (its config and weights, from Kaggle through "
                f"kagglehub) into {_cache_dir()}: {brief(exc)}. Without internet access: open it once on a machine "
                "that has it and copy that cache folder here, or save it there with model.save_to_preset(FOLDER) "
                "and give the folder as the model."
            ) from exc
        raise ModelLoadError(f"could not open the KerasHub preset folder {text}: {brief(exc)}") from exc
