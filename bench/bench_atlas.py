"""What ``cnnviz atlas`` costs, on VGG16 with random weights (built offline) over 64 photos at 224 px, in one process:

1. the data pass over all 13 conv layers (:class:`cnnviz.methods.atlas.AtlasScan`) against one ``stats`` pass
   (:class:`cnnviz.methods.stats.FilterStats`) over the same photos and layers, in turns;
2. the unit work per unit (:class:`cnnviz.methods.maximize.MaximizeUnits` on fixed chunks) against ``maximize``
   per filter (:class:`cnnviz.methods.maximize.Maximizer` on the same filters and settings), in turns;
3. one layer's unit work on a local Ray of 1 worker and of 2 (each worker computes on its one CPU);
4. the whole VGG16 atlas (4,224 units) projected on 1, 8 and 64 workers, from a chunk's measured cost at the first
   conv layer of each block (the layers of a block cost about the same: the step runs the model up to the layer);
5. the site's size per unit, from an atlas of block5_conv1's first 16 units over the photos.

    python bench/bench_atlas.py                      # about 15 minutes on 2 cores
    python bench/bench_atlas.py --photos 16 --steps 16 --pairs 1   # a quick look

Prints times and ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runs import photos  # noqa: E402
from timing import paired_times  # noqa: E402

BLOCKS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="maximize's side")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--ray-units", type=int, default=32, help="units of block2_conv2 for the Ray measure")
    args = parser.parse_args()

    from cnnviz.engines.dispatch import EngineReading, EngineSettings, scan_inputs
    from cnnviz.engines.naming import ModelRef
    from cnnviz.engines.units import run_units
    from cnnviz.inputs.gather import gather_inputs
    from cnnviz.methods.atlas import AtlasQuery, AtlasScan
    from cnnviz.methods.maximize import MaximizeOptions, Maximizer, MaximizeUnits, MaximizeWork
    from cnnviz.methods.stats import FilterStats, StatsQuery
    from cnnviz.methods.units import UnitChunk
    from cnnviz.models.graph import conv_layers
    from cnnviz.runs.atlas import AtlasOptions, build_atlas

    ref = ModelRef("vgg16", "none")
    model = ref.load()
    layers = [conv.path for conv in conv_layers(model)]
    units = sum(int(conv.output_shape[-1] or 0) for conv in conv_layers(model))
    with tempfile.TemporaryDirectory() as scratch:
        folder = photos(Path(scratch) / "photos", args.photos)
        inputs = gather_inputs([folder])
        reading = EngineReading(batch_size=16)

        print(f"VGG16, random weights: {len(layers)} conv layers, {units} units; {len(inputs)} photos at 224 px")
        stats = lambda: scan_inputs(FilterStats, StatsQuery(layers), model, inputs, reading)  # noqa: E731
        atlas = lambda: scan_inputs(AtlasScan, AtlasQuery(layers), model, inputs, reading)  # noqa: E731
        first, second, ratio = paired_times(stats, atlas, args.pairs)
        print(f"1. data pass: stats {first:.1f} s, atlas {second:.1f} s: {ratio:.2f}x (target at most 1.3x)")

        settings = MaximizeOptions(steps=args.steps, size=args.size)
        chunk = list(range(16))
        work = MaximizeUnits(model, MaximizeWork(settings))
        maximizer = Maximizer(model, "block3_conv1", settings)
        plain = lambda: maximizer(chunk)  # noqa: E731
        unit = lambda: work.run(UnitChunk("block3_conv1", tuple(chunk)))  # noqa: E731
        first, second, ratio = paired_times(plain, unit, args.pairs)
        print(
            f"2. block3_conv1, 16 units, {args.steps} steps at {args.size} px: maximize {first / 16:.3f} s a filter, "
            f"atlas {second / 16:.3f} s a unit: {ratio:.3f}x (target within 5%)"
        )

        layer, count = "block2_conv2", args.ray_units
        chunks = [UnitChunk(layer, tuple(range(start, start + 4))) for start in range(0, count, 4)]
        times = {}
        for workers in (1, 2):
            where = EngineSettings("ray", None, workers)
            start = time.perf_counter()
            run_units(MaximizeUnits, MaximizeWork(settings), ref, chunks, where, lambda chunk, found: None)
            times[workers] = time.perf_counter() - start
        print(
            f"3. {layer}, {count} units on Ray: 1 worker {times[1]:.1f} s, 2 workers {times[2]:.1f} s: "
            f"{times[1] / times[2]:.2f}x as fast (target at least 1.6x; {os.cpu_count()} CPUs; actors' start counted)"
        )

        per_unit = {}
        for block in BLOCKS:
            timed = MaximizeUnits(model, MaximizeWork(replace(settings, steps=8)))
            timed.run(UnitChunk(block, tuple(range(16))))  # built and traced
            start = time.perf_counter()
            timed.run(UnitChunk(block, tuple(range(16))))
            per_unit[block] = (time.perf_counter() - start) / 16 * args.steps / 8
        total = sum(per_unit[_block_of(conv.path)] * int(conv.output_shape[-1] or 0) for conv in conv_layers(model))
        costs = ", ".join(f"{block} {seconds:.2f} s" for block, seconds in per_unit.items())
        print(f"4. a unit at {args.steps} steps: {costs}")
        print(
            "   the whole atlas's unit work: "
            + ", ".join(f"{workers} workers {total / workers / 3600:.2f} h" for workers in (1, 8, 64))
            + " (each worker on one CPU core like these; the data pass comes on top)"
        )

        out = Path(scratch) / "site"
        options = AtlasOptions(
            model_label="vgg16", weights="none", layers=["block5_conv1"], filters="0:16", steps=8, side=args.size
        )
        built = build_atlas(model, [folder], out, options)
        assert built.folder is not None
        own = sum(path.stat().st_size for path in (built.folder / "block5_conv1").rglob("*") if path.is_file())
        shared = sum(path.stat().st_size for path in (built.folder / "images").rglob("*") if path.is_file())
        print(
            f"5. site: {own / 16 / 1e3:.0f} KB a unit (its page, data and pictures), and {shared / 1e3:.0f} KB of "
            f"thumbnails shared by every unit ({shared / len(inputs) / 1e3:.0f} KB a photo)"
        )


def _block_of(layer: str) -> str:
    return f"{layer.split('_')[0]}_conv1"


if __name__ == "__main__":
    main()
