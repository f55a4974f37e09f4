"""Deletion and insertion: ``cnnviz evaluate``'s run against a bare batched loop of the same forward passes.

VGG16 with random weights (seeded), 224 px, over photos made from ``sample_images/`` (crops and flips of the five
photos, written as JPEGs), three methods (gradcam, gradient, layercam), deletion and insertion at ``--steps 20``:
64 x 3 x 42 masked forward passes for 64 photos. The bare loop reads and resizes the same photos, preprocesses them,
builds the 42 masked copies per photo and method in NumPy (features deleted or inserted in an order, a random one
per photo and method: a forward pass costs the same whatever the order) and runs them through
``model.predict_on_batch`` 32 at a time. cnnviz's side is the whole library run (``evaluate_images``): reading,
the three attributions, the masked passes, the summary and the picture.

Each side runs once over all the photos, one after the other, after a warm-up of each on one photo (``--block N``
runs them in turns over blocks of N photos instead, so that a machine that slows down weighs on both alike; each
cnnviz turn then pays its run's set-up again: tracing the model, building its replay). Run it with nothing else on
the machine. Prints each side's total time and the ratio (target: cnnviz <= 1.2x the bare loop).

    python bench/bench_evaluate.py                      # 64 photos, float32
    python bench/bench_evaluate.py --precision bfloat16 # both sides in bfloat16 (half the time on this CPU)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

METHODS = ("gradcam", "gradient", "layercam")
STEPS = 20
BATCH = 32


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` photos: crops (60 to 100% of the short side) of the sample photos, every other one flipped."""
    rng = np.random.default_rng(0)
    sources = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".jpg", ".png"))
    photos = []
    for number in range(count):
        image = Image.open(sources[number % len(sources)]).convert("RGB")
        side = int(min(image.size) * rng.uniform(0.6, 1.0))
        left = int(rng.integers(0, image.width - side + 1))
        top = int(rng.integers(0, image.height - side + 1))
        crop = image.crop((left, top, left + side, top + side))
        if number % 2:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        photos.append(folder / f"photo_{number:02d}.jpg")
        crop.save(photos[-1], quality=90)
    return photos


def bare_loop(model, files: list[Path], preprocess) -> int:  # type: ignore[no-untyped-def]
    """The masked passes of deletion and insertion for every photo and method, in batches: the passes run."""
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) for f in files])
    ready = preprocess(pixels)
    black = preprocess(np.zeros((1, 224, 224, 3), np.float32))[0]
    rng = np.random.default_rng(1)
    counts = np.linspace(0, 224 * 224, STEPS + 1).astype(int)
    pending: list[tuple[int, np.ndarray]] = []
    done = 0

    def run() -> None:
        batch = np.stack([np.where(keep[..., None], ready[row], black) for row, keep in pending])
        model.predict_on_batch(batch)

    for row in range(len(files)):
        for _ in METHODS:
            rank = rng.permutation(224 * 224).reshape(224, 224)
            for deleting in (True, False):
                for k in counts:
                    pending.append((row, rank >= k if deleting else rank < k))
                    if len(pending) == BATCH:
                        run()
                        done += len(pending)
                        pending = []
    if pending:
        run()
        done += len(pending)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--block", type=int, default=0, help="photos per turn (default: all of them, one turn)")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()

    import keras

    from cnnviz.methods.evaluation import EvaluationSettings
    from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None)
    bare_model = model
    if args.precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
        bare_model = keras.applications.VGG16(weights=None)
        bare_model.set_weights(model.get_weights())
        keras.config.set_dtype_policy("float32")
    preprocess = keras.applications.vgg16.preprocess_input
    options = EvaluateOptions(
        methods=METHODS,
        metrics=("deletion", "insertion"),
        evaluation=EvaluationSettings(steps=STEPS),
        precision=args.precision,
    )
    with tempfile.TemporaryDirectory() as temp:
        files = make_photos(Path(temp), args.photos)
        bare_loop(bare_model, files[:1], preprocess)  # warm-up: compile both sides once
        evaluate_images(model, [str(files[0])], Path(temp) / "warm", options)
        totals = [0.0, 0.0]
        passes = 0
        scored = 0
        block_size = args.block or len(files)
        for start in range(0, len(files), block_size):
            block = files[start : start + block_size]
            began = time.perf_counter()
            passes += bare_loop(bare_model, block, preprocess)
            totals[0] += time.perf_counter() - began
            began = time.perf_counter()
            result = evaluate_images(model, [str(f) for f in block], Path(temp) / f"out{start}", options)
            totals[1] += time.perf_counter() - began
            scored += len(result.images)
            print(f"  photos {start}-{start + len(block) - 1}: bare {totals[0]:7.1f} s, cnnviz {totals[1]:7.1f} s")
    print(
        f"deletion + insertion, {', '.join(METHODS)}, --steps {STEPS}, VGG16 (random weights) 224 px, "
        f"{args.precision}, 2 CPU cores"
    )
    print(f"  bare batched loop ({passes} passes, batches of {BATCH}): {totals[0]:8.1f} s")
    print(f"  cnnviz evaluate_images ({scored} photos, {scored * len(METHODS) * 2} curves): {totals[1]:8.1f} s")
    print(f"  ratio: {totals[1] / totals[0]:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
