"""GIFs from per-step grids: frames in step order, padded to one size, and the folder layout mirrored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from cnnviz.errors import ImageLoadError, OptionError
from cnnviz.output.animate import animate, animate_folder, step_folders


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _frames(gif: Path) -> list[np.ndarray]:
    with Image.open(gif) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def test_frames_keep_their_order_and_colours_and_smaller_ones_sit_top_left_on_white(tmp_path: Path) -> None:
    red = _png(tmp_path / "a.png", (255, 0, 0))
    blue = _png(tmp_path / "b.png", (0, 0, 255), size=(4, 3))
    gif = animate([red, blue], tmp_path / "out" / "x.gif", duration_ms=200)
    frames = _frames(gif)
    assert len(frames) == 2
    assert frames[0].shape == frames[1].shape == (4, 6, 3)
    assert (frames[0] == [255, 0, 0]).all()
    assert (frames[1][:3, :4] == [0, 0, 255]).all()
    assert (frames[1][3:, :] == 255).all() and (frames[1][:, 4:] == 255).all()
    with Image.open(gif) as image:
        assert image.info["duration"] == 200 and image.info["loop"] == 0


def test_step_folders_sort_by_number_and_ignore_other_folders(tmp_path: Path) -> None:
    for name in ["epoch_10", "epoch_9", "epoch_001", "notes", "step_2x"]:
        (tmp_path / name).mkdir()
    (tmp_path / "epoch_5").write_text("a file, not a folder")
    assert [path.name for path in step_folders(tmp_path)] == ["epoch_001", "epoch_9", "epoch_10"]


def test_animate_folder_makes_one_gif_per_grid_mirroring_nested_names(tmp_path: Path) -> None:
    colours = [(10, 10, 10), (100, 100, 100), (200, 200, 200)]
    for number, colour in enumerate(colours, start=1):
        _png(tmp_path / f"epoch_{number:03d}" / "filters_conv2d.png", colour)
        _png(tmp_path / f"epoch_{number:03d}" / "cat" / "conv2d.png", colour)
    _png(tmp_path / "epoch_002" / "only_once.png", (0, 255, 0))
    written = animate_folder(tmp_path)
    assert sorted(path.relative_to(tmp_path).as_posix() for path in written) == [
        "cat/conv2d.gif",
        "filters_conv2d.gif",
        "only_once.gif",
    ]
    frames = _frames(tmp_path / "filters_conv2d.gif")
    assert [tuple(frame[0, 0]) for frame in frames] == colours
    assert len(_frames(tmp_path / "only_once.gif")) == 1


def test_what_cannot_be_animated_is_said(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="no step folders"):
        animate_folder(tmp_path)
    with pytest.raises(OptionError, match="no pictures"):
        animate([], tmp_path / "x.gif")
    with pytest.raises(OptionError, match="at least 1 ms"):
        animate([_png(tmp_path / "a.png", (0, 0, 0))], tmp_path / "x.gif", duration_ms=0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match="broken.png"):
        animate([broken], tmp_path / "x.gif")


def test_the_animate_command_writes_and_lists_the_gifs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cnnviz.cli import main

    for number in (1, 2):
        _png(tmp_path / "viz" / f"epoch_{number}" / "filters_c.png", (number * 50, 0, 0))
    result = CliRunner().invoke(
        main, ["animate", str(tmp_path / "viz"), "--duration", "300", "-o", str(tmp_path / "g")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote 1 GIF in {tmp_path / 'g'}", f"  {tmp_path / 'g' / 'filters_c.gif'}"]
    assert len(_frames(tmp_path / "g" / "filters_c.gif")) == 2
    empty = CliRunner().invoke(main, ["animate", str(tmp_path)])
    assert empty.exit_code == 2 and "no step folders" in empty.output
