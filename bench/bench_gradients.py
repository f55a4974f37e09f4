"""The gradient methods against a bare compiled loop, in one process: gradient, SmoothGrad (50 samples) and
Integrated Gradients (64 steps), one image at a time, on the bundled model (128x128) and on VGG16 with random weights
(224x224), on TensorFlow or JAX; cnnviz's ``Attributor`` made once, as a run makes it, and called per image. The
bare loop is written here: the method's inputs made in NumPy (noisy copies, the path from a zero baseline), a
compiled step that takes the class score's gradient over them in the same chunks (32) (TensorFlow: a
``tf.function`` over a ``GradientTape``; JAX: ``jax.jit`` of ``jax.grad`` over the model's ``stateless_call``), and
the mean gradient reduced to a map. The eager column is how cnnviz took the gradient before (a pullback per chunk,
eagerly: ``cnnviz.backends.pullback``). Prints seconds per image (medians) and the ratio to the bare loop (target: at
most 1.2x).

    python bench/bench_gradients.py                 # both models, TensorFlow
    python bench/bench_gradients.py --backend jax
    python bench/bench_gradients.py --models shapes --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import PHOTOS  # noqa: E402
from timing import median_time  # noqa: E402

CHUNK = 32
#: (method, copies of the image its gradients are taken at)
METHODS = (("gradient", 1), ("smoothgrad", 50), ("integrated-gradients", 65))


def bare_gradient(backend: str, model: Any, cls: int) -> Callable[[np.ndarray], Any]:
    """The bare compiled step: the gradient of class ``cls``'s score summed over a chunk, with respect to it."""
    if backend == "jax":
        import jax

        trainable = [variable.value for variable in model.trainable_variables]
        fixed = [variable.value for variable in model.non_trainable_variables]

        def score(x: Any, trainable: Any, fixed: Any) -> Any:
            return model.stateless_call(trainable, fixed, x, training=False)[0][:, cls].sum()

        step = jax.jit(jax.grad(score))
        return lambda x: step(x, trainable, fixed)
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def tf_step(x: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(model(x, training=False)[:, cls])
        return tape.gradient(total, x)

    return lambda x: tf_step(tf.constant(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["shapes", "vgg16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend

    from cnnviz import Attributor, ModelRef, ReadingSettings
    from cnnviz.backends import pullback
    from cnnviz.inputs.reader import Reader, load_batch

    print(f"seconds per image (median), {args.backend}, 2 cores; ratio: cnnviz / bare compiled loop")
    print(f"{'model':8} {'method':22} {'bare':>8} {'cnnviz':>8} {'ratio':>6} {'eager':>8}")
    for name in args.models:
        size = (224, 224) if name == "vgg16" else (128, 128)
        ref = ModelRef(name, "none" if name == "vgg16" else None, size if name == "vgg16" else None)
        model = ref.load(include_top=True)
        image, _ = load_batch(Reader(model, ReadingSettings(size=size)), PHOTOS[:1])
        top = int(np.argmax(model.predict(image, verbose=0)[0]))

        bare_step = bare_gradient(args.backend, model, top)

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
                grads = np.concatenate([np.asarray(step(inputs[i : i + CHUNK])) for i in range(0, len(inputs), CHUNK)])
                return np.abs(grads.mean(axis=0)).max(axis=-1)  # reduced to a map, as every method ends

            compiled = median_time(lambda: bare(bare_step), args.repeats)  # noqa: B023
            eager = median_time(lambda: bare(eager_step), args.repeats)  # noqa: B023
            attributor = Attributor(model, [method])  # made once, as a run makes it, then called per batch
            ours = median_time(lambda: attributor(image, top), args.repeats)  # noqa: B023
            print(f"{name:8} {method:22} {compiled:8.3f} {ours:8.3f} {ours / compiled:6.2f} {eager:8.3f}")


if __name__ == "__main__":
    main()
