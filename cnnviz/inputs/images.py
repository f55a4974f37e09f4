"""Decode image files with Pillow into float pixel arrays of the channel count and size a model takes."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from cnnviz.errors import ImageLoadError, OptionError

#: The longest side an image is given to a model whose input size is free, unless a size is asked for.
MAX_FREE_SIDE = 512
#: The shortest side such an image is enlarged to, so that a thumbnail still outlasts the model's kernels.
MIN_FREE_SIDE = 32

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


def input_suffixes() -> set[str]:
    """The file endings of inputs: every format Pillow can open, and ``.npy`` arrays."""
    Image.init()
    return {suffix.lower() for suffix in Image.registered_extensions()} | {".npy"}


#: Where :func:`read_image` keeps a multi-page image's pages, in the image's ``info``.
PAGES = "cnnviz_pages"


def read_image(path: str | os.PathLike[str], data: bytes | None = None) -> Image.Image:
    """Open and fully decode an image file, upright according to its EXIF orientation.

    Args:
        path: the file; with ``data``, only its name, for messages.
        data: the file's bytes, read already (from an object store, by a worker of the Ray engine).

    Raises:
        ImageLoadError: the file is missing, empty, truncated, not an image, or a decompression bomb.
    """
    if data is None:
        path = Path(path)
        if not path.is_file():
            raise ImageLoadError(f"{path}: no such file")
    if (len(data) if data is not None else Path(path).stat().st_size) == 0:
        raise ImageLoadError(f"{os.fspath(path)}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat both as the bomb they may be.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else path) as image:
                image.load()
                pages = (
                    [page.copy() for page in ImageSequence.Iterator(image)] if getattr(image, "n_frames", 1) > 1 else []
                )
                upright = ImageOps.exif_transpose(image)
                if pages:  # a multi-page TIFF: a multispectral model takes one page per channel (:func:`_bands`)
                    upright.info[PAGES] = pages
                return upright
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{path}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{path}: not an image Pillow can read") from exc
    except Exception as exc:  # Pillow's decoders raise many kinds (OSError, SyntaxError, struct.error, ...)
        raise ImageLoadError(f"{path}: the image is damaged or truncated ({exc})") from exc


def _wide_to_float(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit images as an "F" image of 0..255 values (Pillow's convert("L") clips them instead)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(np.asarray(image, dtype=np.float32) / 257.0, mode="F")
    if image.mode == "I":
        # 32-bit integer pixels hold 8-bit, 16-bit or wider data: scale by the range the values fit in.
        pixels = np.asarray(image, dtype=np.float64)
        top = float(pixels.max()) if pixels.size else 0.0
        divisor = 1.0 if top <= 255 else max(257.0, top / 255.0)
        return Image.fromarray((pixels / divisor).astype(np.float32), mode="F")
    if image.mode == "F":
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float32))
        if pixels.size and float(pixels.max()) <= 1.0:
            return Image.fromarray(pixels * 255.0, mode="F")
    return image


def _converted(image: Image.Image, channels: int) -> Image.Image:
    """An image whose wide modes are already 0..255 floats (converting twice would scale a dark 0..1 float image up
    twice) in a mode that resizes smoothly: "F" for those, else "L" or "RGB", transparency over white."""
    if channels not in (1, 3):
        raise ImageLoadError(f"the model takes {channels}-channel input; cnnviz feeds images as 1 or 3 channels")
    if image.mode == "F":
        return image
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        image = Image.alpha_composite(white, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _bands(image: Image.Image, channels: int) -> list[Image.Image]:
    """A multi-page image's pages, one per channel, for a model of ``channels`` other than 1 or 3 (a multispectral
    TIFF: one grey page per band).

    Raises:
        ImageLoadError: the image has another number of pages.
    """
    pages = image.info.get(PAGES) or [image]
    if len(pages) != channels:
        raise ImageLoadError(
            f"the model takes {channels}-channel input: give a TIFF of {channels} pages, one per channel, or a .npy "
            f"array (this image has {len(pages)} page{'' if len(pages) == 1 else 's'})"
        )
    return [_wide_to_float(page).convert("F") for page in pages]


def _to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A converted image (:func:`_converted`) as a float32 ``(rows, cols, channels)`` array."""
    pixels = np.asarray(image, dtype=np.float32)
    if image.mode == "F":
        pixels = np.clip(pixels, 0.0, 255.0)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.repeat(pixels, channels, axis=-1) if pixels.shape[-1] != channels else pixels


#: How an image is given a fixed input size of another shape (``--fit``).
FITS = ("crop", "pad", "stretch")
#: How an image gets a fixed input size of another shape unless asked otherwise: as ImageNet models are evaluated.
DEFAULT_FIT = FITS[0]


def check_fit(fit: str) -> None:
    """Raise :class:`OptionError` unless ``fit`` is one of :data:`FITS`."""
    if fit not in FITS:
        raise OptionError(f"unknown fit '{fit}'; choose one of: {', '.join(FITS)}")


