"""``cnnviz stats``: per-filter activation statistics over images."""

from __future__ import annotations

import sys
from typing import Any

import click

from cnnviz.cli.common import (
    CONTEXT,
    Engine,
    ModelChoice,
    Reading,
    engine_options,
    model_options,
    output_option,
    progress_bar,
    reading_options,
    reported_errors,
)

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz.methods.stats import DEFAULT_RARE
from cnnviz.output.files import check_writable
from cnnviz.output.manifest import model_folder


@click.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--layer", "-l", "layer_names", multiple=True, help="A conv layer or pattern; repeat it. Default: all.")
@click.option(
    "--threshold",
    type=float,
    default=0.0,
    show_default=True,
    help="For conv layers without a ReLU of their own: a position is active above this value. After a ReLU, "
    "active always means above 0.",
)
@click.option(
    "--rare",
    "rare_percent",
    type=click.FloatRange(0, 100),
    default=100 * DEFAULT_RARE,
    show_default=True,
    help="A filter active at fewer than this percent of positions (but not dead) is rarely active.",
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per filter as CSV here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write one object per filter as JSON here.")
@click.option("--no-charts", is_flag=True, help="Leave out the bar chart per layer.")
@output_option("Folder for the charts: OUTPUT/<model>/stats_<layer>.png.")
@reading_options
@engine_options
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
    reading: Reading,
    engine: Engine,
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
    from cnnviz.methods.stats import filter_stats
    from cnnviz.output.stats_report import stats_table, write_stats

    rare = rare_percent / 100
    out = model_folder(output, choice.folder, choice.source)
    with reported_errors(choice.verbose):
        inputs = engine.find(images, exclude=output)
        if not no_charts:
            check_writable(out)
        settings: dict[str, Any] = {
            "layers": list(layer_names) or None,
            "threshold": threshold,
            "preprocess": reading.preprocess,
            "size": choice.size,
            "fit": reading.fit,
        }
        with progress_bar(len(inputs), reading.quiet) as bar:
            if engine.engine == "ray":
                from cnnviz.engines.ray_engine import ray_stats

                job = engine.job(reading.batch_size, bar.update, reading.quiet)
                run = ray_stats(choice.spec(), inputs, job, **settings)
            else:
                run = filter_stats(
                    choice.load(), inputs, batch_size=reading.batch_size, progress=bar.update, **settings
                )
        written = write_stats(
            run.layers, out, choice.label, rare, charts=not no_charts, csv_path=csv_path, json_path=json_path
        )
    if not reading.quiet:
        click.echo(stats_table(run.layers, rare))
        for path in written:
            click.echo(f"wrote {path}")
    for _path, error in run.failures:
        click.echo(f"Error: {error}", err=True)
    if run.failures:
        click.echo(
            f"Error: {len(run.failures)} of {len(inputs)} inputs failed; the statistics leave them out", err=True
        )
        sys.exit(1)
