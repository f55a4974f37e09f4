"""Make the pictures the README shows, in docs/, with cnnviz itself: offline, from the bundled model and VGG16.

    python scripts/make_docs_images.py            # writes docs/*.png and the training GIF (together under 1 MB)
    python scripts/make_docs_images.py --only evaluation   # one step

VGG16 is drawn with ImageNet weights when Keras has them cached (~/.keras/models), else with random weights, and
the header says which. Running the script again on the same machine gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnviz.draw.view import FilterView, MapView

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "sample_images" / "cat.jpg"


def _vgg16_weights() -> str:
    """``imagenet`` when Keras has the conv base's weights cached, else ``none``: the script never downloads."""
    from cnnviz.models.load import _keras_cache_dir

    cached = _keras_cache_dir() / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return "imagenet" if cached.is_file() else "none"


def training_gif(target: Path, epochs: int = 12, every: int = 2, pictures: int = 14000) -> None:
    """The bundled model trained again from scratch as scripts/train_shapes.py trains it, with
    cnnviz.VisualizeCallback drawing the first layer's filters before training and after every ``every`` epochs;
    the GIF is copied to ``target``. Deterministic: a fixed seed and TensorFlow's deterministic ops."""
    import shutil
    import tempfile

    import tensorflow as tf

    import cnnviz

    sys.path.insert(0, str(ROOT / "scripts"))
    import train_shapes

    keras = cnnviz._keras.keras_module()
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    x, y = train_shapes.make_dataset(pictures, seed=0)
    model = train_shapes.build_model(for_training=True)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    with tempfile.TemporaryDirectory() as scratch:
        callback = cnnviz.VisualizeCallback(
            layers=["edges"],
            out=scratch,
            every=every,
            filter_options=cnnviz.FilterOptions(norm="symmetric", cmap="RdBu_r"),
            duration_ms=800,
        )
        callback.set_model(model)
        callback.draw("epoch_000", "epoch 0, initial weights", 0)  # the scale is fixed from here
        model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=True, callbacks=[callback])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(scratch) / "filters_edges.gif", target)


def _save_small(picture: object, target: Path, colours: int = 128, shrink: int = 1, cmap: str | None = None) -> None:
    """Write an RGB picture (a cnnviz Picture or a PNG file's path) as a palette PNG of ``colours`` colours, its
    sides divided by ``shrink``: photos and optimised images would otherwise take several hundred KB each of the
    README's 1 MB. With ``cmap`` (a grid of maps in that colormap), the palette is ``colours`` levels of the
    colormap and 8 greys, so that its ends (the colour bar's max) survive, where a median cut drops rare colours."""
    import numpy as np
    from PIL import Image

    image = Image.open(picture).convert("RGB") if isinstance(picture, Path) else picture.to_pil().convert("RGB")  # type: ignore[attr-defined]
    if shrink > 1:
        image = image.resize((image.width // shrink, image.height // shrink), Image.Resampling.LANCZOS)
    if cmap is None:
        small = image.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    else:
        import matplotlib

        levels = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, colours))[:, :3]
        greys = np.repeat(np.linspace(0.0, 1.0, 8)[:, None], 3, axis=1)
        entries = (np.concatenate([levels, greys]) * 255).round().astype(np.uint8).ravel().tolist()
        palette = Image.new("P", (1, 1))
        palette.putpalette(entries + [0] * (768 - len(entries)))
        small = image.quantize(palette=palette, dither=Image.Dither.NONE)
    target.parent.mkdir(parents=True, exist_ok=True)
    small.save(target, optimize=True)


