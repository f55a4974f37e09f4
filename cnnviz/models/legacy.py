"""Read models written by Keras 2 (TF 2.x ``.h5`` files, tf_keras ``.keras`` files) that Keras 3 rejects.

Keras 2 wrote configs that Keras 3 refuses or misreads, and they are in almost every MobileNet, ResNet or
EfficientNet transfer model saved by an older TensorFlow (Teachable Machine exports too):

- BatchNormalization's ``axis`` as a one-item list;
- arguments Keras 3 layers no longer take (``groups`` of depthwise, separable and transposed convolutions, random
  augmentation ``rng_type``);
- a nested model's single input or output as a one-item list of ``[layer, node, tensor]``, which Keras 3 reads
  as a list output, so the next layer receives a list;
- calls of a nested model counted from 1 (Keras 2 counted the model's own construction as call 0), which
  Keras 3 cannot resolve ("the graph ... has loops or disconnected nodes");
- a Sequential's input shape kept on its first layer rather than on an InputLayer;
- nested models filed under tf_keras's own modules (``tf_keras.src.engine.functional``), where Keras 3 does not
  look ("Could not locate class 'Functional'").

Keras 3 looks built-in layers up by module, so ``custom_objects`` cannot stand in for them: the stored config
itself is mended, in a temporary copy of the file.
"""

from __future__ import annotations

import json
import operator
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from cnnviz._keras import chosen_backend


def mend_config(node: Any) -> bool:
    """Rewrite Keras 2 layer configs in a decoded ``model_config`` in place; True if anything changed.

    >>> config = {"class_name": "BatchNormalization", "config": {"axis": [3]}}
    >>> mend_config(config), config["config"]["axis"]
    (True, 3)
    >>> base = {"class_name": "Functional", "config": {"output_layers": [["out_relu", 0, 0]]}}
    >>> mend_config(base), base["config"]["output_layers"]
    (True, ['out_relu', 0, 0])
    """
    changed = False
    if isinstance(node, dict):
        kind, config = node.get("class_name"), node.get("config")
        if isinstance(config, dict) and isinstance(kind, str):
            changed = _mend_layer(kind, config)
        module = node.get("module")
        if isinstance(module, str) and module.startswith(_KERAS_2_ENGINE) and kind in _KERAS_3_MODELS:
            node["module"], node["registered_name"] = _KERAS_3_MODELS[kind]
            changed = True
        for value in node.values():
            changed = mend_config(value) or changed
    elif isinstance(node, list):
        for value in node:
            changed = mend_config(value) or changed
    return changed


#: Where Keras 2.13+ (tf_keras) said its model classes live, and where Keras 3 looks for them instead.
_KERAS_2_ENGINE = ("tf_keras.", "keras.src.engine.", "keras.engine.")
_KERAS_3_MODELS = {
    "Functional": ("keras.src.models.functional", "Functional"),
    "Model": ("keras.src.models.functional", "Functional"),
    "Sequential": ("keras", None),
}

#: Keras 2 arguments that Keras 3 layers refuse, by layer class.
_DROPPED = {
    "DepthwiseConv1D": ("groups",),
    "DepthwiseConv2D": ("groups",),
    "Conv1DTranspose": ("groups",),
    "Conv2DTranspose": ("groups",),
    "Conv3DTranspose": ("groups",),
    # tf_keras writes a plain conv's kernel settings beside the depthwise_ and pointwise_ ones
    "SeparableConv1D": ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint"),
    "SeparableConv2D": ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint"),
    "SpatialDropout1D": ("trainable", "noise_shape"),
    "SpatialDropout2D": ("trainable", "noise_shape"),
    "SpatialDropout3D": ("trainable", "noise_shape"),
    "RandomFlip": ("rng_type",),
    "RandomRotation": ("rng_type",),
    "RandomZoom": ("rng_type",),
    "RandomTranslation": ("rng_type",),
    "RandomContrast": ("rng_type",),
    "RandomCrop": ("rng_type",),
    "RandomBrightness": ("rng_type",),
}


