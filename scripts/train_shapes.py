"""Train the small CNN bundled with cnnviz (``--model shapes``) on procedurally drawn lines and shapes.

Everything is drawn here, from a seed, so the model can be rebuilt offline and bit-for-bit:

    python scripts/train_shapes.py            # writes cnnviz/bundled/shapes.keras and shapes.json

Its first conv layer, ``edges``, learns eight oriented line and edge detectors, all of them alive on real
photos; ``cnnviz filters --model shapes --layer edges --norm symmetric --cmap RdBu_r`` shows them. The model takes
RGB images of any size (it ends in global average pooling), so feature maps of real photos come out at the photo's
own resolution.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: Lines at eight orientations (degrees, counter-clockwise from horizontal), then three kinds of shape.
ANGLES = [0, 22.5, 45, 67.5, 90, 112.5, 135, 157.5]
CLASSES = [f"lines at {a:g} degrees" for a in ANGLES] + ["circles", "squares", "triangles"]
SIDE = 64
ROOT = Path(__file__).resolve().parent.parent


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A background and an ink colour at least 80 grey levels apart, either one the lighter."""
    while True:
        back, ink = rng.integers(0, 256, size=(2, 3))
        if abs(int(back.mean()) - int(ink.mean())) >= 80:
            return tuple(int(v) for v in back), tuple(int(v) for v in ink)


def _lines(draw: ImageDraw.ImageDraw, rng: np.random.Generator, angle: float, ink: tuple[int, ...]) -> None:
    spacing = int(rng.integers(8, 20))
    width = int(rng.integers(1, 4))
    offset = int(rng.integers(0, spacing))
    dx, dy = math.cos(angle), math.sin(angle)
    for k in range(-SIDE * 2, SIDE * 2, spacing):
        # a line through a point k + offset along the normal, long enough to cross the picture
        cx, cy = SIDE / 2 - dy * (k + offset), SIDE / 2 + dx * (k + offset)
        draw.line([(cx - dx * SIDE, cy - dy * SIDE), (cx + dx * SIDE, cy + dy * SIDE)], fill=ink, width=width)


def _shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator, kind: int, ink: tuple[int, ...]) -> None:
    for _ in range(int(rng.integers(1, 4))):
        radius = int(rng.integers(7, 18))
        cx, cy = rng.integers(radius, SIDE - radius, size=2)
        filled = bool(rng.integers(0, 2))
        width = int(rng.integers(1, 4))
        box = [int(cx - radius), int(cy - radius), int(cx + radius), int(cy + radius)]
        if kind == 0:
            draw.ellipse(box, fill=ink if filled else None, outline=ink, width=width)
        elif kind == 1:
            draw.rectangle(box, fill=ink if filled else None, outline=ink, width=width)
        else:
            points = [
                (float(cx), float(cy - radius)),
                (float(cx - radius), float(cy + radius)),
                (float(cx + radius), float(cy + radius)),
            ]
            draw.polygon(points, fill=ink if filled else None, outline=ink, width=width)


def draw_example(label: int, rng: np.random.Generator) -> np.ndarray:
    """One ``(SIDE, SIDE, 3)`` uint8 picture of class ``label``, with random colours and a little noise."""
    back, ink = _colours(rng)
    image = Image.new("RGB", (SIDE, SIDE), back)
    draw = ImageDraw.Draw(image)
    if label < len(ANGLES):
        # image rows grow downwards, so a counter-clockwise angle is a negative one here
        _lines(draw, rng, -math.radians(ANGLES[label]) + float(rng.normal(0.0, 0.03)), ink)
    else:
        _shape(draw, rng, label - len(ANGLES), ink)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 8.0, size=(SIDE, SIDE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_dataset(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pictures with balanced labels, from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    rng.shuffle(labels)
    images = np.stack([draw_example(int(label), rng) for label in labels])
    return images, labels.astype(np.int64)


def _zero_mean():  # type: ignore[no-untyped-def]
    """A kernel constraint that keeps each filter's weights summing to zero: a pure edge detector, silent on flat
    colour, so without a bias it fires wherever its orientation appears, on photos as on the drawn lines."""
    import keras

    class ZeroMean(keras.constraints.Constraint):  # type: ignore[misc]
        def __call__(self, kernel):  # type: ignore[no-untyped-def]
            return kernel - keras.ops.mean(kernel, axis=(0, 1, 2), keepdims=True)

    return ZeroMean()


def build_model(for_training: bool = False):  # type: ignore[no-untyped-def]
    """The bundled architecture: three small conv layers, global pooling, a softmax over the classes.

    ``for_training`` adds the zero-mean constraint on the first layer; the saved model is a plain copy, so that
    loading it needs no class of ours.
    """
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(None, None, 3), name="image"),
            keras.layers.Rescaling(1.0 / 255.0, name="rescale"),
            # "valid" padding: zero padding would light up every picture's border.
            # A strong L2 penalty wears away the weights that edges do not need, so the kernels come out as clean
            # oriented detectors rather than buried in their initial noise. Zero-mean kernels and no bias: with a
            # bias, some filters learned thresholds that photos' soft edges never reach and drew blank maps.
            keras.layers.Conv2D(
                8,
                5,
                activation="relu",
                use_bias=False,
                kernel_regularizer=keras.regularizers.L2(5e-3),
                kernel_constraint=_zero_mean() if for_training else None,
                name="edges",
            ),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="parts"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="shapes"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(len(CLASSES), activation="softmax", name="classes"),
        ],
        name="shapes",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "cnnviz" / "bundled" / "shapes.keras")
    parser.add_argument("--train", type=int, default=14000, help="training pictures")
    parser.add_argument("--test", type=int, default=2800, help="held-out pictures, drawn from another seed")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train = make_dataset(args.train, args.seed)
    x_test, y_test = make_dataset(args.test, args.seed + 1)
    trained = build_model(for_training=True)
    trained.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trained.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=2, shuffle=True)
    model = build_model()
    model.set_weights(trained.get_weights())
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.output)
    facts = {
        "classes": CLASSES,
        "held_out_accuracy": round(float(accuracy), 4),
        "held_out_pictures": args.test,
        "train_pictures": args.train,
        "epochs": args.epochs,
        "seed": args.seed,
        "input": "RGB, any size; trained at 64x64; raw 0..255 pixels (the model rescales)",
    }
    args.output.with_suffix(".json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"held-out accuracy {accuracy:.4f} on {args.test} pictures; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
