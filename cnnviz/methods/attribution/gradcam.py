"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) as attribution methods: the maps
of a conv layer weighed by the class score's gradient (:func:`cam`). The ``gradcam`` command is ``explain`` with
one of these two, drawn as the image beside its heatmap.

The score differentiated is the class's *pre-softmax* value where the graph has one: a softmax saturates, and its
gradient for a confident class is close to zero everywhere."""

from __future__ import annotations

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.methods.attribution.base import GradientCam

#: The two Grad-CAMs, as the ``gradcam`` command offers them.
GRADCAMS = ("gradcam", "gradcam++")


def cam(maps: np.ndarray, grads: np.ndarray, method: str = "gradcam") -> np.ndarray:
    """Class activation maps from a layer's maps and the class score's gradient with respect to them.

    Args:
        maps: ``(N, h, w, channels)`` activations.
        grads: the same shape: d(score)/d(maps).
        method: ``gradcam`` (each channel weighted by its mean gradient) or ``gradcam++`` (by its positive
            gradients, each weighted by the closed-form alpha of Chattopadhay et al.).

    Returns:
        ``(N, h, w)``, >= 0.

    >>> maps = np.zeros((1, 2, 2, 2)); maps[0, 0, 0, 0] = 1.0; maps[0, 1, 1, 1] = 1.0
    >>> grads = np.zeros((1, 2, 2, 2)); grads[..., 0] = 1.0; grads[..., 1] = -1.0
    >>> cam(maps, grads)[0].tolist()  # channel 0 counts for the class, channel 1 against it
    [[1.0, 0.0], [0.0, 0.0]]
    """
    maps = np.asarray(maps, dtype=np.float64)
    grads = np.asarray(grads, dtype=np.float64)
    if method == "gradcam":
        weights = grads.mean(axis=(1, 2))
    elif method == "gradcam++":
        squared = grads**2
        denominator = 2.0 * squared + maps.sum(axis=(1, 2), keepdims=True) * grads**3
        alpha = squared / np.where(denominator != 0.0, denominator, 1.0)
        weights = (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))
    else:
        raise OptionError(f"unknown method '{method}'; choose one of: {', '.join(GRADCAMS)}")
    return np.maximum(np.einsum("nhwk,nk->nhw", maps, weights), 0.0).astype(np.float32)


class GradCamMethod(GradientCam):
    """Each channel weighted by the mean of the score's gradient over its map; the ReLU of the sum."""

    name = "gradcam"
    title = "Grad-CAM"

    def cam(self, maps: np.ndarray, grads: np.ndarray) -> np.ndarray:  # noqa: D102
        return cam(maps, grads, self.name)


class GradCamPlusPlus(GradCamMethod):
    """Each position's positive gradient weighted by Chattopadhay et al.'s closed-form alpha."""

    name = "gradcam++"
    title = "Grad-CAM++"
