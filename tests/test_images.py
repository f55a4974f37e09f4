"""Decoding: every kind of bad file, and odd image modes converted correctly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz import ImageLoadError, load_image
from cnnviz.inputs.images import fit_pixels, target_size
from cnnviz.inputs.reader import ReadingSettings
from tests.conftest import write_image


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_truncated_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(_jpeg_bytes()[:400])

    with pytest.raises(ImageLoadError, match=rf"^{path}: the image is damaged or truncated"):
        load_image(path)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("hello, I am text")

    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == f"{path}: not an image Pillow can read"


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(ImageLoadError) as caught:
        load_image(empty)
    assert str(caught.value) == f"{empty}: the file is empty"
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "nowhere.png")
    assert str(caught.value) == f"{tmp_path / 'nowhere.png'}: no such file"


@pytest.mark.parametrize("pixels", [1000, 1500])  # over the limit, and over it by less than twice
def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pixels: int) -> None:
    path = write_image(tmp_path / "bomb.png", np.zeros((40, 40), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels)

    with pytest.raises(ImageLoadError, match=rf"^{path}: refused as a possible decompression bomb"):
        load_image(path)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent black: must come out white
    path = write_image(tmp_path / "alpha.png", rgba)

    pixels = load_image(path, channels=3, size=(2, 2))

    assert pixels.dtype == np.float32 and pixels.shape == (2, 2, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[0, 1].tolist() == [255, 255, 255]


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)

    gray = load_image(path, channels=1, size=(2, 2))
    rgb = load_image(path, channels=3, size=(2, 2))

    np.testing.assert_allclose(gray[..., 0], [[0, 100], [255, 200]], atol=1e-3)
    np.testing.assert_allclose(rgb[1, 1], [200, 200, 200], atol=1e-3)


def test_cmyk_palette_and_bilevel_images_convert(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # no black, full magenta and yellow: red
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)
    palette_image = Image.new("P", (2, 2), 1)
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette_image.save(tmp_path / "palette.png")
    Image.new("1", (2, 2), 1).save(tmp_path / "bilevel.png")

    red = load_image(tmp_path / "cmyk.jpg")
    assert red[0, 0, 0] > 240 and red[0, 0, 1] < 15 and red[0, 0, 2] < 15
    assert load_image(tmp_path / "palette.png")[0, 0].tolist() == [10, 200, 30]
    assert load_image(tmp_path / "bilevel.png", channels=1)[0, 0].tolist() == [255]


def test_palette_with_transparency_goes_over_white(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    image.save(tmp_path / "t.png", transparency=0)

    pixels = load_image(tmp_path / "t.png", size=(1, 2))

    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 1].tolist() == [0, 255, 0]


def test_resize_to_model_size_and_free_size_cap(tmp_path: Path) -> None:
    path = write_image(tmp_path / "wide.png", np.zeros((100, 1000, 3), dtype=np.uint8))

    assert load_image(path, 3, (32, 48)).shape == (32, 48, 3)
    assert load_image(path, 3, (None, None)).shape == (51, 512, 3)
    assert load_image(path, 1, (None, None), size=(20, 30)).shape == (20, 30, 1)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)

    assert load_image(tmp_path / "rotated.jpg", 3, (None, None)).shape == (64, 32, 3)  # upright, then enlarged


def test_four_channel_models_are_refused(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.png", np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match="4-channel"):
        load_image(path, channels=4)


def test_thirty_two_bit_integer_images_are_scaled_by_their_range(tmp_path: Path) -> None:
    eight = Image.fromarray(np.array([[0, 200]], dtype=np.int32), mode="I")
    sixteen = Image.fromarray(np.array([[0, 257 * 200]], dtype=np.int32), mode="I")
    eight.save(tmp_path / "eight.tif")
    sixteen.save(tmp_path / "sixteen.tif")

    assert load_image(tmp_path / "eight.tif", 1, (None, None), size=(1, 2))[0, :, 0].tolist() == [0, 200]
    np.testing.assert_allclose(load_image(tmp_path / "sixteen.tif", 1, (None, None), size=(1, 2))[0, :, 0], [0, 200])


def test_tiny_images_are_enlarged_for_free_size_models(tmp_path: Path) -> None:
    path = write_image(tmp_path / "tiny.png", np.zeros((3, 6, 3), dtype=np.uint8))
    assert load_image(path, 3, (None, None)).shape == (32, 64, 3)


def test_a_dark_float_image_is_scaled_once(tmp_path: Path) -> None:
    # 0..1 floats whose brightest pixel is below 1/255: scaled to 0..255 once, not again
    Image.fromarray(np.array([[0.0, 0.002]], dtype=np.float32), mode="F").save(tmp_path / "dark.tif")

    pixels = load_image(tmp_path / "dark.tif", 1, (None, None), size=(1, 2))

    np.testing.assert_allclose(pixels[0, :, 0], [0.0, 0.51], atol=1e-4)


def test_rgb_and_gray_pngs_with_a_transparent_colour_go_over_white(tmp_path: Path) -> None:
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 1] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(0, 0, 0))  # black is the transparent key
    Image.fromarray(np.array([[0, 90]], dtype=np.uint8)).save(tmp_path / "gray.png", transparency=0)

    assert load_image(tmp_path / "rgb.png", size=(1, 2)).tolist() == [[[255, 255, 255], [0, 255, 0]]]
    assert load_image(tmp_path / "gray.png", channels=1, size=(1, 2)).tolist() == [[[255], [90]]]


def test_pad_scales_by_the_tighter_side_and_centres_with_per_channel_values() -> None:
    tall = Image.new("RGB", (4, 8), (200, 200, 200))  # 8 rows x 4 cols into 16 x 16: scaled 2x, bars left and right

    padded = fit_pixels(tall, 3, 16, 16, fit="pad", pad=(10, 20, 30))

    assert padded.shape == (16, 16, 3)
    assert (padded[:, 4:12] == 200).all()
    assert padded[:, :4].reshape(-1, 3).tolist() == [[10, 20, 30]] * 64
    assert padded[:, 12:].reshape(-1, 3).tolist() == [[10, 20, 30]] * 64


def test_pad_keeps_at_least_one_row_of_a_sliver_and_puts_the_odd_pixel_below() -> None:
    sliver = Image.new("L", (100, 1), 255)  # 1 row x 100 cols into 10 x 10: 0.1 rows, kept as 1

    padded = fit_pixels(sliver, 1, 10, 10, fit="pad", pad=0)[..., 0]

    assert padded[4].tolist() == [255] * 10 and (np.delete(padded, 4, axis=0) == 0).all()
    odd = fit_pixels(Image.new("L", (3, 2), 255), 1, 5, 3, fit="pad", pad=0)[..., 0]  # 2 rows into 5: 1 above
    assert odd[:, 0].tolist() == [0, 255, 255, 0, 0]
    upright = fit_pixels(Image.new("L", (1, 100), 255), 1, 10, 10, fit="pad", pad=0)[..., 0]  # 0.1 cols, kept as 1
    assert upright[:, 4].tolist() == [255] * 10 and (np.delete(upright, 4, axis=1) == 0).all()


@pytest.mark.parametrize(
    ("image_size", "model_size", "size", "expected"),
    [
        ((300, 451), (None, None), (64, 96), (64, 96)),  # a forced size wins
        ((300, 451), (224, 224), (100, 100), (100, 100)),
        ((300, 451), (224, 224), None, (224, 224)),
        ((300, 451), (64, None), None, (64, 451)),  # one free axis keeps the image's length
        ((300, 451), (None, 80), None, (300, 80)),
        ((1, 10000), (None, None), None, (1, 512)),  # never squeezed to zero rows
        ((10000, 1), (None, None), None, (512, 1)),  # nor columns
        ((10, 20), (None, None), None, (32, 64)),  # enlarged to 32 on the short side
        ((32, 64), (None, None), None, (32, 64)),  # already there
    ],
)
def test_target_size(image_size: tuple, model_size: tuple, size: tuple | None, expected: tuple) -> None:
    assert target_size(image_size, model_size, size) == expected


def test_the_top_of_the_eight_bit_range_and_of_unit_floats_is_white(tmp_path: Path) -> None:
    # a 32-bit integer image whose brightest pixel is exactly 255 is already 0..255; a float image whose brightest
    # is exactly 1.0 is 0..1, and its 1.0 is white
    Image.fromarray(np.array([[0, 255]], dtype=np.int32), mode="I").save(tmp_path / "full.tif")
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F").save(tmp_path / "unit.tif")

    assert load_image(tmp_path / "full.tif", 1, (None, None), size=(1, 2))[0, :, 0].tolist() == [0.0, 255.0]
    unit = load_image(tmp_path / "unit.tif", 1, (None, None), size=(1, 3))[0, :, 0]
    assert unit.tolist() == [0.0, 127.5, 255.0]


def test_a_multi_page_tiff_gives_a_multispectral_model_one_channel_per_page(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cnnviz import feature_maps

    bands = [np.full((6, 10), 40 * (band + 1), dtype=np.uint8) for band in range(5)]
    bands[3][2, 4] = 255
    pages = [Image.fromarray(band) for band in bands]
    pages[0].save(tmp_path / "bands.tif", save_all=True, append_images=pages[1:])
    model = keras.Sequential([keras.Input((None, None, 5)), keras.layers.Conv2D(1, 1, use_bias=False, name="pick")])
    kernel = np.zeros((1, 1, 5, 1), dtype=np.float32)
    kernel[0, 0, 3, 0] = 1.0  # the fourth band alone
    model.get_layer("pick").set_weights([kernel])

    pixels = load_image(tmp_path / "bands.tif", 5, (None, None), size=(6, 10))
    maps = feature_maps(model, [tmp_path / "bands.tif"], ["pick"], ReadingSettings(preprocess="none", size=(6, 10)))[
        "pick"
    ]

    assert pixels.shape == (6, 10, 5) and pixels[0, 0].tolist() == [40.0, 80.0, 120.0, 160.0, 200.0]
    np.testing.assert_allclose(maps[0, ..., 0], bands[3].astype(np.float32))
    Image.fromarray(bands[0]).save(tmp_path / "one.png")
    with pytest.raises(ImageLoadError, match="give a TIFF of 5 pages, one per channel, or a .npy array .this image"):
        load_image(tmp_path / "one.png", 5, (None, None))
