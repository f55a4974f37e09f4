"""Turn a model spec (a keras.applications name, the bundled model's name, or a file) into a Keras model."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import urllib.error
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import ModelLoadError, WeightsDownloadError, brief
from cnnviz.models.hub import classifier_presets, is_preset, is_preset_folder, load_preset
from cnnviz.models.legacy import legacy_custom_objects, readable_model_file
from cnnviz.models.zoo import APPLICATIONS, Application

BUNDLED_DIR = Path(__file__).parent.parent / "bundled"
#: Models shipped inside the package, usable with no network: name -> file in ``cnnviz/bundled``.
BUNDLED_MODELS = {"shapes": "shapes.keras"}
DEFAULT_MODEL = "vgg16"
_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def known_model_names() -> list[str]:
    """The names ``load_model`` accepts besides file paths: the bundled models, keras.applications, then
    KerasHub's image classifier presets (where keras-hub is installed; its backbones' presets open too)."""
    return [*BUNDLED_MODELS, *APPLICATIONS, *classifier_presets()]


def load_model(
    spec: str | os.PathLike[str] = DEFAULT_MODEL,
    weights: str | None = None,
    *,
    include_top: bool = False,
    size: tuple[int, int] | None = None,
    unsafe: bool = False,
    imports: Sequence[str] = (),
) -> Any:
    """Load a Keras model from a name or a file.

    Args:
        spec: a keras.applications name (``vgg16``, ``resnet50``, ...), a bundled model's name (``shapes``), a
            KerasHub preset's name (``resnet_50_imagenet``) or folder, or a path to a ``.keras`` file, a legacy
            ``.h5`` file or a SavedModel directory.
        weights: for a keras.applications name, ``imagenet`` (the default, downloaded and cached by Keras),
            ``none`` (random weights, the same on every load: see :data:`RANDOM_WEIGHTS_SEED`; it reseeds Keras'
            global random state) or a path to a weights file. For a model file, a weights file to load
            into it, or None to keep the file's own weights.
        include_top: for a keras.applications name, whether to build the classifier head too. Visualising
            convolutions needs only the conv base, whose weights are a fraction of the size.
        size: for a keras.applications name, the (rows, cols) input size; its ImageNet size by default.
        unsafe: allow loading models whose files carry arbitrary Python code (Lambda layers).
        imports: Python modules (dotted names or ``.py`` files) to import first, so that the custom layer
            classes they register with ``keras.saving.register_keras_serializable`` can be found.

    Returns:
        A ``keras.Model``.

    Raises:
        ModelLoadError: the name is unknown, the file cannot be read, or it needs ``unsafe``.
        WeightsDownloadError: the ImageNet weights could not be downloaded.
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if not names_a_file(text) and text.lower() in APPLICATIONS:
        return _load_application(APPLICATIONS[text.lower()], weights, include_top=include_top, size=size)
    if not names_a_file(text) and text.lower() in BUNDLED_MODELS:
        path = BUNDLED_DIR / BUNDLED_MODELS[text.lower()]
    if is_preset_folder(path) or (not names_a_file(text) and not path.exists() and is_preset(text)):
        with doing(f"opening the KerasHub preset {text}"):
            return load_preset(path if path.is_dir() else text, weights)
    if not path.exists():
        raise ModelLoadError(_unknown_model_message(text))
    if weights is not None and weights.lower() in ("none", "imagenet"):
        raise ModelLoadError(
            f"`weights` {weights} applies to keras.applications names only; {text} is a model file with weights "
            "of its own (give a weights file with `weights` PATH to replace them)"
        )
    for module in imports:
        import_module(module)
    with doing(f"loading model {path}"):
        model = _load_saved_model(path, unsafe) if path.is_dir() else _load_model_file(path, unsafe)
        if weights is not None:
            _load_weights(model, Path(weights))
    return model


