"""Read a conv layer's kernel as a ``(filters, channels, rows, cols)`` stack, whatever the layer kind."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnviz.errors import UnsupportedLayer
from cnnviz.models.graph import ConvLayer


def layer_kernels(conv: ConvLayer) -> np.ndarray:
    """The learned kernels of a conv layer as a float32 ``(filters, input channels, rows, cols)`` array.

    Rows are what each output filter applies to each input channel, as the tutorials draw them:

    - Conv2D ``(kh, kw, in, out)`` and Conv1D ``(k, in, out)`` (as ``rows=1``);
    - Conv2DTranspose ``(kh, kw, out, in)``;
    - DepthwiseConv2D / DepthwiseConv1D ``(kh, kw, in, multiplier)``: one filter per input channel and
      multiplier, each seeing one channel;
    - SeparableConv2D / SeparableConv1D: the depthwise (spatial) kernels, as for DepthwiseConv2D.

    Raises:
        UnsupportedLayer: the kernel is 3-D (Conv3D, Conv3DTranspose).
    """
    layer = conv.layer
    if conv.tokens is not None:
        raise UnsupportedLayer(
            f"layer '{conv.path}' is a transformer block ({conv.kind}): it has no kernel to draw. filters draws the "
            "kernels of conv layers (a Vision Transformer's patch embedding is one); featuremaps, stats, top, "
            "maximize and the class activation maps work on its tokens"
        )
    if conv.kind in ("SeparableConv1D", "SeparableConv2D"):
        kernel = _numpy(layer.depthwise_kernel)
    else:
        kernel = _numpy(layer.kernel)
    spatial = kernel.ndim - 2
    if spatial == 1:
        kernel = kernel[None]  # a 1-D kernel is one row
    elif spatial != 2:
        raise UnsupportedLayer(
            f"layer '{conv.path}' is a {conv.kind} with {spatial}-D kernels; filters renders 1-D and 2-D kernels only"
        )
    kh, kw, a, b = kernel.shape
    if conv.kind.startswith(("Depthwise", "Separable")):
        # (kh, kw, in, multiplier) -> filter i*multiplier + m sees only channel i
        return np.ascontiguousarray(kernel.reshape(kh, kw, a * b, 1).transpose(2, 3, 0, 1))
    if "Transpose" in conv.kind:
        return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def _numpy(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)
