"""``cnnviz maximize``: what a filter looks for."""

from __future__ import annotations

from typing import Any

import click

from cnnviz.cli.common import (
    CONTEXT,
    ModelChoice,
    choice_option,
    feeding_options,
    model_options,
    option_group,
    output_option,
    progress_bar,
    reported_errors,
    say,
    say_computation,
    selection_checker,
)

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz.inputs.preprocess import DEFAULT_PREPROCESSING, MODES
from cnnviz.methods.maximize import DEFAULT_SIZE, DEFAULT_STEPS, PARAMETRIZATIONS
from cnnviz.output.files import check_writable
from cnnviz.runs.maximize import DEFAULT_FILTERS, MaximizeRunOptions


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
@option_group(
    "chosen",
    [
        click.option(
            "--layer", "-l", required=True, help="The conv layer whose filters to draw (see 'cnnviz layers')."
        ),
        click.option(
            "--filters",
            default=None,
            callback=selection_checker("filter"),
            help=f"Filters to draw, e.g. 0:64 or 1,5,9 (default: the first {DEFAULT_FILTERS}).",
        ),
        click.option(
            "--steps", type=click.IntRange(1), default=DEFAULT_STEPS, show_default=True, help="Gradient-ascent steps."
        ),
        click.option("--seed", type=int, help="Random seed: the same seed, the same images."),
        click.option(
            "--param",
            "parametrization",
            type=click.Choice(PARAMETRIZATIONS),
            help="fourier: a scaled spectrum with decorrelated colours (legible); pixel: plain pixels, as most "
            "tutorials do.",
        ),
        click.option("--batch-size", type=click.IntRange(1), help="Filters optimised together."),
        click.option(
            "--save-raw", is_flag=True, help="Also write the images as .npy, (filters, size, size, channels) in 0..1."
        ),
        click.option("--no-labels", "labels", flag_value=False, help="A bare grid, without the header strip."),
        choice_option(
            "--preprocess", MODES, DEFAULT_PREPROCESSING, "How pixels are prepared for the model, as for featuremaps."
        ),
        *feeding_options(),
    ],
    defaults=MaximizeRunOptions,
)
@click.option("--no-transforms", is_flag=True, help="No random jitter, scale and rotation between steps.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@output_option("Folder to write into: OUTPUT/<model>/maximize_<layer>.png.")
def maximize(choice: ModelChoice, chosen: dict[str, Any], no_transforms: bool, quiet: bool, output: str) -> None:
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
    from cnnviz.runs.maximize import render_maximize

    side = _square_side(choice.size)
    moves: dict[str, Any] = {"jitter": 0, "scale": 0.0, "rotate": 0.0} if no_transforms else {}
    out = choice.folder(output)
    with reported_errors(choice.verbose), progress_bar(quiet, unit="filter-step") as progress:
        options = MaximizeRunOptions(**vars(choice.ref.naming()), **moves, **chosen, size=side)
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
