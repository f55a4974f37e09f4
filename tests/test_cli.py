"""The command line, through click's CliRunner and once through the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnviz import feature_maps, load_model
from cnnviz.cli import main
from cnnviz.draw.render import INK, LEVELS, SEPARATOR
from tests.conftest import LINE_IMAGE, ROOT, line_detector_2d, nested_sequential, printed, write_image


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def line_file(keras, tmp_path: Path) -> str:
    path = tmp_path / "line.keras"
    line_detector_2d(keras, filters=2).save(path)
    return str(path)


@pytest.fixture
def line_picture(tmp_path: Path) -> Path:
    return write_image(tmp_path / "line.png", (LINE_IMAGE * 255).astype(np.uint8))


def test_layers_prints_a_table(line_file: str) -> None:
    result = run("layers", "--model", line_file)

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "line.keras: 1 conv layer",
        "name      kind    kernel  output  params",
        "detector  Conv2D  3x3     6x6x2       20",
        "total conv params: 20",
    ]


def test_layers_json_for_scripts_on_the_bundled_model() -> None:
    result = run("layers", "--model", "shapes", "--json")

    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [(r["name"], r["kernel"], r["output"], r["params"]) for r in rows] == [
        ("edges", "5x5", "?x?x8", 600),
        ("parts", "3x3", "?x?x16", 1168),
        ("shapes", "3x3", "?x?x32", 4640),
    ]


def test_filters_png_pixels_are_the_line_detector(line_file: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("filters", "--model", line_file, "--layer", "detector", "--scale", "1", "--no-labels", "-o", str(out))

    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out / 'line' / 'filters_detector.png'}\n"  # one folder per model
    image = Image.open(out / "line" / "filters_detector.png")
    assert image.mode == "P"
    pixels = np.asarray(image)
    # two filters (detector x1 and x2) side by side, global min-max: 0 -> level 0, 2 -> top level
    top = LEVELS - 1
    expected = np.zeros((3, 9), dtype=np.uint8)
    expected[:, 1] = round(top / 2)
    expected[:, 3:6] = SEPARATOR  # the gap between filters
    expected[:, 7] = top
    np.testing.assert_array_equal(pixels, expected)


def test_featuremaps_goes_on_past_a_broken_image_and_fails_at_the_end(
    line_file: str, line_picture: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    other = write_image(tmp_path / "other.png", np.full((8, 8), 255, dtype=np.uint8))
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main, ["featuremaps", str(line_picture), str(broken), str(other), "--model", line_file, "-o", str(out)]
    )

    assert result.exit_code == 1
    assert f"Error: {broken}: not an image Pillow can read" in result.stderr
    assert (out / "line" / "line" / "detector.png").is_file() and (out / "line" / "other" / "detector.png").is_file()
    assert "preprocessing: scale255" in result.stdout
    assert f"wrote 2 grids for 2 images to {out / 'line' / '<image>'}/" in result.stdout.splitlines()
    assert result.stderr.splitlines()[-1] == "Error: 1 of 3 inputs failed"
    manifest = json.loads((out / "line" / "manifest.json").read_text())
    assert sorted(manifest["images"]) == sorted([str(line_picture), str(other)])
    assert manifest["images"][str(line_picture)]["layers"]["detector"]["max"] == pytest.approx(6.0)
    assert list(manifest["failures"]) == [str(broken)]


def test_featuremaps_grid_pixels_for_the_line_image(line_file: str, line_picture: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "featuremaps",
        str(line_picture),
        "--model",
        line_file,
        "--scale",
        "1",
        "--no-labels",
        "--norm",
        "map",
        "-o",
        str(out),
    )

    assert result.exit_code == 0, result.output
    pixels = np.asarray(Image.open(out / "line" / "line" / "detector.png"))
    assert pixels.shape == (6, 13)  # two 6x6 maps side by side with a separator
    expected_tile = np.zeros((6, 6), dtype=np.uint8)
    expected_tile[:, 2:4] = LEVELS - 1
    np.testing.assert_array_equal(pixels[:, :6], expected_tile)
    np.testing.assert_array_equal(pixels[:, 7:], expected_tile)


def test_nested_layer_names_and_raw_output(keras, tmp_path: Path, rgb_image: Path) -> None:
    model_path = tmp_path / "transfer.keras"
    nested_sequential(keras).save(model_path)
    out = tmp_path / "out"

    result = run(
        "featuremaps",
        str(rgb_image),
        "--model",
        str(model_path),
        "--layer",
        "base/conv_a",
        "--layer",
        "conv_c",
        "--save-raw",
        "-o",
        str(out),
    )

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "transfer" / "photo").iterdir()) == [
        "base__conv_a.npy",
        "base__conv_a.png",
        "base__conv_c.npy",
        "base__conv_c.png",
    ]
    raw = np.load(out / "transfer" / "photo" / "base__conv_c.npy")
    expected = feature_maps(load_model(model_path), [rgb_image], ["base/conv_c"])["base/conv_c"][0]
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-6)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_same_input_same_bytes(line_file: str, line_picture: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert run("featuremaps", str(line_picture), "--model", line_file, "-o", str(tmp_path / name)).exit_code == 0

    first = (tmp_path / "a" / "line" / "line" / "detector.png").read_bytes()
    assert first == (tmp_path / "b" / "line" / "line" / "detector.png").read_bytes()


def test_unknown_layer_is_an_error_listing_the_conv_layers(line_file: str, line_picture: Path) -> None:
    result = CliRunner().invoke(main, ["featuremaps", str(line_picture), "--model", line_file, "--layer", "detektor"])

    assert result.exit_code == 1
    assert result.stderr == "Error: no layer 'detektor'; conv layers are: detector\n"


def test_verbose_shows_the_traceback(line_file: str) -> None:
    result = CliRunner().invoke(main, ["filters", "--model", line_file, "--layer", "nope", "--verbose"])

    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "LayerNotFound" in result.stderr
    assert result.stderr.rstrip().endswith("Error: no layer 'nope'; conv layers are: detector")


@pytest.mark.parametrize(
    "args",
    [
        ["featuremaps"],
        ["featuremaps", "x.png", "--norm", "bogus"],
        ["filters", "--scale", "0"],
        ["layers", "--size", "0x3"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Error" in result.stderr and "Traceback" not in result.stderr


def test_help_and_version() -> None:
    assert run("-h").output == run("--help").output
    assert "cnnviz featuremaps sample_images/cat.jpg --model shapes" in run("--help").output
    for command in ("layers", "filters", "featuremaps"):
        assert "Examples:" in run(command, "-h").output
    assert run("--version").output == "cnnviz, version 0.1.0\n"


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from cnnviz.cli import main\n"
        "try:\n    main(['featuremaps', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('TF' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'clean')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("clean")


def installed_command() -> str:
    """The ``cnnviz`` script installed beside the Python running the tests (a venv's, pyenv's), else on PATH."""
    beside = Path(sys.executable).parent / "cnnviz"
    found = str(beside) if beside.is_file() else shutil.which("cnnviz")
    assert found, "the cnnviz entry point is not installed: pip install -e ."
    return found


def test_installed_entry_point_runs_the_readme_command_quietly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CNNVIZ_TF_LOGS")}
    done = subprocess.run(
        [
            installed_command(),
            "featuremaps",
            str(ROOT / "sample_images" / "cat.jpg"),
            "--model",
            "shapes",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no TensorFlow start-up lines
    assert printed(done.stdout).splitlines() == [
        "preprocessing: none (raw 0..255 pixels: the model starts with a Rescaling layer)",
        f"wrote 3 grids to {tmp_path / 'shapes' / 'cat'}",
        f"manifest: {tmp_path / 'shapes' / 'manifest.json'}",
    ]
    picture = Image.open(tmp_path / "shapes" / "cat" / "edges.png")
    assert picture.mode == "P" and picture.width > 451


def test_images_with_the_same_name_get_distinct_folders(line_file: str, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "pic.png", (LINE_IMAGE * 255).astype(np.uint8))
    out = tmp_path / "out"

    result = run("featuremaps", str(tmp_path / "a"), str(tmp_path / "b"), "--model", line_file, "-o", str(out))

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "line").iterdir()) == ["manifest.json", "pic", "pic-2"]
    manifest = json.loads((out / "line" / "manifest.json").read_text())
    assert manifest["images"][str(tmp_path / "b" / "pic.png")]["layers"]["detector"]["png"] == str(
        out / "line" / "pic-2" / "detector.png"
    )


def test_layers_size_fixes_free_input_sizes_and_refuses_a_different_fixed_one(line_file: str) -> None:
    sized = run("layers", "--model", "shapes", "--size", "64x96", "--json")
    assert [row["output"] for row in json.loads(sized.output)] == ["60x92x8", "30x46x16", "15x23x32"]

    refused = CliRunner().invoke(main, ["layers", "--model", line_file, "--size", "16"])
    assert refused.exit_code == 2  # a usage error, found once the model is known
    assert refused.stderr.endswith(
        "Error: model 'line_detector' takes 8x8x1 input; --size 16x16 fits only models of free input size\n"
    )


def test_a_layer_asked_for_twice_is_drawn_once(line_file: str, line_picture: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "featuremaps", str(line_picture), "--model", line_file, "-l", "detector", "-l", "detector", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 1 grid to {out / 'line' / 'line'}" in result.output.splitlines()


def test_an_input_the_model_cannot_run_on_is_reported_and_the_run_goes_on(
    keras, tmp_path: Path, line_picture: Path
) -> None:
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 5, name="wide")], name="free")
    path = tmp_path / "free.keras"
    model.save(path)
    np.save(tmp_path / "small.npy", np.zeros((3, 3, 1), dtype=np.float32))
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main, ["featuremaps", str(tmp_path / "small.npy"), str(line_picture), "--model", str(path), "-o", str(out)]
    )

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'small.npy'}: the model could not run on it at 3x3x1: ")
    # TensorFlow's words, or JAX's
    assert "Negative dimension size" in result.stderr or "check the input shape" in result.stderr
    assert "node" not in result.stderr
    assert result.stderr.splitlines()[1:] == ["Error: 1 of 2 inputs failed"]
    assert (out / "free" / "line" / "wide.png").is_file()

    verbose = CliRunner().invoke(
        main, ["featuremaps", str(tmp_path / "small.npy"), "--model", str(path), "-o", str(out), "--verbose"]
    )
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr and "ForwardPassError" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1].startswith(f"Error: {tmp_path / 'small.npy'}: the model could")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("--filters=9", "Error: filter 9 is out of range: there are 2 (0..1)\n"),
        (
            "--channels=a:b",
            "Error: Invalid value for '--channels': cannot read channel selection 'a:b': use forms like 0:16, 3, "
            "1,4,7 or ::2\n",
        ),
        ("--filters=5:9", "Error: filter selection '5:9' selects nothing out of 2\n"),
        ("--filters=::0", "Error: Invalid value for '--filters': cannot read filter selection '::0'"),
    ],
)
def test_bad_filter_selections_are_usage_errors(line_file: str, selection: str, message: str) -> None:
    result = CliRunner().invoke(main, ["filters", "--model", line_file, "--layer", "detector", selection])
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ") and "filters [OPTIONS]" in result.stderr
    assert message in result.stderr


def test_filters_pattern_writes_one_grid_per_matching_layer(keras, tmp_path: Path) -> None:
    path = tmp_path / "two.keras"
    keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv_one"), keras.layers.Conv2D(2, 3, name="conv_two")]
    ).save(path)

    result = run("filters", "--model", str(path), "--layer", "conv_*", "-o", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"wrote {tmp_path / 'out' / 'two' / 'filters_conv_one.png'}",
        f"wrote {tmp_path / 'out' / 'two' / 'filters_conv_two.png'}",
    ]


def test_an_output_file_that_cannot_be_written_is_an_error_not_a_traceback(
    line_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    out = tmp_path / "out"

    result = CliRunner().invoke(main, ["filters", "--model", line_file, "--layer", "detector", "-o", str(out)])

    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write {out / 'line' / 'filters_detector.png'}: No space left on device\n"
    assert list((out / "line").iterdir()) == []  # the temporary file is gone too


@pytest.fixture
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mistakes that can be found without the model must be found before it is loaded (seconds, for TensorFlow)."""

    def too_late(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the model was loaded before the mistake was reported")

    monkeypatch.setattr("cnnviz.engines.naming.load_model", too_late)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["featuremaps", "missing.jpg"],
            2,
            "Error: no such file or folder: missing.jpg\n",
        ),
        (
            ["featuremaps", "{image}", "--cmap", "nosuch"],
            2,
            "Error: Invalid value for '--cmap': unknown colormap 'nosuch'",
        ),
        (["filters", "--cmap", "nosuch"], 2, "Error: Invalid value for '--cmap': unknown colormap 'nosuch'"),
        (
            ["filters", "--filters", "abc"],
            2,
            "Error: Invalid value for '--filters': cannot read filter selection 'abc'",
        ),
        (
            ["featuremaps", "{image}", "-o", "{blocker}/out"],
            1,
            "Error: cannot write into {blocker}/out/shapes: {blocker} is a file, not a folder\n",
        ),
        (
            ["filters", "-o", "{blocker}"],
            2,
            "Error: Invalid value for '--output' / '-o': Directory '{blocker}' is a file.\n",
        ),
    ],
)
def test_mistakes_are_reported_before_the_model_is_loaded(
    no_model_loading: None, line_picture: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should go")
    values = {"image": str(line_picture), "blocker": str(blocker)}

    result = CliRunner().invoke(main, [arg.format(**values) for arg in args] + ["--model", "shapes"])

    assert result.exit_code == code
    assert message.format(**values) in result.stderr
    assert result.stdout == ""


def test_layers_of_an_application_needs_no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("layers must not download weights")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)

    result = run("layers")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "vgg16: 13 conv layers"
    assert lines[2].split() == ["block1_conv1", "Conv2D", "3x3", "224x224x64", "1,792"]
    assert lines[-1] == "total conv params: 14,714,688"


