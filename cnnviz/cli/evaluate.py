"""``cnnviz evaluate``: which explanation to trust, by faithfulness and sanity scores over a folder of images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from cnnviz.cli.attributions import METHOD_NAMES, method_option, method_settings_options, name_list, target_options
from cnnviz.cli.common import (
    CONTEXT,
    Engine,
    ModelChoice,
    Reading,
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
from cnnviz.methods.attribution.base import BASELINES
from cnnviz.methods.evaluation.metrics import METRICS, MUFIDELITY_GRID, RANDOMIZATION_LIMIT
from cnnviz.methods.target import VALUE_KINDS
from cnnviz.output.files import check_writable

#: What each recorded value means, for the table's headings.
MEANINGS = {
    "deletion": "area under the deletion curve",
    "insertion": "area under the insertion curve",
    "mufidelity": "Spearman correlation of drops and attributions",
    "randomization": "rank correlation with the original after every layer is reset",
    "randomization-ssim": "SSIM with the original after every layer is reset",
}


#: ``--metric`` repeated, or comma lists, or ``all``.
metric_list = name_list("metric", tuple(METRICS))


@click.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@method_option(f"Methods to score, repeated or comma-separated: {', '.join(METHOD_NAMES)}, or all. Default: gradcam.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    callback=metric_list,
    metavar="NAME[,NAME...]",
    help=f"Metrics, repeated or comma-separated: {', '.join(METRICS)}, or all. Default: deletion,insertion.",
)
@click.option(
    "--explanation",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A folder of your own attributions to score beside the methods: one .npy per image, named like it "
    "(cat.npy for cat.jpg), rows x cols at the model's input size.",
)
@target_options
@click.option("--steps", type=click.IntRange(1), default=20, show_default=True, help="Deletion, insertion: steps.")
@click.option(
    "--grid",
    type=click.IntRange(1),
    default=None,
    help=f"Perturb the cells of an N x N grid instead of pixels [pixels; mufidelity: {MUFIDELITY_GRID}].",
)
@click.option(
    "--baseline",
    default="black",
    show_default=True,
    metavar="|".join(BASELINES) + "|NUMBER",
    help="What a removed feature becomes (black: what preprocessing makes of black).",
)
@click.option(
    "--score",
    type=click.Choice(VALUE_KINDS),
    default="probability",
    show_default=True,
    help="What is read: the class's probability, or its pre-softmax logit.",
)
@click.option(
    "--samples", type=click.IntRange(1), default=200, show_default=True, help="mufidelity: subsets per image."
)
@click.option(
    "--subset",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="mufidelity: the fraction of the grid's cells each subset removes.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="mufidelity's subsets, randomization's weights, smoothgrad's noise and rise's masks.",
)
@method_settings_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the records as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write the records as CSV.")
@output_option("Folder to write into: OUTPUT/<model>/evaluation_curves.png.")
@reading_options
@engine_options
def evaluate(
    images: tuple[str, ...],
    choice: ModelChoice,
    methods: tuple[str, ...],
    metrics: tuple[str, ...],
    explanation: str | None,
    target: str | None,
    layer: str | None,
    labels_file: str | None,
    head: str | None,
    region: str | None,
    steps: int,
    grid: int | None,
    baseline: str,
    score: str,
    samples: int,
    subset: float,
    seed: int,
    noise: float | None,
    patch: int | None,
    stride: int | None,
    masks: int | None,
    json_path: str | None,
    csv_path: str | None,
    output: str,
    reading: Reading,
    engine: Engine,
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
    perturbed copies go through the model in batches. Here --steps, --samples and --baseline are the metrics';
    the methods keep their defaults for those.

    \b
    Examples:
      cnnviz evaluate sample_images/ --model shapes --method gradcam,gradient,integrated-gradients
      cnnviz evaluate photos/ --method all --metric all --json scores.json --csv scores.csv
      cnnviz evaluate photos/ --model my.keras --explanation my_maps/ --method gradcam --grid 14
      cnnviz evaluate photos/ --method gradcam --metric randomization
    """
    from cnnviz.methods.attribution import AttributionSettings
    from cnnviz.methods.evaluation import DEFAULT_METRICS, EvaluationSettings
    from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images

    out = choice.folder(output)
    with reported_errors(choice.verbose):
        chosen = methods or (() if explanation is not None else ("gradcam",))
        uses_seed = any(name in ("smoothgrad", "rise") for name in chosen)
        options = EvaluateOptions(
            **vars(choice.ref.naming()),
            **reading.settings(choice.model_size()),
            **engine.settings(),
            methods=chosen,
            metrics=metrics or DEFAULT_METRICS,
            explanation=explanation,
            settings=AttributionSettings(
                noise=noise, patch=patch, stride=stride, masks=masks, seed=seed if uses_seed else None
            ),
            evaluation=EvaluationSettings(
                steps=steps,
                grid=grid,
                baseline=_number_or_name(baseline),
                score=score,
                samples=samples,
                subset=subset,
                seed=seed,
            ),
            target=target,
            layer=layer,
            labels_file=labels_file,
            output=head,
            region=_region(region),
            json=json_path,
            csv=csv_path,
        )
        inputs = engine.find(images, exclude=output)
        check_writable(out)
        result = engine.run(evaluate_images, choice, inputs, out, options, reading.quiet, include_top=True)
    if not reading.quiet:
        say_notes(result.notes)
        if result.preprocessing is not None:
            click.echo(f"preprocessing: {result.preprocessing.name} ({result.preprocessing.description})")
        say_computation(result)
        click.echo(f"class {result.score}, baseline {baseline}, {_features(options)}")
        for line in summary_lines(result):
            click.echo(line)
        for path in result.written:
            click.echo(f"-> {path}")
    exit_on_failures(result.failures, result.inputs, choice.verbose)


def _number_or_name(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def _features(options: Any) -> str:
    grid = options.evaluation.grid
    return "features: pixels" if grid is None else f"features: {grid}x{grid} grid cells"


def summary_lines(result: Any) -> list[str]:
    """The table: for each value recorded, the methods best first with mean, standard deviation and images."""
    lines: list[str] = []
    rows: Sequence[Any] = result.summary()
    width = max([len("method"), *(len(row.method) for row in rows)])
    current = None
    for row in rows:
        if row.metric != current:
            current = row.metric
            better = "lower" if row.better == "lower" else "higher"
            lines += ["", f"{row.metric}: {MEANINGS.get(row.metric, row.metric)} ({better} is better)"]
            lines.append(f"  {'method':<{width}}    mean     std  images")
        lines.append(f"  {row.method:<{width}}  {row.mean:6.3f}  {row.std:6.3f}  {row.count:6d}")
    flagged = result.flagged()
    if flagged:
        lines += ["", f"FAILS the randomization check (rank correlation > {RANDOMIZATION_LIMIT}): {', '.join(flagged)}"]
    elif "randomization" in result.metrics and rows:
        lines += ["", f"every method passes the randomization check (rank correlation <= {RANDOMIZATION_LIMIT})"]
    return [*lines, ""]
