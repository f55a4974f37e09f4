"""The gradient methods against a bare compiled loop, in one process: gradient, SmoothGrad (50 samples) and
Integrated Gradients (64 steps), one image at a time, on the bundled model (128x128) and on VGG16 with random weights
(224x224), TensorFlow; cnnviz's ``Attributor`` made once, as a run makes it, and called per image. The bare loop
is written here: the method's inputs made in NumPy (noisy copies, the path from a zero baseline), a ``tf.function``
that takes the class score's gradient with a ``GradientTape`` over them in the same chunks (32), and the mean
gradient reduced to a map. The eager column is how cnnviz took the gradient
before (a ``GradientTape`` per chunk, eagerly: ``cnnviz.backends.pullback``). Prints seconds per image (medians) and
the ratio to the bare loop (target: at most 1.2x).

    python bench/bench_gradients.py                 # both models
    python bench/bench_gradients.py --models shapes --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import PHOTOS  # noqa: E402
from timing import median_time  # noqa: E402

CHUNK = 32
#: (method, copies of the image its gradients are taken at)
METHODS = (("gradient", 1), ("smoothgrad", 50), ("integrated-gradients", 65))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["shapes", "vgg16"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    from cnnviz import Attributor, ModelRef, ReadingSettings
    from cnnviz.backends import pullback
    from cnnviz.inputs.reader import Reader, load_batch

    print("seconds per image (median), TensorFlow, 2 cores; ratio: cnnviz / bare compiled loop")
    print(f"{'model':8} {'method':22} {'bare':>8} {'cnnviz':>8} {'ratio':>6} {'eager':>8}")
    for name in args.models:
        size = (224, 224) if name == "vgg16" else (128, 128)
        ref = ModelRef(name, "none" if name == "vgg16" else None, size if name == "vgg16" else None)
        model = ref.load(include_top=True)
        image, _ = load_batch(Reader(model, ReadingSettings(size=size)), PHOTOS[:1])
        top = int(np.argmax(model.predict(image, verbose=0)[0]))

        @tf.function(reduce_retracing=True)
        def bare_step(x, cls=top, model=model):  # type: ignore[no-untyped-def]
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = tf.reduce_sum(model(x, training=False)[:, cls])
            return tape.gradient(score, x)

        def eager_step(x, cls=top, model=model):  # type: ignore[no-untyped-def]
            (scores,), backward = pullback(lambda given: model(given, training=False), np.asarray(x))
            weights = np.zeros_like(scores)
            weights[:, cls] = 1.0
            return backward([weights])

        rng = np.random.default_rng(0)

        def copies_of(method, image=image, size=size, rng=rng):  # type: ignore[no-untyped-def]
            """The inputs the method takes gradients at, made as its paper says (NumPy, as cnnviz makes them)."""
            if method == "smoothgrad":
                spread = 0.15 * float(image.max() - image.min())
                return image + spread * rng.standard_normal((50, *size, 3), dtype=np.float32)
            if method == "integrated-gradients":
                alphas = np.linspace(0.0, 1.0, 65, dtype=np.float32)[:, None, None, None]
                return alphas * image  # from a zero baseline
            return image

        for method, _ in METHODS:

            def bare(step, method=method):  # type: ignore[no-untyped-def]
                inputs = copies_of(method)
                grads = np.concatenate(
                    [np.asarray(step(tf.constant(inputs[i : i + CHUNK]))) for i in range(0, len(inputs), CHUNK)]
                )
                return np.abs(grads.mean(axis=0)).max(axis=-1)  # reduced to a map, as every method ends

            compiled = median_time(lambda: bare(bare_step), args.repeats)  # noqa: B023
            eager = median_time(lambda: bare(eager_step), args.repeats)  # noqa: B023
            attributor = Attributor(model, [method])  # made once, as a run makes it, then called per batch
            ours = median_time(lambda: attributor(image, top), args.repeats)  # noqa: B023
            print(f"{name:8} {method:22} {compiled:8.3f} {ours:8.3f} {ours / compiled:6.2f} {eager:8.3f}")


if __name__ == "__main__":
    main()