def explaining(shapes: object, out: Path) -> None:
    """What a filter looks for, where the model looks, and the report: the bundled model on the espresso photo
    (its 'circles' class), written as small palette PNGs; the report's screenshot needs Debian's chromium."""
    import shutil
    import subprocess
    import tempfile

    from cnnviz.runs.attribute import AttributeOptions, GradcamOptions, render_attributions, render_gradcam
    from cnnviz.runs.featuremaps import MapOptions, render_feature_maps
    from cnnviz.runs.maximize import MaximizeRunOptions, render_maximize
    from cnnviz.runs.report import ReportOptions, write_report

    coffee = CAT.parent / "coffee.jpg"
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        options = MaximizeRunOptions(size=64, steps=128, layer="shapes", filters="0:8", model_label="shapes")
        drawn = render_maximize(shapes, work, options)
        _save_small(drawn.written[0], out / "shapes_maximize_shapes.png")
        explained = render_gradcam(shapes, [coffee], work, GradcamOptions(size=(160, 240), model_label="shapes"))
        _save_small(explained.images[0].picture, out / "shapes_gradcam_coffee.png")
        methods = ("scorecam", "integrated-gradients", "rise")
        options = AttributeOptions(size=(160, 240), methods=methods, model_label="shapes")
        attributed = render_attributions(shapes, [coffee], work / "explain", options)
        _save_small(attributed.images[0].picture, out / "shapes_explain_coffee.png", colours=24, shrink=3)
        overlays = MapOptions(
            layers=["shapes"], overlay=True, max_maps=6, size=(160, 240), cmap="jet", model_label="shapes"
        )
        maps = render_feature_maps(shapes, [coffee], work / "maps", overlays)
        _save_small(maps.written[0], out / "shapes_overlay_shapes.png")
        write_report(shapes, [CAT.parent], work / "report", ReportOptions(model_label="shapes"))
        chromium = shutil.which("chromium")
        if chromium is None:
            print("chromium is not installed: the report's screenshot is not made again")
            return
        shot = work / "report.png"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]
        flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        flags += [f"--user-data-dir={work / 'profile'}", "--window-size=1280,800", f"--screenshot={shot}"]
        subprocess.run([chromium, *flags, (work / "report" / "index.html").as_uri()], check=True, capture_output=True)
        _save_small(shot, out / "report_screenshot.png", colours=64)


def _chromium(whose: str) -> str | None:
    """Debian's chromium where it and Playwright (the test extra) are installed, else None and a line saying that
    ``whose`` screenshot is not made again."""
    import importlib.util
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None or importlib.util.find_spec("playwright") is None:
        print(f"chromium or playwright is missing: {whose} screenshot is not made again")
        return None
    return chromium


def explorer_screenshot(shapes: object, out: Path) -> None:
    """``cnnviz explore`` on the bundled model and the sample photos, a filter card open: driven in Debian's
    chromium by Playwright (the test extra), as the explorer's tests drive it."""
    import tempfile

    import cnnviz

    chromium = _chromium("the explorer's")
    if chromium is None:
        return
    from playwright.sync_api import sync_playwright

    photos = [CAT.parent / name for name in ("cat.jpg", "coffee.jpg", "camera.png", "rocket.jpg")]
    server = cnnviz.explore(shapes, photos, port=0, k=3, model_label="shapes")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking"]
    try:
        with sync_playwright() as driver, tempfile.TemporaryDirectory() as scratch:
            browser = driver.chromium.launch(executable_path=chromium, args=flags)
            page = browser.new_page(viewport={"width": 1180, "height": 740})
            page.goto(server.url.replace("/?", "/?layer=parts&image=1&filter=6&"))
            for picture in ("overlay", "kernel", "maximize", "top"):
                page.wait_for_selector(f"#card-{picture}[data-loaded]", state="attached", timeout=120_000)
            page.wait_for_selector("#card-stats[data-verdict]", state="attached")
            shot = Path(scratch) / "explore.png"
            page.screenshot(path=str(shot))
            browser.close()
            _save_small(shot, out / "explore_screenshot.png", colours=48)
    finally:
        server.stop()


