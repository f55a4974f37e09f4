"""``cnnviz stats``: per-filter activation statistics over images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cnnviz.cli.common import (
    ModelChoice,
    exit_on_failures,
    images_command,
    reported_errors,
    run_options,
    run_over_images,
    say,
    say_computation,
)
from cnnviz.methods.stats import DEFAULT_RARE, StatsQuery

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz.runs.stats import StatsOptions


def activity_options(unit: str) -> Callable[[Callable[..., Any]], Any]:
    """``--threshold`` and ``--rare``: what counts as active and as rarely active, for the runs that give verdicts
    (stats, the atlas), each declared once; the command gets ``threshold`` and ``rare_percent``."""

    def wrap(command: Callable[..., Any]) -> Any:
        command = click.option(
            "--rare",
            "rare_percent",
            type=click.FloatRange(0, 100),
            default=100 * DEFAULT_RARE,
            show_default=True,
            help=f"A {unit} active at fewer than this percent of positions (but not dead) is rarely active.",
        )(command)
        return click.option(
            "--threshold",
            type=float,
            default=StatsQuery.threshold,
            show_default=True,
            help="For conv layers without a ReLU of their own: a position is active above this value. After a "
            "ReLU, active always means above 0.",
        )(command)

    return wrap


@images_command()
@click.option("--layer", "-l", "layer_names", multiple=True, help="A conv layer or pattern; repeat it. Default: all.")
@activity_options("filter")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per filter as CSV here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write one object per filter as JSON here.")
@click.option("--no-charts", is_flag=True, help="Leave out the bar chart per layer.")
@run_options("Folder for the charts: OUTPUT/<model>/stats_<layer>.png.")
def stats(
    images: tuple[str, ...],
    choice: ModelChoice,
    layer_names: tuple[str, ...],
    threshold: float,
    rare_percent: float,
    csv_path: str | None,
    json_path: str | None,
    no_charts: bool,
    output: str,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
) -> None:
    """Per-filter activation statistics over images: which filters are dead (never active on any image) and which
    rarely active, for pruning or for finding what went wrong in training.

    IMAGES are image files, folders (searched recursively) and quoted glob patterns. For each filter: its mean and
    largest activation, the share of positions where it is active, and on how many images it was active at all.
    The statistics are reduced inside the model, so a run costs about one forward pass per image. Prints a table
    per layer and writes a bar chart per layer; --csv and --json give every filter's numbers.

    \b
    Examples:
      cnnviz stats sample_images/ --model shapes
      cnnviz stats photos/ --layer 'block5_*' --rare 0.5 --csv stats.csv
      cnnviz stats 'data/**/*.png' --model my_model.keras --threshold 0.1 --json stats.json -q
      cnnviz stats s3://bucket/val/ --model /shared/my_model.keras --engine ray    # on a Ray cluster
    """
    from cnnviz.output.stats_report import stats_table
    from cnnviz.runs.stats import run_stats

    with reported_errors(choice.verbose):
        options = StatsOptions(
            **choice.keywords(),
            **reading,
            **engine,
            layers=list(layer_names) or None,
            threshold=threshold,
            rare=rare_percent / 100,
            charts=not no_charts,
            csv=csv_path,
            json=json_path,
        )
        run = run_over_images(run_stats, choice, images, output, options, quiet)
    if not quiet:
        click.echo(stats_table(run.layers, options.rare))
        say_computation(run)
        say(run.notes, run.written)
    exit_on_failures(run.failures, run.inputs, choice.verbose, after="; the statistics leave them out")
