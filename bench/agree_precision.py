"""How far bfloat16's results are from float32's, on VGG16 (random weights, the same on every load), in one run:

- the sample photos (all 13 conv layers, 224x224): each layer's minimum and maximum on each photo, as the
  featuremaps manifest records them, and stats' dead filters, with the float32 maximum of every filter they disagree on;
- top (9 per filter) over 64 different crops of the sample photos, block3_conv3 and block5_conv1: per filter, how
  many of float32's 9 images bfloat16 also picks;
- maximize (block5_conv1, 8 filters, 128 px, 64 steps, as bench_maximize.py): each filter's reached activation;
- Grad-CAM on the sample photos (block5_conv3): the heatmaps' correlation.

    python bench/agree_precision.py          # about 4 minutes on 2 cores

Nothing is asserted; the issue's targets are printed beside each figure.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import PHOTOS  # noqa: E402
from bench_top import photos as crops  # noqa: E402

PRECISIONS = ("float32", "bfloat16")
SIZE = (224, 224)


def map_ranges(model: object) -> None:
    """Each layer's minimum and maximum on each photo, as the featuremaps manifest records them: the largest
    difference as a share of the layer's largest absolute value on the photo."""
    from cnnviz.inputs.preprocess import resolve_preprocessing
    from cnnviz.methods.extract import build_extractor, fold_batches

    ranges: dict[str, list[np.ndarray]] = {}
    for precision in PRECISIONS:
        extractor = build_extractor(model, precision=precision)
        found: list[np.ndarray] = []

        def keep(batch: object, maps: dict[str, np.ndarray], found: list[np.ndarray] = found) -> None:
            for array in maps.values():
                found.append(np.stack([array.min(axis=(1, 2, 3)), array.max(axis=(1, 2, 3))]))

        fold_batches(extractor, PHOTOS, resolve_preprocessing(model, "auto"), keep, size=SIZE)
        ranges[precision] = found
    worst = 0.0
    for f32, b16 in zip(ranges["float32"], ranges["bfloat16"], strict=True):  # (2, N): a layer's min and max
        scale = np.maximum(np.abs(f32).max(axis=0), 1e-12)
        worst = max(worst, float((np.abs(f32 - b16) / scale).max()))
    print(f"manifest minima and maxima (per image and layer): largest difference {100 * worst:.2f}% (target 2%)")


def dead_filters(model: object) -> None:
    """The dead filters in each precision, and each filter they disagree on."""
    from cnnviz.methods.stats import filter_stats

    runs = {p: filter_stats(model, PHOTOS, size=SIZE, precision=p).layers for p in PRECISIONS}
    total = differ = dead = 0
    for f32, b16 in zip(runs["float32"], runs["bfloat16"], strict=True):
        total += f32.filters
        dead += int(f32.dead.sum())
        for index in np.nonzero(f32.dead != b16.dead)[0]:
            differ += 1
            print(
                f"  {f32.layer} filter {index}: float32 max {f32.maxima[index]:.3g}, bfloat16 max "
                f"{b16.maxima[index]:.3g}; the layer's largest {f32.maxima.max():.3g}"
            )
    print(f"dead filters: {dead} of {total} in float32; the verdict differs on {differ} (target 0)")


def top_images(model: object, folder: Path) -> None:
    """Per filter, how many of float32's 9 best images bfloat16 picks too."""
    from cnnviz.methods.top import scan_top

    layers = ["block3_conv3", "block5_conv1"]
    scans = {p: scan_top(model, [folder], layers, size=SIZE, precision=p) for p in PRECISIONS}
    for layer in layers:
        f32, b16 = scans["float32"].tops[layer], scans["bfloat16"].tops[layer]
        shared = np.array([len(set(a) & set(b)) for a, b in zip(f32.image, b16.image, strict=True)])
        print(
            f"top 9, {layer}: {int((shared >= 8).sum())} of {len(shared)} filters share at least 8 images "
            f"(all 9: {int((shared == 9).sum())}; fewest shared {int(shared.min())}; target: every filter >= 8)"
        )


def reached(model: object) -> None:
    """maximize's reached activation per filter in each precision."""
    from cnnviz.methods.maximize import MaximizeOptions, Maximizer

    options = MaximizeOptions(steps=64, size=128)
    found = {p: Maximizer(model, "block5_conv1", options, precision=p)(list(range(8))).activations for p in PRECISIONS}
    f32, b16 = found["float32"], found["bfloat16"]
    live = np.abs(f32) > 0  # a dead filter reaches 0 in both
    change = np.abs(b16 - f32)[live] / np.abs(f32)[live]
    print(
        "maximize: reached activations float32 "
        + ", ".join(f"{v:.3g}" for v in f32)
        + "; bfloat16 "
        + ", ".join(f"{v:.3g}" for v in b16)
        + f"; differences {', '.join(f'{100 * c:.1f}%' for c in change)} (target 10%; filters reaching 0 in float32 "
        "left out)"
    )


def heatmaps(model: object) -> None:
    """Grad-CAM's heatmaps in each precision: their correlation per photo."""
    from cnnviz.methods.gradcam import gradcam

    maps = {p: gradcam(model, PHOTOS, layer="block5_conv3", size=SIZE, precision=p) for p in PRECISIONS}
    correlations = [
        float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
        for a, b in zip(maps["float32"].heatmaps, maps["bfloat16"].heatmaps, strict=True)
    ]
    same = bool((maps["float32"].classes == maps["bfloat16"].classes).all())
    print(f"Grad-CAM: the same classes explained: {same}")
    print("Grad-CAM correlations: " + ", ".join(f"{c:.6f}" for c in correlations) + " (target > 0.99)")


def main() -> None:
    from cnnviz import load_model

    model = load_model("vgg16", "none")
    map_ranges(model)
    dead_filters(model)
    heatmaps(model)
    with tempfile.TemporaryDirectory() as scratch:
        top_images(model, crops(Path(scratch), 64))
    reached(model)


if __name__ == "__main__":
    main()
