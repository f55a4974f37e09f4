"""Eigen-CAM (Muhammad & Yeasin 2020): the maps of a conv layer projected on their first principal component. It
takes no gradient and no class: it shows what dominates the layer's maps, which is often, not always, the object
the model classifies."""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import Attributed, Attribution, AttributionBatch, upsampled
from cnnviz.methods.target import TargetModel


def eigen_cam(maps: np.ndarray) -> np.ndarray:
    """Each image's ``(h, w, channels)`` maps, centred per channel, projected on their first right singular
    vector, signed to agree with the maps' sum, ReLU: ``(N, h, w)``.

    >>> maps = np.zeros((1, 2, 2, 2)); maps[0, 0, 0] = [2.0, 2.0]
    >>> [[round(float(value), 3) for value in row] for row in eigen_cam(maps)[0]]
    [[2.121, 0.0], [0.0, 0.0]]
    """
    maps = np.asarray(maps, dtype=np.float64)
    out = np.zeros(maps.shape[:3], dtype=np.float32)
    for index, one in enumerate(maps):
        flat = one.reshape(-1, one.shape[-1])
        centred = flat - flat.mean(axis=0)
        if not np.any(centred):
            continue
        vector = np.linalg.svd(centred, full_matrices=False)[2][0]
        projection = centred @ vector
        if np.dot(projection, flat.sum(axis=1) - flat.sum(axis=1).mean()) < 0:  # an SVD's sign is arbitrary
            projection = -projection
        out[index] = np.maximum(projection, 0.0).reshape(one.shape[:2])
    return out


class EigenCam(Attribution):
    """Eigen-CAM (see the module)."""

    name = "eigencam"
    title = "Eigen-CAM"
    needs_layer = True

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        assert batch.layer is not None
        rows, cols = batch.inputs.shape[1:3]
        return upsampled(eigen_cam(batch.layer.maps), rows, cols)
