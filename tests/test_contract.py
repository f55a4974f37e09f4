"""The shape every run shares: options that check themselves when made, nothing accepted and then ignored, the
same naming in every picture, and a manifest that concurrent runs all end up in."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.errors import OptionError
from cnnviz.methods.evaluation import EvaluationSettings
from cnnviz.runs.attribute import AttributeOptions, GradcamOptions, render_attributions
from cnnviz.runs.evaluate import EvaluateOptions
from cnnviz.runs.featuremaps import MapOptions
from cnnviz.runs.filters import FilterOptions
from cnnviz.runs.maximize import MaximizeRunOptions
from cnnviz.runs.report import ReportOptions, write_report
from cnnviz.runs.stats import StatsOptions
from cnnviz.runs.top import TopOptions
from tests.conftest import square_picture

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MapOptions(batch_size=0), "the batch size must be at least 1, got 0"),
        (lambda: MapOptions(fit="squash"), "unknown fit 'squash'"),
        (lambda: MapOptions(preprocess="caffe"), "unknown preprocessing 'caffe'"),
        (lambda: MapOptions(max_maps=0), "max_maps must be at least 1"),
        (lambda: FilterOptions(filters="a:b"), "cannot read filter selection 'a:b'"),
        (lambda: FilterOptions(scale=0), "the scale must be at least 1"),
        (lambda: StatsOptions(rare=2.0), "rare is a share of positions from 0 to 1, got 2.0"),
        (lambda: GradcamOptions(method="cam"), "unknown method 'cam'"),
        (lambda: GradcamOptions(alpha=1.5), "alpha is an opacity from 0 to 1"),
        (lambda: AttributeOptions(methods=("cam",)), "unknown method 'cam'"),
        (lambda: AttributeOptions(top=0), "top must be at least 1"),
        (lambda: AttributeOptions(engine="spark"), "unknown engine 'spark'"),
        (lambda: EvaluateOptions(metrics=("accuracy",)), "unknown metric 'accuracy'"),
        (lambda: EvaluateOptions(methods=("eigencam",), layer="x", engine="spark"), "unknown engine 'spark'"),
        (lambda: EvaluateOptions(methods=()), "choose at least one method"),
        (
            lambda: EvaluateOptions(evaluation=EvaluationSettings(samples=50)),
            "`samples` is a setting of mufidelity, which is not among the metrics chosen",
        ),
        (lambda: EvaluationSettings(score="odds"), "unknown score 'odds'; choose one of: probability, logit"),
        (lambda: EvaluationSettings(baseline="grey"), "unknown baseline 'grey'"),
        (
            lambda: ReportOptions(quality=("deletion",), attributions=False),
            "scores the attributions, which are left out",
        ),
        (lambda: ReportOptions(size=(0, 4)), r"a size is \(rows, cols\) of at least 1 pixel"),
        (lambda: MaximizeRunOptions(filters="0:4"), r"maximize needs a layer \(`layer`\)"),
        (lambda: MaximizeRunOptions(layer="x", steps=0), "maximize needs at least 1 step"),
        (lambda: StatsOptions(engine="spark"), "unknown engine 'spark'; choose one of: local, ray"),
        (lambda: StatsOptions(ray_workers=2), "^`ray_workers` is for the Ray engine: choose it with `engine` ray$"),
        (lambda: TopOptions(layer="x", ray_workers=0, engine="ray"), "ray_workers must be at least 1, got 0"),
        (lambda: MapOptions(address="auto", ray_workers=1), "^`address` and `ray_workers` are for the Ray engine"),
    ],
)
def test_options_check_themselves_when_made(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError, match=message):
        make()


def test_the_command_line_names_the_ray_settings_as_its_flags() -> None:
    ran = CliRunner().invoke(main, ["stats", "sample_images/cat.jpg", "-m", "shapes", "--workers", "2"])

    assert ran.exit_code == 2
    assert ran.output.endswith("Error: --workers is for the Ray engine: choose it with --engine ray\n")


def test_overlays_on_ray_are_refused_by_the_library_as_by_the_cli(tmp_path: Path) -> None:
    message = "overlays (`overlay`) run with the local engine: Ray's workers do not keep the pixels"
    with pytest.raises(OptionError) as refused:  # when the options are made: no Ray, no model, no job needed
        MapOptions(overlay=True, engine="ray")
    picture = ROOT / "sample_images" / "cat.jpg"
    cli = CliRunner().invoke(main, ["featuremaps", str(picture), "-m", "shapes", "--overlay", "--engine", "ray"])

    assert str(refused.value) == message  # the library names the option as Python does, the CLI as its flag
    assert cli.exit_code == 2 and f"Error: {message.replace('`overlay`', '--overlay')}" in cli.output
    assert not (Path("cnnviz_out") / "shapes" / "cat").exists()


def test_stats_verbose_prints_the_traceback_of_an_image_that_failed(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    args = ["stats", str(ROOT / "sample_images" / "cat.jpg"), str(broken), "-m", "shapes", "-o", str(tmp_path)]

    quiet = CliRunner().invoke(main, [*args, "--no-charts"])
    verbose = CliRunner().invoke(main, [*args, "--no-charts", "--verbose"])

    assert quiet.exit_code == verbose.exit_code == 1
    assert "Traceback (most recent call last)" not in quiet.stderr
    assert f"Error: {broken}: not an image Pillow can read" in quiet.stderr
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "cnnviz.errors.ImageLoadError" in verbose.stderr and "cnnviz/inputs/images.py" in verbose.stderr


def test_the_report_names_the_model_in_its_grad_cam_pictures_as_everywhere(square_finder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    Image.fromarray(square_picture().astype(np.uint8)).save(pictures / "square.png")
    options = ReportOptions(model_label="finder (weights epoch 9)", batch_size=1)

    write_report(square_finder, [pictures], tmp_path / "report", replace(options, methods=("gradcam",)))
    alone = render_attributions(
        square_finder, [pictures], tmp_path / "alone", AttributeOptions(model_label=options.model_label)
    )
    unnamed = render_attributions(square_finder, [pictures], tmp_path / "unnamed", AttributeOptions())

    picture = alone.images[0].picture.relative_to(tmp_path / "alone")
    assert picture.as_posix() == "square/attributions_class_1.png"
    in_report = (tmp_path / "report" / "attributions" / picture).read_bytes()
    assert in_report == alone.images[0].picture.read_bytes()  # the same header, byte for byte
    assert in_report != unnamed.images[0].picture.read_bytes()  # which names the model by its label
    manifests = [json.loads((tmp_path / "report" / part / "manifest.json").read_text()) for part in ("maps", "filters")]
    assert [manifest["model"] for manifest in manifests] == ["finder (weights epoch 9)"] * 2


@pytest.mark.parametrize("count", [8, 9])
def test_the_report_ranks_top_images_from_k_images_on(square_finder, tmp_path: Path, count: int) -> None:  # type: ignore[no-untyped-def]
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for seed in range(count):
        Image.fromarray(square_picture(seed).astype(np.uint8)).save(pictures / f"p{seed}.png")

    result = write_report(square_finder, [pictures], tmp_path / "report", ReportOptions(attributions=False))

    page = (tmp_path / "report" / "index.html").read_text()
    tops = sorted(path.name for path in (tmp_path / "report" / "top").glob("*.png")) if count == 9 else []
    assert page.count("<h3>Top images</h3>") == (2 if count == 9 else 0)
    assert tops == (["top_conv1.png", "top_conv2.png"] if count == 9 else [])
    assert result.pictures == 2 * (1 + 1 + count) + len(tops)  # per layer: filters, chart, maps; and the tops


def test_size_on_filters_with_a_model_file_is_refused_not_ignored(line_model, tmp_path: Path) -> None:
    line_model.save(tmp_path / "line.keras")
    args = ["filters", "--model", str(tmp_path / "line.keras"), "-o", str(tmp_path / "out")]

    refused = CliRunner().invoke(main, [*args, "--size", "64"])
    drawn = CliRunner().invoke(main, args)

    assert refused.exit_code == 2 and "Error: --size sets the size images are read at" in refused.output
    assert "filters reads no images, and a model file's kernels do not depend on it" in refused.output
    assert drawn.exit_code == 0 and (tmp_path / "out" / "line" / "filters_detector.png").is_file()


@pytest.mark.parametrize(
    ("extra", "given"),
    [(["--unsafe"], "--unsafe"), (["--import", "json"], "--import")],
)
def test_code_loading_options_with_a_keras_applications_name_are_refused(extra: list[str], given: str) -> None:
    from cnnviz.engines.naming import ModelRef

    ran = CliRunner().invoke(main, ["layers", "--model", "vgg16", *extra])

    assert ran.exit_code == 2
    assert f"Error: {given}: for model files that need code of their own to load; 'vgg16' is a" in ran.output
    with pytest.raises(OptionError, match="^`unsafe` and `imports`: for model files"):
        ModelRef("vgg16", unsafe=True, imports=("json",))
    assert ModelRef("shapes", unsafe=True).unsafe  # a file (the bundled model) may take them


def test_the_report_ranks_the_layers_its_top_options_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The report's top section scans the layers its TopOptions name (the conv layers with 2-D maps), not a
    placeholder pattern beside a list of its own."""
    from cnnviz.models.load import load_model
    from cnnviz.runs import report as report_run
    from cnnviz.runs.top import render_top

    asked: list[list[str]] = []
    given: list[TopOptions] = []
    monkeypatch.setattr(
        report_run,
        "_add_top",
        lambda model, inputs, root, options, *rest: asked.append(options.layers) or given.append(options),
    )
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for number in range(9):  # the top block needs 9 images
        Image.fromarray((square_picture(number) * 0.9).astype(np.uint8)).save(pictures / f"{number}.png")
    model = load_model("shapes")

    write_report(model, [pictures], tmp_path / "report", ReportOptions(attributions=False))
    ranked = render_top(model, [pictures], tmp_path / "top", given[0])  # the options, as a top run honours them

    assert asked == [["edges", "parts", "shapes"]]
    assert ranked.layers == ["edges", "parts", "shapes"]
    assert sorted(path.name for path in ranked.written) == ["top_edges.png", "top_parts.png", "top_shapes.png"]


