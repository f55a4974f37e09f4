"""The commands that explain a model: maximize (what a filter looks for) and gradcam (where it looks)."""

from __future__ import annotations

from typing import Any

import click

from cnnviz.cli.common import (
    CONTEXT,
    ModelChoice,
    Reading,
    checked_cmap,
    choice_option,
    exit_on_failures,
    input_options,
    model_options,
    output_option,
    precision_option,
    progress_bar,
    reading_options,
    reported_errors,
    say,
    say_computation,
    say_notes,
    selection_checker,
)

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz.draw.overlay import DEFAULT_ALPHA
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import gather_inputs
from cnnviz.inputs.preprocess import DEFAULT_PREPROCESSING, MODES
from cnnviz.methods.gradcam import METHODS
from cnnviz.methods.maximize import DEFAULT_SIZE, DEFAULT_STEPS, PARAMETRIZATIONS
from cnnviz.output.files import check_writable
from cnnviz.runs.maximize import DEFAULT_FILTERS


def _region(text: str | None) -> tuple[int, int, int, int] | None:
    """``--region TOP,LEFT,BOTTOM,RIGHT`` as four integers."""
    if text is None:
        return None
    try:
        top, left, bottom, right = (int(part) for part in text.split(","))
    except ValueError:
        raise OptionError(f"--region takes TOP,LEFT,BOTTOM,RIGHT in pixels, e.g. 8,8,24,24; got '{text}'") from None
    return top, left, bottom, right


def _square_side(size: tuple[int, int] | None) -> int:
    """The side of maximize's square images: ``--size N``, or :data:`DEFAULT_SIZE`."""
    if size is None:
        return DEFAULT_SIZE
    if size[0] != size[1] or size[0] < 8:
        raise click.UsageError(
            f"maximize draws square images of 8 pixels or more: give --size N, not {size[0]}x{size[1]}"
        )
    return size[0]


