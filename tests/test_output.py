"""Writing files: atomically, readable by others, and failures reported without leftovers."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz import OutputError
from cnnviz.draw.render import Picture
from cnnviz.output.files import check_writable, save_npy, save_png
from cnnviz.output.manifest import model_folder, read_manifest, save_manifest


def _picture() -> Picture:
    entries = np.zeros((256, 3), dtype=np.uint8)
    entries[1] = (255, 0, 0)
    return Picture(np.array([[0, 1]], dtype=np.uint8), entries)


def test_png_goes_into_new_nested_folders_readable_by_everyone(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "grid.png"

    assert save_png(_picture(), target) == target

    assert np.asarray(Image.open(target).convert("RGB")).tolist() == [[[0, 0, 0], [255, 0, 0]]]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["grid.png"]  # no temporary file beside it


def test_a_failed_write_leaves_nothing_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)

    with pytest.raises(OutputError) as caught:
        save_npy(np.zeros(3), tmp_path / "maps.npy")

    assert str(caught.value) == f"cannot write {tmp_path / 'maps.npy'}: No space left on device"
    assert os.listdir(tmp_path) == []


def test_a_folder_that_cannot_hold_a_temporary_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)

    with pytest.raises(OutputError) as caught:
        save_png(_picture(), tmp_path / "grid.png")
    assert str(caught.value) == f"cannot write {tmp_path / 'grid.png'}: Read-only file system"


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)

    with pytest.raises(KeyboardInterrupt):
        save_png(_picture(), tmp_path / "grid.png")
    assert os.listdir(tmp_path) == []


def test_npy_files_hold_plain_arrays_only(tmp_path: Path) -> None:
    save_npy(np.arange(6, dtype=np.float32).reshape(2, 3), tmp_path / "maps.npy")

    np.testing.assert_array_equal(np.load(tmp_path / "maps.npy", allow_pickle=False), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match="allow_pickle"):
        save_npy(np.array([{"a": 1}], dtype=object), tmp_path / "objects.npy")  # would need pickle to read


def test_manifest_is_sorted_indented_json(tmp_path: Path) -> None:
    save_manifest({"model": "m", "images": {"b.png": 1, "a.png": [2]}}, tmp_path / "manifest.json")

    assert (tmp_path / "manifest.json").read_text() == (
        '{\n  "images": {\n    "a.png": [\n      2\n    ],\n    "b.png": 1\n  },\n  "model": "m"\n}\n'
    )
    assert read_manifest(tmp_path / "manifest.json")["model"] == "m"
    (tmp_path / "broken.json").write_text("{not json")
    assert read_manifest(tmp_path / "broken.json") == {} and read_manifest(tmp_path / "missing.json") == {}


def test_model_folders_take_a_number_when_the_name_is_taken(tmp_path: Path) -> None:
    save_manifest({"source": "/runs/a/best.h5"}, tmp_path / "best" / "manifest.json")
    save_manifest({"source": "/runs/b/best.h5"}, tmp_path / "best-2" / "manifest.json")

    assert model_folder(tmp_path, "best", "/runs/a/best.h5") == tmp_path / "best"
    assert model_folder(tmp_path, "best", "/runs/b/best.h5") == tmp_path / "best-2"
    assert model_folder(tmp_path, "best", "/runs/c/best.h5") == tmp_path / "best-3"
    assert model_folder(tmp_path, "vgg16", "vgg16 with imagenet") == tmp_path / "vgg16"


def test_check_writable_makes_the_folder_or_says_what_is_in_the_way(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deep")
    assert (tmp_path / "new" / "deep").is_dir() and os.listdir(tmp_path / "new" / "deep") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as caught:
        check_writable(tmp_path / "file" / "out")
    assert (
        str(caught.value)
        == f"cannot write into {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file, not a folder"
    )


def test_check_writable_passes_an_existing_folder_and_words_a_failing_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_writable(tmp_path)  # already there: fine, and left as it was
    assert os.listdir(tmp_path) == []

    def full_disk(**_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full_disk)
    with pytest.raises(OutputError) as caught:
        check_writable(tmp_path / "out")
    assert str(caught.value) == f"cannot write into {tmp_path / 'out'}: No space left on device"
