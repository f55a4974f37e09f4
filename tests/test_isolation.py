"""The tests run in a scratch folder, whatever folder pytest started in (the project's own root conftest.py)."""

from pathlib import Path

from click.testing import CliRunner

from cnnviz.cli import main
from tests.conftest import ROOT


def test_a_test_starts_in_an_empty_scratch_folder_outside_the_project() -> None:
    here = Path.cwd()

    assert ROOT not in (here, *here.parents)
    assert [path.name for path in here.iterdir()] == ["sample_images"]
    assert (here / "sample_images").resolve() == ROOT / "sample_images"


def test_a_command_without_an_output_folder_writes_into_the_scratch_folder() -> None:
    ran = CliRunner().invoke(main, ["featuremaps", "sample_images/cat.jpg", "-m", "shapes", "--layer", "edges", "-q"])

    assert ran.exit_code == 0, ran.output
    assert (Path.cwd() / "cnnviz_out" / "shapes" / "cat" / "edges.png").is_file()
