"""How long ``cnnviz featuremaps`` takes on one image with VGG16 (random weights, all 13 conv layers), against a
bare forward pass of the same network measured in the same run, and where the time goes.

    python bench/bench_featuremaps.py [--repeats 5]

Prints wall times and the ratios to the bare forward pass; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "sample_images" / "cat.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import cnnviz
    from cnnviz.inputs.preprocess import resolve_preprocessing
    from cnnviz.inputs.reader import Reader
    from cnnviz.methods.extract import build_extractor

    model = cnnviz.load_model("vgg16", weights="none")
    step = resolve_preprocessing(model)
    pixels = step(cnnviz.load_image(IMAGE, 3, (224, 224))[None])

    bare = median_time(lambda: model.predict_on_batch(pixels), args.repeats)
    extractor = build_extractor(model)
    extract = median_time(lambda: extractor(pixels), args.repeats)
    maps = extractor(pixels)
    render = median_time(lambda: [cnnviz.feature_map_grid(m[0], header=None) for m in maps.values()], args.repeats)
    with tempfile.TemporaryDirectory() as out:
        whole = median_time(
            lambda: cnnviz.render_feature_maps(model, [IMAGE], out, cnnviz.MapOptions(model_label="vgg16")),
            args.repeats,
        )
        cli_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "cnnviz"),
                    "featuremaps",
                    str(IMAGE),
                    "--weights",
                    "none",
                    "-o",
                    out,
                ],
                check=True,
                capture_output=True,
            )
            cli_times.append(time.perf_counter() - start)
        cli = statistics.median(cli_times)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from cnnviz._keras import keras_module; keras_module()"], check=True)
    startup = time.perf_counter() - start
    reader = Reader(model)
    load = median_time(lambda: [extractor.forward(batch) for batch in reader.batches([IMAGE])], args.repeats)

    print(f"bare VGG16 forward pass (1 image, 224x224):   {bare * 1000:8.1f} ms   1.00x")
    print(f"extractor, all 13 conv outputs:               {extract * 1000:8.1f} ms   {extract / bare:.2f}x")
    print(f"load + preprocess + extract:                  {load * 1000:8.1f} ms   {load / bare:.2f}x")
    print(f"13 grids, normalise + tile (no header):       {render * 1000:8.1f} ms   {render / bare:.2f}x")
    print(f"render_feature_maps, 13 PNGs with headers:    {whole * 1000:8.1f} ms   {whole / bare:.2f}x")
    print(f"'cnnviz featuremaps' command, whole process:  {cli * 1000:8.1f} ms   {cli / bare:.2f}x")
    print(f"  of which starting Python and importing Keras: {startup * 1000:6.1f} ms   {startup / bare:.2f}x")
    print(f"(python {sys.version.split()[0]}, numpy {np.__version__}, {args.repeats} repeats, median)")


if __name__ == "__main__":
    main()
