"""Score-CAM (Wang et al. 2020), as tf-keras-vis and pytorch-grad-cam compute it: each channel's map, upsampled to
the input and min-max normalised, masks the input; the class's probability for that masked input weighs the
channel; the CAM is the ReLU of the weighted sum of the layer's maps. No gradient.

It is the costly CAM: one forward pass per channel. The masked inputs are made on the device and go through the
model in large batches (:meth:`cnnviz.methods.target.TargetModel.perturbed`). A channel whose map is zero
everywhere is skipped: it adds nothing to the sum whatever its weight, so this is exact. A channel whose map is
constant but not zero normalises to an all-zero mask; all such channels share one forward pass.
"""

from __future__ import annotations

import numpy as np

from cnnviz.methods.attribution.base import Attributed, Attribution, Batch, upsampled
from cnnviz.methods.target import TargetModel


def channel_weights(model: TargetModel, batch: Batch, row: int) -> np.ndarray:
    """Image ``row``'s weight per channel: its class probability with the input masked by the channel's map
    (0 for channels skipped)."""
    assert batch.layer is not None
    maps = np.asarray(batch.layer.maps[row], dtype=np.float32)
    channels = maps.shape[-1]
    flat = maps.reshape(-1, channels)
    low, high = flat.min(axis=0), flat.max(axis=0)
    varying = np.flatnonzero(high > low)
    constant = np.flatnonzero((high == low) & (high != 0))
    weights = np.zeros(channels, dtype=np.float32)
    image = batch.inputs[row]
    zero = np.zeros_like(image)
    if len(varying):
        masks = np.moveaxis(maps[..., varying], -1, 0)
        weights[varying] = model.perturbed(image, zero, masks, batch.scored, row, batch.number(row), normalise=True)
    if len(constant):  # an all-zero mask: the input becomes zeros, one pass for all
        blank = np.zeros((1, *image.shape[:2]), dtype=np.float32)
        weights[constant] = model.perturbed(image, zero, blank, batch.scored, row, batch.number(row))[0]
    return weights


def score_cam(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``relu(sum_k weights_k * maps_k)`` for one image's ``(h, w, channels)`` maps: ``(h, w)``."""
    return np.maximum(np.asarray(maps, np.float64) @ np.asarray(weights, np.float64), 0.0).astype(np.float32)


class ScoreCam(Attribution):
    """Score-CAM (see the module)."""

    name = "scorecam"
    title = "Score-CAM"
    needs_layer = True

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return channels  # at most: flat channels are skipped

    def explain(self, model: TargetModel, batch: Batch) -> Attributed:  # noqa: D102
        assert batch.layer is not None
        rows, cols = batch.inputs.shape[1:3]
        maps = batch.layer.maps
        cams = [score_cam(maps[row], channel_weights(model, batch, row)) for row in range(len(batch.inputs))]
        layer_maps = np.stack(cams) if cams else np.zeros((0, *batch.layer.maps.shape[1:3]), np.float32)
        return upsampled(layer_maps, rows, cols)
