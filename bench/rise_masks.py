"""How many masks RISE needs: the seed-to-seed agreement of its maps as the number of masks grows.

For each number of masks, each photo is explained with several seeds, and the Pearson correlation of the maps of
every two seeds is averaged: 1 means the map no longer depends on which masks were drawn. The model is the bundled
``shapes`` (trained, on the sample photos at 128x128, for each photo's top class); RISE's default is the smallest
number of masks whose agreement reaches 0.9. Prints one line per number of masks.

    python bench/rise_masks.py                        # 500 to 8000 masks, 3 seeds, 3 photos
    python bench/rise_masks.py --masks 1000 4000 --seeds 2
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import PHOTOS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, nargs="+", default=[500, 1000, 2000, 4000, 8000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=3)
    args = parser.parse_args()

    from cnnviz import ModelRef, ReadingSettings
    from cnnviz.inputs.reader import Reader, load_batch
    from cnnviz.methods.attribution import AttributionSettings, attribute

    model = ModelRef("shapes").load()
    reader = Reader(model, ReadingSettings(size=(128, 128)))
    batch, _ = load_batch(reader, PHOTOS[: args.photos])
    scores = model.predict(batch, verbose=0)
    tops = ", ".join(f"{Path(path).name} {score.max():.3f}" for path, score in zip(PHOTOS, scores, strict=False))
    print(f"top-class probabilities: {tops}")
    print(f"shapes, {args.photos} photos at 128x128, {args.seeds} seeds: mean Pearson correlation of two seeds' maps")
    for masks in args.masks:
        start = time.perf_counter()
        maps = [
            attribute(model, batch, ["rise"], settings=AttributionSettings(masks=masks, seed=seed)).heatmaps["rise"]
            for seed in range(args.seeds)
        ]
        agreement = [
            float(np.corrcoef(first[photo].ravel(), second[photo].ravel())[0, 1])
            for first, second in itertools.combinations(maps, 2)
            for photo in range(args.photos)
        ]
        seconds = (time.perf_counter() - start) / (args.seeds * args.photos)
        per_photo = np.reshape(agreement, (-1, args.photos)).mean(axis=0)
        each = ", ".join(f"{value:.3f}" for value in per_photo)
        print(f"{masks:6d} masks: {np.mean(agreement):.3f} (per photo {each}), {seconds:.2f} s a map")


if __name__ == "__main__":
    main()
