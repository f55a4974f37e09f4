"""Heat drawn over images: the blend itself, overlay grids of feature maps, and ``featuremaps --overlay``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from cnnviz.cli import main
from cnnviz.draw.overlay import OVERLAY_TILE, blend, overlay_grid
from cnnviz.draw.render import palette
from cnnviz.draw.view import MapView
from cnnviz.methods.resample import resize_maps
from tests.conftest import SQUARE_AT, square_picture


def test_blend_keeps_the_image_where_there_is_no_heat_and_colours_it_where_there_is() -> None:
    pixels = np.full((1, 3, 3), 100.0)
    out = blend(pixels, np.array([[0.0, 0.5, 1.0]]), "viridis", alpha=0.5)

    top = palette("viridis")[251].astype(float)  # the colormap's end, for heat 1
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[0, 2].tolist() == np.rint(100 * 0.5 + top * 0.5).astype(int).tolist()
    assert blend(np.zeros((2, 2)), np.ones((2, 2)), "gray", alpha=1.0).tolist() == [[[255] * 3] * 2] * 2  # grey in


def test_overlay_grid_draws_each_map_over_the_image_and_crosses_out_flat_ones() -> None:
    maps = np.zeros((2, 2, 2), dtype=np.float32)
    maps[0, 0, 0] = 1.0  # map 0 fires at the top-left corner; map 1 is flat (dead)
    pixels = np.full((4, 4, 3), 100.0)

    picture = overlay_grid(maps, pixels, MapView(cmap="viridis", index=False))

    grid = picture.to_rgb()
    side = OVERLAY_TILE
    assert grid.shape == (side, 2 * side + 2, 3)  # two tiles side by side, 2 pixels apart
    first, second = grid[:, :side], grid[:, side + 2 :]
    assert first[-1, -1].tolist() == [100, 100, 100]  # far from the firing corner: the photo
    assert abs(first[0, 0].astype(int) - 100).sum() > 100  # at it: the colormap's top colour, strongly
    assert second[side // 2, 10].tolist() == [100, 100, 100]  # the dead map leaves the photo as it is ...
    assert second[0, 0].tolist() != [100, 100, 100] and second[5, 5].tolist() == second[0, 0].tolist()  # ... crossed


def test_featuremaps_overlay_writes_overlay_grids_that_light_up_the_square(square_finder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "finder.keras"
    square_finder.save(model)
    picture = tmp_path / "square.png"
    Image.fromarray(square_picture().astype(np.uint8)).save(picture)

    args = ["featuremaps", str(picture), "--model", str(model), "--layer", "conv1", "--overlay", "--no-labels"]
    result = CliRunner().invoke(main, [*args, "--no-index", "--save-raw", "-o", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "finder" / "square"
    record = json.loads((tmp_path / "out" / "finder" / "manifest.json").read_text())["images"][str(picture)]
    assert record["layers"]["conv1"]["png"] == str(folder / "conv1_overlay.png")
    assert record["layers"]["conv1"]["overlay"] is True
    maps = np.load(folder / "conv1.npy")  # the raw activations, (32, 32, 8)
    grid = np.asarray(Image.open(folder / "conv1_overlay.png").convert("RGB")).astype(int)
    side, scale = OVERLAY_TILE, OVERLAY_TILE // 32
    assert grid.shape == (3 * side + 4, 3 * side + 4, 3)  # 8 maps in a 3x3 grid
    # the map that fires hardest on the square is coloured there, and the photo shows far from it
    inside = np.zeros((32, 32), dtype=bool)
    inside[SQUARE_AT] = True
    strongest = int(np.argmax(maps[inside].mean(axis=0) - maps[~inside].mean(axis=0)))
    top, left = divmod(strongest, 3)
    tile = grid[top * (side + 2) : top * (side + 2) + side, left * (side + 2) : left * (side + 2) + side]
    photo = np.asarray(Image.fromarray(square_picture().astype(np.uint8)).resize((side, side), Image.BILINEAR))
    photo = blend(photo, np.zeros((side, side))).astype(int)  # muted, as under any heat
    centre = (8 * scale, 24 * scale)  # the square's centre, in tile pixels
    assert np.abs(tile[centre] - photo[centre]).sum() > 60
    # where the map, upsampled as drawn, is at its lowest: no heat, the photo itself
    unit = (maps[..., strongest] - maps[..., strongest].min()) / np.ptp(maps[..., strongest])
    coldest = np.unravel_index(int(np.argmin(resize_maps(unit[..., None], side, side))), (side, side))
    assert np.abs(tile[coldest] - photo[coldest]).sum() <= 6


def test_overlays_draw_over_the_images_the_batch_reader_decoded_once(square_finder, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import cnnviz.inputs.reader as extract
    from cnnviz.runs.featuremaps import MapOptions, render_feature_maps

    for seed in (1, 2, 3):
        Image.fromarray(square_picture(seed).astype(np.uint8)).save(tmp_path / f"p{seed}.png")
    reads: list[str] = []
    original = extract.load_image
    monkeypatch.setattr(extract, "load_image", lambda path, *a, **k: reads.append(str(path)) or original(path, *a, **k))

    options = MapOptions(layers=["conv1"], overlay=True, batch_size=2, labels=False)
    report = render_feature_maps(square_finder, [tmp_path], tmp_path / "out", options)

    assert sorted(reads) == [str(tmp_path / f"p{seed}.png") for seed in (1, 2, 3)]  # each image read once
    assert sorted(path.name for path in report.written) == ["conv1_overlay.png"] * 3
