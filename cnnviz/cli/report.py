"""``cnnviz report``: one static HTML page about a model and images."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz.cli.attributions import METHOD_SETTINGS, method_option
from cnnviz.cli.common import (
    ModelChoice,
    exit_on_failures,
    images_command,
    progress_bar,
    reading_options,
    reported_errors,
    say_computation,
    say_notes,
)
from cnnviz.cli.evaluate import METRIC_SETTINGS, metric_list
from cnnviz.cli.settings import SettingsCommand
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import OptionError
from cnnviz.inputs.gather import gather_inputs
from cnnviz.methods.attribution import AttributionSettings
from cnnviz.methods.attribution.base import REPORT_METHODS
from cnnviz.methods.evaluation.metrics import EvaluationSettings
from cnnviz.output.files import check_writable

#: The methods' settings, then the metrics' (of --quality; ``--metric-NAME`` where a method's has the name).
GROUPS = [replace(METHOD_SETTINGS, default=REPORT_METHODS), replace(METRIC_SETTINGS, default=())]


@images_command(SettingsCommand, groups=GROUPS)
@method_option(
    "Attribution methods shown side by side for each image (as 'cnnviz explain' takes them). "
    f"Default: {','.join(REPORT_METHODS)}."
)
@click.option(
    "--quality",
    "metrics",
    multiple=True,
    callback=metric_list,
    metavar="METRIC[,METRIC...]",
    help="Add an explanation quality block: these metrics (as 'cnnviz evaluate' takes them: deletion, insertion, "
    "mufidelity, randomization, or all) score the methods on the images.",
)
@click.option(
    "--no-attributions",
    "--no-gradcam",
    "no_attributions",
    is_flag=True,
    help="Leave the attributions out (for models that do not end in class scores).",
)
@click.option(
    "--compare",
    "compare_with",
    metavar="MODEL",
    help="Add a comparison with a second model (as 'cnnviz compare' draws it): a keras.applications name, "
    "'shapes' or a model file.",
)
@click.option("--compare-weights", default=None, help="The second model's weights, as --weights takes them.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default="cnnviz_report",
    show_default=True,
    help="The report's folder: index.html and its pictures.",
)
@reading_options
def report(
    images: tuple[str, ...],
    choice: ModelChoice,
    methods: tuple[str, ...],
    metrics: tuple[str, ...],
    settings: AttributionSettings,
    evaluation: EvaluationSettings,
    no_attributions: bool,
    compare_with: str | None,
    compare_weights: str | None,
    output: str,
    reading: dict[str, Any],
    quiet: bool,
) -> None:
    """Write one static HTML page about a model and images: OUTPUT/index.html.

    The page holds the conv-layer table, for each image where the model looks (Grad-CAM, Layer-CAM, Eigen-CAM
    and the input gradient side by side, or the --method list), and for every conv layer its filters, its
    dead-filter statistics over the images, its feature maps for each image (up to 64 maps a layer) and, with 9
    images or more, each filter's top images and patches (the first 16 filters of a layer); with --quality, a
    table of scores that say which of the methods to trust, and their curves; with --compare, how each layer
    compares with a second model's (linear CKA) and which units moved. It needs
    no server and nothing from the network: open it in a browser, or zip the folder and send it. Pictures load as
    you scroll, and an index on the left leads to each layer.

    keras.applications models are loaded with their classifier head, for Grad-CAM (VGG16's ImageNet weights
    with the head are 528 MB, downloaded once; --weights none works offline).

    \b
    Examples:
      cnnviz report sample_images/ --model shapes -o report/
      cnnviz report sample_images/cat.jpg -o report/
      cnnviz report sample_images/ --model shapes --method gradcam,scorecam,rise -o report/
      cnnviz report sample_images/ --model shapes --quality deletion,insertion -o report/
      cnnviz report photos/ --model my_model.keras --no-attributions
      cnnviz report photos/ --model tuned.keras --compare base.keras -o report/
    """
    from cnnviz.runs.report import ReportOptions, write_report

    with reported_errors(choice.verbose), progress_bar(quiet) as progress:
        options = ReportOptions(
            **choice.keywords(),
            **reading,
            attributions=not no_attributions,
            methods=methods or REPORT_METHODS,
            quality=metrics,
            settings=settings,
            evaluation=evaluation,
            compare=_second_model(choice, compare_with, compare_weights),
        )
        check_writable(output)
        inputs = gather_inputs(images, exclude=output)
        result = write_report(choice.load(include_top=not no_attributions), inputs, output, options, progress)
    if not quiet:
        say_computation(result)
        say_notes(result.notes)
        click.echo(f"wrote {result.page} with {result.pictures} pictures")
    exit_on_failures(result.failures, result.inputs, choice.verbose, after="; the page leaves them out")


def _second_model(choice: ModelChoice, model: str | None, weights: str | None) -> ModelRef | None:
    """``--compare`` as the library names a model, loaded as the first one is (its size and code); None without
    it, and an error for ``--compare-weights`` alone."""
    if model is None:
        if weights is not None:
            raise OptionError("--compare-weights is for the model of --compare: give --compare MODEL too")
        return None
    return ModelChoice(model, weights, choice.size, choice.unsafe, choice.imports, choice.verbose).ref
