"""Preprocessing: turn 0..255 pixels into what a model expects, chosen from the model or by name.

Every function here returns a new array; keras.applications' own ``preprocess_input`` mutates its argument in
place, so it is only ever given a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.errors import OptionError
from cnnviz.graph import conv_classes
from cnnviz.zoo import find_application

IMAGENET_MEAN_RGB = np.array([123.68, 116.779, 103.939], dtype=np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGENET_MEAN_RGB_UNIT = np.array([0.485, 0.456, 0.406], dtype=np.float32)

MODES = ("auto", "vgg", "tf", "torch", "scale255", "none")


@dataclass(frozen=True)
class Preprocessing:
    """A preprocessing step and how to describe it to the user."""

    name: str
    description: str
    apply: Callable[[np.ndarray], np.ndarray]

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocess a copy of ``pixels``, a float ``(..., rows, cols, channels)`` array of 0..255 values."""
        return self.apply(np.array(pixels, dtype=np.float32, copy=True))


def _vgg(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] != 3:
        return x - IMAGENET_MEAN_RGB.mean()
    return (x - IMAGENET_MEAN_RGB)[..., ::-1]


def _tf(x: np.ndarray) -> np.ndarray:
    return x / 127.5 - 1.0


def _torch(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] != 3:
        return (x / 255.0 - IMAGENET_MEAN_RGB_UNIT.mean()) / IMAGENET_STD_RGB.mean()
    return (x / 255.0 - IMAGENET_MEAN_RGB_UNIT) / IMAGENET_STD_RGB


def _scale255(x: np.ndarray) -> np.ndarray:
    return x / 255.0


def _none(x: np.ndarray) -> np.ndarray:
    return x


_BY_NAME: dict[str, Preprocessing] = {
    "vgg": Preprocessing("vgg", "caffe-style: RGB->BGR, ImageNet mean subtracted", _vgg),
    "tf": Preprocessing("tf", "scaled to -1..1", _tf),
    "torch": Preprocessing("torch", "scaled to 0..1, ImageNet mean/std", _torch),
    "scale255": Preprocessing("scale255", "x/255", _scale255),
    "none": Preprocessing("none", "raw 0..255 pixels", _none),
}


def preprocessing(name: str) -> Preprocessing:
    """The named preprocessing: ``vgg``, ``tf``, ``torch``, ``scale255`` or ``none``.

    Raises:
        OptionError: the name is unknown.
    """
    if name not in _BY_NAME:
        raise OptionError(f"unknown preprocessing '{name}'; choose one of: {', '.join(MODES)}")
    return _BY_NAME[name]


def _application_preprocessing(module: str, label: str) -> Preprocessing:
    def apply(x: np.ndarray) -> np.ndarray:
        function = getattr(keras_module().applications, module).preprocess_input
        return np.asarray(function(x, data_format="channels_last"), dtype=np.float32)

    return Preprocessing(f"{module}.preprocess_input", label, apply)


def _leading_layers(model: Any) -> list[Any]:
    """The layers that run before the first convolution, in order, stepping into nested models (which are
    listed themselves, then their own leading layers)."""
    found: list[Any] = []
    _collect_leading(model, found)
    return found


def _collect_leading(model: Any, found: list[Any]) -> bool:
    """Append ``model``'s layers up to its first convolution or dense layer; True when one was reached."""
    keras = keras_module()
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            found.append(layer)
            if _collect_leading(layer, found):
                return True
        elif isinstance(layer, (*conv_classes(), keras.layers.Dense)):
            return True
        else:
            found.append(layer)
    return False


def auto_preprocessing(model: Any) -> Preprocessing:
    """Choose the preprocessing a model expects.

    The layers before the first convolution decide first: a Rescaling or Normalization layer, or TensorFlow math
    that a Keras 2 model kept as a layer (its own ``preprocess_input``), means the model takes raw 0..255 pixels,
    so they are not scaled twice; a nested keras.applications base (transfer learning)
    means its family's ``preprocess_input``. Then a model that is itself a keras.applications model gets its
    family's ``preprocess_input``. Any other model gets x/255, as in the tutorials.
    """
    keras = keras_module()
    for layer in _leading_layers(model):
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            kind = type(layer).__name__
            return Preprocessing("none", f"raw 0..255 pixels: the model starts with a {kind} layer", _none)
        if type(layer).__name__ in ("TFOpLambda", "SlicingOpLambda"):  # Keras 2: preprocess_input inside
            return Preprocessing("none", f"raw 0..255 pixels: the model starts with {layer.name}", _none)
        if isinstance(layer, keras.Model):
            nested = find_application(layer.name)
            if nested is not None:
                return _application_preprocessing(nested.module, f"{nested.preprocess}; nested base '{layer.name}'")
    app = find_application(model.name)
    if app is not None:
        return _application_preprocessing(app.module, app.preprocess)
    return Preprocessing("scale255", "x/255, the default for a model without its own rescaling", _scale255)


def resolve_preprocessing(model: Any, mode: str = "auto") -> Preprocessing:
    """``auto_preprocessing(model)`` for ``auto``, else the named preprocessing."""
    return auto_preprocessing(model) if mode == "auto" else preprocessing(mode)