def test_filters_without_a_layer_draws_the_first_conv_layer(line_file: str, tmp_path: Path) -> None:
    result = run("filters", "--model", line_file, "-o", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "note: no --layer given: drawing the first conv layer, detector",
        f"wrote {tmp_path / 'line' / 'filters_detector.png'}",
    ]


def test_models_and_weights_keep_apart_and_the_manifest_keeps_earlier_runs(
    line_file: str, line_picture: Path, tmp_path: Path
) -> None:
    other = write_image(tmp_path / "other.png", np.full((8, 8), 255, dtype=np.uint8))
    out = tmp_path / "out"

    for image, model in ((line_picture, line_file), (other, line_file), (line_picture, "shapes")):
        result = run("featuremaps", str(image), "--model", model, "-o", str(out))
        assert result.exit_code == 0, result.output

    assert sorted(p.name for p in out.iterdir()) == ["line", "shapes"]
    line_manifest = json.loads((out / "line" / "manifest.json").read_text())
    assert line_manifest["model"] == "line.keras" and line_manifest["weights"] == "model file"
    assert sorted(line_manifest["images"]) == sorted([str(line_picture), str(other)])  # both runs
    assert line_manifest["images"][str(other)]["layers"]["detector"] == {
        "max": 6.0,  # all white (1.0 after x/255): every window sums to 3 in filter 0, 6 in filter 1 (x2)
        "min": 3.0,
        "norm": "map",
        "png": str(out / "line" / "other" / "detector.png"),
        "shape": [6, 6, 2],
    }
    assert line_manifest["images"][str(other)]["fit"] == "crop"  # fixed 8x8 input
    shapes_manifest = json.loads((out / "shapes" / "manifest.json").read_text())
    assert list(shapes_manifest["images"]) == [str(line_picture)]
    assert shapes_manifest["images"][str(line_picture)]["fit"] == "none"  # free input size: the picture's own
    assert list(shapes_manifest["images"][str(line_picture)]["layers"]) == ["edges", "parts", "shapes"]


