"""A bounded load on ``cnnviz explore`` over loopback: 32 concurrent clients, 20 requests each (640), mixing new
views (600 distinct feature-map grids: 48 photos x VGG16's 13 conv layers, random weights) with views already
asked for. No error is allowed and every answer must be a whole PNG. The server's peak RSS (VmHWM) is read after
the first 100 distinct views and after all 600: with the cache capped (the explorer's default cap, or
``--cache-mb``) the second must stay within 1.2x of the first. Printed: both peaks, and the p50/p95 latency of
cached and of new map requests. The photos are different crops of the sample images (bench/bench_top.py).

    python bench/bench_explore_load.py
    python bench/bench_explore_load.py --cache-mb 1536
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_explore import MODEL, server  # noqa: E402
from bench_top import photos  # noqa: E402

from cnnviz.explorer.cache import default_cache_mb  # noqa: E402

CLIENTS, REQUESTS = 32, 20
LAYERS = [f"block{b}_conv{c}" for b, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for c in range(1, convs + 1)]
PHOTOS = 48
FIRST = 100


def peak_rss_mb(pid: int) -> float:
    """The largest peak resident set so far (VmHWM), in MiB, of the process and its children: the ``cnnviz``
    command serves from a child it forks (cnnviz/crashes.py)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    peaks = []
    for process in [pid, *map(int, children)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


class Client(threading.Thread):
    """One client on its own keep-alive connection, asking for its paths in order."""

    def __init__(self, base: str, token: str, paths: list[tuple[str, bool]]) -> None:
        super().__init__()
        address = urlparse(base)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=600)
        self.token, self.paths = token, paths
        self.times: list[tuple[bool, float]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        for path, cached in self.paths:
            start = time.perf_counter()
            try:
                self.connection.request("GET", path, headers={"Authorization": f"token {self.token}"})
                response = self.connection.getresponse()
                body = response.read()
            except OSError as exc:
                self.errors.append(f"{path}: {exc}")
                continue
            self.times.append((cached, time.perf_counter() - start))
            whole = body.startswith(b"\x89PNG\r\n\x1a\n") and body.endswith(b"IEND\xaeB`\x82")
            if response.status != 200 or not whole or len(body) != int(response.getheader("content-length") or -1):
                self.errors.append(f"{path}: {response.status}, {len(body)} bytes, whole PNG: {whole}")
        self.connection.close()


def plan(views: list[str], repeats: int) -> list[list[tuple[str, bool]]]:
    """The clients' request lists for one stage: the new ``views`` dealt round the clients, and ``repeats`` times a
    client asks again for the view it has just been given (a user going back to it): cached."""
    lists: list[list[tuple[str, bool]]] = [[] for _ in range(CLIENTS)]
    for number, view in enumerate(views):
        lists[number % CLIENTS].append((view, False))
    for number in range(repeats):
        paths = lists[(number * 7) % CLIENTS]
        place = 1 + (number * 5) % len(paths)
        paths.insert(place, (paths[place - 1][0], True))
    return lists


def stage(base: str, token: str, lists: list[list[tuple[str, bool]]]) -> tuple[list[tuple[bool, float]], list[str]]:
    clients = [Client(base, token, paths) for paths in lists]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    return [t for c in clients for t in c.times], [e for c in clients for e in c.errors]


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms ({len(ordered)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-mb", type=int, default=None, help="the cap (default: the explorer's own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = photos(Path(work) / "photos", PHOTOS)
        views = [f"/api/maps/{image}/{quote(layer, safe='')}.png" for image in range(PHOTOS) for layer in LAYERS]
        views = views[: CLIENTS * REQUESTS - 40]  # 600 new views, and 40 cached ones among the 640 requests
        cap = [] if args.cache_mb is None else ["--cache-mb", str(args.cache_mb)]
        with server(str(folder), *MODEL, *cap, "-q") as (base, token, pid):
            started = peak_rss_mb(pid)
            times, errors = stage(base, token, plan(views[:FIRST], 8))
            after_first = peak_rss_mb(pid)
            more, more_errors = stage(base, token, plan(views[FIRST:], 32))
            after_all = peak_rss_mb(pid)
    times += more
    errors += more_errors
    print(f"{len(times) + len(errors)} requests from {CLIENTS} clients: {len(errors)} errors")
    for error in errors[:10]:
        print(f"  {error}")
    print(
        f"peak RSS: {started:.0f} MiB ready, {after_first:.0f} MiB after {FIRST} distinct views, "
        f"{after_all:.0f} MiB after {len(views)}: {after_all / after_first:.2f}x (target <= 1.2x; cache cap "
        f"{args.cache_mb or default_cache_mb()} MiB)"
    )
    print(f"new map requests:    {percentiles([t for cached, t in times if not cached])}")
    print(f"cached map requests: {percentiles([t for cached, t in times if cached])}")


if __name__ == "__main__":
    main()
