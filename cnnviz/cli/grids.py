"""The commands that draw grids of a model's layers: layers, filters, featuremaps, animate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cnnviz.cli.common import (
    CONTEXT,
    FIT_NOTES,
    ModelChoice,
    exit_on_failures,
    images_command,
    model_options,
    output_option,
    reported_errors,
    run_options,
    run_over_images,
    say,
    say_run,
    selection_checker,
    view_options,
)

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz.draw.render import FILTER_NORMS, MAP_NORMS, MAP_ORDERS
from cnnviz.draw.view import FilterView, MapView
from cnnviz.errors import OptionError
from cnnviz.models.layer_table import layer_rows
from cnnviz.output.animate import DEFAULT_DURATION_MS, animate_folder
from cnnviz.output.files import check_writable
from cnnviz.runs.contract import RunResult
from cnnviz.runs.featuremaps import DEFAULT_OVERLAY_MAPS, MapOptions, render_feature_maps
from cnnviz.runs.filters import FilterOptions, render_filters


@click.command(context_settings=CONTEXT)
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON, for scripts.")
def layers(choice: ModelChoice, as_json: bool) -> None:
    """List the convolution layers of a model: name, kind, kernel, output shape and parameter count.

    Layers of nested models (a VGG16 base inside your classifier) and layers called inside other layers (KerasHub's
    blocks) are listed as outer/inner and can be given to --layer by that name. A Vision Transformer's blocks are
    listed too: their tokens are drawn as maps on the patch grid. Shapes and counts do not depend on weights, so
    keras.applications models are built without downloading any.

    \b
    Examples:
      cnnviz layers
      cnnviz layers --model resnet50 --weights none
      cnnviz layers --model my_model.keras --json
    """

    with reported_errors(choice.verbose):
        rows = layer_rows(choice.load(need_weights=False), choice.size)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if choice.weights is not None:
        click.echo("note: --weights is not loaded: layers, shapes and counts do not depend on weights")
    blocks = sum(row["kernel"] == "tokens" for row in rows)
    counted = _counted(len(rows) - blocks, "conv layer") + (
        f", {_counted(blocks, 'transformer block')}" if blocks else ""
    )
    click.echo(f"{choice.ref.name}: {counted}")
    if not rows:
        return
    table = [["name", "kind", "kernel", "output", "params"]] + [
        [r["name"], r["kind"], r["kernel"], r["output"], f"{r['params']:,}"] for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row[:4], widths, strict=False)] + [row[4].rjust(widths[4])]
        click.echo("  ".join(cells))
    click.echo(f"total {'params of these layers' if blocks else 'conv params'}: {sum(r['params'] for r in rows):,}")
    if blocks:
        click.echo("a transformer block's output is drawn as maps of its patch tokens on the patch grid")


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"


@click.command(context_settings=CONTEXT)
@model_options
@click.option(
    "--layer",
    "-l",
    default=None,
    help="The conv layer (see 'cnnviz layers'), or a pattern for several. Default: the first conv layer.",
)
@click.option(
    "--filters",
    "filter_spec",
    default=None,
    callback=selection_checker("filter"),
    help="Filters to draw, e.g. 0:16 or 1,5,9 (default: up to 64).",
)
@click.option(
    "--channels",
    default=None,
    callback=selection_checker("channel"),
    help="Input channels to draw, e.g. 0:3 (default: up to 64).",
)
@click.option("--rgb", is_flag=True, help="Draw 3-channel kernels (a first layer's) as colour patches.")
@view_options(FILTER_NORMS, FilterView)
@output_option("Folder to write into.")
def filters(
    choice: ModelChoice,
    layer: str | None,
    filter_spec: str | None,
    channels: str | None,
    rgb: bool,
    view: dict[str, Any],
    output: str,
) -> None:
    """Draw a conv layer's learned kernels: a numbered row of kernels per filter, one per input channel.

    The grid goes to OUTPUT/<model>/filters_<layer>.png; a dead filter (all weights near zero) is crossed out.

    --norm global is the tutorials' min-max over the whole layer; filter scales each filter on its own;
    symmetric keeps zero at the middle of the colormap, the honest view of signed weights
    (try it with --cmap RdBu_r).

    \b
    Examples:
      cnnviz filters --layer block5_conv1
      cnnviz filters --layer block1_conv1 --rgb
      cnnviz filters --model shapes --layer edges --norm symmetric --cmap RdBu_r
      cnnviz filters --layer block3_conv1 --filters 0:16 --channels 0:8 -o out/
    """

    with reported_errors(choice.verbose):
        if choice.model_size() is not None:
            raise OptionError(
                "--size sets the size images are read at (and builds keras.applications models at it); filters reads "
                "no images, and a model file's kernels do not depend on it: leave it out"
            )
        options = FilterOptions(
            **vars(choice.ref.naming()), **view, layer=layer, filters=filter_spec, channels=channels, rgb=rgb
        )
        out = choice.folder(output)
        check_writable(out)
        report = render_filters(choice.load(), out, options)
    say(report.notes, report.written)


@images_command()
@click.option(
    "--layer",
    "-l",
    "layer_names",
    multiple=True,
    help="A conv layer to draw, or a pattern such as 'block5_*'; repeat it. Default: all.",
)
@click.option("--save-raw", is_flag=True, help="Also write each layer's activations as .npy.")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave out images whose grids the manifest lists and that are on disk: continues an interrupted run.",
)
@click.option(
    "--overlay",
    is_flag=True,
    help="Blend each map, upsampled, onto the image, to show where each filter fires: <layer>_overlay.png "
    f"(up to {DEFAULT_OVERLAY_MAPS} maps a layer unless --max-maps says).",
)
@view_options(
    MAP_NORMS,
    MapView,
    click.option("--max-maps", type=click.IntRange(1), help="Draw at most this many maps per layer."),
    click.option(
        "--order",
        type=click.Choice(MAP_ORDERS),
        help="activation: the maps that fire most (highest mean) first, still numbered by channel; with --max-maps "
        "16, the 16 most active.",
    ),
)
@run_options("Folder to write into.")
def featuremaps(
    images: tuple[str, ...],
    choice: ModelChoice,
    layer_names: tuple[str, ...],
    save_raw: bool,
    skip_existing: bool,
    overlay: bool,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
    view: dict[str, Any],
    output: str,
) -> None:
    """Draw the activations of conv layers for images: one PNG grid per image and layer.

    IMAGES are image files, folders (searched recursively) and quoted glob patterns ('photos/**/*.jpg'). All
    selected layers come from one forward pass per batch. Grids go to OUTPUT/<model>/<image>/<layer>.png, the
    image's path below its folder mirrored (a/cat.jpg -> a/cat/); OUTPUT/<model>/manifest.json lists every grid,
    with earlier runs', and every image that failed. A run that met bad images writes all the good ones, then
    exits with status 1. Tiles are numbered by channel; a flat map (the filter is dead on this image) is crossed
    out.

    --norm map scales each map on its own; layer uses one scale for the whole layer, so strong and weak maps
    can be compared; standardize is the tutorials' (x - mean) / std * 64 + 128.

    \b
    Examples:
      cnnviz featuremaps sample_images/cat.jpg --model shapes
      cnnviz featuremaps sample_images/cat.jpg --layer block1_conv2 --layer 'block5_*'
      cnnviz featuremaps photos/ --model my_model.keras --norm layer --cmap gray -o out/
      cnnviz featuremaps sample_images/cat.jpg --layer block3_conv1 --overlay --max-maps 16
      cnnviz featuremaps sample_images/cat.jpg --layer block5_conv3 --order activation --max-maps 16
      cnnviz featuremaps 'data/**/*.png' --model shapes --skip-existing -q    # in CI, resumable
      cnnviz featuremaps images/ --layer block1_conv1 --engine ray -o /shared/out/   # on Ray
    """

    out = choice.folder(output)
    manifest = out / "manifest.json"
    with reported_errors(choice.verbose, interrupted=f"What finished is listed in {manifest}"):
        options = MapOptions(
            **choice.keywords(),
            **reading,
            **engine,
            **view,
            layers=list(layer_names) or None,
            save_raw=save_raw,
            skip_existing=skip_existing,
            overlay=overlay,
        )
        report = run_over_images(render_feature_maps, choice, images, output, options, quiet)
    if not quiet:
        _summarise_maps(report, out)
    exit_on_failures(report.failures, report.inputs, choice.verbose)


def _summarise_maps(report: RunResult, out: Path) -> None:
    """What a featuremaps run did, in a few lines."""
    manifest = out / "manifest.json"
    say_run(report)
    if report.fit != "none":
        click.echo(f"fit: {report.fit} ({FIT_NOTES[report.fit]})")
    folders = sorted({str(path.parent) for path in report.written})
    count = sum(1 for path in report.written if path.suffix == ".png")
    grids = f"{count} grid{'' if count == 1 else 's'}"
    if len(folders) == 1:
        click.echo(f"wrote {grids} to {folders[0]}")
    elif folders:
        click.echo(f"wrote {grids} for {len(folders)} images to {out / '<image>'}/")
    if report.skipped:
        click.echo(f"skipped {report.skipped} image{'' if report.skipped == 1 else 's'} drawn before (--skip-existing)")
    if report.written or report.failures or report.skipped:
        click.echo(f"manifest: {manifest}")


@click.command(context_settings=CONTEXT)
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--output", "-o", type=click.Path(file_okay=False), default=None, help="Where the GIFs go. Default: FOLDER."
)
@click.option(
    "--duration",
    type=click.IntRange(1),
    default=DEFAULT_DURATION_MS,
    show_default=True,
    help="How long each frame shows, in milliseconds.",
)
@click.option("--verbose", is_flag=True, help="Show the traceback of an unexpected error.")
def animate(folder: str, output: str | None, duration: int, verbose: bool) -> None:
    """Turn grids drawn at successive steps into looping GIFs, one per grid.

    FOLDER holds one folder per step (epoch_001, epoch_002, ... or step_N, batch_N), each with the same PNG
    names inside, as a training run leaves them. FOLDER/epoch_*/filters_conv2d.png becomes
    FOLDER/filters_conv2d.gif, FOLDER/epoch_*/cat/conv2d.png becomes FOLDER/cat/conv2d.gif.

    \b
    Examples:
      cnnviz animate viz/
      cnnviz animate viz/ --duration 250 -o gifs/
    """
    with reported_errors(verbose):
        written = animate_folder(folder, output, duration_ms=duration)
    click.echo(f"wrote {len(written)} GIF{'' if len(written) == 1 else 's'} in {output or folder}")
    for path in written:
        click.echo(f"  {path}")