def fit_pixels(
    image: Image.Image,
    channels: int,
    rows: int,
    cols: int,
    fit: str = DEFAULT_FIT,
    pad: Sequence[float] | float = 0.0,
) -> np.ndarray:
    """Resize an image to ``rows`` x ``cols`` and convert it to a float32 ``(rows, cols, channels)`` array.

    Args:
        image: any Pillow image.
        channels: 1 or 3; other counts read one page of a multi-page TIFF per channel.
        rows, cols: the size to reach.
        fit: for an image of another shape, ``crop`` scales its short side to fit and cuts the ends of the long
            side, centred (no distortion, as ImageNet models are evaluated); ``pad`` scales its long side to fit
            and fills the rest with ``pad`` (no distortion, nothing lost); ``stretch`` scales each side on its own.
        pad: the padding's pixel value, 0..255, one for all channels or one per channel.

    Raises:
        OptionError: an unknown ``fit``.
        ImageLoadError: ``channels`` is neither 1 nor 3 and the image has another number of pages.

    >>> fit_pixels(Image.new("L", (2, 2), 200), 1, 4, 2, fit="pad", pad=7)[:, 0, 0].tolist()  # rows of column 0
    [7.0, 200.0, 200.0, 7.0]
    """
    check_fit(fit)
    if channels not in (1, 3):
        values = np.broadcast_to(np.ravel(np.asarray(pad, dtype=np.float32)), (channels,))
        bands = [
            fit_pixels(band, 1, rows, cols, fit, float(values[n]))[..., 0]
            for n, band in enumerate(_bands(image, channels))
        ]
        return np.stack(bands, axis=-1)
    image = _converted(_wide_to_float(image), channels)
    # Pillow takes sizes as (width, height): columns first.
    if fit == "stretch":
        return _to_array(image.resize((cols, rows), Image.Resampling.BILINEAR), channels)
    if fit == "crop":
        return _to_array(ImageOps.fit(image, (cols, rows), Image.Resampling.BILINEAR), channels)
    scale = min(rows / image.height, cols / image.width)
    inner_rows, inner_cols = max(1, round(image.height * scale)), max(1, round(image.width * scale))
    inner = _to_array(image.resize((inner_cols, inner_rows), Image.Resampling.BILINEAR), channels)
    values = np.broadcast_to(np.ravel(np.asarray(pad, dtype=np.float32)), (channels,))
    canvas = np.empty((rows, cols, channels), dtype=np.float32)
    canvas[...] = values
    top, left = (rows - inner_rows) // 2, (cols - inner_cols) // 2
    canvas[top : top + inner_rows, left : left + inner_cols] = inner
    return canvas


def target_size(
    image_size: tuple[int, int],
    model_size: tuple[int | None, int | None],
    size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The (rows, cols) an image is resized to.

    ``size`` wins when given; then the model's fixed size; a free model size takes the image's own size, scaled
    down so that its longer side is at most :data:`MAX_FREE_SIDE`, or up so that its shorter side is at least
    :data:`MIN_FREE_SIDE`.

    >>> target_size((300, 451), (None, None))
    (300, 451)
    >>> target_size((1000, 2000), (None, None))
    (256, 512)
    >>> target_size((3, 6), (None, None))
    (32, 64)
    >>> target_size((1000, 2000), (224, 224))
    (224, 224)
    """
    if size is not None:
        return size
    rows, cols = model_size
    image_rows, image_cols = image_size
    # Shrink to the longest side's cap, or enlarge to the shortest side's floor, but never past the cap.
    cap = MAX_FREE_SIDE / max(image_rows, image_cols)
    factor = max(min(1.0, cap), min(MIN_FREE_SIDE / min(image_rows, image_cols), cap))
    free_rows = max(1, round(image_rows * factor)) if rows is None else rows
    free_cols = max(1, round(image_cols * factor)) if cols is None else cols
    return free_rows, free_cols


def load_image(
    path: str | os.PathLike[str],
    channels: int = 3,
    model_size: tuple[int | None, int | None] = (None, None),
    size: tuple[int, int] | None = None,
    *,
    fit: str = DEFAULT_FIT,
    pad: Sequence[float] | float = 0.0,
    data: bytes | None = None,
) -> np.ndarray:
    """Read an image file as a float32 ``(rows, cols, channels)`` array of 0..255 values at the model's size.

    Args:
        path: the image file.
        channels: 1 for grayscale models, 3 for colour.
        model_size: the model's (rows, cols) input size; None entries are free.
        size: force this (rows, cols) size.
        fit: how an image of another shape gets a fixed size: ``crop``, ``pad`` or ``stretch``
            (see :func:`fit_pixels`). A free model size keeps the image's own shape.
        pad: with ``pad``, the padding's pixel value (one, or one per channel).
        data: the file's bytes, when they were read already (see :func:`read_image`).

    Raises:
        ImageLoadError: the file cannot be read (the message names it).
        OptionError: an unknown ``fit``.
    """
    image = read_image(path, data)
    rows, cols = target_size((image.height, image.width), model_size, size)
    return fit_pixels(image, channels, rows, cols, fit, pad)
