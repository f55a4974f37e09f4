"""Layer-CAM (Jiang et al. 2021): each position of each map weighted by the positive part of the score's gradient
there, summed over channels, ReLU. Unlike Grad-CAM's one weight per channel it keeps where in the map the gradient
is, which makes it usable at early layers too."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import GradientCam


def layer_cam(maps: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``relu(sum_k relu(grad_k) * maps_k)`` for ``(N, h, w, channels)`` maps and gradients: ``(N, h, w)``.

    >>> maps = np.array([[[[1.0, 2.0], [3.0, 0.0]]]]); grads = np.array([[[[1.0, -1.0], [-1.0, 5.0]]]])
    >>> layer_cam(maps, grads).tolist()
    [[[1.0, 0.0]]]
    """
    weighted = np.maximum(np.asarray(grads, np.float64), 0.0) * np.asarray(maps, np.float64)
    return np.maximum(weighted.sum(axis=-1), 0.0).astype(np.float32)


class LayerCam(GradientCam):
    """Layer-CAM (see the module)."""

    name = "layercam"
    title = "Layer-CAM"

    def cam(self, maps: np.ndarray, grads: np.ndarray) -> np.ndarray:  # noqa: D102
        return layer_cam(maps, grads)
