"""Batch throughput of ``render_feature_maps``: VGG16 (random weights, all 13 conv layers) over a folder of
images, drawing grids with one thread against the default pool (one per CPU), in the same run.

    python bench/bench_batch.py [--images 16]

Prints images per second and the ratio to the one-thread run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()

    import cnnviz

    model = cnnviz.load_model("vgg16", weights="none")
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "images"
        folder.mkdir()
        samples = sorted((ROOT / "sample_images").glob("*.jpg"))
        images = []
        for index in range(args.images):
            target = folder / f"image{index:03d}.jpg"
            shutil.copyfile(samples[index % len(samples)], target)
            images.append(target)
        cnnviz.render_feature_maps(model, images[:2], Path(work) / "warm", cnnviz.MapOptions(model_label="vgg16"))
        rates = {}
        for workers in (1, None):
            start = time.perf_counter()
            options = cnnviz.MapOptions(model_label="vgg16", workers=workers)
            cnnviz.render_feature_maps(model, images, Path(work) / f"out{workers}", options)
            rates[workers] = args.images / (time.perf_counter() - start)
    print(f"{args.images} images x 13 layers, {os.cpu_count()} CPUs")
    print(f"1 drawing thread:         {rates[1]:6.2f} images/s   1.00x")
    print(f"default pool ({os.cpu_count()} threads): {rates[None]:6.2f} images/s   {rates[None] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
