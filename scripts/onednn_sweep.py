"""Sweep the kernels cnnviz takes input gradients through, each case in a child process, to find native crashes.

TensorFlow's oneDNN kernels (on by default on x86 CPUs) have corrupted the heap taking the input gradient of a
strided 1x1 convolution with few channels (TensorFlow 2.21). This script runs, for each layer kind, kernel size,
stride, channel count and map size, the forward pass and the gradient of the summed output with respect to the
input, in child processes that carry on after a crash; a crash is then run again alone to confirm it. It prints
each crashing case and a count, so a new TensorFlow can be checked in a few minutes:

    python scripts/onednn_sweep.py                 # TensorFlow's default kernels
    TF_ENABLE_ONEDNN_OPTS=0 python scripts/onednn_sweep.py
    python scripts/onednn_sweep.py --twin          # through cnnviz's replay, which swaps the layers it knows
"""

from __future__ import annotations

import argparse
import itertools
import os
import select
import subprocess
import sys

KINDS = (
    "Conv2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "Conv2DTranspose",
    "Conv1D",
    "MaxPooling2D",
    "AveragePooling2D",
)
KERNELS = (1, 2, 3)
STRIDES = (1, 2, 3)
CHANNELS = (1, 3, 5, 8, 12, 16, 64)
SIZES = (16, 17, 60)


def cases() -> list[tuple[str, int, int, int, int]]:
    """Every (kind, kernel, stride, channels, size) the sweep runs."""
    return list(itertools.product(KINDS, KERNELS, STRIDES, CHANNELS, SIZES))


def run_case(case: tuple[str, int, int, int, int], twin: bool) -> None:
    """The forward pass and the input gradient of one case, in this process."""
    import numpy as np

    from cnnviz._keras import keras_module
    from cnnviz.models.graph import trace

    keras = keras_module()
    import tensorflow as tf

    kind, kernel, stride, channels, size = case
    layer_class = getattr(keras.layers, kind)
    spatial = (size,) if kind.endswith("1D") else (size, size)
    if "Pooling" in kind or kind == "DepthwiseConv2D":
        layer = layer_class(kernel, strides=stride, padding="same")
    else:
        layer = layer_class(16, kernel, strides=stride, padding="same")
    model = keras.Sequential([keras.Input((*spatial, channels)), layer])
    if twin:
        model = keras.Model(*(lambda t: (t.input, t.output))(trace(model)))
    x = tf.constant(np.random.default_rng(0).normal(size=(1, *spatial, channels)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(model(x))
    tape.gradient(y, x).numpy()


def worker(start: int, twin: bool) -> None:
    """Run the cases from ``start`` on, printing each index before it runs and 'done' after."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for index, case in enumerate(cases()[start:], start):
        print(f"start {index}", flush=True)
        run_case(case, twin)
        print(f"done {index}", flush=True)


#: Seconds a child may go without finishing a case: a corrupted heap can deadlock malloc instead of crashing.
SILENCE = 60


def child(args: list[str]) -> tuple[int | None, list[int]]:
    """Run this script in a child process; (its exit status, or None if it hung, and the cases it started)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, __file__, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    started: list[int] = []
    while True:
        ready, _, _ = select.select([process.stdout], [], [], SILENCE)
        if not ready:
            process.kill()
            process.wait()
            return None, started
        line = process.stdout.readline()
        if not line:
            return process.wait(), started
        if line.startswith("start "):
            started.append(int(line.split()[1]))


def main() -> None:
    """Run every case, restarting the child process after each crash."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--twin", action="store_true", help="take the gradient through cnnviz's replay")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    flag = ["--twin"] if args.twin else []
    if args.worker is not None:
        worker(args.worker, args.twin)
        return
    if args.one is not None:
        run_case(cases()[args.one], args.twin)
        return
    total, start, failures = len(cases()), 0, 0
    while start < total:
        status, started = child(["--worker", str(start), *flag])
        if status == 0:
            break
        failed = started[-1] if started else start
        # Heap corruption may surface a case later than the one that caused it: confirm each alone.
        alone, _ = child(["--one", str(failed), *flag])
        if alone != 0:
            failures += 1
            kind, kernel, stride, channels, size = cases()[failed]
            what = "hangs" if alone is None else f"crashes (exit {alone})"
            print(f"{what}: {kind} kernel={kernel} stride={stride} channels={channels} size={size}", flush=True)
        start = failed + 1
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    print(f"TF_ENABLE_ONEDNN_OPTS={setting}, through cnnviz's replay: {args.twin}: {failures} of {total} cases fail")


if __name__ == "__main__":
    main()
