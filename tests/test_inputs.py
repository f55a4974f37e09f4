"""Which files a run reads and the output folder each one's grids go to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnnviz.errors import OptionError
from cnnviz.inputs.gather import Input, gather_inputs


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_a_folder_is_searched_recursively_and_its_tree_mirrored(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _touch(
        photos, "b.png", "a.JPG", "notes.txt", "x/cat.jpg", "y/cat.jpg", "y/deep/dog.webp", ".cache/c.png", "x/.d.png"
    )

    found = gather_inputs([photos])

    assert found == [
        Input(str(photos / "a.JPG"), "a"),
        Input(str(photos / "b.png"), "b"),
        Input(str(photos / "x" / "cat.jpg"), "x/cat"),
        Input(str(photos / "y" / "cat.jpg"), "y/cat"),
        Input(str(photos / "y" / "deep" / "dog.webp"), "y/deep/dog"),
    ]


def test_clashing_keys_get_numbers_and_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    _touch(tmp_path, "one/cat.jpg", "one/cat.png", "two/cat.jpg")
    one, two = tmp_path / "one", tmp_path / "two"

    found = gather_inputs([one, two / "cat.jpg", one / "cat.jpg"])

    assert [(Path(i.path).relative_to(tmp_path).as_posix(), i.key) for i in found] == [
        ("one/cat.jpg", "cat"),
        ("one/cat.png", "cat-2"),
        ("two/cat.jpg", "cat-3"),
    ]


def test_a_glob_is_expanded_by_cnnviz_below_its_plain_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path, "data/a/1.png", "data/b/2.png", "data/b/3.txt", "data/top.png")
    monkeypatch.chdir(tmp_path)

    found = gather_inputs(["data/**/*.png"])

    assert found == [
        Input(os.path.join("data", "a", "1.png"), "a/1"),
        Input(os.path.join("data", "b", "2.png"), "b/2"),
        Input(os.path.join("data", "top.png"), "top"),
    ]
    assert [i.key for i in gather_inputs(["data/?/*.png"])] == ["a/1", "b/2"]


def test_the_output_folder_inside_an_input_folder_is_left_out(tmp_path: Path) -> None:
    _touch(tmp_path, "cat.png", "cnnviz_out/shapes/cat/edges.png")

    assert gather_inputs([tmp_path], exclude=tmp_path / "cnnviz_out") == [Input(str(tmp_path / "cat.png"), "cat")]


def test_names_that_find_nothing_are_option_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _touch(tmp_path, "empty/readme.txt")

    with pytest.raises(OptionError, match=r"^folder .*empty holds no image files$"):
        gather_inputs([tmp_path / "empty"])
    with pytest.raises(OptionError, match=r"^no such file or folder: .*missing\.png$"):
        gather_inputs([tmp_path / "missing.png"])
    with pytest.raises(OptionError, match=r"^no image files match .*\*\.gif$"):
        gather_inputs([f"{tmp_path}/*.gif"])