def atlas_screenshot(shapes: object, out: Path) -> None:
    """A unit's page of ``cnnviz atlas`` on the bundled model and the sample photos, opened from disk in Debian's
    chromium by Playwright."""
    import tempfile

    from cnnviz.runs.atlas import AtlasOptions, build_atlas

    chromium = _chromium("the atlas's")
    if chromium is None:
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver, tempfile.TemporaryDirectory() as scratch:
        options = AtlasOptions(
            model_label="shapes", layers=["shapes"], filters="0:4", side=96, steps=128, size=(160, 240)
        )
        site = build_atlas(shapes, [CAT.parent], Path(scratch), options).folder
        assert site is not None
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 1500})
        page.goto((site / "shapes" / "2.html").as_uri())
        shot = Path(scratch) / "atlas.png"
        page.screenshot(path=str(shot))
        browser.close()
        _save_small(shot, out / "atlas_unit.png", colours=48, shrink=2)


def top_rows(shapes: object, out: Path) -> None:
    """The sample photos' patches that excite four of the bundled model's last-layer filters most."""
    import tempfile

    from cnnviz.runs.top import TopOptions, render_top

    with tempfile.TemporaryDirectory() as scratch:
        options = TopOptions(layer="shapes", filters="1,6,10,12", k=5, model_label="shapes")
        drawn = render_top(shapes, [CAT.parent], Path(scratch), options)
        _save_small(drawn.written[0], out / "shapes_top_shapes.png", colours=96)


def segmentation_heads(out: Path) -> None:
    """Seg-Grad-CAM on a small network trained here, in seconds, to mark a bright square's pixels: the class
    'square' explained over the pixels predicted as it."""
    import tempfile

    import numpy as np

    import cnnviz
    from cnnviz.runs.attribute import GradcamOptions, render_gradcam

    keras = cnnviz._keras.keras_module()
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    pictures = rng.uniform(0, 60, (600, 32, 32, 3)).astype(np.float32)
    masks = np.zeros((600, 32, 32), dtype=np.int32)
    for index in range(600):
        row, col = rng.integers(0, 25, 2)
        pictures[index, row : row + 8, col : col + 8] = rng.uniform(80, 255)
        masks[index, row : row + 8, col : col + 8] = 1
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="mask")(x), name="marker")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(pictures, masks, epochs=4, batch_size=32, verbose=0)
    test = rng.uniform(0, 60, (32, 32, 3))
    test[6:14, 18:26] = 220
    with tempfile.TemporaryDirectory() as scratch:
        picture = Path(scratch) / "square.png"
        from PIL import Image

        Image.fromarray(test.astype(np.uint8)).save(picture)
        labels = Path(scratch) / "labels.txt"
        labels.write_text("background\nsquare\n")
        options = GradcamOptions(target="square", labels_file=str(labels), model_label="square marker")
        explained = render_gradcam(model, [picture], Path(scratch) / "out", options)
        _save_small(explained.images[0].picture, out / "segmentation_gradcam_square.png", colours=64)


