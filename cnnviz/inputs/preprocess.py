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
from cnnviz.models.graph import conv_classes
from cnnviz.models.zoo import find_application

IMAGENET_MEAN_RGB = np.array([123.68, 116.779, 103.939], dtype=np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGENET_MEAN_RGB_UNIT = np.array([0.485, 0.456, 0.406], dtype=np.float32)

MODES = ("auto", "vgg", "tf", "torch", "scale255", "none")
#: How pixels are prepared unless asked otherwise: as the model itself says (:func:`auto_preprocessing`).
DEFAULT_PREPROCESSING = MODES[0]


@dataclass(frozen=True)
class Preprocessing:
    """A preprocessing step and how to describe it to the user.

    Attributes:
        name: a short name (``vgg``, ``scale255``, ``vgg16.preprocess_input``, ...).
        description: what it does, in words.
        apply: the function, on a float ``(..., rows, cols, channels)`` array of 0..255 values.
        zero: where the model's own first layers normalise the pixels (``apply`` then passes them through), the
            pixel value they map to zero, one or one per channel; None to find it from ``apply``.
        size: the (rows, cols) the model's own preprocessing resizes images to (a KerasHub image converter's), for
            a model of free input size; None where it does not say.
    """

    name: str
    description: str
    apply: Callable[[np.ndarray], np.ndarray]
    zero: tuple[float, ...] | None = None
    size: tuple[int, int] | None = None

    @classmethod
    def described(cls, name: str, description: str) -> Preprocessing:
        """A step that ran elsewhere (on the Ray engine's workers), for saying what it was; its ``apply`` passes
        pixels through."""
        return cls(name, description, _none)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocess a copy of ``pixels``, a float ``(..., rows, cols, channels)`` array of 0..255 values."""
        return self.apply(np.array(pixels, dtype=np.float32, copy=True))

    def neutral(self, channels: int = 3) -> np.ndarray:
        """The pixel, 0..255 per channel, that reaches the model as zero: its "nothing here", so padding in it adds
        no edges of its own. Every preprocessing here is affine per channel (a scale, an offset, perhaps a change
        of channel order), so one probe per channel and a black one determine it.

        >>> preprocessing("tf").neutral().tolist(), preprocessing("scale255").neutral(1).tolist()
        ([127.5, 127.5, 127.5], [0.0])
        """
        if self.zero is not None:
            return np.broadcast_to(np.asarray(self.zero, dtype=np.float32), (channels,)).copy()
        gain, offset = self.affine(channels)
        try:
            pixel = np.linalg.solve(gain.T, -offset)
        except np.linalg.LinAlgError:
            pixel = np.zeros(channels)
        return np.clip(pixel, 0.0, 255.0).astype(np.float32) + np.float32(0.0)  # no -0.0

    def affine(self, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """The step as ``pixels @ gain + offset``: every preprocessing here is affine per channel (a scale, an
        offset, perhaps a change of channel order), so a black probe and one per channel at 255 determine it. Code
        that must differentiate through preprocessing (:mod:`cnnviz.methods.maximize`) applies it in this form.

        Returns:
            float64 ``gain`` ``(channels, channels)``: output channel j per unit of input channel i at ``[i, j]``; and
            ``offset`` ``(channels,)``, what a black pixel becomes.

        >>> gain, offset = preprocessing("vgg").affine()
        >>> gain.round(6).tolist(), offset.round(3).tolist()
        ([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [-103.939, -116.779, -123.68])
        """
        # one-pixel pictures: black, then each channel alone at 255
        probes = np.eye(channels + 1, channels, k=-1, dtype=np.float32)[:, None, None, :] * 255.0
        out = self(probes)[:, 0, 0, :].astype(np.float64)
        return (out[1:] - out[0]) / 255.0, out[0]


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


def _zero_of(layers: list[Any]) -> tuple[float, ...] | None:
    """The input that the model's leading Rescaling (``x * scale + offset``) and Normalization
    (``(x - mean) / sd``) layers, applied in turn, map to zero, per channel; None when their settings cannot be
    read."""
    keras = keras_module()
    gain, shift = np.ones(1), np.zeros(1)
    try:
        for layer in layers:
            if isinstance(layer, keras.layers.Rescaling):
                scale = np.ravel(np.asarray(layer.scale, dtype=np.float64))
                gain, shift = gain * scale, shift * scale + np.ravel(np.asarray(layer.offset, dtype=np.float64))
            elif isinstance(layer, keras.layers.Normalization):
                mean = np.ravel(np.asarray(layer.mean, dtype=np.float64))
                sd = np.sqrt(np.ravel(np.asarray(layer.variance, dtype=np.float64)))
                gain, shift = gain / sd, (shift - mean) / sd
        return tuple(float(v) or 0.0 for v in -shift / gain)  # "or": no -0.0
    except (AttributeError, TypeError, ValueError, FloatingPointError):
        return None


def image_converter(model: Any) -> Any | None:
    """The image converter a model carries as its own preprocessing (a KerasHub task's
    ``preprocessor.image_converter``, or an ``image_converter`` of its own), or None."""
    preprocessor = getattr(model, "preprocessor", None)
    converter = getattr(preprocessor, "image_converter", None) or getattr(model, "image_converter", None)
    return converter if converter is not None and callable(getattr(converter, "get_config", None)) else None


def _numbers(value: Any, default: float) -> np.ndarray:
    """A converter's scale or offset (None, a number or one per channel) as float32."""
    return np.asarray(default if value is None else value, dtype=np.float32)


def converter_preprocessing(converter: Any) -> Preprocessing:
    """What a KerasHub image converter does to pixels, ``x * scale + offset`` per channel, and the size it resizes
    to: the model's own preprocessing, read from the converter's config. cnnviz fits images to that size itself
    (``crop`` keeps the aspect ratio as the converter's ``crop_to_aspect_ratio`` does), so an image already at
    the size reaches the model as the converter makes it; at other sizes the resampling is cnnviz's."""
    config = converter.get_config()
    scale, offset = _numbers(config.get("scale"), 1.0), _numbers(config.get("offset"), 0.0)

    def apply(x: np.ndarray) -> np.ndarray:
        return np.asarray(x * scale + offset, dtype=np.float32)

    size = config.get("image_size")
    fitted = (int(size[0]), int(size[1])) if size is not None and None not in tuple(size) else None

    def shown(values: np.ndarray) -> str:
        text = ", ".join(f"{float(v):.4g}" for v in np.ravel(values))
        return f"[{text}]" if values.ndim else text

    where = f", at {fitted[0]}x{fitted[1]}" if fitted else ""
    kind = type(converter).__name__
    description = f"{kind}, the model's own: x * {shown(scale)} + {shown(offset)}{where}"
    return Preprocessing("converter", description, apply, size=fitted)


def _built_in(model: Any) -> bool:
    """Whether ``model`` is one of Keras's own classes (a functional or sequential model, as keras.applications
    builds them), not a subclass such as a KerasHub task or backbone, whose name says nothing of its input."""
    return type(model).__module__.split(".")[0] == "keras"


def auto_preprocessing(model: Any) -> Preprocessing:
    """Choose the preprocessing a model expects.

    A model that carries its own image converter (KerasHub's classifiers) gets it (:func:`converter_preprocessing`).
    Then the layers before the first convolution decide: a Rescaling or Normalization layer, or TensorFlow math
    that a Keras 2 model kept as a layer (its own ``preprocess_input``), means the model takes raw 0..255 pixels,
    so they are not scaled twice; a nested keras.applications base (transfer learning)
    means its family's ``preprocess_input``. Then a model that is itself a keras.applications model gets its
    family's ``preprocess_input``. A name is read only on Keras's own model classes (``mobile_net_v3_backbone``,
    a KerasHub class, is no keras.applications MobileNet). Any other model gets x/255, as in the tutorials.
    """
    converter = image_converter(model)
    if converter is not None:
        return converter_preprocessing(converter)
    keras = keras_module()
    leading = _leading_layers(model)
    affine = [layer for layer in leading if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))]
    for layer in leading:
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            kind = type(layer).__name__
            description = f"raw 0..255 pixels: the model starts with a {kind} layer"
            return Preprocessing("none", description, _none, _zero_of(affine))
        if type(layer).__name__ in ("TFOpLambda", "SlicingOpLambda"):  # Keras 2: preprocess_input inside
            return Preprocessing("none", f"raw 0..255 pixels: the model starts with {layer.name}", _none)
        if isinstance(layer, keras.Model) and _built_in(layer):
            nested = find_application(layer.name)
            if nested is not None:
                return _application_preprocessing(nested.module, f"{nested.preprocess}; nested base '{layer.name}'")
    app = find_application(model.name) if _built_in(model) else None
    if app is not None:
        return _application_preprocessing(app.module, app.preprocess)
    return Preprocessing("scale255", "x/255, the default for a model without its own rescaling", _scale255)


def resolve_preprocessing(model: Any, mode: str = DEFAULT_PREPROCESSING) -> Preprocessing:
    """``auto_preprocessing(model)`` for ``auto``, else the named preprocessing."""
    return auto_preprocessing(model) if mode == "auto" else preprocessing(mode)
