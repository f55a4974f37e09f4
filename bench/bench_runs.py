"""Batch runs against the bare forward pass, in one run on the same photos: VGG16 (random weights, all 13 conv
layers, 224x224), each measured as its own process, wall time and peak RSS.

    python bench/bench_runs.py                  # 1 and 64 images, RSS at 32 and 256; about 6 minutes on 2 cores
    python bench/bench_runs.py --images 1 8 --rss 8 32    # a quicker look

(a) a bare script: import Keras, build VGG16 and one extractor, decode, resize, preprocess, forward pass;
(b) ``cnnviz featuremaps`` with default options (``-q``);
(c) the tutorials' matplotlib 8x8 subplot grid per layer (shared seeds 002, exhibit K) on 2 images, per image;
(d) ``cnnviz stats`` on the same images.
Prints b/a, c/b (per image), d/a, images/s and peak RSS, then the RSS of (b) at two image counts with the same
batch size, and how long ``cnnviz --help`` takes. The photos are the sample images, copied round-robin. The cnnviz
of this checkout is run (``python -m cnnviz.cli`` from the repository root), so an older checkout can be measured
with its own copy of this script. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".jpg", ".png"))

#: Runs the command given as its arguments and prints its wall time and its peak RSS (KiB) as JSON: the child is
#: this process's only one, so RUSAGE_CHILDREN is that command's alone.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "status": done.returncode, "stdout": done.stdout[-2000:], "stderr": done.stderr[-2000:]}))
"""

BARE = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
from PIL import Image
import keras
from keras.applications.vgg16 import VGG16, preprocess_input
paths = sorted(os.path.join(sys.argv[1], name) for name in os.listdir(sys.argv[1]))
base = VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
convs = [layer.output for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
extractor = keras.Model(base.input, convs)
for start in range(0, len(paths), 8):
    pixels = [np.asarray(Image.open(p).convert("RGB").resize((224, 224)), dtype=np.float32)
              for p in paths[start:start + 8]]
    maps = extractor.predict_on_batch(preprocess_input(np.stack(pixels)))
"""

TUTORIAL = """
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import keras
from keras.applications.vgg16 import VGG16, preprocess_input
from keras.utils import img_to_array, load_img
paths = sorted(os.path.join(sys.argv[1], name) for name in os.listdir(sys.argv[1]))[:2]
base = VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
names = [layer.name for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
start = time.perf_counter()
for number, path in enumerate(paths):
    image = np.expand_dims(img_to_array(load_img(path, target_size=(224, 224))), axis=0)
    for name in names:
        model = keras.Model(inputs=base.inputs, outputs=base.get_layer(name).output)
        feature_maps = model.predict(preprocess_input(image.copy()), verbose=0)
        square, index = 8, 1
        plt.figure(figsize=(16, 16))
        for _ in range(square):
            for _ in range(square):
                ax = plt.subplot(square, square, index)
                ax.set_xticks([])
                ax.set_yticks([])
                plt.imshow(feature_maps[0, :, :, index - 1], cmap="viridis")
                index += 1
        plt.savefig(os.path.join(sys.argv[2], f"{number}_{name}.png"))
        plt.close()
print((time.perf_counter() - start) / len(paths))
"""


def measure(command: list[str]) -> dict[str, object]:
    """Wall time and peak RSS of one command, run as its own process from the repository root."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, cwd=ROOT)
    result: dict[str, object] = json.loads(done.stdout)
    if result["status"] != 0:
        print(f"  (exit {result['status']}: {str(result['stderr']).strip().splitlines()[-1:]})", file=sys.stderr)
    return result


#: ``cnnviz maximize`` as bench_maximize.py measures it: VGG16's block5_conv1, 8 filters, 128 px, 64 steps (the
#: model's options are the caller's).
MAXIMIZE = ["maximize", "--layer", "block5_conv1", "--filters", "0:8", "--size", "128", "--steps", "64", "-q"]


def photos(folder: Path, count: int) -> Path:
    """A folder of ``count`` photos, the sample images copied round-robin."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        source = PHOTOS[number % len(PHOTOS)]
        shutil.copy(source, folder / f"{number:04d}{source.suffix}")
    return folder


def cnnviz(*args: str) -> list[str]:
    """This checkout's cnnviz command."""
    return [sys.executable, "-m", "cnnviz", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[1, 64], help="image counts for a, b, d")
    parser.add_argument("--rss", type=int, nargs=2, default=[32, 256], help="the two image counts for RSS of b")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    batch = ["--batch-size", str(args.batch_size)]
    helped = subprocess.run(cnnviz("featuremaps", "--help"), capture_output=True, text=True, cwd=ROOT).stdout
    quiet = ["-q"] if "--quiet" in helped else []  # an older checkout has no -q
    model = ["--model", "vgg16", "--weights", "none", "--size", "224"]

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        two = photos(work / "two", 2)
        (work / "tutorial").mkdir()
        tutorial = measure([sys.executable, "-c", TUTORIAL, str(two), str(work / "tutorial")])
        per_image_c = float(str(tutorial["stdout"]).split()[-1]) if tutorial["status"] == 0 else float("nan")
        print(f"(c) tutorials' subplots: {per_image_c:.2f} s per image (13 figures of 8x8 subplots, model built once)")
        for count in args.images:
            folder = photos(work / f"in{count}", count)
            a = measure([sys.executable, "-c", BARE, str(folder)])
            b = measure(cnnviz("featuremaps", str(folder), *model, *batch, *quiet, "-o", str(work / f"out{count}")))
            d = measure(cnnviz("stats", str(folder), *model, *batch, "-q", "--no-charts"))
            ta, tb, td = (float(str(r["seconds"])) for r in (a, b, d))
            print(f"\n{count} image{'s' if count > 1 else ''}:")
            for name, run, seconds in (("(a) bare", a, ta), ("(b) featuremaps", b, tb), ("(d) stats", d, td)):
                rss = int(str(run["rss_kib"])) / 1024
                print(f"  {name:17} {seconds:7.2f} s  {count / seconds:6.2f} images/s  peak RSS {rss:7.0f} MiB")
            print(f"  b/a = {tb / ta:.2f}   d/a = {td / ta:.2f}   c/b per image = {per_image_c / (tb / count):.1f}")
        rss = []
        for count in args.rss:
            folder = photos(work / f"rss{count}", count)
            out = str(work / f"rss_out{count}")
            run = measure(cnnviz("featuremaps", str(folder), *model, *batch, *quiet, "-o", out))
            rss.append(int(str(run["rss_kib"])) / 1024)
            print(f"\n(b) on {count} images: {float(str(run['seconds'])):.1f} s, peak RSS {rss[-1]:.0f} MiB")
        print(f"peak RSS {args.rss[1]} / {args.rss[0]} images = {rss[1] / rss[0]:.3f}")
        helps = [float(str(measure(cnnviz("--help"))["seconds"])) for _ in range(5)]
        print(f"\ncnnviz --help: {statistics.median(helps):.3f} s (median of 5, whole process)")


if __name__ == "__main__":
    main()
