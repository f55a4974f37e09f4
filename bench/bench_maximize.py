"""What ``cnnviz maximize`` costs per filter, against a bare batched gradient-ascent loop of the same size, in one
process: VGG16 (random weights, built offline) up to block5_conv1, 8 filters, 128x128 images, 64 steps.

    python bench/bench_maximize.py                    # each setting twice, interleaved: ~5 minutes on 2 cores
    python bench/bench_maximize.py --steps 16 --repeats 1     # a quick look

Settings:
(bare) the loop the tutorials write: one tf.function step (forward to the layer, gradient, a normalised
gradient-ascent update of plain pixels), no transforms, no XLA; traced once, called for every step.
(cnnviz) ``Maximizer`` with its defaults: Fourier parametrisation with decorrelated colours, jitter, scale and
rotation every step, Adam, one tf.function step; building it (replaying the model, tracing) is counted.
(cnnviz, plain) the same with plain pixels and no transforms, to show what the regularisers cost.
XLA is not among them: an earlier version compiled the step with jit_compile=True and took 1.33x the bare loop's
time here, against 1.05x without (TensorFlow's oneDNN kernels beat XLA's on this CPU).
(xplique) xplique's feature visualisation of the same 8 channels, if xplique is installed.
Each run counts everything a user waits for, from a built Keras model to images in memory. Prints seconds per
filter for each setting, median over the repeats, and the ratios to the bare loop. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from cnnviz._keras import keras_module  # noqa: E402
from cnnviz.methods.maximize import MaximizeOptions, Maximizer  # noqa: E402

LAYER = "block5_conv1"


def bare_loop(model: object, filters: list[int], size: int, steps: int) -> np.ndarray:
    """The tutorials' batched gradient ascent on plain pixels, as a tf.function step."""
    import tensorflow as tf

    keras = keras_module()
    extractor = keras.Model(model.inputs, model.get_layer(LAYER).output)  # type: ignore[attr-defined]
    targets = tf.constant(filters)

    @tf.function
    def step(images: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(images)
            maps = extractor(images, training=False)
            means = tf.gather(tf.reduce_mean(maps, axis=[1, 2]), targets, axis=1, batch_dims=1)
            loss = tf.reduce_sum(means)
        grads = tape.gradient(loss, images)
        grads = grads / (tf.math.reduce_std(grads, axis=[1, 2, 3], keepdims=True) + 1e-8)
        return images + 10.0 * grads

    images = tf.constant(np.random.default_rng(0).uniform(-20, 20, (len(filters), size, size, 3)).astype(np.float32))
    for _ in range(steps):
        images = step(images)
    return images.numpy()


def cnnviz_run(model: object, filters: list[int], size: int, steps: int, plain: bool = False) -> np.ndarray:
    options = MaximizeOptions(steps=steps, size=size, batch_size=len(filters))
    if plain:
        options = replace(options, parametrization="pixel", decorrelate=False, jitter=0, scale=0.0, rotate=0.0)
    return Maximizer(model, LAYER, options)(filters).images


def xplique_run(model: object, filters: list[int], size: int, steps: int) -> np.ndarray:
    from xplique.features_visualizations import Objective, optimize

    objective = Objective.channel(model, LAYER, filters)
    images, _ = optimize(objective, nb_steps=steps, custom_shape=(size, size), save_every=steps)
    return np.asarray(images[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    keras = keras_module()
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(args.size, args.size, 3))
    filters = list(range(args.filters))
    settings: dict[str, Callable[[], object]] = {
        "bare": lambda: bare_loop(model, filters, args.size, args.steps),
        "cnnviz": lambda: cnnviz_run(model, filters, args.size, args.steps),
        "cnnviz, plain": lambda: cnnviz_run(model, filters, args.size, args.steps, plain=True),
    }
    try:
        import xplique.features_visualizations  # noqa: F401 - its feature visualisation, with all it needs

        settings["xplique"] = lambda: xplique_run(model, filters, args.size, args.steps)
    except ImportError:
        print("xplique is not installed: not timed")
    times: dict[str, list[float]] = {name: [] for name in settings}
    for repeat in range(args.repeats):
        order = list(settings) if repeat % 2 == 0 else list(reversed(settings))
        for name in order:
            start = time.perf_counter()
            settings[name]()
            times[name].append(time.perf_counter() - start)
            print(f"  {name}: {times[name][-1]:.1f} s", flush=True)
    print(f"VGG16 {LAYER}, {args.filters} filters, {args.size}x{args.size}, {args.steps} steps, 2 cores")
    bare = statistics.median(times["bare"]) / args.filters
    for name, values in times.items():
        per_filter = statistics.median(values) / args.filters
        print(f"{name:>16}: {per_filter:6.2f} s per filter   ratio to bare {per_filter / bare:.3f}")


if __name__ == "__main__":
    main()
