"""How far bfloat16's results are from float32's, on VGG16 (random weights, the same on every load), beside how far
float32's own results move on TensorFlow's other kernels (``TF_ENABLE_ONEDNN_OPTS=0``: the same arithmetic, summed
in another order), which is the floor any comparison of two computations stands on:

- the sample photos (all 13 conv layers, 224x224): each layer's minimum and maximum on each photo, as the
  featuremaps manifest records them, and stats' dead filters, with the float32 maximum of every filter they disagree on;
- top (9 per filter) over 64 different crops of the sample photos, block3_conv3 and block5_conv1: per filter, how
  many of float32's 9 images the other run also picks;
- maximize (block5_conv1, the first 32 filters, 128 px, 64 steps, as bench_maximize.py): each filter's reached
  activation;
- Grad-CAM on the sample photos (block5_conv3): the heatmaps' correlation.

Each of the three runs is a process of its own (the kernels are chosen when TensorFlow starts).

    python bench/agree_precision.py          # about 12 minutes on 2 cores

Nothing is asserted; the issue's targets are printed beside each figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import PHOTOS  # noqa: E402
from bench_top import photos as crops  # noqa: E402

from cnnviz.inputs.reader import FeedSettings, ReadingSettings
from cnnviz.methods.top import TopQuery

SIZE = (224, 224)
TOP_LAYERS = ("block3_conv3", "block5_conv1")
MAXIMIZED = 32
#: The runs compared: a name, its precision, and what its environment changes.
RUNS = {
    "float32": ("float32", {}),
    "bfloat16": ("bfloat16", {}),
    "float32, other kernels": ("float32", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
}


def compute(precision: str, folder: Path, out: Path) -> None:
    """Every figure's raw results in one precision, saved to ``out`` (.npz)."""
    from cnnviz import feature_maps, load_model
    from cnnviz.methods.gradcam import gradcam
    from cnnviz.methods.maximize import MaximizeOptions, maximize
    from cnnviz.methods.stats import filter_stats
    from cnnviz.methods.top import scan_top

    model = load_model("vgg16", "none")
    found: dict[str, np.ndarray] = {}
    for path, array in feature_maps(model, PHOTOS, None, ReadingSettings(size=SIZE, precision=precision)).items():
        found[f"range {path}"] = np.stack([array.min(axis=(1, 2, 3)), array.max(axis=(1, 2, 3))])
    for layer in filter_stats(model, PHOTOS, reading=ReadingSettings(size=SIZE, precision=precision)).layers:
        found[f"dead {layer.layer}"], found[f"max {layer.layer}"] = layer.dead, layer.maxima
    scan = scan_top(model, [folder], TopQuery(list(TOP_LAYERS)), ReadingSettings(size=SIZE, precision=precision))
    for layer in TOP_LAYERS:
        found[f"top {layer}"] = scan.tops[layer].image
    options = MaximizeOptions(steps=64, size=128)
    found["reached"] = maximize(
        model, "block5_conv1", range(MAXIMIZED), options, feeding=FeedSettings(precision=precision)
    ).activations
    explained = gradcam(model, PHOTOS, layer="block5_conv3", reading=ReadingSettings(size=SIZE, precision=precision))
    found["heatmaps"], found["classes"] = explained.heatmaps, explained.classes
    np.savez(out, **found)


def compare(name: str, exact: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> None:
    """Print every figure of ``other`` against float32's."""
    print(f"\n{name} against float32:")
    worst = 0.0
    for key in (key for key in exact if key.startswith("range ")):  # (2, N): a layer's min and max per image
        scale = np.maximum(np.abs(exact[key]).max(axis=0), 1e-12)
        worst = max(worst, float((np.abs(exact[key] - other[key]) / scale).max()))
    print(f"  manifest minima and maxima (per image and layer): largest difference {100 * worst:.2f}% (target 2%)")
    total = differ = 0
    for key in (key for key in exact if key.startswith("dead ")):
        layer = key.removeprefix("dead ")
        maxima, total = exact[f"max {layer}"], total + len(exact[key])
        for index in np.nonzero(exact[key] != other[key])[0]:
            differ += 1
            print(
                f"    {layer} filter {index}: float32 max {maxima[index]:.3g}, here {other[f'max {layer}'][index]:.3g};"
                f" the layer's largest {maxima.max():.3g}"
            )
    dead = sum(int(exact[key].sum()) for key in exact if key.startswith("dead "))
    print(f"  dead filters: {dead} of {total} in float32; the verdict differs on {differ} (target 0)")
    heatmaps = zip(exact["heatmaps"], other["heatmaps"], strict=True)
    correlations = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in heatmaps]
    same = bool((exact["classes"] == other["classes"]).all())
    print(
        f"  Grad-CAM: the same classes explained: {same}; correlations "
        + ", ".join(f"{c:.6f}" for c in correlations)
        + " (target > 0.99)"
    )
    for layer in TOP_LAYERS:
        pairs = zip(exact[f"top {layer}"], other[f"top {layer}"], strict=True)
        shared = np.array([len(set(a) & set(b)) for a, b in pairs])
        print(
            f"  top 9, {layer}: {int((shared >= 8).sum())} of {len(shared)} filters share at least 8 images "
            f"(all 9: {int((shared == 9).sum())}; fewest shared {int(shared.min())}; target: every filter >= 8)"
        )
    live = np.abs(exact["reached"]) > 0  # a dead filter reaches 0 in both
    change = np.abs(other["reached"] - exact["reached"])[live] / np.abs(exact["reached"])[live]
    print(
        f"  maximize, {int(live.sum())} filters that respond: reached activation within 10% of float32's for "
        f"{int((change <= 0.1).sum())}; differences: median {100 * np.median(change):.1f}%, largest "
        f"{100 * change.max():.1f}% (target: every filter within 10%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compute", nargs=3, metavar=("PRECISION", "CROPS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compute:
        compute(args.compute[0], Path(args.compute[1]), Path(args.compute[2]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = crops(work / "crops", 64)
        results = {}
        for number, (name, (precision, changes)) in enumerate(RUNS.items()):
            out = work / f"run{number}.npz"
            command = [sys.executable, __file__, "--compute", precision, str(folder), str(out)]
            subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **changes})
            with np.load(out) as saved:
                results[name] = dict(saved)
    for name in list(RUNS)[1:]:
        compare(name, results["float32"], results[name])


if __name__ == "__main__":
    main()
