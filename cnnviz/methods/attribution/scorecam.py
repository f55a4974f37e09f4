"""Score-CAM (Wang et al. 2020), as tf-keras-vis and pytorch-grad-cam compute it: each channel's map, upsampled to
the input and min-max normalised, masks the input; the class's probability for that masked input weighs the
channel; the CAM is the ReLU of the weighted sum of the layer's maps. No gradient.

It is the costly CAM: one forward pass per channel. The masked inputs are made on the device and go through the
model in large batches, the copies of every image of a batch together
(:meth:`cnnviz.methods.target.TargetModel.perturbed_rows`). A channel whose map is zero everywhere is skipped: it
adds nothing to the sum whatever its weight, so this is exact. A channel whose map is constant but not zero
normalises to an all-zero mask; all such channels of an image share one forward pass.

Faster Score-CAM (``max_channels``, tf-keras-vis's ``max_N``): only each image's ``max_channels`` channels whose maps
vary most (the standard deviation over the map's positions) are weighed, and the CAM sums those: a forward pass per
kept channel, and the same CAM as Score-CAM's where the others add little.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnnviz.methods.attribution.base import Attributed, Attribution, AttributionBatch, upsampled
from cnnviz.methods.settings import Setting
from cnnviz.methods.target import TargetModel

MAX_CHANNELS = Setting(
    "max_channels",
    int,
    None,
    "Faster Score-CAM: weigh only each image's channels whose maps vary most, this many",
    minimum=1,
    shown="every channel",
)


def channel_weights(model: TargetModel, batch: AttributionBatch, max_channels: int | None = None) -> np.ndarray:
    """``(N, channels)`` each image's weight per channel: its class probability with the input masked by the
    channel's map (0 for channels skipped, and beyond each image's ``max_channels`` that vary most), every image's
    masked copies streamed through the model together."""
    assert batch.layer is not None
    maps = np.asarray(batch.layer.maps, dtype=np.float32)
    count, channels = len(maps), maps.shape[-1]
    flat = maps.reshape(count, -1, channels)
    low, high = flat.min(axis=1), flat.max(axis=1)
    kept = np.ones((count, channels), dtype=bool)
    if max_channels is not None and max_channels < channels:
        spread = flat.std(axis=1, dtype=np.float64)
        order = np.argsort(-spread, axis=1, kind="stable")[:, :max_channels]
        kept[:] = False
        np.put_along_axis(kept, order, True, axis=1)
    varying = [np.flatnonzero((high[row] > low[row]) & kept[row]) for row in range(count)]
    constant = [np.flatnonzero((high[row] == low[row]) & (high[row] != 0) & kept[row]) for row in range(count)]
    blank = np.zeros(maps.shape[1:3], dtype=np.float32)  # normalises to 0: the input becomes zeros

    def masks() -> Iterator[tuple[int, np.ndarray]]:
        for row in range(count):
            yield from ((row, maps[row, ..., channel]) for channel in varying[row])
            if len(constant[row]):  # one pass for all of an image's constant channels
                yield row, blank

    zeros = np.zeros_like(batch.inputs)
    values = iter(model.perturbed_rows(batch.inputs, zeros, masks(), batch.scored, batch.images, normalise=True))
    weights = np.zeros((count, channels), dtype=np.float32)
    for row in range(count):
        weights[row, varying[row]] = [next(values) for _ in varying[row]]
        if len(constant[row]):
            weights[row, constant[row]] = next(values)
    return weights


def score_cam(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``relu(sum_k weights_k * maps_k)`` for one image's ``(h, w, channels)`` maps: ``(h, w)``."""
    return np.maximum(np.asarray(maps, np.float64) @ np.asarray(weights, np.float64), 0.0).astype(np.float32)


class ScoreCam(Attribution):
    """Score-CAM (see the module)."""

    name = "scorecam"
    title = "Score-CAM"
    needs_layer = True
    settings = (MAX_CHANNELS,)

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        limit = self.values.max_channels
        return channels if limit is None else min(channels, limit)  # at most: flat channels are skipped

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        assert batch.layer is not None
        rows, cols = batch.inputs.shape[1:3]
        maps = batch.layer.maps
        weights = channel_weights(model, batch, self.values.max_channels)
        cams = [score_cam(maps[row], weights[row]) for row in range(len(batch.inputs))]
        layer_maps = np.stack(cams) if cams else np.zeros((0, *batch.layer.maps.shape[1:3]), np.float32)
        return upsampled(layer_maps, rows, cols)
