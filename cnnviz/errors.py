"""The exceptions cnnviz raises. Each message says what was expected, what was found and what to do next.

The library speaks Python: an error or a note that names an option names it as the API does, in backquotes
(`` `max_maps` ``, `` `feed` ``): a field of an options object or a keyword argument. The command line shows each
as its flag (``--max-maps``, ``--feed``), in one place (:func:`cnnviz.cli.common.as_flags`)."""

from __future__ import annotations

import re

_TRACE_NOISE = (
    "File ",
    "Detected at node",
    "[[",
    "Graph execution error",
    "Traceback",
    "Exception encountered when calling",
    "Arguments received by",
    "•",
)
_LONGEST = 400
_COLOUR_CODES = re.compile(r"\x1b\[[0-9;]*m")
_NODE_NAMES = re.compile(r" for '\{\{node [^']*'")


class CnnvizError(Exception):
    """Base class of every error cnnviz raises on purpose."""


class ModelLoadError(CnnvizError):
    """A model name or file could not be turned into a Keras model."""


class WeightsDownloadError(ModelLoadError):
    """Pretrained weights could not be fetched from the internet."""


class LayerNotFound(CnnvizError):
    """A layer name does not exist in the model."""


class NotAConvLayer(CnnvizError):
    """A layer exists but is not a convolution."""


class UnsupportedLayer(CnnvizError):
    """A convolution that a command cannot render (for example Conv3D kernels)."""


class UnsupportedModel(CnnvizError):
    """A model whose graph cannot be walked (subclassed models, several inputs)."""


class ImageLoadError(CnnvizError):
    """An image file could not be read or decoded."""


class ForwardPassError(CnnvizError):
    """The model could not run on an input (for example an image too small for its kernels)."""


class ModelRunError(CnnvizError):
    """The model cannot run here on any input: the fault is the model's (or this machine's), not an image's."""


class OutputError(CnnvizError):
    """A result file or folder could not be written."""


class OptionError(CnnvizError):
    """An option value that cannot be used (a bad slice, an unknown colormap, ...)."""


def brief(exc: BaseException) -> str:
    """The line of an exception's message that says what went wrong.

    Most messages lead with it. Keras wraps a layer's error in "Exception encountered when calling ..." and
    terminal colour codes; TensorFlow's graph errors lead with "Graph execution error:" and a Python stack, and
    the line that matters comes last. Graph node names are left out.

    >>> brief(ValueError("bad value\\nmore detail"))
    'bad value'
    >>> brief(ValueError("Graph execution error:\\n\\n  File x\\n\\nsize would be negative\\n\\t [[{{node a}}]]"))
    'size would be negative'
    >>> brief(ValueError("Exception encountered when calling Conv2D.call().\\n\\n\\x1b[1mNegative size for "
    ...                  "'{{node c}} = Conv2D(x)' with input shapes: [1,3,3,1].\\x1b[0m\\n\\nArguments received by"))
    'Negative size with input shapes: [1,3,3,1].'
    """
    text = _NODE_NAMES.sub("", _COLOUR_CODES.sub("", str(exc)))
    lines = (line.strip() for line in text.splitlines())
    useful = [line for line in lines if line and not line.startswith(_TRACE_NOISE)]
    if not useful:
        return type(exc).__name__
    line = useful[-1] if text.startswith("Graph execution error") else useful[0]
    # Keras appends whole layer configs ("Full object config: {...}") that can run to megabytes.
    line = line.split(" Full object config:")[0]
    return line if len(line) <= _LONGEST else line[: _LONGEST - 3] + "..."
