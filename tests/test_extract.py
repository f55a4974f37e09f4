"""The extractor's view of a model's input, and whom a failed forward pass blames, for either channel layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.errors import ForwardPassError, ImageLoadError
from cnnviz.inputs.reader import ModelInput, Reader, ReadingSettings, load_input
from cnnviz.methods.extract import PROBE_SIDE, Extractor, build_extractor, feature_maps
from cnnviz.methods.shape import Method, scan_all


class _Maps(Method[list]):
    """Each batch's paths and maps, in order: the extractor's forward passes through the local engine's loop."""

    def __init__(self, model, reader, options) -> None:  # type: ignore[no-untyped-def]
        super().__init__(model, reader, options)
        self.extractor = build_extractor(model)

    def scan(self, batch):  # type: ignore[no-untyped-def]
        return [(batch.paths, self.extractor.forward(batch))]

    @staticmethod
    def merge(first, second):  # type: ignore[no-untyped-def]
        return first + second


def _batches(model, paths, preprocess="none", on_error=None, **reading):  # type: ignore[no-untyped-def]
    """(paths, maps) of each batch of ``paths``; each input that failed handed to ``on_error``."""
    reader = Reader(model, ReadingSettings(preprocess=preprocess, **reading))
    scanned = scan_all(_Maps(model, reader, None), paths)
    for path, error in scanned.failures:
        on_error(path, error)
    return scanned.partial or []


def test_input_channels_and_spatial_size_in_either_layout() -> None:
    last = ModelInput((32, 48, 1), channels_first=False)
    first = ModelInput((3, 32, 48), channels_first=True)
    open_channels = ModelInput((None, None, None))

    assert (last.channels, last.spatial_size, last.takes_images) == (1, (32, 48), True)
    assert (first.channels, first.spatial_size) == (3, (32, 48))
    assert (open_channels.channels, open_channels.spatial_size) == (3, (None, None))  # fed RGB
    assert not ModelInput((16, 2)).takes_images


def test_a_channels_first_model_blames_a_picture_too_small_for_it_not_itself(keras, tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((1, None, None)), keras.layers.Conv2D(1, 5, data_format="channels_first", name="wide")]
    )
    np.save(tmp_path / "small.npy", np.zeros((3, 3, 1), dtype=np.float32))  # channels last, as every input
    reported: list[str] = []

    batches = _batches(model, [tmp_path / "small.npy"], on_error=lambda p, e: reported.append(str(e)))

    assert batches == [] and len(reported) == 1
    assert reported[0].startswith(f"{tmp_path / 'small.npy'}: the model could not run on it at 3x3x1: ")


def _sum_model(keras):  # type: ignore[no-untyped-def]
    """Free-size grayscale in; one 1x1 conv that passes the pixel on."""
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 1, name="pass")], name="pass")
    model.get_layer("pass").set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    return model


def test_batches_hold_batch_size_inputs_of_one_shape_and_kind(keras, tmp_path: Path) -> None:
    paths = []
    for number, (rows, value) in enumerate([(32, 10), (32, 20), (32, 30), (40, 40), (40, 50)]):
        Image.fromarray(np.full((rows, 32), value, dtype=np.uint8)).save(tmp_path / f"{number}.png")
        paths.append(tmp_path / f"{number}.png")
    np.save(tmp_path / "ready.npy", np.full((32, 32, 1), 7.0, dtype=np.float32))
    paths.insert(2, tmp_path / "ready.npy")
    batches = _batches(_sum_model(keras), paths, "scale255", batch_size=2)

    names = [[Path(p).name for p in batch] for batch, _ in batches]
    assert names == [["0.png", "1.png"], ["ready.npy"], ["2.png"], ["3.png", "4.png"]]
    firsts = [float(maps["pass"][0, 0, 0, 0]) for _, maps in batches]
    # images are preprocessed (x/255); the model-ready array is fed as it is
    np.testing.assert_allclose(firsts, [10 / 255, 7.0, 30 / 255, 40 / 255], rtol=1e-6)


def test_without_an_error_handler_a_failure_is_raised(keras, tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 5, name="wide")])
    np.save(tmp_path / "small.npy", np.zeros((3, 3, 1), dtype=np.float32))
    (tmp_path / "broken.png").write_text("not a picture")
    extractor = build_extractor(model)
    reader = Reader(model, ReadingSettings(preprocess="none"))

    with pytest.raises(ForwardPassError, match=r"^the model could not run on input of shape \(3, 3, 1\): "):
        extractor.forward(next(reader.batches([tmp_path / "small.npy"])))
    with pytest.raises(ImageLoadError, match="broken.png: not an image Pillow can read"):
        list(reader.batches([tmp_path / "broken.png"]))