def _is_tensor_ref(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


def _mend_layer(kind: str, config: dict[str, Any]) -> bool:
    changed = False
    axis = config.get("axis")
    if kind == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
        config["axis"] = axis[0]
        changed = True
    for key in _DROPPED.get(kind, ()):
        if key in config:
            del config[key]
            changed = True
    if kind == "Sequential":
        changed = _move_input_shape_to_input_layer(config) or changed
    if kind in ("Functional", "Model"):
        for key in ("input_layers", "output_layers"):
            refs = config.get(key)
            if isinstance(refs, list) and len(refs) == 1 and _is_tensor_ref(refs[0]):
                config[key] = refs[0]
                changed = True
        changed = _renumber_nested_calls(config.get("layers") or []) or changed
    return changed


def _move_input_shape_to_input_layer(config: dict[str, Any]) -> bool:
    """Keras 2 let a Sequential's first layer carry ``input_shape`` (stored as ``batch_input_shape``); Keras 3
    layers refuse it. The shape moves to an InputLayer at the front, where Keras 3 takes it."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        return False
    changed = False
    for index, layer in enumerate(layers):
        inner = layer.get("config") if isinstance(layer, dict) else None
        if layer.get("class_name") == "InputLayer" or not isinstance(inner, dict) or "batch_input_shape" not in inner:
            continue
        shape = inner.pop("batch_input_shape")
        changed = True
        if index == 0:
            name = f"{inner.get('name', 'layer')}_input"
            entry = {"batch_input_shape": shape, "dtype": inner.get("dtype", "float32"), "name": name}
            layers.insert(0, {"class_name": "InputLayer", "config": entry})
            break
    return changed


def _renumber_nested_calls(layers: list[Any]) -> bool:
    """In Keras 2's list-form inbound nodes, make references to a nested model's calls count from 0.

    Keras 2 also stored a TFOpLambda's calls as bare ``[layer, node, tensor, kwargs]`` references rather than
    lists of them; those are wrapped first.
    """
    nested = {layer.get("name") for layer in layers if layer.get("class_name") in ("Functional", "Model", "Sequential")}
    changed = False
    for layer in layers:
        nodes = layer.get("inbound_nodes") or []
        if any(_is_tensor_ref(node[:3]) for node in nodes if isinstance(node, list)):
            layer["inbound_nodes"] = [[node] if _is_tensor_ref(node[:3]) else node for node in nodes]
            changed = True
        for node in layer.get("inbound_nodes") or []:
            if not isinstance(node, list):
                continue  # Keras 3's own dict-form nodes are already right
            for ref in node:
                if isinstance(ref, list) and len(ref) >= 3 and ref[0] in nested and isinstance(ref[1], int) and ref[1]:
                    ref[1] -= 1
                    changed = True
    return changed


@contextmanager
def readable_model_file(path: Path) -> Iterator[Path]:
    """Yield ``path``, or a mended temporary copy of it when its stored model config needs mending.

    Works on ``.h5`` files (the config is an HDF5 attribute) and on ``.keras`` archives (``config.json``),
    which tf_keras also writes. Any other file is yielded as it is.
    """
    suffix = path.suffix.lower()
    if suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            raw: Any = archive.read("config.json") if "config.json" in names else None
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as file:
            raw = file.attrs.get("model_config")
    else:
        raw = None
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    if config is None or not mend_config(config):
        yield path
        return
    with TemporaryDirectory(prefix="cnnviz-") as folder:
        copy = Path(folder) / path.name
        _write_mended(path, copy, json.dumps(config))
        yield copy


def _write_mended(path: Path, copy: Path, config: str) -> None:
    if path.suffix.lower() == ".keras":
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
            for item in source.infolist():
                data = config.encode() if item.filename == "config.json" else source.read(item)
                target.writestr(item, data)
        return
    import h5py

    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as file:
        file.attrs["model_config"] = config


#: TensorFlow functions a Keras 2 ``TFOpLambda`` layer may call without ``unsafe``: arithmetic and shaping,
#: nothing that reads or writes files.
_SAFE_TF_PREFIXES = ("math.", "nn.", "image.", "__operators__.")
_SAFE_TF_FUNCTIONS = {
    "cast",
    "clip_by_value",
    "concat",
    "expand_dims",
    "identity",
    "reshape",
    "squeeze",
    "stack",
    "transpose",
    "compat.v1.transpose",
}


def _tf_function(name: str, unsafe: bool) -> Any:
    """The TensorFlow function a TFOpLambda names (``math.truediv``, ``__operators__.add``)."""
    if name.startswith("__operators__."):  # Python's operators: on any backend
        return getattr(operator, name.split(".", 1)[1])
    backend = chosen_backend()
    if backend != "tensorflow":
        raise ValueError(
            f"TensorFlow-only: tf.{name} (a Keras 2 TFOpLambda layer) runs on the TensorFlow backend only, not on "
            f"{backend}"
        )
    if not (unsafe or name.startswith(_SAFE_TF_PREFIXES) or name in _SAFE_TF_FUNCTIONS):
        raise ValueError(
            f"the model calls TensorFlow's tf.{name}, which is not one of the math and shaping functions cnnviz "
            "runs in safe mode (unsafe: pass `unsafe` if you trust the file)"
        )
    import tensorflow as tf

    target: Any = tf
    for part in name.split("."):
        target = getattr(target, part)
    return target


def legacy_custom_objects(unsafe: bool = False) -> dict[str, Any]:
    """Stand-ins for Keras 2 layers that Keras 3 no longer has, for loading Keras 2 ``.h5`` files.

    ``TFOpLambda`` is what Keras 2 made of a TensorFlow function called on a Keras tensor, and
    ``SlicingOpLambda`` of an index such as ``x[..., ::-1]``: together they are the ``preprocess_input`` inside the
    TensorFlow transfer-learning tutorial's model (MobileNetV2's is math only; VGG16's and ResNet50's flip RGB
    to BGR with an index).
    """
    from cnnviz._keras import keras_module

    keras = keras_module()

    class TFOpLambda(keras.layers.Layer):  # type: ignore[name-defined]
        def __init__(self, function: str, **kwargs: Any) -> None:
            kept = {key: kwargs[key] for key in ("name", "trainable", "dtype") if key in kwargs}
            super().__init__(**kept)
            self.function = function
            self._op = _tf_function(function, unsafe)

        def call(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("name", None)
            return self._op(*args, **kwargs)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "function": self.function}

    class SlicingOpLambda(keras.layers.Layer):  # type: ignore[name-defined]
        def __init__(self, function: str = "__operators__.getitem", **kwargs: Any) -> None:
            kept = {key: kwargs[key] for key in ("name", "trainable", "dtype") if key in kwargs}
            super().__init__(**kept)
            self.function = function

        def call(self, inputs: Any, slice_spec: Any = None, **kwargs: Any) -> Any:
            return inputs[_slice_spec(slice_spec)]

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "function": self.function}

    return {"TFOpLambda": TFOpLambda, "SlicingOpLambda": SlicingOpLambda}


def _slice_spec(spec: Any) -> Any:
    """Keras 2's stored ``x[...]`` index back as Python: ``[{"class_name": "__ellipsis__"}, {"start": None, "stop":
    None, "step": -1}]`` is ``(..., slice(None, None, -1))``.

    >>> _slice_spec([{"class_name": "__ellipsis__"}, {"start": None, "stop": None, "step": -1}])
    (Ellipsis, slice(None, None, -1))
    """
    if isinstance(spec, list):
        return tuple(_slice_spec(item) for item in spec)
    if isinstance(spec, dict):
        if spec.get("class_name") == "__ellipsis__":
            return Ellipsis
        return slice(spec.get("start"), spec.get("stop"), spec.get("step"))
    return spec
