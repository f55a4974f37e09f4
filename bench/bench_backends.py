"""TensorFlow against JAX on the same work, in one run: VGG16 (random weights, the same on every load, 224x224).

(a) the forward pass to all 13 conv layers, batch 8, in a child process per backend (median of 5 after a warm-up,
    which on JAX includes compiling);
(b) whole commands, each its own process, with ``--backend``: ``featuremaps`` on 32 photos and ``maximize``
    (block5_conv1, 8 filters, 128 px, 64 steps, as bench_maximize.py);
then each JAX/TensorFlow ratio (above 1: JAX slower).

    python bench/bench_backends.py          # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import MAXIMIZE, ROOT, cnnviz, measure, photos  # noqa: E402

BACKENDS = ("tensorflow", "jax")
MODEL = ["--model", "vgg16", "--weights", "none"]

FORWARD = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from cnnviz import load_model
from cnnviz.methods.extract import build_extractor
from timing import median_time

extractor = build_extractor(load_model("vgg16", "none"))
batch = np.random.default_rng(0).uniform(-120, 120, (8, 224, 224, 3)).astype(np.float32)
print(median_time(lambda: extractor(batch), 5))
"""


def forward(backend: str) -> float:
    """The median time of one forward pass of a batch of 8 to all conv layers, on ``backend``."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", FORWARD, here], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    seconds = {backend: forward(backend) for backend in BACKENDS}
    print(
        f"forward pass, batch 8, 13 conv layers: tensorflow {seconds['tensorflow']:.3f} s, jax {seconds['jax']:.3f} s"
        f", ratio {seconds['jax'] / seconds['tensorflow']:.3f}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = str(photos(work / "photos", args.images))
        commands = {
            f"featuremaps ({args.images} photos)": ["featuremaps", folder, *MODEL, "--size", "224", "-q"],
            "maximize": [*MAXIMIZE, *MODEL],
        }
        for name, command in commands.items():
            times = {}
            for backend in BACKENDS:
                result = measure(cnnviz("--backend", backend, *command, "-o", str(work / f"{name}_{backend}")))
                assert result["status"] == 0, result["stderr"]
                times[backend] = float(result["seconds"])  # type: ignore[arg-type]
            ratio = times["jax"] / times["tensorflow"]
            print(f"{name}: tensorflow {times['tensorflow']:.2f} s, jax {times['jax']:.2f} s, ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