def test_a_batch_holds_at_most_batch_size_inputs(keras, tmp_path: Path) -> None:
    paths = []
    for number in range(5):
        np.save(tmp_path / f"{number}.npy", np.full((4, 4, 1), float(number), dtype=np.float32))
        paths.append(tmp_path / f"{number}.npy")

    batches = _batches(_sum_model(keras), paths, batch_size=2)

    assert [len(batch) for batch, _ in batches] == [2, 2, 1]
    assert [maps["pass"][:, 0, 0, 0].tolist() for _, maps in batches] == [[0.0, 1.0], [2.0, 3.0], [4.0]]


def test_an_array_of_the_wrong_shape_is_named_with_what_the_model_takes(keras, tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros((4, 4), dtype=np.float32))
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3), dtype=np.float32))
    reported: list[str] = []

    batches = _batches(
        _sum_model(keras),
        [tmp_path / "flat.npy", tmp_path / "rgb.npy"],
        on_error=lambda path, exc: reported.append(str(exc)),
    )

    assert batches == []
    assert reported == [
        f"{tmp_path / 'flat.npy'}: an array of shape (4, 4); the model takes ?x?x1",
        f"{tmp_path / 'rgb.npy'}: an array of shape (4, 4, 3); the model takes ?x?x1",
    ]


def test_pad_fills_with_the_pixel_the_preprocessing_maps_to_zero(keras, tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1, name="pass")])
    model.get_layer("pass").set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    Image.fromarray(np.full((2, 4), 255, dtype=np.uint8)).save(tmp_path / "wide.png")

    ((_, maps),) = _batches(model, [tmp_path / "wide.png"], "tf", fit="pad")

    # rows 1-2 the picture (255 -> 1.0 after tf scaling), rows 0 and 3 the neutral 127.5 -> 0.0
    np.testing.assert_allclose(maps["pass"][0, :, :, 0], [[0.0] * 4, [1.0] * 4, [1.0] * 4, [0.0] * 4], atol=1e-6)


class _Recorder:
    """Stands in for a Keras model: records each batch's shape and returns fixed outputs."""

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs = outputs
        self.shapes: list[tuple[int, ...]] = []

    def predict_on_batch(self, batch: np.ndarray) -> list[np.ndarray]:
        self.shapes.append(batch.shape)
        return self.outputs


def test_a_model_that_returns_fewer_outputs_than_layers_is_an_error_not_a_dropped_layer(keras) -> None:
    traced = build_extractor(
        keras.Sequential(
            [keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1, name="a"), keras.layers.Conv2D(1, 1, name="b")]
        )
    )
    extractor = Extractor(model=_Recorder([np.zeros((1, 4, 4, 1))]), layers=traced.layers, taken=ModelInput((4, 4, 1)))
    with pytest.raises(ValueError):
        extractor(np.zeros((1, 4, 4, 1)))


def test_the_blame_probe_is_one_blank_input_at_probe_side_where_the_size_is_free() -> None:
    recorder = _Recorder([])
    extractor = Extractor(model=recorder, layers=[], taken=ModelInput((None, None, 2)))

    extractor.check_runs(RuntimeError("a failed pass"))  # the probe runs, so the input is to blame: no error
    extractor.check_runs(RuntimeError("another"))  # asked once per extractor

    assert PROBE_SIDE == 224
    assert recorder.shapes == [(1, 224, 224, 2)]


def test_a_pickled_npy_is_refused_not_unpickled(keras, tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([[[1.0]]], dtype=object), allow_pickle=True)
    with pytest.raises(ImageLoadError, match=r"objects.npy: not a readable .npy array \(.*allow_pickle"):
        load_input(build_extractor(_sum_model(keras)).taken, tmp_path / "objects.npy")


def test_eight_inputs_make_a_batch_by_default(keras, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for number in range(9):
        np.save(tmp_path / f"{number}.npy", np.full((4, 4, 1), float(number), dtype=np.float32))
        paths.append(tmp_path / f"{number}.npy")
    model = _sum_model(keras)

    batches = _batches(model, paths)
    passes: list[int] = []
    run = Extractor.__call__
    monkeypatch.setattr(
        Extractor, "__call__", lambda self, batch, *a: passes.append(len(batch)) or run(self, batch, *a)
    )
    maps = feature_maps(model, paths)

    assert [len(batch) for batch, _ in batches] == [8, 1]
    assert passes == [8, 1]
    assert maps["pass"][:, 0, 0, 0].tolist() == [float(n) for n in range(9)]