def featuremap_pictures(shapes: object, out: Path) -> None:
    """The shapes model's first-layer filters and maps for the cat, and VGG16's block1_conv2 maps and its last
    layer's dead-filter chart."""
    import cnnviz
    from cnnviz.draw.headers import filter_header, map_header

    edges = cnnviz.conv_layers(shapes)[0]
    kernels = cnnviz.layer_kernels(edges)
    everything = list(range(kernels.shape[0]))
    header = filter_header("shapes", edges, kernels, everything, [0, 1, 2], FilterView(norm="symmetric", rgb=False))
    picture = cnnviz.filter_grid(kernels, FilterView(norm="symmetric", cmap="RdBu_r"), header=header)
    cnnviz.save_png(picture, out / "shapes_filters_edges.png")

    # The photo at half size keeps the file small; the bundled model takes any size.
    maps = cnnviz.feature_maps(shapes, [CAT], ["edges"], cnnviz.ReadingSettings(size=(148, 224)))["edges"][0]
    header = map_header("shapes", edges, maps, CAT.name, MapView(norm="map", max_maps=None))
    _save_small(
        cnnviz.feature_map_grid(maps, header=header), out / "shapes_featuremaps_edges.png", colours=40, cmap="viridis"
    )

    weights = _vgg16_weights()
    cnnviz._keras.keras_module().utils.set_random_seed(0)  # random weights, when used, the same every time
    vgg16 = cnnviz.load_model("vgg16", weights)
    label = "vgg16" if weights == "imagenet" else "vgg16 (random weights)"
    block1 = cnnviz.conv_layers(vgg16)[1]
    maps = cnnviz.feature_maps(vgg16, [CAT], [block1.path])[block1.path][0]
    header = map_header(label, block1, maps, CAT.name, MapView(norm="map", max_maps=9), fit="crop")
    picture = cnnviz.feature_map_grid(maps, MapView(max_maps=9), header=header)
    _save_small(picture, out / f"vgg16_featuremaps_{block1.path}.png", colours=40, cmap="viridis")

    # Dead and rarely active filters of VGG16's last conv layer over the sample photos.
    from cnnviz.methods.stats import filter_stats
    from cnnviz.output.files import save_bytes
    from cnnviz.output.stats_report import activity_chart, stats_table

    photos = sorted(p for p in CAT.parent.iterdir() if p.suffix in (".jpg", ".png"))
    last = cnnviz.conv_layers(vgg16)[-1]
    stats = filter_stats(vgg16, photos, [last.path]).layers[0]
    chart = save_bytes(activity_chart(stats, label), out / f"vgg16_stats_{last.path}.png")
    _save_small(chart, chart, colours=32)
    print(stats_table([stats]))


def evaluation_curves(shapes: object, out: Path) -> None:
    """``cnnviz evaluate`` of four methods on the bundled model over the sample photos: deletion, insertion (of
    16 x 16 grid cells: single black pixels scattered over a photo look like circles to this model) and the
    randomisation test's curves."""
    import tempfile

    from cnnviz.methods.evaluation import EvaluationSettings
    from cnnviz.runs.evaluate import EvaluateOptions, evaluate_images

    methods = ("gradcam", "layercam", "gradient", "integrated-gradients")
    metrics = ("deletion", "insertion", "randomization")
    evaluation = EvaluationSettings(grid=16)
    options = EvaluateOptions(
        methods=methods, metrics=metrics, evaluation=evaluation, size=(160, 240), model_label="shapes"
    )
    with tempfile.TemporaryDirectory() as temp:
        result = evaluate_images(shapes, [CAT.parent], Path(temp), options)
        assert result.picture is not None
        _save_small(result.picture, out / "shapes_evaluation_curves.png", colours=32)
    for row in result.summary():
        print(f"{row.metric:20s} {row.method:22s} {row.mean:6.3f} {row.std:6.3f} {row.count}")


#: The steps of the script, by name (``--only``), in the order they run.
STEPS = {
    "featuremaps": featuremap_pictures,
    "training": lambda shapes, out: training_gif(out / "shapes_edges_training.gif"),
    "explaining": explaining,
    "top": top_rows,
    "explore": explorer_screenshot,
    "atlas": atlas_screenshot,
    "segmentation": lambda shapes, out: segmentation_heads(out),
    "evaluation": evaluation_curves,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", "-o", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", nargs="+", choices=list(STEPS), default=list(STEPS), help="the steps to run")
    args = parser.parse_args(argv)

    import cnnviz

    out: Path = args.output
    shapes = cnnviz.load_model("shapes")
    for name in args.only:
        STEPS[name](shapes, out)

    pictures = sorted([*out.glob("*.png"), *out.glob("*.gif")])
    total = sum(path.stat().st_size for path in pictures)
    for path in pictures:
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    print(f"docs pictures: {total / 1e6:.2f} MB in all")
    return 0 if total < 1_000_000 else 1


if __name__ == "__main__":
    sys.exit(main())
