"""The perturbation methods on one path: ``explain --method occlusion,rise,scorecam`` over 8 images, each batch's
masked copies of every image streamed through the model together, against the same run one image at a time.

Both sides are the library's whole run (:func:`cnnviz.runs.attribute.render_attributions`: reading, the three
methods, drawing and writing) in this process, in turns (:func:`timing.paired_times`); the only difference is
``batch_size``: 8 (one batch: the copies of the 8 images share model calls) against 1 (each image's copies alone,
as every perturbation method ran before they shared :meth:`TargetModel.perturbed_rows`: a part-full last call per
image and method). The pictures of both sides are checked to be the same bytes. Two models: the bundled ``shapes``
CNN (many small calls: the per-call cost shows) and VGG16 with random weights at 64 px.

    python bench/bench_perturbation.py                    # both models, 3 pairs of runs each
    python bench/bench_perturbation.py shapes             # one
    python bench/bench_perturbation.py vgg16 --pairs 1    # fewer turns (VGG16's take minutes each)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

from timing import paired_times

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("occlusion", "rise", "scorecam")
#: (model, weights, size, RISE's masks)
MODELS = {"shapes": ("shapes", None, (96, 96), 1000), "vgg16": ("vgg16", "none", (64, 64), 500)}


def photos(folder: Path) -> list[str]:
    """8 photos: the sample images, and copies of some under other names."""
    found = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".jpg", ".png"))
    paths = []
    for number in range(8):
        source = found[number % len(found)]
        target = folder / f"{number}_{source.name}"
        shutil.copy(source, target)
        paths.append(str(target))
    return paths


def main() -> None:
    """Print each model's times and ratio."""
    from cnnviz.engines.naming import ModelRef
    from cnnviz.methods.attribution import AttributionSettings
    from cnnviz.runs.attribute import AttributeOptions, render_attributions

    arguments = sys.argv[1:]
    pairs = int(arguments.pop(arguments.index("--pairs") + 1)) if "--pairs" in arguments else 3
    chosen = [name for name in arguments if name != "--pairs"] or list(MODELS)
    with tempfile.TemporaryDirectory() as scratch:
        images = photos(Path(scratch))
        for name in chosen:
            model_name, weights, size, masks = MODELS[name]
            ref = ModelRef(model_name, weights, size if model_name != "shapes" else None)
            model = ref.load(include_top=True)
            read = {"size": size} if model_name == "shapes" else {}

            options = AttributeOptions(
                **vars(ref.naming()), **read, methods=METHODS, settings=AttributionSettings(masks=masks)
            )
            run = partial(render_attributions, model, images)
            alone, together, ratio = paired_times(
                lambda: run(Path(scratch) / "alone", replace(options, batch_size=1)),  # noqa: B023 - called here
                lambda: run(Path(scratch) / "together", replace(options, batch_size=8)),  # noqa: B023
                pairs=pairs,
            )
            same = all(
                (Path(scratch) / "alone" / p.relative_to(Path(scratch) / "together")).read_bytes() == p.read_bytes()
                for p in (Path(scratch) / "together").rglob("*.png")
            )
            print(f"{name} ({', '.join(METHODS)}, {size[0]} px, --masks {masks}, 8 images, float32, 2 CPU cores)")
            print(f"  one image at a time (batch 1):      {alone:7.2f} s")
            print(f"  every image's copies together (8):  {together:7.2f} s")
            print(f"  ratio together/alone: {ratio:.2f}x; the same picture bytes: {same}")


if __name__ == "__main__":
    main()
