"""Score-CAM: cnnviz against tf-keras-vis's ``Scorecam``, as whole processes, on the same saved model and image.

The model is VGG16's conv base (random weights, seeded), global average pooling and a 10-class linear head whose
weights are scaled so that the classes' probabilities differ between masked inputs (random weights alone give
near-uniform probabilities, and every channel would weigh the same). One 224 px photo; Score-CAM at block5_conv3,
all 512 channels. tf-keras-vis is installed in the bench's environment only (``pip install tf-keras-vis``); it is
not a cnnviz dependency. Then every method's time per image on the same model, in one process.

Prints each side's wall time, the ratio (target: cnnviz <= 0.5x), the correlation of the two heatmaps (target:
>= 0.99; both min-max normalised), for cnnviz in float32 and in bfloat16 (``--precision bfloat16``, which this
CPU computes natively: each masked pass takes half the time), and the methods' times (float32).

    python bench/bench_scorecam.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "sample_images" / "cat.jpg"
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}

MAKE = """
import sys, numpy as np, keras
keras.utils.set_random_seed(0)
base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
x = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
out = keras.layers.Dense(10, name="logits")(x)
model = keras.Model(base.input, out, name="vgg16_ten")
from PIL import Image
pixels = np.asarray(Image.open(sys.argv[2]).convert("RGB").resize((224, 224)), np.float32)[None]
ready = keras.applications.vgg16.preprocess_input(pixels.copy())
pooled = keras.Model(base.input, x)(ready).numpy()[0]
kernel = model.get_layer("logits").get_weights()[0]
# scale the head so that its logits spread by about 8 between classes for this image
spread = np.std(pooled @ kernel)
model.get_layer("logits").set_weights([kernel * (8.0 / max(spread, 1e-6)), np.zeros(10, np.float32)])
model.save(sys.argv[1])
np.save(sys.argv[3], ready)
"""

CNNVIZ = """
import sys, numpy as np
from cnnviz.methods.target import Target
from cnnviz import ReadingSettings, load_model
from cnnviz.methods.attribution import attribute
model = load_model(sys.argv[1])
ready = np.load(sys.argv[2])
reading = ReadingSettings(precision=sys.argv[4])
got = attribute(model, ready, ["scorecam"], target=Target(layer="block5_conv3"), reading=reading)
np.save(sys.argv[3], got.heatmaps["scorecam"][0])
print(int(got.classes[0]))
"""

TFKV = """
import sys, numpy as np, keras
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.scores import CategoricalScore
model = keras.models.load_model(sys.argv[1])
ready = np.load(sys.argv[2])
top = int(np.argmax(model.predict(ready, verbose=0)[0]))
cam = Scorecam(model)(CategoricalScore(top), ready, penultimate_layer="block5_conv3", max_N=-1)
np.save(sys.argv[3], np.asarray(cam)[0])
print(top)
"""


def _process(code: str, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], env=QUIET, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    lines = done.stdout.strip().splitlines()
    return took, lines[-1] if lines else ""


def _unit(heat: np.ndarray) -> np.ndarray:
    heat = heat.astype(np.float64)
    return (heat - heat.min()) / max(heat.max() - heat.min(), 1e-12)


def main() -> None:
    """Run the comparison and print it."""
    with tempfile.TemporaryDirectory() as folder:
        model, ready = f"{folder}/vgg16_ten.keras", f"{folder}/ready.npy"
        _process(MAKE, model, str(IMAGE), ready)
        theirs_time, theirs_class = _process(TFKV, model, ready, f"{folder}/tfkv.npy")
        theirs = np.load(f"{folder}/tfkv.npy")
        print("Score-CAM, VGG16-shaped 10-class model, block5_conv3 (512 channels), one 224 px image, 2 CPU cores")
        print(f"  tf-keras-vis Scorecam (whole process, float32): {theirs_time:6.1f} s (class {theirs_class})")
        for precision in ("float32", "bfloat16"):
            out = f"{folder}/cnnviz_{precision}.npy"
            ours_time, ours_class = _process(CNNVIZ, model, ready, out, precision)
            correlation = float(np.corrcoef(_unit(np.load(out)).ravel(), _unit(theirs).ravel())[0, 1])
            print(f"  cnnviz scorecam (whole process, {precision}): {ours_time:6.1f} s (class {ours_class})")
            print(f"    ratio: {ours_time / theirs_time:.2f}x (target <= 0.5x)")
            print(f"    heatmap correlation with tf-keras-vis's: {correlation:.4f} (target >= 0.99)")
        _every_method(model, ready)


def _every_method(model_path: str, ready_path: str) -> None:
    from cnnviz import load_model
    from cnnviz.methods.attribution import METHODS, attribute
    from cnnviz.methods.target import Target

    model = load_model(model_path)
    ready = np.load(ready_path)
    attribute(model, ready, ["gradcam"], target=Target(layer="block5_conv3"))  # built and warm
    print("time per image, every method, defaults (same model, in one process, warm):")
    for method in METHODS:
        start = time.perf_counter()
        layer = "block5_conv3" if METHODS[method].needs_layer else None
        attribute(model, ready, [method], target=Target(layer=layer))
        print(f"  {method:22s} {time.perf_counter() - start:7.2f} s")


if __name__ == "__main__":
    main()
