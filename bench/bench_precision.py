"""float32 against bfloat16 on the same work, in one run: VGG16 (random weights, 224x224).

(a) the forward pass to all 13 conv layers, batch 8, in this process (7 of each, in turns, after a warm-up);
(b) whole commands, each its own process, on the same photos: ``featuremaps``, ``stats``, ``top`` (block3_conv3)
    and ``maximize`` (block5_conv1, 8 filters, 128 px, 64 steps, as bench_maximize.py);
then each bfloat16/float32 ratio, also without the fixed costs (the same command on one photo: start-up, model,
one batch), what drawing costs featuremaps (its time less stats': the same forward passes, no drawing), and the
agreement of the featuremaps grids (share of pixels within 2 colour levels). See agree_precision.py for the rest.
Targets on a CPU with AVX512-BF16: forward <= 0.55, stats <= 0.7, featuremaps <=
0.75, maximize <= 0.6.

    python bench/bench_precision.py                  # 64 photos; about 8 minutes on 2 cores
    python bench/bench_precision.py --images 16 --skip-maximize
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import MAXIMIZE, cnnviz, measure, photos  # noqa: E402
from timing import paired_times  # noqa: E402

MODEL = ["--model", "vgg16", "--weights", "none", "--size", "224"]


def forward() -> tuple[float, float, float]:
    """One forward pass of a batch of 8 to all conv layers in each precision, in turns (:func:`paired_times`):
    the median times and the median ratio."""
    from cnnviz import load_model
    from cnnviz.inputs.reader import FeedSettings
    from cnnviz.methods.extract import build_extractor

    model = load_model("vgg16", "none")
    exact, brief = (
        build_extractor(model, feeding=FeedSettings(precision=precision)) for precision in ("float32", "bfloat16")
    )
    batch = np.random.default_rng(0).uniform(-120, 120, (8, 224, 224, 3)).astype(np.float32)
    return paired_times(lambda: exact(batch), lambda: brief(batch))


def grids_agree(first: Path, second: Path) -> float:
    """The share of pixels of the grids under ``first`` within 2 palette levels of those under ``second``."""
    from PIL import Image

    close = total = 0
    for path in sorted(first.rglob("*.png")):
        a = np.asarray(Image.open(path), dtype=int)
        b = np.asarray(Image.open(second / path.relative_to(first)), dtype=int)
        close += int((np.abs(a - b) <= 2).sum())
        total += a.size
    return close / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--skip-maximize", action="store_true")
    args = parser.parse_args()
    print("forward pass, batch 8, 13 conv layers:")
    exact, brief, ratio = forward()
    print(f"  float32 {exact:.3f} s, bfloat16 {brief:.3f} s (medians of 7, in turns), median ratio {ratio:.3f}")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = str(photos(work / "photos", args.images))
        commands = {
            "featuremaps": ["featuremaps", folder, *MODEL, "-q"],
            "stats": ["stats", folder, *MODEL, "-q", "--no-charts"],
            "top": ["top", folder, *MODEL, "--layer", "block3_conv3", "-q"],
        }
        if not args.skip_maximize:
            commands["maximize"] = [*MAXIMIZE, *MODEL[:4]]
        one = str(photos(work / "one", 1))
        in_bfloat16: dict[str, float] = {}
        for name, command in commands.items():
            times = {}
            fixed = {}
            for precision in ("float32", "bfloat16"):
                out = work / f"{name}_{precision}"
                result = measure(cnnviz(*command, "--precision", precision, "-o", str(out)))
                times[precision] = float(result["seconds"])  # type: ignore[arg-type]
                if name != "maximize":  # the same command on one photo: start-up, model, one batch
                    alone = [one if part == folder else part for part in command]
                    result = measure(cnnviz(*alone, "--precision", precision, "-o", str(work / "one_out")))
                    fixed[precision] = float(result["seconds"])  # type: ignore[arg-type]
            ratio = times["bfloat16"] / times["float32"]
            line = f"{name}: float32 {times['float32']:.2f} s, bfloat16 {times['bfloat16']:.2f} s, ratio {ratio:.3f}"
            if fixed:
                more = {p: times[p] - fixed[p] for p in times}
                line += (
                    f"; on one photo {fixed['float32']:.2f} s and {fixed['bfloat16']:.2f} s, the other "
                    f"{args.images - 1} photos {more['float32']:.2f} s and {more['bfloat16']:.2f} s, ratio "
                    f"{more['bfloat16'] / more['float32']:.3f}"
                )
            print(line)
            in_bfloat16[name] = times["bfloat16"]
        drawing = in_bfloat16["featuremaps"] - in_bfloat16["stats"]
        print(
            f"featuremaps - stats in bfloat16 (drawing and writing the grids): {drawing:.2f} s of featuremaps' "
            f"{in_bfloat16['featuremaps']:.2f} s"
        )
        share = grids_agree(work / "featuremaps_float32", work / "featuremaps_bfloat16")
        print(f"featuremaps grids: {100 * share:.2f}% of pixels within 2 colour levels of float32's")


if __name__ == "__main__":
    main()
