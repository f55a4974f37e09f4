"""``cnnviz evaluate``: which explanation to trust, by faithfulness and sanity scores over a folder of images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from cnnviz.cli.attributions import METHOD_SETTINGS, all_methods, method_option, name_list, target_options
from cnnviz.cli.common import (
    ModelChoice,
    exit_on_failures,
    images_command,
    reported_errors,
    run_options,
    run_over_images,
    say_run,
)

# None of these import TensorFlow: --help and option errors stay instant.
from cnnviz.cli.settings import SettingsCommand, SettingsGroup
from cnnviz.methods.attribution import METHODS, AttributionSettings
from cnnviz.methods.evaluation import DEFAULT_METRICS
from cnnviz.methods.evaluation.metrics import METRICS, EvaluationSettings, maker

#: ``--metric`` repeated, or comma lists, or ``all``.
metric_list = name_list("metric", METRICS)


#: The metrics' settings; the methods' settings of the same names follow as ``--method-NAME``.
METRIC_SETTINGS = SettingsGroup(EvaluationSettings, "metrics", DEFAULT_METRICS, "evaluation")


@images_command(SettingsCommand, groups=[METRIC_SETTINGS, METHOD_SETTINGS])
@method_option(
    f"Methods to score, repeated or comma-separated: {', '.join(METHODS)}, {all_methods()}. Default: gradcam."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    callback=metric_list,
    metavar="NAME[,NAME...]",
    help=f"Metrics, repeated or comma-separated: {', '.join(METRICS)}, or all. Default: {','.join(DEFAULT_METRICS)}.",
)
@click.option(
    "--explanation",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A folder of your own attributions to score beside the methods: one .npy per image, named like it "
    "(cat.npy for cat.jpg), rows x cols at the model's input size.",
)
@target_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the records as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write the records as CSV.")
@run_options("Folder to write into: OUTPUT/<model>/evaluation_curves.png.")
def evaluate(
    images: tuple[str, ...],
    choice: ModelChoice,
    methods: tuple[str, ...],
    metrics: tuple[str, ...],
    explanation: str | None,
    explained: dict[str, Any],
    evaluation: EvaluationSettings,
    settings: AttributionSettings,
    json_path: str | None,
    csv_path: str | None,
    output: str,
    reading: dict[str, Any],
    quiet: bool,
    engine: dict[str, Any],
) -> None:
    """Score attribution methods on your images: which explanation to trust.

    \b
    deletion      the most important features first become the baseline; the class's score should fall fast:
                  the area under the curve, LOWER is better (Petsiuk et al. 2018).
    insertion     from the baseline, the most important features come back first; the score should rise fast:
                  the area under the curve, HIGHER is better.
    mufidelity    random subsets of grid cells removed; the Spearman correlation between the score's drops and
                  the attributions removed, HIGHER is better, 1 at most (Bhatt et al. 2020).
    randomization the model's layers reset from the top down, the image explained again: the rank correlation
                  with the original, LOWER is better; a method above 0.5 once every layer is reset does not
                  depend on what the model learned and FAILS (Adebayo et al. 2018).

    Each image is explained for its top class (or --class). Deletion and insertion cost 2 x (--steps + 1)
    forward passes per image and method, mufidelity --samples, randomization one explanation per layer; all
    perturbed copies go through the model in batches. --steps, --samples, --seed and --baseline are the metrics';
    the methods' settings of those names are --method-steps, --method-samples, --method-seed and --method-baseline.

    \b
    Examples:
      cnnviz evaluate sample_images/ --model shapes --method gradcam,gradient,integrated-gradients
      cnnviz evaluate photos/ --method all --metric all --json scores.json --csv scores.csv
      cnnviz evaluate photos/ --model my.keras --explanation my_maps/ --method gradcam --grid 14
      cnnviz evaluate photos/ --method gradcam --metric randomization
      cnnviz evaluate photos/ --method integrated-gradients --method-steps 32 --metric deletion --steps 10
    """
    from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images

    with reported_errors(choice.verbose):
        options = EvaluateOptions(
            **choice.keywords(),
            **reading,
            **engine,
            **explained,
            methods=methods or (() if explanation is not None else ("gradcam",)),
            metrics=metrics or DEFAULT_METRICS,
            explanation=explanation,
            settings=settings,
            evaluation=evaluation,
            json=json_path,
            csv=csv_path,
        )
        result = run_over_images(evaluate_images, choice, images, output, options, quiet, include_top=True)
    if not quiet:
        say_run(result)
        click.echo(f"class {result.score}, baseline {evaluation.baseline}, {_features(options)}")
        for line in summary_lines(result):
            click.echo(line)
        for path in result.written:
            click.echo(f"-> {path}")
    exit_on_failures(result.failures, result.inputs, choice.verbose)


def _features(options: Any) -> str:
    grid = options.evaluation.grid
    return "features: pixels" if grid is None else f"features: {grid}x{grid} grid cells"


def summary_lines(result: Any) -> list[str]:
    """The table: for each value recorded, the methods best first with mean, standard deviation and images (and
    how many were undefined), then each check's verdicts and why a value is undefined."""
    lines: list[str] = []
    rows: Sequence[Any] = result.summary()
    width = max([len("method"), *(len(row.method) for row in rows)])
    current = None
    for row in rows:
        if row.metric != current:
            current = row.metric
            better = "lower" if row.better == "lower" else "higher"
            lines += ["", f"{row.metric}: {maker(row.metric).makes[row.metric]} ({better} is better)"]
            lines.append(f"  {'method':<{width}}    mean     std  images  undefined")
        mean, std = (f"{value:6.3f}" if value == value else "     -" for value in (row.mean, row.std))
        lines.append(f"  {row.method:<{width}}  {mean}  {std}  {row.count:6d}  {row.undefined or '':>9}")
    # why values are undefined, or rest on fewer steps: once per method and reason (randomization's SSIM value
    # shares its rank correlation's reason)
    said: set[tuple[str, str]] = set()
    for row in rows:
        for reason in result.reasons(row.method, row.metric):
            if (row.method, reason) not in said:
                lines += [""] if not said else []
                said.add((row.method, reason))
                lines.append(f"{row.method}, {row.metric}: {reason}")
    for name, verdicts in result.verdicts().items():
        metric = METRICS[name]
        worse, fine = (">", "<=") if metric.better == "lower" else ("<", ">=")
        failing = [method for method, said in verdicts.items() if said == "fails"]
        open_ = [method for method, said in verdicts.items() if said == "undecided"]
        if failing:
            lines += ["", f"FAILS the {name} check ({metric.limit_of} {worse} {metric.limit}): {', '.join(failing)}"]
        if open_:
            lines += ["", f"UNDECIDED on the {name} check (its last step ranked nothing): {', '.join(open_)}"]
        if not failing and not open_:
            lines += ["", f"every method passes the {name} check ({metric.limit_of} {fine} {metric.limit})"]
    return [*lines, ""]
