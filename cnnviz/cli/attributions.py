"""``cnnviz explain`` (where a model looks, by every attribution method people compare, side by side) and ``cnnviz
gradcam`` (the same run with one Grad-CAM, drawn as the image beside its heatmap)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import click

from cnnviz.cli.common import (
    ModelChoice,
    checked_cmap,
    exit_on_failures,
    images_command,
    labels_and_head,
    option_group,
    reported_errors,
    run_options,
    run_over_images,
    say_run,
)

# None of these import TensorFlow: --help and option errors stay instant.
from cnnviz.cli.settings import SettingsCommand, SettingsGroup
from cnnviz.methods.attribution import METHODS, AttributionSettings, general_methods
from cnnviz.methods.attribution.gradcam import GRADCAMS
from cnnviz.runs.attribute import AttributeOptions, GradcamOptions


def name_list(
    what: str, known: Collection[str], every: Callable[[], Collection[str]] | None = None
) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], tuple[str, ...]]:
    """A click callback for an option repeated, or given comma lists, or ``all``, of ``what`` names from ``known``
    (read when the command runs: entries added after import count): the names in order, each once (none when not
    given). ``all`` stands for ``every()`` where given, else for every name known."""

    def check(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
        names = [name.strip() for value in values for name in value.split(",") if name.strip()]
        if "all" in names:
            names = list(every() if every is not None else known)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise click.BadParameter(f"unknown {what} '{unknown[0]}'; choose from: {', '.join(known)}, all")
        return tuple(dict.fromkeys(names))

    return check


def all_methods() -> str:
    """What ``all`` stands for among the methods, in words for ``--help``."""
    left = [name for name in METHODS if name not in general_methods()]
    return "or all" + (f" (all but {', '.join(left)}, for transformers only)" if left else "")


#: ``--method`` repeated, or comma lists, or ``all``.
method_list = name_list("method", METHODS, general_methods)


def method_option(help: str) -> Callable[..., Any]:
    """``--method``, repeated or comma lists or ``all``, handed to the command as ``methods`` (:func:`method_list`)."""
    return click.option("--method", "methods", multiple=True, callback=method_list, metavar="NAME[,NAME...]", help=help)


def _region(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple[int, int, int, int] | None:
    """``--region TOP,LEFT,BOTTOM,RIGHT`` as four integers."""
    if text is None:
        return None
    try:
        top, left, bottom, right = (int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"TOP,LEFT,BOTTOM,RIGHT in pixels, e.g. 8,8,24,24; got '{text}'") from None
    return top, left, bottom, right


#: What is explained (``--class``, ``--layer``, ``--labels``, ``--head``, ``--region``), handed to the command as
#: ``explained``: keywords of the explaining runs' options.
target_options = option_group(
    "explained",
    [
        click.option(
            "--class", "target", default=None, metavar="N|NAME", help="The class to explain. Default: the top one."
        ),
        click.option("--layer", "-l", default=None, help="The layer of the CAM methods. Default: the last conv layer."),
        *labels_and_head(),
        click.option(
            "--region",
            default=None,
            callback=_region,
            metavar="TOP,LEFT,BOTTOM,RIGHT",
            help="For a segmentation output: explain the class's logits summed over this box of input pixels.",
        ),
    ],
    renamed=("output",),
)

#: How heatmaps are drawn and kept (``--save-raw``, ``--cmap``, ``--alpha``, ``--no-labels``), handed to the
#: command as ``drawing``.
heat_options = option_group(
    "drawing",
    [
        click.option(
            "--save-raw", is_flag=True, help="Also write each attribution as .npy, rows x cols at the input size."
        ),
        click.option("--cmap", callback=checked_cmap, help="The heat's colormap."),
        click.option("--alpha", type=click.FloatRange(0, 1), help="Opacity of the hottest places."),
        click.option("--no-labels", "labels", flag_value=False, help="Bare pictures, without the header strip."),
    ],
    defaults=AttributeOptions,
)


#: The methods' settings, as ``explain`` and the commands that explain take them.
METHOD_SETTINGS = SettingsGroup(AttributionSettings, "methods", ("gradcam",), "settings")


@images_command(SettingsCommand, groups=[METHOD_SETTINGS])
@method_option(
    f"Methods, repeated or comma-separated, one column each: {', '.join(METHODS)}, {all_methods()}. Default: gradcam."
)
@target_options
@heat_options
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write per image and method records."
)
@run_options("Folder to write into: OUTPUT/<model>/<image>/attributions_<class>.png.")
def explain(
    images: tuple[str, ...],
    choice: ModelChoice,
    methods: tuple[str, ...],
    explained: dict[str, Any],
    drawing: dict[str, Any],
    settings: AttributionSettings,
    json_path: str | None,
    output: str,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
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
    from cnnviz.runs.attribute import render_attributions

    with reported_errors(choice.verbose):
        options = AttributeOptions(
            **choice.keywords(),
            **reading,
            **engine,
            **explained,
            **drawing,
            methods=methods or ("gradcam",),
            settings=settings,
            json=json_path,
        )
        report = run_over_images(render_attributions, choice, images, output, options, quiet, include_top=True)
    if not quiet:
        where = f"CAMs at layer {report.layer}; " if report.layer else ""
        say_run(report, f"{where}attributions of {report.score}")
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


@images_command()
@option_group(
    "one",
    [click.option("--method", type=click.Choice(GRADCAMS), help="gradcam++ separates several objects of one class.")],
    defaults=GradcamOptions,
)
@target_options
@heat_options
@run_options("Folder to write into: OUTPUT/<model>/<image>/gradcam_<class>.png.", engine=False)
def gradcam(
    images: tuple[str, ...],
    choice: ModelChoice,
    one: dict[str, Any],
    explained: dict[str, Any],
    drawing: dict[str, Any],
    output: str,
    reading: dict[str, Any],
    quiet: bool,
) -> None:
    """Show where a classifier looked: Grad-CAM heatmaps over images, and the model's top-5 classes.

    Each picture shows the image as the model saw it, and beside it the heatmap of the class blended onto it
    ('cnnviz explain --method gradcam' computes the same heatmap and shows it beside other methods).
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
    from cnnviz.runs.attribute import render_gradcam

    with reported_errors(choice.verbose):
        options = GradcamOptions(**choice.keywords(), **reading, **explained, **drawing, **one)
        report = run_over_images(render_gradcam, choice, images, output, options, quiet, include_top=True)
    if not quiet:
        say_run(report, f"layer: {report.layer}; gradient of {report.score}")
        value = "p" if report.probabilities else "score" if report.head == "classes" else "share of pixels"
        for result in report.images:
            ranked = ", ".join(f"{name} {number:.3f}" for name, number in result.top)
            if report.head == "regression":
                click.echo(f"{result.path}: regression output '{report.output}' = {result.top[0][1]:.4g}")
            else:
                click.echo(f"{result.path}: top {value}: {ranked}")
            what = (
                result.target_name if report.head == "regression" else f"{result.target_name} (class {result.target})"
            )
            click.echo(f"  explained {what} -> {result.picture}")
            for raw in result.raw.values():
                click.echo(f"  raw heatmap -> {raw}")
    exit_on_failures(report.failures, report.inputs, choice.verbose)