@click.command(context_settings=CONTEXT)
@model_options
@click.option("--layer", "-l", required=True, help="The conv layer whose filters to draw (see 'cnnviz layers').")
@click.option(
    "--filters",
    "filter_spec",
    default=None,
    callback=selection_checker("filter"),
    help=f"Filters to draw, e.g. 0:64 or 1,5,9 (default: the first {DEFAULT_FILTERS}).",
)
@click.option(
    "--steps", type=click.IntRange(1), default=DEFAULT_STEPS, show_default=True, help="Gradient-ascent steps."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed, the same images.")
@choice_option(
    "--param",
    PARAMETRIZATIONS,
    "fourier",
    "fourier: a scaled spectrum with decorrelated colours (legible); pixel: plain pixels, as most tutorials do.",
)
@click.option("--no-transforms", is_flag=True, help="No random jitter, scale and rotation between steps.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True, help="Filters optimised together.")
@click.option(
    "--save-raw", is_flag=True, help="Also write the images as .npy, (filters, size, size, channels) in 0..1."
)
@click.option("--no-labels", is_flag=True, help="A bare grid, without the header strip.")
@choice_option(
    "--preprocess", MODES, DEFAULT_PREPROCESSING, "How pixels are prepared for the model, as for featuremaps."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@input_options()[0]
@input_options()[1]
@precision_option()
@output_option("Folder to write into: OUTPUT/<model>/maximize_<layer>.png.")
def maximize(
    choice: ModelChoice,
    layer: str,
    filter_spec: str | None,
    steps: int,
    seed: int,
    param: str,
    no_transforms: bool,
    batch_size: int,
    save_raw: bool,
    no_labels: bool,
    preprocess: str,
    quiet: bool,
    input_name: str | None,
    feed: dict[str, str],
    precision: str,
    output: str,
) -> None:
    """Draw what each filter of a conv layer responds to: an image per filter, found by gradient ascent.

    --size N sets the images' side (default 128; keras.applications models are built at it). Each image
    starts as faint noise and is changed, step by step, to make its filter's mean activation as large
    as it can. By default the image lives in Fourier space with decorrelated colours, and every step sees it
    jittered, scaled and rotated a little (Lucid's recipe), which gives patterns a person can read rather than
    high-frequency noise. All chosen filters are optimised together in batches by one traced step; the same
    --seed gives the same picture, byte for byte.

    This is gradient work through the network: on 2 CPU cores VGG16's block5_conv1 takes about 0.09 s per filter
    and step at 128 pixels (8 filters x 64 steps: 45 s), so start with a few. Nested layers (vgg16/block5_conv1)
    work.

    \b
    Examples:
      cnnviz maximize --model shapes --layer shapes
      cnnviz maximize --layer block4_conv1 --filters 0:8 --steps 64
      cnnviz maximize --model my_model.keras --layer vgg16/block5_conv1 --filters 1,5,9 --seed 3
      cnnviz maximize --model shapes --layer edges --param pixel --no-transforms   # the naive way, to compare
    """
    from cnnviz.runs.maximize import MaximizeRunOptions, render_maximize

    side = _square_side(choice.size)
    moves: dict[str, Any] = {"jitter": 0, "scale": 0.0, "rotate": 0.0} if no_transforms else {}
    out = choice.folder(output)
    with reported_errors(choice.verbose), progress_bar(quiet, unit="filter-step") as progress:
        options = MaximizeRunOptions(
            **vars(choice.ref.naming()),
            **moves,
            steps=steps,
            size=side,
            seed=seed,
            parametrization=param,
            batch_size=batch_size,
            layer=layer,
            filters=filter_spec,
            preprocess=preprocess,
            save_raw=save_raw,
            labels=not no_labels,
            input=input_name,
            feed=feed or None,
            precision=precision,
        )
        check_writable(out)
        report = render_maximize(choice.load(), out, options, progress)
    if quiet:
        return
    found = report.maximized
    if found is not None:
        reached = ", ".join(f"{f}: {v:.3g}" for f, v in zip(found.filters, found.activations, strict=True))
        click.echo(f"{found.layer}: mean activation reached per filter: {reached}")
    say_computation(report)
    say(report.notes, report.written)


@click.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option(
    "--class",
    "target",
    default=None,
    metavar="N|NAME",
    help="The class to explain: an index or a name (tabby, 'tiger cat'). Default: each image's top class.",
)
@click.option(
    "--layer",
    "-l",
    default=None,
    help="The layer to explain at: any layer of 2-D maps. Default: the last conv layer with maps larger than 1x1.",
)
@choice_option("--method", METHODS, "gradcam", "gradcam++ separates several objects of one class better.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Class names, one per line in class order. Default: ImageNet's for 1,000-class models (shipped, offline).",
)
@click.option(
    "--head",
    "head",
    default=None,
    metavar="NAME",
    help="For a model of several outputs: the one to explain (default: the first). (-o/--output is the folder.)",
)
@click.option(
    "--region",
    default=None,
    metavar="TOP,LEFT,BOTTOM,RIGHT",
    help="For a segmentation output: explain the class's logits summed over this box of the model input's pixels "
    "(end exclusive) instead of over the pixels predicted as the class.",
)
@click.option("--save-raw", is_flag=True, help="Also write each heatmap as .npy, rows x cols at the input size.")
@click.option("--cmap", default="jet", show_default=True, callback=checked_cmap, help="The heatmap's colormap.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    default=DEFAULT_ALPHA,
    show_default=True,
    help="Opacity of the hottest places.",
)
@click.option("--no-labels", is_flag=True, help="Bare pictures, without the header strip.")
@output_option("Folder to write into: OUTPUT/<model>/<image>/gradcam_<class>.png.")
@reading_options
def gradcam(
    images: tuple[str, ...],
    choice: ModelChoice,
    target: str | None,
    layer: str | None,
    method: str,
    labels_file: str | None,
    head: str | None,
    region: str | None,
    save_raw: bool,
    cmap: str,
    alpha: float,
    no_labels: bool,
    output: str,
    reading: Reading,
) -> None:
    """Show where a classifier looked: Grad-CAM heatmaps over images, and the model's top-5 classes.

    Each picture shows the image as the model saw it, and beside it the heatmap of the class blended onto it.
    The gradient is taken of the class's score before the model's softmax where the graph has one (a
    softmax saturates), and the run says which. Layers of nested bases (vgg16/block5_conv3) work.

    keras.applications models are loaded with their classifier head (VGG16's ImageNet weights with the head
    are 528 MB, downloaded once); a model file must end in class scores.

    \b
    Examples:
      cnnviz gradcam sample_images/cat.jpg
      cnnviz gradcam sample_images/cat.jpg --class 'tiger cat' --method gradcam++
      cnnviz gradcam photos/ --model my_classifier.keras --labels classes.txt --save-raw -o out/
      cnnviz gradcam sample_images/ --model shapes --class circles
    """
    from cnnviz.runs.gradcam import GradcamOptions, render_gradcam

    out = choice.folder(output)
    with reported_errors(choice.verbose), progress_bar(reading.quiet) as progress:
        options = GradcamOptions(
            **vars(choice.ref.naming()),
            **reading.settings(choice.model_size()),
            target=target,
            layer=layer,
            method=method,
            labels_file=labels_file,
            cmap=cmap,
            alpha=alpha,
            save_raw=save_raw,
            labels=not no_labels,
            output=head,
            region=_region(region),
        )
        inputs = gather_inputs(images, exclude=output)
        check_writable(out)
        report = render_gradcam(choice.load(include_top=True), inputs, out, options, progress)
    if not reading.quiet:
        say_notes(report.notes)
        click.echo(f"layer: {report.layer}; gradient of {report.score}")
        if report.preprocessing is not None:
            click.echo(f"preprocessing: {report.preprocessing.name} ({report.preprocessing.description})")
        say_computation(report)
        value = "p" if report.probabilities else "score" if report.head == "classes" else "share of pixels"
        for result in report.images:
            ranked = ", ".join(f"{name} {number:.3f}" for name, number in result.top)
            if report.head == "regression":
                click.echo(f"{result.path}: regression output '{report.output}' = {result.top[0][1]:.4g}")
            else:
                click.echo(f"{result.path}: top {value}: {ranked}")
            explained = (
                result.target_name if report.head == "regression" else f"{result.target_name} (class {result.target})"
            )
            click.echo(f"  explained {explained} -> {result.picture}")
            if result.raw is not None:
                click.echo(f"  raw heatmap -> {result.raw}")
    exit_on_failures(report.failures, report.inputs, choice.verbose)
