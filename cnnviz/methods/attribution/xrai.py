"""XRAI (Kapishnikov et al. 2019): Integrated Gradients summed over regions of the image, the regions ranked. The
image is cut into regions at several scales (Felzenszwalb and Huttenlocher's graph segmentation at six scales, each
region dilated a little to take in its edges); starting from nothing, XRAI adds the region whose pixels not yet
covered have the highest mean attribution, until every region is in, and each pixel's value is that mean of the
region that brought it in (pixels no region brought in share their own mean). The map is a ranking of regions, as
the pictures show it: the most important region is the hottest, and a region's value is its attribution per pixel.

The attribution is Integrated Gradients from two baselines, the image's darkest and its brightest value everywhere
(a black and a white image), averaged, each pixel's largest channel: as in PAIR's saliency, XRAI's reference
implementation and the default of Google Cloud's image explanations. The segmentation is scikit-image's
``felzenszwalb``, the implementation that reference uses (a well-kept library with the algorithm in compiled code),
so that the regions are the paper's; it is the ``xrai`` extra (``pip install 'cnnviz[xrai]'``). PAIR's constants
are for 224-pixel images (segments of 150 pixels at least, dilated by 5 pixels, regions adding fewer than 50 new
pixels dropped); they are scaled to the image's size here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.methods.attribution.base import Attributed, Attribution, AttributionBatch, AttributionSettings
from cnnviz.methods.attribution.integrated_gradients import STEPS, integrated_gradients
from cnnviz.methods.target import TargetModel

#: The segmentations' scales and smoothing, at 224 x 224 pixels (the image is segmented at that size).
SCALES, SIGMA, SEGMENT_SIZE = (50, 100, 150, 250, 500, 1200), 0.8, 224
#: At 224 pixels: the smallest segment, the dilation's radius and the fewest new pixels a region must add.
SMALLEST, DILATION, FEWEST_NEW = 150, 5, 50


def _skimage() -> Any:
    try:
        import skimage.morphology  # noqa: F401
        import skimage.segmentation  # noqa: F401
        import skimage.transform  # noqa: F401
    except ImportError as error:
        raise OptionError(
            f"XRAI's regions need scikit-image ({error.name} is not installed): pip install 'cnnviz[xrai]'"
        ) from error
    import skimage

    return skimage


def regions(image: np.ndarray) -> Any:
    """Every region of every segmentation of ``image`` ``(rows, cols, channels)``, dilated: a sparse boolean
    ``(regions, rows * cols)`` array (scipy's, which scikit-image brings), each region dilated within its own box."""
    skimage = _skimage()
    from scipy import ndimage, sparse

    rows, cols = image.shape[:2]
    span = float(image.max() - image.min())
    scaled = (image - image.min()) / (span if span > 0 else 1.0) * 2.0 - 1.0
    square = skimage.transform.resize(
        scaled, (SEGMENT_SIZE, SEGMENT_SIZE), order=3, mode="constant", preserve_range=True, anti_aliasing=True
    )
    back_rows = np.minimum((np.arange(rows) + 0.5) * SEGMENT_SIZE / rows, SEGMENT_SIZE - 1).astype(np.int64)
    back_cols = np.minimum((np.arange(cols) + 0.5) * SEGMENT_SIZE / cols, SEGMENT_SIZE - 1).astype(np.int64)
    radius = max(1, int(round(DILATION * min(rows, cols) / SEGMENT_SIZE)))
    footprint = skimage.morphology.disk(radius).astype(bool)
    pixels: list[np.ndarray] = []
    for scale in SCALES:
        labels = skimage.segmentation.felzenszwalb(square, scale=scale, sigma=SIGMA, min_size=SMALLEST)
        labels = labels[back_rows][:, back_cols]  # nearest, back to the image's size
        for label, box in enumerate(ndimage.find_objects(labels + 1)):
            if box is None:
                continue
            top, left = max(box[0].start - radius, 0), max(box[1].start - radius, 0)
            bottom, right = min(box[0].stop + radius, rows), min(box[1].stop + radius, cols)
            grown = ndimage.binary_dilation(labels[top:bottom, left:right] == label, footprint)
            found_rows, found_cols = np.nonzero(grown)
            pixels.append((found_rows + top) * cols + found_cols + left)
    lengths = np.array([len(one) for one in pixels])
    pointers = np.concatenate([[0], np.cumsum(lengths)])
    data = np.ones(int(pointers[-1]), dtype=bool)
    return sparse.csr_array((data, np.concatenate(pixels), pointers), shape=(len(pixels), rows * cols))


def ranked_regions(attribution: np.ndarray, masks: Any, fewest_new: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """XRAI's greedy ranking of ``masks`` (:func:`regions`, or a dense ``(R, rows, cols)`` boolean array) by
    ``attribution`` ``(rows, cols)``: (each pixel's value, the mean attribution of the pixels its region added; the
    pixels each region added, in the order added, the pixels no region added last where there are some). A region
    that would add fewer than ``fewest_new`` pixels is dropped. The counts and sums of the pixels each region would
    add are kept up to date as regions are added, so the ranking costs one pass over the masks' pixels."""
    from scipy import sparse

    values = np.asarray(attribution, np.float64).ravel()
    by_region = sparse.csr_array(np.reshape(masks, (len(masks), -1)) if isinstance(masks, np.ndarray) else masks)
    by_pixel = sparse.csc_array(by_region, dtype=np.float64)
    counts = np.asarray(by_pixel.sum(axis=1), dtype=np.float64).ravel()
    sums = np.asarray(by_pixel @ values, dtype=np.float64).ravel()
    fewest = max(fewest_new, 1)
    alive = counts >= fewest
    covered = np.zeros(values.shape, dtype=bool)
    heat = np.zeros(values.shape, dtype=np.float64)
    added: list[np.ndarray] = []
    while alive.any():
        gains = np.where(alive, sums / np.where(counts > 0, counts, 1.0), -np.inf)
        best = int(np.argmax(gains))
        members = by_region.indices[by_region.indptr[best] : by_region.indptr[best + 1]]
        taken = members[~covered[members]]
        heat[taken] = gains[best]
        covered[taken] = True
        new = np.zeros(values.shape, dtype=bool)
        new[taken] = True
        added.append(new.reshape(attribution.shape))
        part = by_pixel[:, taken]
        counts -= np.asarray(part.sum(axis=1)).ravel()
        sums -= np.asarray(part @ values[taken]).ravel()
        alive &= counts >= fewest
        alive[best] = False
    if not covered.all():
        rest = ~covered
        heat[rest] = values[rest].mean()
        added.append(rest.reshape(attribution.shape))
    return heat.reshape(attribution.shape).astype(np.float32), added


class Xrai(Attribution):
    """XRAI (see the module)."""

    name = "xrai"
    title = "XRAI"
    settings = (STEPS,)
    signed = True

    def __init__(self, values: AttributionSettings) -> None:
        super().__init__(values)
        _skimage()  # refused at once, not after the gradients, where the extra is missing

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:  # noqa: D102
        return 2 * (int(self.values.steps) + 1)

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        inputs = np.asarray(batch.inputs, dtype=np.float32)
        count = len(inputs)
        flat = inputs.reshape(count, -1)
        darkest = np.broadcast_to(flat.min(axis=1).reshape(-1, 1, 1, 1), inputs.shape)
        brightest = np.broadcast_to(flat.max(axis=1).reshape(-1, 1, 1, 1), inputs.shape)
        both = replace(
            batch.repeated(2, np.repeat(inputs, 2, axis=0)),
            baseline=np.stack([darkest, brightest], axis=1).reshape(-1, *inputs.shape[1:]),
        )
        attributions = integrated_gradients(model, both, self.values.steps).reshape(count, 2, *inputs.shape[1:])
        mean = attributions.mean(axis=1, dtype=np.float64)
        strongest = mean.max(axis=-1)
        rows, cols = inputs.shape[1:3]
        fewest = int(round(FEWEST_NEW * rows * cols / SEGMENT_SIZE**2))
        heat = [ranked_regions(strongest[row], regions(inputs[row]), fewest)[0] for row in range(count)]
        return Attributed(np.stack(heat) if heat else np.zeros((0, rows, cols), np.float32))
