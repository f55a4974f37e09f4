"""``cnnviz top``: the real images, and the patches of them, that excite each filter most."""

from __future__ import annotations

from typing import Any

import click

from cnnviz.cli.common import (
    ModelChoice,
    exit_on_failures,
    images_command,
    option_group,
    reported_errors,
    run_options,
    run_over_images,
    say,
    say_computation,
    selection_checker,
)
from cnnviz.methods.top import DEFAULT_K, RANKINGS

# None of these import TensorFlow: the library imports it inside the functions that need it.
from cnnviz.runs.top import TopOptions


@images_command()
@option_group(
    "ranking",
    [
        click.option("--layer", "-l", required=True, help="The conv layer (2-D maps), or a pattern for several."),
        click.option(
            "--filters",
            default=None,
            callback=selection_checker("filter"),
            help="Filters to rank, e.g. 0:16 or 1,5,9 (default: all, 64 to a picture).",
        ),
        click.option(
            "-k", type=click.IntRange(1), default=DEFAULT_K, show_default=True, help="Images kept per filter."
        ),
        click.option(
            "--by",
            type=click.Choice(RANKINGS),
            help="max: the map's highest value, drawn as the patch of the image that position sees; mean: the map's "
            "mean, drawn as the whole image.",
        ),
        click.option("--json", type=click.Path(dir_okay=False), help="Write one record per filter and rank here."),
        click.option("--csv", type=click.Path(dir_okay=False), help="Write the same records as CSV here."),
        click.option(
            "--maximize",
            is_flag=True,
            help="Lead each row with the filter's 'cnnviz maximize' picture: what it looks for, beside where real "
            "images give it that (gradient work: seconds per filter).",
        ),
        click.option("--no-labels", "labels", flag_value=False, help="A bare picture, without the header strip."),
    ],
    defaults=TopOptions,
)
@run_options("Folder to write into: OUTPUT/<model>/top_<layer>.png.")
def top(
    images: tuple[str, ...],
    choice: ModelChoice,
    ranking: dict[str, Any],
    output: str,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
) -> None:
    """Show what in real images drives each filter: the k images (and the patch of each) that excite it most.

    IMAGES are image files, folders (searched recursively) and quoted glob patterns. One pass over them keeps,
    for each filter, the k images whose map has the highest maximum (--by max) or mean (--by mean), ties going
    to the image found first. With --by max each image is drawn as the patch that the maximum's position sees
    (its receptive field, computed from the layer graph), cut from the image as the model saw it; one row per
    filter, best first, each patch with its value. Receptive fields grow with depth: block1 patches are a few
    pixels, block5 ones most of the image.

    \b
    Examples:
      cnnviz top sample_images/ --model shapes --layer edges
      cnnviz top photos/ --layer block4_conv1 --filters 0:16 --json top.json
      cnnviz top photos/ --layer block5_conv3 --by mean -k 4
      cnnviz top photos/ --model shapes --layer shapes --filters 0:8 --maximize
    """
    from cnnviz.runs.top import render_top

    with reported_errors(choice.verbose):
        options = TopOptions(**choice.keywords(), **reading, **engine, **ranking)
        result = run_over_images(render_top, choice, images, output, options, quiet)
    if not quiet:
        if result.preprocessing is not None:
            click.echo(f"preprocessing: {result.preprocessing.name} ({result.preprocessing.description})")
        say_computation(result)
        say(result.notes, result.written)
    exit_on_failures(result.failures, result.inputs, choice.verbose, after="; the ranking leaves them out")
