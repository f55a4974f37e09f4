"""``cnnviz compare``: two models' conv layers side by side over the same images (linear CKA), and what changed per
unit where they share an architecture."""

from __future__ import annotations

from typing import Any

import click

from cnnviz.cli.common import (
    CONTEXT,
    ModelChoice,
    exit_on_failures,
    loading_options,
    option_group,
    reported_errors,
    run_options,
    run_over_images,
    say,
    say_computation,
)
from cnnviz.methods.cka import ESTIMATORS, FEATURES

# None of these import TensorFlow: the library imports it inside the functions that need it.
from cnnviz.runs.compare import CompareOptions


@click.command(context_settings=CONTEXT)
@click.argument("model_a", metavar="A")
@click.argument("model_b", metavar="B")
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--weights-a",
    default=None,
    help="A's weights: for keras.applications names imagenet (default), none (random) or a weights file; for a "
    "model file, a weights file to load into it.",
)
@click.option("--weights-b", default=None, help="B's weights, as --weights-a: B may be A at another checkpoint.")
@option_group("loading", loading_options())
@option_group(
    "comparing",
    [
        click.option(
            "--layer-a", "layers", multiple=True, help="A conv layer of A, or a pattern; repeat it. Default: all."
        ),
        click.option("--layer-b", "other_layers", multiple=True, help="A conv layer of B, or a pattern. Default: all."),
        click.option(
            "--features",
            type=click.Choice(FEATURES),
            help="How a conv layer's maps become features. positions: every layer's maps average-pooled to "
            "--grid x --grid cells, each cell of each image a sample, so any two layers pair up cell by cell and a "
            "few dozen images give a settled value. mean: each channel's mean over the whole map, one sample per "
            "image (needs hundreds of images; dominated by each image's overall colour and brightness).",
        ),
        click.option(
            "--grid",
            type=click.IntRange(1),
            help="With --features positions: the cells a side every layer's maps are pooled to (fewer where a map "
            "is smaller).",
        ),
        click.option(
            "--estimator",
            type=click.Choice(ESTIMATORS),
            help="debiased: the unbiased HSIC estimator, the same over any minibatches as over all images at once. "
            "biased: Kornblith et al. (2019)'s formula, above 0 for unrelated features on few images.",
        ),
        click.option("-k", type=click.IntRange(1), help="Top images kept per unit, for the overlap of A's and B's."),
        click.option(
            "--pairs",
            type=click.IntRange(0),
            help="Where A and B share layers: the units whose maps agree least, drawn as pairs (each model's "
            "maximize picture and top patches); 0 for none.",
        ),
        click.option("--json", type=click.Path(dir_okay=False), help="Write {layer_a, layer_b, cka} records here."),
        click.option("--csv", type=click.Path(dir_okay=False), help="Write the same records as CSV here."),
        click.option("--no-charts", "charts", flag_value=False, default=True, help="Write no pictures."),
    ],
    defaults=CompareOptions,
)
@run_options("Folder to write into: OUTPUT/<A>/vs-<B>/ (cka.png, drift.png, units_<layer>.png, units.csv).")
def compare(
    model_a: str,
    model_b: str,
    images: tuple[str, ...],
    weights_a: str | None,
    weights_b: str | None,
    loading: dict[str, Any],
    comparing: dict[str, Any],
    output: str,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
) -> None:
    """Compare two models layer by layer over the same images: which layers of B compute what A's compute (linear
    CKA), and, where B is A trained further (fine-tuning, another checkpoint), which units moved.

    A and B are keras.applications names, 'shapes' or model files, each with its own --weights-a / --weights-b.
    IMAGES are image files, folders (searched recursively) and quoted glob patterns. One pass runs each batch
    through both models and keeps sums, never maps, so memory does not grow with the images. Prints the CKA of
    each of A's layers with B's best match, and writes:

    \b
      cka.png        CKA of every layer of A (rows) with every layer of B (columns)
      drift.png      per layer both share: its CKA with its twin, its units' map correlation, weight change
      units_*.png    the units that moved most: A's and B's maximize picture and top patches side by side
      units.csv      per unit: weight change, correlation of its maps, overlap of its top-k images

    \b
    Examples:
      cnnviz compare shapes shapes sample_images/ --weights-b finetuned.weights.h5
      cnnviz compare base.keras finetuned.keras photos/ --json cka.json
      cnnviz compare vgg16 resnet50 photos/ --layer-a 'block*_conv3' --pairs 0
      cnnviz compare vgg16 vgg16 photos/ --weights-a none --estimator biased --features positions
    """
    from cnnviz.runs.compare import run_compare

    choice = ModelChoice(model_a, weights_a, **loading)
    other = ModelChoice(model_b, weights_b, **loading)
    with reported_errors(choice.verbose):
        comparing["layers"] = list(comparing["layers"]) or None
        comparing["other_layers"] = list(comparing["other_layers"]) or None
        options = CompareOptions(
            **choice.keywords(), **reading, **engine, **comparing, other=other.ref, other_label=other.ref.label
        )
        folder = choice.folder(output) / f"vs-{other.ref.folder}"
        result = run_over_images(run_compare, choice, images, output, options, quiet, folder=folder)
    if not quiet:
        click.echo(result.table())
        say_computation(result)
        say(result.notes, result.written)
    exit_on_failures(result.failures, result.inputs, choice.verbose, after="; the comparison leaves them out")
