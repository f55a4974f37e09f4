"""The training callback: grids per epoch on a fixed scale, GIFs, TensorBoard summaries, and no effect on training."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

import cnnviz
from cnnviz.draw.headers import filter_header
from cnnviz.draw.view import FilterView
from cnnviz.errors import ImageLoadError, OptionError
from cnnviz.models.graph import ConvLayer, trace
from cnnviz.runs.contract import RunResult
from cnnviz.runs.featuremaps import MapOptions, map_picture
from cnnviz.runs.filters import FilterOptions, filter_picture


def _data(count: int = 96, side: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise pictures, half of them with a bright square; the label says which."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (count, side, side, 3)).astype(np.float32)
    y = np.arange(count) % 2
    for index in np.flatnonzero(y):
        top, left = rng.integers(0, side - 5, 2)
        x[index, top : top + 5, left : left + 5] = 1.0
    return x, y


def _model(keras, frozen_dead: bool = False):  # type: ignore[no-untyped-def]
    """A Sequential without an Input (Keras builds it in the first batch), with dropout and batch norm.
    ``frozen_dead``: conv2d_1 is frozen, its filter 2 all zeros (a dead filter that stays dead)."""
    model = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, activation="relu", name="conv2d"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dropout(0.3, name="dropout"),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv2d_1"),
            keras.layers.GlobalMaxPooling2D(name="pool"),
            keras.layers.Dense(2, name="dense"),
        ],
        name="tiny",
    )
    if frozen_dead:
        model.build((None, 16, 16, 3))
        layer = model.get_layer("conv2d_1")
        kernel, bias = layer.get_weights()
        kernel[..., 2] = 0.0
        layer.set_weights([kernel, bias])
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(True))
    return model


def _square_png(path: Path) -> Path:
    pixels = np.full((16, 16, 3), 40, dtype=np.uint8)
    pixels[4:10, 6:12] = 255
    Image.fromarray(pixels).save(path)
    return path


def _palette_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "P"
        return np.asarray(image)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def _header_height(model, layer: str, kernels: dict[str, np.ndarray]) -> int:  # type: ignore[no-untyped-def]
    """Rows of a filter grid's header strip: the grid with its header less the grid without."""
    conv = trace(model).find([layer])[0]
    stack = np.transpose(kernels[layer], (3, 2, 0, 1))
    full = filter_picture("tiny | epoch 1", conv, stack, FilterOptions(), RunResult())
    bare = filter_picture("tiny | epoch 1", conv, stack, FilterOptions(labels=False), RunResult())
    return full.pixels.shape[0] - bare.pixels.shape[0]


