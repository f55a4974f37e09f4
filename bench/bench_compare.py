"""``cnnviz compare`` against two ``cnnviz stats`` runs on the same photos, each a whole command in its own process:
VGG16 with random weights (A) against VGG16 with random weights of a second seed (B), 224x224, all 13 conv layers
(169 pairs), default features. ``stats`` makes one pass of one model with its statistics reduced inside the model;
``compare`` makes one pass of each model and keeps the CKA sums, the per-unit sums and each unit's top images of
both. Prints the ratio of medians (target: compare <= 1.3x the two stats runs together), then the peak RSS of
``compare`` on two numbers of photos (target: 256 photos <= 1.1x 32 photos: the sums do not grow with the images).
The photos are different crops of the sample images (``bench_top.photos``).

    python bench/bench_compare.py                             # 64 photos; RSS at 32 and 256
    python bench/bench_compare.py --images 16 --rss 16 64     # a quicker look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import cnnviz, measure  # noqa: E402
from bench_top import photos  # noqa: E402

VGG = ["--size", "224"]
SECOND_SEED = """
import sys, keras
keras.utils.set_random_seed(1)
keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3)).save_weights(sys.argv[1])
"""


def second_seed(path: Path) -> Path:
    """VGG16's random weights drawn with another seed, as a weights file (``--weights`` takes it)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", SECOND_SEED, str(path)], check=True, env=env, capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rss", type=int, nargs=2, default=(32, 256))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = str(photos(work / "photos", args.images))
        seed = str(second_seed(work / "seed1.weights.h5"))

        def compare(images: str, out: Path) -> list[str]:
            return cnnviz(
                "compare",
                "vgg16",
                "vgg16",
                images,
                *VGG,
                "--weights-a",
                "none",
                "--weights-b",
                seed,
                "--pairs",
                "0",
                "-q",
                "-o",
                str(out),
            )

        times: dict[str, list[float]] = {"stats": [], "compare": []}
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
            both = 0.0
            for weights in ("none", seed):
                command = cnnviz(
                    "stats",
                    folder,
                    "--model",
                    "vgg16",
                    "--weights",
                    weights,
                    *VGG,
                    "--no-charts",
                    "-q",
                    "-o",
                    str(work / f"stats{repeat}"),
                )
                both += float(measure(command)["seconds"])  # type: ignore[arg-type]
            times["stats"].append(both)
            times["compare"].append(float(measure(compare(folder, work / f"compare{repeat}"))["seconds"]))  # type: ignore[arg-type]
        stats, compared = (statistics.median(times[name]) for name in ("stats", "compare"))
        print(
            f"{args.images} photos, VGG16 (random weights) vs VGG16 (second seed), 224x224, 13 x 13 layers, "
            f"{args.repeats} runs each"
        )
        print(f"two stats runs: {stats:6.2f} s  ({', '.join(f'{t:.2f}' for t in times['stats'])})")
        print(f"compare:        {compared:6.2f} s  ({', '.join(f'{t:.2f}' for t in times['compare'])})")
        print(f"compare / two stats: {compared / stats:.3f}")
        rss = {}
        for count in args.rss:
            images = str(photos(work / f"rss{count}", count))
            rss[count] = int(measure(compare(images, work / f"rss_out{count}"))["rss_kib"]) / 1024  # type: ignore[call-overload]
            print(f"compare on {count} photos: peak RSS {rss[count]:.0f} MiB")
        low, high = args.rss
        print(f"RSS {high} / {low} photos: {rss[high] / rss[low]:.3f}")


if __name__ == "__main__":
    main()
