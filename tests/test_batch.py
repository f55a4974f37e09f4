"""Batch runs over folders: the mirrored output tree, the manifest's records, resuming, and read-ahead."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cnnviz.inputs.pipeline import prefetch
from cnnviz.runs.featuremaps import MapOptions, render_feature_maps
from tests.conftest import LINE_IMAGE, line_detector_2d, write_image


@pytest.fixture
def photo_tree(tmp_path: Path) -> Path:
    """data/a/pic.png (the line), data/b/pic.png (the line at half strength), data/b/deep/pic.png (blank), and a
    broken data/b/bad.png."""
    root = tmp_path / "data"
    for folder, scale in (("a", 255), ("b", 127), ("b/deep", 0)):
        (root / folder).mkdir(parents=True)
        write_image(root / folder / "pic.png", (LINE_IMAGE * scale).astype(np.uint8))
    (root / "b" / "bad.png").write_text("not a picture")
    return root


def test_a_folder_tree_is_mirrored_and_every_grid_is_in_the_manifest(keras, photo_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = MapOptions(preprocess="scale255", batch_size=2, weights="handmade")

    report = render_feature_maps(line_detector_2d(keras), [photo_tree], out, options)

    assert sorted(p.relative_to(out).as_posix() for p in report.written) == [
        "a/pic/detector.png",
        "b/deep/pic/detector.png",
        "b/pic/detector.png",
    ]
    assert [(path, str(error)) for path, error in report.failures] == [
        (str(photo_tree / "b" / "bad.png"), f"{photo_tree / 'b' / 'bad.png'}: not an image Pillow can read")
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["model"], manifest["weights"]) == ("line_detector", "handmade")
    assert list(manifest["failures"]) == [str(photo_tree / "b" / "bad.png")]
    record = manifest["images"][str(photo_tree / "b" / "pic.png")]
    assert (record["folder"], record["preprocessing"], record["fit"]) == ("b/pic", "scale255", "crop")
    # the line at 127/255 through the 3x3 detector: 3 * 127/255 on its columns, 0 beside it
    assert record["layers"]["detector"] == {
        "png": str(out / "b" / "pic" / "detector.png"),
        "norm": "map",
        "shape": [6, 6, 1],
        "min": 0.0,
        "max": pytest.approx(3 * 127 / 255, rel=1e-6),
    }
    blank = manifest["images"][str(photo_tree / "b" / "deep" / "pic.png")]["layers"]["detector"]
    assert (blank["min"], blank["max"]) == (0.0, 0.0)


def test_skip_existing_draws_only_what_is_missing(keras, photo_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    model = line_detector_2d(keras)
    render_feature_maps(model, [photo_tree], out, MapOptions(preprocess="scale255"))
    (out / "b" / "pic" / "detector.png").unlink()  # as if the run had stopped before this one
    kept = (out / "a" / "pic" / "detector.png").stat().st_mtime_ns

    report = render_feature_maps(model, [photo_tree], out, MapOptions(preprocess="scale255", skip_existing=True))

    assert (report.inputs, report.skipped) == (4, 2)
    assert [p.relative_to(out).as_posix() for p in report.written] == ["b/pic/detector.png"]
    assert (out / "a" / "pic" / "detector.png").stat().st_mtime_ns == kept
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == 3 and list(manifest["failures"]) == [str(photo_tree / "b" / "bad.png")]
    again = render_feature_maps(model, [photo_tree], out, MapOptions(preprocess="scale255", skip_existing=True))
    assert (again.skipped, again.written) == (3, [])


def test_skip_existing_redraws_an_image_drawn_without_the_raw_arrays_now_asked_for(
    keras, photo_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    render_feature_maps(line_detector_2d(keras), [photo_tree / "a"], out, MapOptions(preprocess="scale255"))
    raw = MapOptions(preprocess="scale255", skip_existing=True, save_raw=True)

    report = render_feature_maps(line_detector_2d(keras), [photo_tree / "a"], out, raw)

    assert report.skipped == 0  # the first run wrote no .npy
    assert sorted(p.name for p in report.written) == ["detector.npy", "detector.png"]


def test_prefetch_yields_in_order_and_reads_at_most_depth_ahead() -> None:
    produced: list[int] = []

    def numbers() -> Iterator[int]:
        for number in range(10):
            produced.append(number)
            yield number

    stream = prefetch(numbers(), depth=2)
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:  # let the reader run until it blocks
        time.sleep(0.01)
    time.sleep(0.05)
    # 0 taken, 1 and 2 waiting, 3 made and blocked on the full queue: nothing further
    assert produced == [0, 1, 2, 3]
    assert list(stream) == list(range(1, 10))


def test_prefetch_raises_the_readers_error_where_it_happened_and_stops_when_closed() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("unreadable")

    stream = prefetch(failing())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="unreadable"):
        next(stream)

    before = threading.active_count()
    endless = prefetch(iter(range(10**9)))
    next(endless)
    endless.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


@pytest.mark.skipif(not hasattr(threading, "get_native_id") or not Path("/proc/self/task").is_dir(), reason="Linux")
def test_drawing_threads_run_below_the_model_and_the_caller_keeps_its_priority() -> None:
    import os

    from cnnviz.runs.featuremaps import DRAWING_NICENESS, _yield_to_the_model

    seen: list[int] = []

    def drawing() -> None:
        before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        _yield_to_the_model()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - before)

    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=drawing)
    worker.start()
    worker.join()
    assert seen == [DRAWING_NICENESS]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller


def test_a_write_that_fails_part_way_leaves_a_manifest_of_every_grid_on_disk(
    keras, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stops at the error, as it should; what it drew before is listed, as after a Ctrl-C."""
    import cnnviz.runs.featuremaps as featuremaps
    from cnnviz.errors import OutputError

    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b", "c", "d"):
        write_image(images / f"{name}.png", (LINE_IMAGE * 255).astype(np.uint8))
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="one"), keras.layers.Conv2D(2, 3, name="two")]
    )
    write = featuremaps.write_maps

    def full_disk(folder, conv, *args):  # type: ignore[no-untyped-def]
        if folder.name == "c" and conv.path == "two":
            raise OutputError(f"{folder}: no space left on the device")
        return write(folder, conv, *args)

    monkeypatch.setattr(featuremaps, "write_maps", full_disk)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="no space left"):
        render_feature_maps(model, [images], out, MapOptions(preprocess="scale255", batch_size=1, workers=1))

    on_disk = sorted(str(path) for path in out.rglob("*.png"))
    manifest = json.loads((out / "manifest.json").read_text())
    listed = sorted(layer["png"] for image in manifest["images"].values() for layer in image["layers"].values())
    assert [Path(path).relative_to(out).as_posix() for path in listed][:4] == [
        "a/one.png",
        "a/two.png",
        "b/one.png",
        "b/two.png",
    ]
    assert listed == on_disk