@pytest.fixture(scope="module")
def trained(keras, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Three epochs with the callback: one image file, one array sample, TensorBoard; kernels kept per epoch."""
    folder = tmp_path_factory.mktemp("callback")
    keras.utils.set_random_seed(3)
    model = _model(keras, frozen_dead=True)
    x, y = _data()
    kernels: list[dict[str, np.ndarray]] = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: kernels.append(
            {name: model.get_layer(name).get_weights()[0].copy() for name in ("conv2d", "conv2d_1")}
        )
    )
    callback = cnnviz.VisualizeCallback(
        images=[str(_square_png(folder / "square.png"))], out=folder / "viz", tensorboard=folder / "logs"
    )
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback, keep])
    return model, callback, kernels, folder


def test_three_epochs_write_three_sets_of_grids_and_gifs(trained) -> None:  # type: ignore[no-untyped-def]
    _, _, _, folder = trained
    viz = folder / "viz"
    expected = {"filters_conv2d.png", "filters_conv2d_1.png", "square/conv2d.png", "square/conv2d_1.png"}
    for epoch in (1, 2, 3):
        step = viz / f"epoch_{epoch:03d}"
        assert {str(p.relative_to(step)) for p in step.rglob("*.png")} == expected
    gifs = {str(p.relative_to(viz)) for p in viz.rglob("*.gif")}
    assert gifs == {name.replace(".png", ".gif") for name in expected}


def test_filter_grids_keep_the_first_epochs_scale_and_show_each_epochs_weights(trained) -> None:  # type: ignore[no-untyped-def]
    model, callback, kernels, folder = trained
    first = kernels[0]["conv2d"]
    assert callback.filter_ranges["conv2d"] == (float(first.min()), float(first.max()))
    conv = trace(model).find(["conv2d"])[0]
    for epoch in (1, 3):
        stack = np.transpose(kernels[epoch - 1]["conv2d"], (3, 2, 0, 1))  # (F, C, kh, kw), as layer_kernels gives
        options = FilterOptions(value_range=callback.filter_ranges["conv2d"])
        expected = filter_picture(f"tiny | epoch {epoch}", conv, stack, options, RunResult())
        drawn = _palette_pixels(folder / "viz" / f"epoch_{epoch:03d}" / "filters_conv2d.png")
        assert np.array_equal(drawn, expected.pixels)
    # Both checks above can fail: the header names the epoch (another caption gives other pixels), and the fixed
    # scale is not the layer's own range by epoch 3.
    assert not np.array_equal(drawn, filter_picture("tiny | epoch 2", conv, stack, options, RunResult()).pixels)
    assert not np.array_equal(drawn, filter_picture("tiny | epoch 3", conv, stack, FilterOptions(), RunResult()).pixels)


def test_gif_frames_change_where_weights_changed_and_nowhere_else(trained) -> None:  # type: ignore[no-untyped-def]
    model, _, kernels, folder = trained
    viz = folder / "viz"
    assert not np.array_equal(kernels[0]["conv2d"], kernels[2]["conv2d"])
    assert np.array_equal(kernels[0]["conv2d_1"], kernels[2]["conv2d_1"])  # frozen
    for name, weights_changed in (("filters_conv2d", True), ("filters_conv2d_1", False)):
        frames = _gif_frames(viz / f"{name}.gif")
        pngs = [_rgb(viz / f"epoch_{epoch:03d}" / f"{name}.png") for epoch in (1, 2, 3)]
        assert len(frames) == 3
        for frame, png in zip(frames, pngs, strict=True):
            assert np.array_equal(frame, png)
        moved = (pngs[0] != pngs[2]).any(axis=-1)
        header = _header_height(model, name.removeprefix("filters_"), kernels[0])
        assert moved[:header].any()  # the epoch number in the header
        assert moved[header:].any() == weights_changed


def test_tensorboard_holds_every_grid_and_the_dead_filter_counts(trained) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    _, _, _, folder = trained
    (events,) = (folder / "logs" / "cnnviz").glob("events.out.tfevents.*")
    images: dict[tuple[str, int], bytes] = {}
    scalars: dict[tuple[str, int], float] = {}
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            tensor = tf.make_ndarray(value.tensor)
            if value.metadata.plugin_data.plugin_name == "images":
                width, height, png = tensor
                with Image.open(io.BytesIO(png)) as image:
                    assert image.size == (int(width), int(height))
                images[value.tag, event.step] = png
            elif value.metadata.plugin_data.plugin_name == "scalars":
                scalars[value.tag, event.step] = float(tensor)
    tags = {"filters/conv2d", "filters/conv2d_1", "featuremaps/square/conv2d", "featuremaps/square/conv2d_1"}
    assert set(images) == {(tag, step) for tag in tags for step in (1, 2, 3)}
    assert images["filters/conv2d", 2] == (folder / "viz" / "epoch_002" / "filters_conv2d.png").read_bytes()
    assert (
        images["featuremaps/square/conv2d_1", 3]
        == (folder / "viz" / "epoch_003" / "square" / "conv2d_1.png").read_bytes()
    )
    assert scalars == {
        (f"dead_filters/{layer}", step): dead
        for layer, dead in (("conv2d", 0.0), ("conv2d_1", 1.0))
        for step in (1, 2, 3)
    }


def test_tensorboards_own_reader_files_them_under_images_and_scalars(trained) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'cnnviz[tensorboard]')")
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    logs = str(trained[3] / "logs")
    events = plugin_event_multiplexer.EventMultiplexer()
    events.AddRunsFromDirectory(logs)
    events.Reload()
    provider = data_provider.MultiplexerDataProvider(events, logs)
    request = context.RequestContext()
    images = provider.list_blob_sequences(request, experiment_id="", plugin_name="images")
    assert sorted(images["cnnviz"]) == [
        "featuremaps/square/conv2d",
        "featuremaps/square/conv2d_1",
        "filters/conv2d",
        "filters/conv2d_1",
    ]
    scalars = provider.read_scalars(request, experiment_id="", plugin_name="scalars", downsample=10)
    assert [(point.step, point.value) for point in scalars["cnnviz"]["dead_filters/conv2d_1"]] == [
        (1, 1.0),
        (2, 1.0),
        (3, 1.0),
    ]


def test_training_with_the_callback_ends_at_the_same_weights_as_without(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y = _data(seed=1)

    def train(callbacks: list) -> list[np.ndarray]:  # type: ignore[type-arg]
        keras.utils.set_random_seed(7)
        model = _model(keras)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
        return model.get_weights()

    samples = x[:2]
    drawn = train([cnnviz.VisualizeCallback(images=samples, out=tmp_path / "viz", every_batches=3)])
    plain = train([])
    assert len(drawn) == len(plain) == 10  # batch norm's moving mean and variance included
    for with_callback, without in zip(drawn, plain, strict=True):
        assert np.array_equal(with_callback, without)
    assert len(list((tmp_path / "viz").glob("step_*"))) == 4  # 12 batches, a drawing every 3
    assert (tmp_path / "viz" / "step_000012" / "sample_1" / "conv2d.png").is_file()


def test_nested_layers_and_named_array_samples(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 3, name="edges")], name="base")
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    model = keras.Model(inputs, outputs, name="outer")
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    x, y = _data(count=32)
    callback = cnnviz.VisualizeCallback(
        images=x[:1], names=["bright"], layers=["base/edges"], out=tmp_path, every=2, animate=False
    )
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[callback])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_002", "epoch_004"]
    assert callback.notes == []  # 3 filters of 3 channels: nothing cut
    # The last drawing shows the trained weights: the nested layer's maps of the sample, as feature_maps gives
    # them after training, drawn with the epoch in the header; and its kernels.
    conv = trace(model).find(["base/edges"])[0]
    maps = cnnviz.feature_maps(model, x[:1], ["base/edges"])["base/edges"][0]
    expected = map_picture("outer | epoch 4", conv, maps, "bright", MapOptions())
    assert np.array_equal(_palette_pixels(tmp_path / "epoch_004" / "bright" / "base__edges.png"), expected.pixels)
    kernels = cnnviz.layer_kernels(conv)
    options = FilterOptions(value_range=callback.filter_ranges["base/edges"])
    drawn = _palette_pixels(tmp_path / "epoch_004" / "filters_base__edges.png")
    assert np.array_equal(drawn, filter_picture("outer | epoch 4", conv, kernels, options, RunResult()).pixels)


def test_a_big_layer_is_cut_with_a_note_in_the_callbacks_terms(keras, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = keras.Sequential([keras.Input((8, 8, 70)), keras.layers.Conv2D(2, 1, name="wide")])
    callback = cnnviz.VisualizeCallback(out=tmp_path, animate=False)
    callback.set_model(model)
    callback.draw("epoch_000", "before training", 0)
    callback.draw("epoch_001", "again", 1)
    expected = "showing channels 0-63 of 70; choose others with `channels`, e.g. 64:128"
    assert callback.notes == [expected]
    assert capsys.readouterr().err == f"cnnviz: {expected}\n"  # said once, not at every drawing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (lambda: {"every": 2, "every_batches": 5}, "not both"),
        (lambda: {"every": 0}, "at least 1"),
        (lambda: {"images": np.zeros((2, 4, 4, 3)), "names": ["a"]}, "1 names for 2 images"),
        (lambda: {"images": np.zeros((2, 4, 4, 3)), "names": ["a", "a"]}, "distinct"),
        (lambda: {"images": ["no/such/picture.png"]}, "no such file"),
        (lambda: {"filter_options": FilterOptions(cmap="no_such_map")}, "unknown colormap"),
        (lambda: {"filter_options": FilterOptions(norm="sideways")}, "filter normalisation"),
        (lambda: {"filter_options": FilterOptions(norm="filter", value_range=(-1, 1))}, "norm global or symmetric"),
    ],
)
def test_bad_settings_fail_before_training(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError, match=message):  # the options refuse them when made, or the callback does
        cnnviz.VisualizeCallback(**kwargs())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"map_options": MapOptions(overlay=True)}, "map_options.overlay=True: the callback draws plain grids"),
        ({"map_options": MapOptions(save_raw=True)}, "map_options.save_raw=True: the callback writes grids, not"),
        ({"map_options": MapOptions(skip_existing=True)}, "map_options.skip_existing=True: each step draws into"),
        ({"map_options": MapOptions(layers=["conv2d"])}, r"map_options.layers=\['conv2d'\]: the callback's own"),
        ({"map_options": MapOptions(workers=2)}, "map_options.workers=2: the callback draws in the training's"),
        ({"filter_options": FilterOptions(layer="conv2d")}, "filter_options.layer='conv2d': the callback's own"),
        (
            {"map_options": MapOptions(weights="random")},
            "map_options.weights='random': the callback writes no manifest",
        ),
        ({"filter_options": FilterOptions(source="m.keras")}, "filter_options.source='m.keras': the callback writes"),
        ({"map_options": MapOptions(engine="ray")}, "map_options.engine='ray': the callback draws in the training's"),
    ],
)
def test_options_the_callback_would_ignore_are_refused_by_name(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError, match=f"VisualizeCallback cannot honour {message}"):
        cnnviz.VisualizeCallback(**kwargs)


def test_a_broken_image_fails_when_the_callback_is_made_not_after_an_epoch(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageLoadError, match="broken.png"):
        cnnviz.VisualizeCallback(images=[str(broken)])


def test_another_model_gets_its_own_extractor_and_scales(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y = _data(count=16)
    callback = cnnviz.VisualizeCallback(out=tmp_path / "viz", layers=["conv2d"], animate=False)
    ranges = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = _model(keras)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
        kernel = model.get_layer("conv2d").get_weights()[0]
        assert callback.filter_ranges["conv2d"] == (float(kernel.min()), float(kernel.max()))
        ranges.append(callback.filter_ranges["conv2d"])
    assert ranges[0] != ranges[1]


def test_a_fixed_range_is_drawn_as_given_and_named_in_the_header() -> None:
    kernels = np.array([[[[-1.0, 0.0, 0.5, 3.0]]]], dtype=np.float32)  # (1 filter, 1 channel, 1x4)
    pixels = cnnviz.filter_grid(kernels, FilterView(value_range=(-1.0, 1.0), scale=1, index=False)).pixels
    assert pixels[0].tolist() == [0, 126, 188, 251]  # 3.0 lies past the range: the top level, as 1.0 would
    symmetric = cnnviz.filter_grid(
        kernels, FilterView(norm="symmetric", value_range=(-0.5, 2.0), scale=1, index=False)
    ).pixels
    assert symmetric[0].tolist() == [63, 126, 157, 251]  # -2..2: 0 at the middle
    with pytest.raises(OptionError, match="norm global or symmetric"):
        cnnviz.filter_grid(kernels, FilterView(norm="filter", value_range=(0.0, 1.0)))
    with pytest.raises(OptionError, match="low < high"):
        cnnviz.filter_grid(kernels, FilterView(value_range=(1.0, 1.0)))
    conv = ConvLayer("c", None, "Conv2D", (1, 4), (4, 1, 1), 5, False)
    header = filter_header("m", conv, kernels, [0], [0], FilterView(norm="global", rgb=False, value_range=(-1.0, 1.0)))
    assert (header.low, header.high) == ("-1.00", "1.00")
    assert header.lines[1].endswith("range [-1.00, 3.00] | norm global, scale fixed at [-1.00, 1.00]")


def test_cka_against_the_start_of_training_is_measured_logged_and_drawn(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    from cnnviz.methods.cka import as_samples, linear_cka
    from cnnviz.methods.extract import build_extractor

    x, y = _data(seed=2)
    keras.utils.set_random_seed(3)
    model = _model(keras)
    model.build((None, 16, 16, 3))
    before = [weight.copy() for weight in model.get_weights()]
    samples = x[:6]
    callback = cnnviz.VisualizeCallback(
        images=samples, out=tmp_path / "viz", filters=False, cka=True, tensorboard=tmp_path / "logs"
    )
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    # the start is the model before its first step
    assert all(np.array_equal(a, b) for a, b in zip(callback._start.get_weights(), before, strict=True))
    assert [step for step, _ in callback.cka_history] == [1, 2, 3]
    last = callback.cka_history[-1][1]
    assert set(last) == {"conv2d", "conv2d_1"} and min(last.values()) < 0.999  # the training moved them
    # each value is linear CKA of the layer's maps now and at the start, pooled to 8x8 cells, computed here by hand
    now, start = build_extractor(model)(samples), build_extractor(callback._start)(samples)
    for layer, value in last.items():
        grid = (8, 8) if now[layer].shape[1] >= 8 else now[layer].shape[1:3]
        found = linear_cka(as_samples(now[layer], "positions", grid), as_samples(start[layer], "positions", grid))
        assert value == pytest.approx(found, abs=1e-9)
    (events,) = (tmp_path / "logs" / "cnnviz").glob("events.out.tfevents.*")
    scalars, pictures = {}, set()
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            if value.tag.startswith("cka_vs_start/"):
                scalars[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
            elif value.tag == "cka_vs_start":
                pictures.add((value.tag, event.step))
    assert scalars == pytest.approx(
        {
            (f"cka_vs_start/{layer}", step): value
            for step, found in callback.cka_history
            for layer, value in found.items()
        }
    )
    assert pictures == {("cka_vs_start", step) for step in (1, 2, 3)}
    with Image.open(tmp_path / "viz" / "cka.png") as chart:
        assert chart.size[0] > chart.size[1] > 200
    with pytest.raises(cnnviz.OptionError, match="give the callback images"):
        cnnviz.VisualizeCallback(cka=True)
