"""``cnnviz atlas``: a static site with a page for every unit of every conv layer."""

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
from cnnviz.cli.maximize import _square_side
from cnnviz.cli.stats import activity_options

# None of these import TensorFlow: the library imports it inside the functions that need it.
from cnnviz.runs.atlas import AtlasOptions


@images_command()
@option_group(
    "chosen",
    [
        click.option(
            "--layer", "-l", "layers", multiple=True, help="A conv layer or pattern; repeat it. Default: all."
        ),
        click.option(
            "--filters",
            default=None,
            callback=selection_checker("filter"),
            help="The units of each layer, e.g. 0:16 or 1,5,9 (default: all).",
        ),
        click.option("-k", type=click.IntRange(1), help="Top images kept per unit."),
        click.option("--steps", type=click.IntRange(1), help="maximize's gradient-ascent steps per unit."),
        click.option("--seed", type=int, help="maximize's seed: the same seed, the same site, byte for byte."),
        click.option("--chunk", type=click.IntRange(1), help="Units of one layer optimised together."),
        click.option(
            "--no-maximize",
            "maximize",
            flag_value=False,
            default=True,
            help="No maximize pictures: a data-only atlas, in the time of one pass over the images.",
        ),
    ],
    defaults=AtlasOptions,
)
@activity_options("unit")
@run_options("Folder to write into: OUTPUT/<model>/atlas/index.html and a page per layer and unit.")
def atlas(
    images: tuple[str, ...],
    choice: ModelChoice,
    chosen: dict[str, Any],
    threshold: float,
    rare_percent: float,
    output: str,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
) -> None:
    """Write an atlas of a model: a static site with a page for every unit of every conv layer, as OpenAI
    Microscope made for nine fixed models, for your own model and images.

    IMAGES are image files, folders (searched recursively) and quoted glob patterns. One pass over them gives every
    unit its top patches (with their receptive fields, drawn on the whole images), examples at the quartiles of its
    maximum, a histogram, and its dead/rare verdict, as 'top' and 'stats' compute them; then each unit's 'maximize'
    picture is optimised (--size N sets its side, default 128), in chunks of units, here or on Ray. Pages are
    written as units finish: a run stopped by Ctrl-C leaves a working site, and the same command does only the
    rest. Open OUTPUT/<model>/atlas/index.html in a browser; it needs no server and fetches nothing.

    Cost: the pass costs about one forward pass per image; a unit costs what 'cnnviz maximize' costs per filter
    (VGG16 at 128 px, 64 steps: about 5 s a unit on 2 CPU cores). Bound it with --layer, --filters and --steps, or
    --no-maximize; the run says what it will compute, and how long it expects, before the unit work.

    \b
    Examples:
      cnnviz atlas sample_images/ --model shapes
      cnnviz atlas photos/ --layer 'block5_*' --filters 0:32 --steps 32
      cnnviz atlas photos/ --model my_model.keras --no-maximize
      cnnviz atlas photos/ --model /shared/my_model.keras --engine ray --address auto
    """
    from cnnviz.runs.atlas import build_atlas

    side = _square_side(choice.size)
    with reported_errors(choice.verbose, interrupted="the atlas keeps what finished: run the same command again"):
        options = AtlasOptions(
            **choice.keywords(),
            **reading,
            **engine,
            **{**chosen, "layers": list(chosen["layers"]) or None},
            threshold=threshold,
            rare=rare_percent / 100,
            side=side,
        )
        tell = None if quiet else (lambda text: click.echo(text, err=True))
        result = run_over_images(build_atlas, choice, images, output, options, quiet, then="unit", tell=tell)
    if not quiet:
        if result.preprocessing is not None:
            click.echo(f"preprocessing: {result.preprocessing.name} ({result.preprocessing.description})")
        say_computation(result)
        click.echo(
            f"{len(result.layers)} layers, {result.units} units; maximize pictures: {result.maximized} of "
            f"{result.units} ({result.computed} computed now)"
        )
        say(result.notes, result.written)
    exit_on_failures(result.failures, result.inputs, choice.verbose, after="; the atlas leaves them out")
