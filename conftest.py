"""What every test collected here shares, the doctests of the package and of README.md included.

Doctest collection of the package: a backend module whose framework is not installed is left out (it would
fail on its first import line; cnnviz imports it only when Keras runs on that backend).

Every test runs in a scratch folder of its own, never in the folder pytest was started from: a user who ran the
README's main command first has a ``cnnviz_out/`` there (and may have a file or folder named like a model), and a
test that runs a command without ``-o`` would read or overwrite it. The scratch folder holds a link to the
project's ``sample_images/``, so the README's examples read the sample photos by the path a user types.
"""

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

collect_ignore = [f"cnnviz/backends/{name}.py" for name in ("jax",) if importlib.util.find_spec(name) is None]

SAMPLE_IMAGES = Path(__file__).resolve().parent / "sample_images"


def _scratch_folder(factory: pytest.TempPathFactory, name: str) -> Path:
    folder = factory.mktemp(name)
    (folder / "sample_images").symlink_to(SAMPLE_IMAGES, target_is_directory=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _session_in_a_scratch_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For what the session's and modules' fixtures start (a local Ray cluster's workers keep the folder they
    were started in): these come before any test's own folder."""
    started = os.getcwd()
    folder = _scratch_folder(tmp_path_factory, "session_cwd")
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(started)


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = _scratch_folder(tmp_path_factory, "cwd")
    monkeypatch.chdir(folder)
    yield folder