def test_an_image_that_failed_before_and_works_now_leaves_the_failures(
    line_file: str, line_picture: Path, tmp_path: Path
) -> None:
    target = tmp_path / "late.png"
    target.write_text("not yet a picture")
    out = tmp_path / "out"
    first = CliRunner().invoke(main, ["featuremaps", str(target), "--model", line_file, "-o", str(out)])
    assert first.exit_code == 1
    assert printed(first.stdout) == (  # nothing written, so no "wrote" line
        "preprocessing: scale255 (x/255, the default for a model without its own rescaling)\n"
        "fit: crop (the short side fits, the long side's ends are cut off; --fit pad keeps the whole image)\n"
        f"manifest: {out / 'line' / 'manifest.json'}\n"
    )
    write_image(target, (LINE_IMAGE * 255).astype(np.uint8))

    second = run("featuremaps", str(target), "--model", line_file, "-o", str(out))

    assert second.exit_code == 0
    manifest = json.loads((out / "line" / "manifest.json").read_text())
    assert list(manifest["images"]) == [str(target)] and manifest["failures"] == {}


def test_random_weights_are_named_in_the_folder_and_the_manifest(tmp_path: Path) -> None:
    result = run(
        "featuremaps",
        str(ROOT / "sample_images" / "cat.jpg"),
        "--model",
        "mobilenetv3small",
        "--weights",
        "none",
        "--layer",
        "conv",
        "-o",
        str(tmp_path),
    )

    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "mobilenetv3small-random" / "manifest.json").read_text())
    assert (manifest["model"], manifest["weights"]) == ("mobilenetv3small (random weights)", "random")


