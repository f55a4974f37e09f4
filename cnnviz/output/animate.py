"""Animated GIFs from grids drawn at successive steps of training: watch filters and feature maps change.

A run that draws the same grids again and again (once per epoch) leaves one folder per step, ``epoch_001``,
``epoch_002``, ..., each with the same file names inside. :func:`animate_folder` turns every file name found in
them into one looping GIF beside the step folders: ``viz/epoch_*/filters_conv2d.png`` becomes
``viz/filters_conv2d.gif`` and ``viz/epoch_*/cat/conv2d.png`` becomes ``viz/cat/conv2d.gif``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from cnnviz.errors import ImageLoadError, OptionError
from cnnviz.output.files import save_bytes

#: Step folders: a word for the unit and a number, ``epoch_003``, ``step12``, ``batch-40``.
STEP_FOLDER = re.compile(r"^(?:epoch|step|batch)[_-]?(\d+)$")
DEFAULT_DURATION_MS = 500


def step_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """The step folders directly inside ``folder``, in the order of their numbers (``epoch_10`` after
    ``epoch_9``)."""
    found = [
        (int(match.group(1)), path)
        for path in Path(folder).iterdir()
        if path.is_dir() and (match := STEP_FOLDER.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def animate(
    frames: Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str],
    *,
    duration_ms: int = DEFAULT_DURATION_MS,
) -> Path:
    """Write the pictures ``frames``, in order, as one looping GIF at ``target`` (atomically).

    Frames of different sizes (a header that grew by a few pixels) are placed at the top left of a white canvas
    as large as the largest. A frame identical to the one before it is merged into it by the GIF writer, which
    then shows it for longer.

    Raises:
        OptionError: no frames, or a duration below 1 ms.
        ImageLoadError: a frame cannot be read.
    """
    if not frames:
        raise OptionError("no pictures to animate")
    if duration_ms < 1:
        raise OptionError(f"a frame must show for at least 1 ms, got {duration_ms}")
    pictures = [_read(frame) for frame in frames]
    width = max(picture.width for picture in pictures)
    height = max(picture.height for picture in pictures)
    canvases = []
    for picture in pictures:
        canvas = Image.new("RGB", (width, height), "white")
        canvas.paste(picture, (0, 0))
        canvases.append(canvas)
    buffer = io.BytesIO()
    canvases[0].save(
        buffer, format="GIF", save_all=True, append_images=canvases[1:], duration=duration_ms, loop=0, disposal=1
    )
    return save_bytes(buffer.getvalue(), target)


def _read(path: str | os.PathLike[str]) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageLoadError(f"cannot read frame {os.fspath(path)}: {exc}") from exc


def animate_folder(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    duration_ms: int = DEFAULT_DURATION_MS,
) -> list[Path]:
    """One GIF per PNG file name found in the step folders of ``folder`` (see :func:`step_folders`), its frames
    in step order; written under ``out`` (``folder`` by default) at the file's path inside a step folder.

    Returns:
        The GIFs written.

    Raises:
        OptionError: ``folder`` holds no step folders.
    """
    steps = step_folders(folder)
    if not steps:
        raise OptionError(f"no step folders (epoch_001, epoch_002, ...) in {os.fspath(folder)}")
    names = sorted({png.relative_to(step) for step in steps for png in step.rglob("*.png")})
    target = Path(out) if out is not None else Path(folder)
    written = []
    for name in names:
        frames = [step / name for step in steps if (step / name).is_file()]
        written.append(animate(frames, (target / name).with_suffix(".gif"), duration_ms=duration_ms))
    return written