def names_a_file(spec: str | os.PathLike[str]) -> bool:
    """Whether a model spec means a file rather than a known name: it is a file, a SavedModel folder, or written
    as a path (``./vgg16``). A plain ``vgg16`` means the keras.applications model even where a folder of that name
    exists, such as the one cnnviz writes its grids into.

    >>> names_a_file("vgg16"), names_a_file("./vgg16"), names_a_file("shapes")
    (False, True, False)
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    return path.is_file() or (path / "saved_model.pb").is_file() or os.sep in text or text.startswith(".")


def _unknown_model_message(text: str) -> str:
    if os.sep in text or Path(text).suffix.lower() in _MODEL_SUFFIXES:
        return f"no such model file: {text}"
    close = difflib.get_close_matches(text.lower(), known_model_names(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    presets = classifier_presets()
    hub = (
        f"; KerasHub's {len(presets)} image classifier presets ({', '.join(presets[:3])}, ...) or a preset folder"
        if presets
        else ""
    )
    return (
        f"no model '{text}': it is not a file, nor a known name.{hint} Known names: "
        f"{', '.join([*BUNDLED_MODELS, *APPLICATIONS])}{hub}; or give the path of a .keras, .h5 or SavedModel."
    )


def import_module(name: str) -> ModuleType:
    """Import a module by dotted name, or from a ``.py`` file, for the custom objects it registers.

    Raises:
        ModelLoadError: the module cannot be found or fails while importing.
    """
    keras_module()  # the module will most likely import keras: let it find it already quiet
    try:
        if name.endswith(".py"):
            path = Path(name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except Exception as exc:
        raise ModelLoadError(f"could not import {name}: {brief(exc)}") from exc


#: Random weights (``weights="none"``) are drawn from this seed, so that every load gives the same model: two runs
#: agree, and so do the Ray engine's workers with each other and with the driver.
RANDOM_WEIGHTS_SEED = 0


def _keras_cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def _load_application(
    app: Application,
    weights: str | None,
    *,
    include_top: bool,
    size: tuple[int, int] | None,
) -> Any:
    keras = keras_module()
    choice = "imagenet" if weights is None else weights
    if choice.lower() == "none":
        keras_weights: str | None = None
        keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
    elif choice.lower() == "imagenet":
        keras_weights = "imagenet"
    else:
        if not Path(choice).is_file():
            raise ModelLoadError(f"`weights` {choice}: no such file (expected imagenet, none or a weights file)")
        keras_weights = choice
    rows, cols = size if size is not None else (app.size, app.size)
    kwargs: dict[str, Any] = {"weights": keras_weights, "include_top": include_top}
    if not include_top:
        kwargs["input_shape"] = (rows, cols, 3)
    constructor = getattr(keras.applications, app.constructor)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return constructor(**kwargs)
    except Exception as exc:  # Keras reports a failed download as a bare Exception
        if keras_weights == "imagenet" and _is_download_failure(exc):
            raise WeightsDownloadError(_download_message(app, include_top, exc)) from exc
        misfit = _weights_misfit(choice, app.name, exc) if keras_weights not in (None, "imagenet") else None
        raise ModelLoadError(misfit or f"could not build {app.name}: {brief(exc)}") from exc


def _is_download_failure(exc: BaseException) -> bool:
    # Keras wraps network errors as "URL fetch failure"; any OSError would also take in a damaged cached file,
    # which is not a download problem and gets its own message.
    return "fetch failure" in str(exc) or isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError))


def _download_message(app: Application, include_top: bool, exc: BaseException) -> str:
    part = "with the classifier head" if include_top else "conv base only, include_top=False"
    return (
        f"could not download the ImageNet weights for {app.name} ({part}) into {_keras_cache_dir()}: {exc}. "
        "Without internet access: try the bundled model (`model` shapes), copy the weights file into that "
        "folder, or give it with `weights` PATH (`weights` none gives random weights)."
    )


def _load_model_file(path: Path, unsafe: bool) -> Any:
    keras = keras_module()
    if path.suffix.lower() not in _MODEL_SUFFIXES:
        raise ModelLoadError(f"{path}: not a model file (expected .keras, .h5 or a SavedModel directory)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with readable_model_file(path) as readable:
                model = keras.models.load_model(
                    readable, custom_objects=legacy_custom_objects(unsafe), compile=False, safe_mode=not unsafe
                )
    except Exception as exc:
        raise ModelLoadError(_load_failure_message(path, exc)) from exc
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a Keras model")
    return model


#: Keras's loading errors that have a better explanation, first match wins: (pattern, message template).
_LOAD_FAILURES = [
    (
        r"TensorFlow-only: (?P<name>tf\.[\w.]+) .* not on (?P<backend>\w+)",
        "{path} is a Keras 2 model that calls TensorFlow's {name}, which runs on the TensorFlow backend only, not "
        "on {backend}: run cnnviz with --backend tensorflow",
    ),
    (
        r"the model calls TensorFlow's (?P<name>tf\.[\w.]+)",
        "{path} calls {name}, which is not among the TensorFlow math and shaping functions cnnviz runs by default. "
        "If you trust the file, pass `unsafe`.",
    ),
    (
        r"(?i)safe_mode|unsafe",
        "{path} contains a Lambda layer or other Python code, which runs when the model is loaded; cnnviz refuses "
        "it by default. If you trust the file, pass `unsafe`.",
    ),
    (
        r"No model config found",
        "{path} holds weights only, no architecture: build the model with `model` NAME or a model file, and give "
        "this file with `weights` {path}",
    ),
    (
        r"class '(?P<name>\w+)' because its parent module keras_hub[\w.]* cannot be imported",
        "{path} is a KerasHub model ({name}); reading it needs keras-hub: pip install 'cnnviz[hub]' (or keras-hub)",
    ),
    (
        r"class '(?P<name>\w+)' because its parent module (?P<module>[\w.]+) cannot be imported",
        "could not load {path}: its class {name} comes from {module}, which is not installed here; install the "
        "package that provides it, or pass the module or .py file that defines it with `imports`.",
    ),
    (
        r"Could not locate class '(?P<name>\w+)'",
        "could not load {path}: it uses a layer class '{name}' that is not part of Keras. If it is your own, pass "
        "the module or .py file that defines it with `imports`.",
    ),
]


def _load_failure_message(path: Path, exc: BaseException) -> str:
    text = str(exc)
    for pattern, template in _LOAD_FAILURES:
        found = re.search(pattern, text)
        if found:
            return template.format(path=path, **found.groupdict())
    return f"could not load {path}: {brief(exc)}"


def _load_saved_model(path: Path, unsafe: bool) -> Any:
    """A TF 2.x SavedModel written by tf.keras: Keras 3 cannot read it, but tf_keras can, and its .h5 is readable."""
    if not (path / "saved_model.pb").exists():
        raise ModelLoadError(f"{path} is a directory but not a SavedModel (no saved_model.pb in it)")
    if not (path / "keras_metadata.pb").exists():
        raise ModelLoadError(
            f"{path} is a SavedModel without Keras layer metadata (written by model.export or plain TensorFlow), "
            "so its layers cannot be recovered. Save the model with model.save('model.keras') instead."
        )
    try:
        import tf_keras
    except ImportError as exc:
        raise ModelLoadError(
            f"{path} is a TF 2.x SavedModel; reading one needs the tf-keras package: pip install 'cnnviz[savedmodel]'"
        ) from exc
    try:
        legacy = tf_keras.models.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as tmp:
            h5 = Path(tmp) / "model.h5"
            legacy.save(h5)
            return _load_model_file(h5, unsafe)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"could not load the SavedModel {path}: {brief(exc)}") from exc


def _load_weights(model: Any, path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"`weights` {path}: no such file")
    try:
        model.load_weights(path)
    except Exception as exc:
        misfit = _weights_misfit(path, model.name, exc)
        raise ModelLoadError(misfit or f"could not load weights from {path} into {model.name}: {brief(exc)}") from exc


def _weights_misfit(path: str | os.PathLike[str], model_name: str, exc: BaseException) -> str | None:
    """A plain message for weights saved from another architecture, or None when ``exc`` says something else.

    Keras reports the misfit as "A total of 13 objects could not be loaded" followed by one variable's shapes and
    value dump, or as a layer count mismatch for legacy ``.h5`` weights.
    """
    text = str(exc)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    variable = re.search(r"Target variable: <Variable path=([^,\s]+)", text)
    counts = re.search(r"expected (\d+) layers, found (\d+) saved layers", text)
    variables = re.search(r"Layer '([^']+)' expected (\d+) variables, but received (\d+)", text)
    if shapes:
        name = variable.group(1) if variable else "a weight"
        detail = f"{name} is {shapes.group(1)} in {model_name}, {shapes.group(2)} in the file"
    elif variables:
        layer, wanted, found = variables.groups()
        detail = f"layer {layer} has {wanted} weight arrays in {model_name}, {found} in the file"
    elif counts:
        detail = f"{model_name} has {counts.group(1)} layers with weights, the file {counts.group(2)}"
    elif "could not be loaded" in text or "mismatch" in text.lower():
        detail = brief(exc)
    else:
        return None
    return (
        f"the weights in {path} do not fit {model_name}: they were saved from a model whose layer names or shapes "
        f"differ ({detail}). Give `weights` a file saved from this same architecture."
    )