def test_ctrl_c_exits_130_and_leaves_whole_files_and_a_manifest(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for number in range(400):
        write_image(images / f"{number:03d}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [installed_command(), "featuremaps", str(images), "--model", "shapes", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job starts its children with SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while process.poll() is None and not list((out / "shapes").glob("*/*.png")):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    manifest_path = out / "shapes" / "manifest.json"
    assert stderr.strip().endswith(f"Interrupted. What finished is listed in {manifest_path}")
    manifest = json.loads(manifest_path.read_text())
    on_disk = sorted(str(p) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    listed = sorted(layer["png"] for image in manifest["images"].values() for layer in image["layers"].values())
    assert 0 < len(listed) < 3 * 400  # stopped part way
    assert on_disk == listed  # no temporary or half-written file, and nothing unlisted
    for path in listed:
        Image.open(path).load()


def test_layers_does_not_load_weights_at_all(line_file: str, tmp_path: Path) -> None:
    misfit = tmp_path / "misfit.weights.h5"
    load_model(line_file).save_weights(misfit)

    result = run("layers", "--model", "shapes", "--weights", str(misfit))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "note: --weights is not loaded: layers, shapes and counts do not depend on weights",
        "shapes: 3 conv layers",
    ]


def test_tiles_are_numbered_by_default_and_no_index_drops_the_numbers(tmp_path: Path) -> None:
    image = write_image(tmp_path / "ramp.png", np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1)))
    for flag in ([], ["--no-index"]):
        result = run("featuremaps", str(image), "--model", "shapes", "--no-labels", *flag, "-o", str(tmp_path / "o"))
        assert result.exit_code == 0, result.output
        pixels = np.asarray(Image.open(tmp_path / "o" / "shapes" / "ramp" / "edges.png"))
        assert (pixels == INK).any() == (not flag)  # the numbers are the only ink in a bare grid


def test_two_models_with_one_file_name_get_their_own_folders(keras, tmp_path: Path, line_picture: Path) -> None:
    for folder, filters in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        line_detector_2d(keras, filters=filters).save(tmp_path / folder / "best.keras")
    out = tmp_path / "out"

    for folder in ("a", "b", "a"):
        model = str(tmp_path / folder / "best.keras")
        assert run("featuremaps", str(line_picture), "--model", model, "-o", str(out)).exit_code == 0
        assert run("filters", "--model", model, "-o", str(out)).exit_code == 0

    assert sorted(p.name for p in out.iterdir()) == ["best", "best-2"]
    first, second = (json.loads((out / name / "manifest.json").read_text()) for name in ("best", "best-2"))
    assert first["source"] == str(tmp_path / "a" / "best.keras")
    assert second["source"] == str(tmp_path / "b" / "best.keras")
    assert second["images"][str(line_picture)]["layers"]["detector"]["shape"] == [6, 6, 2]  # b's two filters
    assert first["filters"]["detector"] == {
        "kernels": [1, 1, 3, 3],
        "norm": "global",
        "png": str(out / "best" / "filters_detector.png"),
    }


def test_an_output_folder_that_refuses_files_is_reported_before_the_model_loads(
    no_model_loading: None, line_picture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def read_only(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # what a read-only mount answers, even to root

    result = CliRunner().invoke(main, ["featuremaps", str(line_picture), "--model", "shapes", "-o", str(tmp_path)])

    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write into {tmp_path / 'shapes'}: Read-only file system\n"


def test_the_cnnviz_process_freezes_what_it_loaded_and_a_call_from_python_does_not(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The console command runs main with WHOLE_PROCESS: after the model loads, the garbage collector's full passes
    leave everything so far alone (gc.freeze); main called from Python (here, a notebook) freezes nothing."""
    import gc

    import cnnviz.cli as cli
    from cnnviz.cli.common import WHOLE_PROCESS

    entries = []
    monkeypatch.setattr(cli, "supervise", lambda entry, argv: entries.append(entry))
    monkeypatch.setattr(sys, "argv", ["cnnviz", "layers", "--model", "shapes"])
    cli.run()
    assert entries[0].keywords == {"obj": {WHOLE_PROCESS: True}}

    assert gc.get_freeze_count() == 0
    assert CliRunner().invoke(main, ["layers", "--model", "shapes"]).exit_code == 0
    assert gc.get_freeze_count() == 0
    try:
        assert CliRunner().invoke(main, ["layers", "--model", "shapes"], obj={WHOLE_PROCESS: True}).exit_code == 0
        assert gc.get_freeze_count() > 100_000  # Keras and the model
    finally:
        gc.unfreeze()