def test_reading_settings_have_their_defaults_in_one_place() -> None:
    """A reading setting's default value is written once, where FeedSettings and ReadingSettings take it from; any
    parameter or field elsewhere that repeats it as a literal (``fit: str = "crop"``) could drift from it."""
    import ast
    from dataclasses import fields

    from cnnviz.inputs.reader import ReadingSettings

    defaults = {field.name: field.default for field in fields(ReadingSettings) if field.default is not None}
    assert defaults == {"preprocess": "auto", "precision": "float32", "fit": "crop", "batch_size": 8}
    repeated = []
    for path in sorted((ROOT / "cnnviz").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            named: list[tuple[str, ast.expr | None]] = []
            if isinstance(node, ast.FunctionDef):
                given = node.args.posonlyargs + node.args.args
                named += zip(
                    [a.arg for a in given[len(given) - len(node.args.defaults) :]], node.args.defaults, strict=True
                )
                named += zip([a.arg for a in node.args.kwonlyargs], node.args.kw_defaults, strict=True)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                named.append((node.target.id, node.value))
            for name, value in named:
                if isinstance(value, ast.Constant) and name in defaults and value.value == defaults[name]:
                    repeated.append(f"{path.relative_to(ROOT)}:{value.lineno} {name}")
    assert repeated == []


def test_the_public_names_are_one_list_that_type_checkers_see_too() -> None:
    """``cnnviz.__all__`` is derived from the table of lazily imported names; the imports type checkers read must
    name the same set, and every name must resolve to what its module defines."""
    import ast
    import importlib

    import cnnviz

    tree = ast.parse(Path(cnnviz.__file__).read_text())
    checking = next(
        node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    typed = {alias.name for statement in checking.body for alias in statement.names}  # type: ignore[attr-defined]
    assert typed == set(cnnviz._PUBLIC) and set(cnnviz.__all__) == {"__version__", *cnnviz._PUBLIC}
    for name, module in cnnviz._PUBLIC.items():
        assert getattr(cnnviz, name) is getattr(importlib.import_module(module), name), name
