"""``cnnviz top`` where the graph gives no receptive field, against ``top`` where it does, on a KerasHub MobileNetV3
classifier (the backbone built from its documented config, random weights, 224x224: nothing downloaded): its stem
conv (a receptive field from the graph) and its head's conv (after blocks whose strides and padding cnnviz does not
read, so each patch's box comes from the gradient's support). Each a whole command in its own process, the same filters,
k and photos. Prints the medians and the ratio (target: head <= 2x stem).

    python bench/bench_top_support.py               # 16 photos, filters 0:8, k 3
    python bench/bench_top_support.py --images 8 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs import cnnviz, measure  # noqa: E402
from bench_top import photos  # noqa: E402

#: KerasHub's MobileNetBackbone docstring's MobileNetV3 config, at 224x224.
CONFIG = {
    "stackwise_expansion": [[40, 56], [64, 144, 144], [72, 72], [144, 288, 288]],
    "stackwise_num_blocks": [2, 3, 2, 3],
    "stackwise_num_filters": [[16, 16], [24, 24, 24], [24, 24], [48, 48, 48]],
    "stackwise_kernel_size": [[3, 3], [5, 5, 5], [5, 5], [5, 5, 5]],
    "stackwise_num_strides": [[2, 1], [2, 1, 1], [1, 1], [2, 1, 1]],
    "stackwise_se_ratio": [[None, None], [0.25, 0.25, 0.25], [0.3, 0.3], [0.3, 0.25, 0.25]],
    "stackwise_activation": [["relu", "relu"], ["hard_swish"] * 3, ["hard_swish"] * 2, ["hard_swish"] * 3],
    "stackwise_padding": [[1, 1], [2, 2, 2], [2, 2], [2, 2, 2]],
    "output_num_filters": 288,
    "depthwise_filters": 8,
    "depthwise_stride": 2,
    "depthwise_residual": False,
    "last_layer_filter": 288,
    "image_shape": (224, 224, 3),
    "squeeze_and_excite": 0.5,
}


def build(path: Path) -> tuple[str, str]:
    """Save a MobileNetV3 classifier (the backbone, and KerasHub's head: a 1x1 conv after the pooling) to ``path``;
    return the paths of its first and last conv layers that cnnviz reaches."""
    from cnnviz._keras import keras_module

    keras = keras_module()  # quiet, as a cnnviz run is
    warnings.simplefilter("ignore")  # KerasHub's models warn that compile() was not restored on loading
    import keras_hub

    from cnnviz.methods.extract import build_extractor

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.MobileNetBackbone(**CONFIG)
    keras_hub.models.MobileNetImageClassifier(backbone, num_classes=100, num_features=256).save(path)
    convs = [conv.path for conv in build_extractor(keras.saving.load_model(path)).layers]
    return convs[0], convs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        model = work / "mobilenet_v3.keras"
        stem, head = build(model)
        folder = photos(work / "photos", args.images)
        times: dict[str, list[float]] = {stem: [], head: []}
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
            for layer in times:
                out = work / f"{layer}{repeat}"
                command = cnnviz(
                    "top",
                    str(folder),
                    "--model",
                    str(model),
                    "--layer",
                    layer,
                    "--filters",
                    "0:8",
                    "-k",
                    "3",
                    "-q",
                    "-o",
                    str(out),
                )
                times[layer].append(float(measure(command)["seconds"]))  # type: ignore[arg-type]
        first, last = statistics.median(times[stem]), statistics.median(times[head])
        print(f"top, {args.images} photos, filters 0:8, k 3 (median of {args.repeats}, whole commands)")
        print(f"  stem {stem:28} {first:7.1f} s  (receptive field from the graph)")
        print(f"  head {head:28} {last:7.1f} s  (boxes from the gradient's support)")
        print(f"  head / stem: {last / first:.2f}x (target <= 2)")


if __name__ == "__main__":
    main()
