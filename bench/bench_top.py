"""``cnnviz top`` against ``cnnviz stats`` on the same photos and layer, each a whole command in its own process:
VGG16 (random weights, 224x224), one layer, default options. Both make one pass over the images with the
statistics reduced inside the model; ``top`` then decodes the winning images again, cuts their patches and draws
its pages. Prints the ratio of medians (target: top <= 1.15x stats), then the peak RSS of ``top`` on two numbers
of photos (target: 256 photos <= 1.1x 32 photos: memory is filters x k, not images). The photos are different
crops of the sample images.

    python bench/bench_top.py                           # 64 photos, block3_conv3; RSS at 32 and 256
    python bench/bench_top.py --images 16 --rss 16 64   # a quicker look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import PHOTOS, cnnviz, measure  # noqa: E402

MODEL = ["--model", "vgg16", "--weights", "none", "--size", "224"]


def photos(folder: Path, count: int) -> Path:
    """``count`` different photos: crops of the sample images at places and sizes drawn from the photo's number,
    so that different filters' winners are different images (copies would tie, and the first copies would win
    every time, which would not show what the winners cost)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        rng = np.random.default_rng(number)
        with Image.open(PHOTOS[number % len(PHOTOS)]) as image:
            source = image.convert("RGB")
        side = int(min(source.size) * rng.uniform(0.5, 0.9))
        left, top = (int(rng.integers(0, extent - side + 1)) for extent in source.size)
        source.crop((left, top, left + side, top + side)).save(folder / f"{number:04d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--layer", default="block3_conv3")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rss", type=int, nargs=2, default=(32, 256))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = photos(work / "photos", args.images)
        times: dict[str, list[float]] = {"stats": [], "top": []}
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
            for name in times:
                out = work / f"{name}{repeat}"
                command = cnnviz(name, str(folder), *MODEL, "--layer", args.layer, "-q", "-o", str(out))
                if name == "stats":
                    command.append("--no-charts")
                times[name].append(float(measure(command)["seconds"]))  # type: ignore[arg-type]
        stats, top = (statistics.median(times[name]) for name in ("stats", "top"))
        print(f"{args.images} photos, VGG16 (random weights) {args.layer}, 224x224, {args.repeats} runs each")
        print(f"stats: {stats:6.2f} s  ({', '.join(f'{t:.2f}' for t in times['stats'])})")
        print(f"top:   {top:6.2f} s  ({', '.join(f'{t:.2f}' for t in times['top'])})")
        print(f"top / stats: {top / stats:.3f}")
        rss = {}
        for count in args.rss:
            folder = photos(work / f"rss{count}", count)
            out = work / f"rss_out{count}"
            result = measure(cnnviz("top", str(folder), *MODEL, "--layer", args.layer, "-q", "-o", str(out)))
            rss[count] = int(result["rss_kib"]) / 1024  # type: ignore[call-overload]
            print(f"top on {count} photos: peak RSS {rss[count]:.0f} MiB")
        low, high = args.rss
        print(f"RSS {high} / {low} photos: {rss[high] / rss[low]:.3f}")


if __name__ == "__main__":
    main()
