"""``cnnviz explain``: where a model looks, by every attribution method people compare, side by side."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import click

from cnnviz.cli.common import (
    CONTEXT,
    Engine,
    ModelChoice,
    Reading,
    checked_cmap,
    engine_options,
    exit_on_failures,
    model_options,
    output_option,
    reading_options,
    reported_errors,
    say_computation,
    say_notes,
)

# None of these import TensorFlow: --help and option errors stay instant.
from cnnviz.cli.explain import _region
from cnnviz.cli.settings import SettingsCommand, SettingsGroup
from cnnviz.draw.overlay import DEFAULT_ALPHA
from cnnviz.methods.attribution import METHODS, AttributionSettings
from cnnviz.output.files import check_writable


def name_list(
    what: str, known: Collection[str]
) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], tuple[str, ...]]:
    """A click callback for an option repeated, or given comma lists, or ``all``, of ``what`` names from ``known``
    (read when the command runs: entries added after import count): the names in order, each once (none when not
    given)."""

    def check(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
        names = [name.strip() for value in values for name in value.split(",") if name.strip()]
        if "all" in names:
            names = list(known)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise click.BadParameter(f"unknown {what} '{unknown[0]}'; choose from: {', '.join(known)}, all")
        return tuple(dict.fromkeys(names))

    return check


#: ``--method`` repeated, or comma lists, or ``all``.
method_list = name_list("method", METHODS)


def method_option(help: str) -> Callable[..., Any]:
    """``--method``, repeated or comma lists or ``all``, handed to the command as ``methods`` (:func:`method_list`)."""
    return click.option("--method", "methods", multiple=True, callback=method_list, metavar="NAME[,NAME...]", help=help)


def target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """What is explained: ``--class``, ``--layer``, ``--labels``, ``--head`` and ``--region`` (the command takes
    ``target``, ``layer``, ``labels_file``, ``head`` and ``region``)."""
    options = [
        click.option(
            "--class", "target", default=None, metavar="N|NAME", help="The class to explain. Default: the top one."
        ),
        click.option("--layer", "-l", default=None, help="The layer of the CAM methods. Default: the last conv layer."),
        click.option(
            "--labels",
            "labels_file",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Class names, one per line in class order. Default: ImageNet's for 1,000-class models.",
        ),
        click.option(
            "--head", default=None, metavar="NAME", help="For a model of several outputs: the one to explain."
        ),
        click.option(
            "--region",
            default=None,
            metavar="TOP,LEFT,BOTTOM,RIGHT",
            help="For a segmentation output: explain the class's logits summed over this box of input pixels.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


#: The methods' settings, as ``explain`` and the commands that explain take them.
METHOD_SETTINGS = SettingsGroup(AttributionSettings, "methods", ("gradcam",), "settings")


@click.command(cls=SettingsCommand, groups=[METHOD_SETTINGS], context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@method_option(
    f"Methods, repeated or comma-separated, one column each: {', '.join(METHODS)}, or all. Default: gradcam."
)
@target_options
@click.option("--save-raw", is_flag=True, help="Also write each attribution as .npy, rows x cols at the input size.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write per image and method records."
)
@click.option("--cmap", default="jet", show_default=True, callback=checked_cmap, help="The heat's colormap.")
@click.option(
    "--alpha", type=click.FloatRange(0, 1), default=DEFAULT_ALPHA, show_default=True, help="Opacity of the heat."
)
@click.option("--no-labels", is_flag=True, help="Bare pictures, without the header and the column titles.")
@output_option("Folder to write into: OUTPUT/<model>/<image>/attributions_<class>.png.")
@reading_options
@engine_options
def explain(
    images: tuple[str, ...],
    choice: ModelChoice,
    methods: tuple[str, ...],
    target: str | None,
    layer: str | None,
    labels_file: str | None,
    head: str | None,
    region: str | None,
    settings: AttributionSettings,
    save_raw: bool,
    json_path: str | None,
    cmap: str,
    alpha: float,
    no_labels: bool,
    output: str,
    reading: Reading,
    engine: Engine,
) -> None:
    """Show where a model looks, by several attribution methods side by side: one picture per image.

    Class activation maps at a conv layer: gradcam, gradcam++, scorecam (one forward pass per channel; no
    gradient), layercam (works at early layers), eigencam (the maps' first principal component: no class).
    Pixel attributions: gradient, smoothgrad, integrated-gradients, occlusion, rise. Each column is drawn to its own
    peak; the header names the class explained and its score. Methods fail in different ways: compare a few.

    Cost per image, in forward passes: CAMs 1; scorecam one per live channel (512 at VGG16's block5); smoothgrad
    --samples; integrated-gradients --steps + 1; occlusion one per patch; rise --masks. All of them go through the
    model in batches.

    \b
    Examples:
      cnnviz explain sample_images/cat.jpg --method gradcam,scorecam,integrated-gradients
      cnnviz explain sample_images/ --model shapes --method all --masks 500
      cnnviz explain photos/ --model my.keras --method occlusion --patch 16 --stride 8 --save-raw --json out.json
      cnnviz explain photos/ --method smoothgrad --samples 25 --noise 0.1 --engine ray
    """
    from cnnviz.runs.attribute import AttributeOptions, render_attributions

    out = choice.folder(output)
    with reported_errors(choice.verbose):
        options = AttributeOptions(
            **vars(choice.ref.naming()),
            **reading.settings(choice.model_size()),
            **engine.settings(),
            methods=methods or ("gradcam",),
            settings=settings,
            target=target,
            layer=layer,
            labels_file=labels_file,
            cmap=cmap,
            alpha=alpha,
            save_raw=save_raw,
            labels=not no_labels,
            output=head,
            region=_region(region),
            json=json_path,
        )
        inputs = engine.find(images, exclude=output)
        check_writable(out)
        report = engine.run(render_attributions, choice, inputs, out, options, reading.quiet, include_top=True)
    if not reading.quiet:
        say_notes(report.notes)
        where = f"CAMs at layer {report.layer}; " if report.layer else ""
        click.echo(f"{where}attributions of {report.score}")
        if report.preprocessing is not None:
            click.echo(f"preprocessing: {report.preprocessing.name} ({report.preprocessing.description})")
        say_computation(report)
        value = "p" if report.probabilities else "value" if report.head == "regression" else "score"
        for result in report.images:
            click.echo(f"{result.path}: {result.target_name} (class {result.target}, {value} {result.value:.3f})")
            click.echo(f"  {', '.join(report.methods)} -> {result.picture}")
            if result.raw:
                first = next(iter(result.raw.values()))
                click.echo(f"  raw -> {len(result.raw)} .npy files beside it ({first.name}, ...)")
        if json_path is not None:
            click.echo(f"records -> {json_path}")
    exit_on_failures(report.failures, report.inputs, choice.verbose)
