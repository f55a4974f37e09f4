"""``cnnviz explore``'s latency, as a user meets it: the command started in its own process (VGG16, random weights,
224 px), then from its "ready" (the address printed) to the first feature-map grid of block3_conv3 for a photo the
server has not run yet (its forward pass, all layers, and the drawing; target under 1 s on this 2-core machine),
and a cached grid (median of 30; target under 50 ms). The baseline, in this process: the same grid by the library
run that ``cnnviz featuremaps --layer block3_conv3`` calls, warm, on the same photo (the ratio is printed).

    python bench/bench_explore.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

LAYER = "block3_conv3"
MODEL = ["--model", "vgg16", "--weights", "none"]


@contextmanager
def server(*args: str) -> Iterator[tuple[str, str, int]]:
    """``cnnviz explore ARGS --port 0 --no-browser`` in its own process: (base address, token, process id), once
    it has printed its address (it is ready: model loaded and warmed up)."""
    command = [sys.executable, "-m", "cnnviz", "explore", *args, "--port", "0", "--no-browser"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("open http"):
                base, token = line.split()[1].split("/?token=")
                break
        else:
            raise RuntimeError("cnnviz explore ended before printing its address")
        yield base, token, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def fetch(url: str, token: str) -> bytes:
    """One GET with the token; the whole body."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return response.read()  # type: ignore[no-any-return]


def timed(url: str, token: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    body = fetch(url, token)
    return time.perf_counter() - start, body


def library_baseline(photo: Path) -> float:
    """The warm median time of the featuremaps run for one photo and the layer, in this process."""
    from cnnviz.engines.naming import ModelRef
    from cnnviz.runs.featuremaps import MapOptions, render_feature_maps

    ref = ModelRef("vgg16", "none")
    model = ref.load(include_top=True)
    options = MapOptions(**vars(ref.naming()), layers=[LAYER])
    with tempfile.TemporaryDirectory() as out:
        return median_time(lambda: render_feature_maps(model, [photo], out, options), repeats=5)


def main() -> None:
    photos = [ROOT / "sample_images" / "cat.jpg", ROOT / "sample_images" / "coffee.jpg"]
    with server(*map(str, photos), *MODEL, "-q") as (base, token, _):
        # the warm-up ran photo 0; photo 1 is new to the server
        first, body = timed(f"{base}/api/maps/1/{LAYER}.png", token)
        assert body[:8] == b"\x89PNG\r\n\x1a\n"
        cached = [timed(f"{base}/api/maps/1/{LAYER}.png", token)[0] for _ in range(30)]
        other, _ = timed(f"{base}/api/maps/1/block1_conv1.png", token)
    baseline = library_baseline(photos[1])
    ms = 1000
    print(f"first {LAYER} grid of a new photo, from ready: {first * ms:.0f} ms (target < 1000 ms)")
    print(
        f"  the featuremaps run of that grid, warm, in this process: {baseline * ms:.0f} ms ({first / baseline:.2f}x)"
    )
    median, most = statistics.median(cached) * ms, max(cached) * ms
    print(f"cached grid: median {median:.1f} ms, max {most:.1f} ms (target < 50 ms)")
    print(f"block1_conv1 of the same photo (its maps kept, the grid drawn now): {other * ms:.0f} ms")


if __name__ == "__main__":
    main()
