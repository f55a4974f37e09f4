"""``cnnviz explore``'s server, in process (Starlette's TestClient): every route, the pictures equal to the commands'
files byte for byte, the guard (token, Host), ids that are not files, and uploads that must be refused."""

from __future__ import annotations

import io
import json
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from cnnviz.engines.naming import ModelRef  # noqa: E402
from cnnviz.errors import OptionError  # noqa: E402
from cnnviz.explorer.app import build_app, cookie_name  # noqa: E402
from cnnviz.explorer.cache import ViewCache  # noqa: E402
from cnnviz.explorer.options import ExploreOptions  # noqa: E402
from cnnviz.explorer.views import Explorer  # noqa: E402
from cnnviz.explorer.worker import ModelWorker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAT, CAMERA = ROOT / "sample_images" / "cat.jpg", ROOT / "sample_images" / "camera.png"
TOKEN = "a-token-for-the-tests-only-0123"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
AUTH = {"authorization": f"token {TOKEN}"}


@pytest.fixture(scope="module")
def shapes() -> tuple[Any, dict[str, Any]]:
    ref = ModelRef("shapes")
    return ref.load(include_top=True), vars(ref.naming())


@pytest.fixture(scope="module")
def explorer(shapes: tuple[Any, dict[str, Any]]) -> Iterator[Explorer]:
    model, naming = shapes
    found = Explorer(model, [str(CAT), str(CAMERA)], ExploreOptions(**naming, k=2, upload_mb=1))
    yield found
    found.close()


@pytest.fixture(scope="module")
def client(explorer: Explorer) -> TestClient:
    return TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE)


def get(client: TestClient, path: str, **kwargs: Any) -> Any:
    response = client.get(path, headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs)
    return response


# -- what there is -----------------------------------------------------------------------------------------------


def test_the_model_route_gives_the_layer_records_of_cnnviz_layers_json(client: TestClient, shapes: Any) -> None:
    from cnnviz.models.layer_table import layer_rows

    record = get(client, "/api/model").json()
    assert record["model"] == "shapes"
    assert [{k: v for k, v in row.items() if k != "maps"} for row in record["layers"]] == layer_rows(shapes[0])
    assert [row["name"] for row in record["layers"]] == ["edges", "parts", "shapes"]
    assert all(row["maps"] for row in record["layers"])
    assert record["preprocessing"] == "none" and record["precision"] == "float32"


def test_the_images_route_lists_the_given_images_by_id(client: TestClient) -> None:
    listed = get(client, "/api/images").json()
    assert listed[:2] == [
        {"id": "0", "name": "cat.jpg", "uploaded": False},
        {"id": "1", "name": "camera.png", "uploaded": False},
    ]


def test_an_image_is_served_as_the_model_sees_it(client: TestClient) -> None:
    from cnnviz.inputs.images import load_image

    response = get(client, "/api/images/1.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(response.content)))
    grey = load_image(CAMERA, 3, (None, None))  # the bundled model takes RGB: the grey photo gets three channels
    assert served.shape == grey.shape and np.array_equal(served, np.clip(np.rint(grey), 0, 255).astype(np.uint8))


# -- the pictures are the commands' files ------------------------------------------------------------------------


def test_a_map_grid_has_the_bytes_of_the_featuremaps_file(client: TestClient, shapes: Any, tmp_path: Path) -> None:
    from cnnviz.runs.featuremaps import MapOptions, render_feature_maps

    model, naming = shapes
    render_feature_maps(model, [str(CAT)], tmp_path, MapOptions(**naming))
    for layer in ("edges", "parts", "shapes"):
        response = get(client, f"/api/maps/0/{layer}.png")
        assert response.status_code == 200, response.text
        assert response.content == (tmp_path / "cat" / f"{layer}.png").read_bytes()


def test_a_layout_says_where_each_map_is_in_the_grid(client: TestClient) -> None:
    layout = get(client, "/api/maps/0/edges.json").json()
    picture = Image.open(io.BytesIO(get(client, "/api/maps/0/edges.png").content))
    assert layout["channels"] == list(range(8)) and layout["grid"] == [3, 3]
    rows, cols = layout["size"]
    assert picture.width == cols and picture.height > rows  # the header strip is above the grid
    tile_rows, tile_cols = layout["tile"]
    assert rows == 3 * tile_rows + 2 * layout["padding"] and cols == 3 * tile_cols + 2 * layout["padding"]
    assert len(layout["min"]) == len(layout["max"]) == 8
    assert all(low <= high for low, high in zip(layout["min"], layout["max"], strict=True))


def test_grad_cam_has_the_bytes_of_the_gradcam_file(client: TestClient, shapes: Any, tmp_path: Path) -> None:
    from cnnviz.runs.attribute import GradcamOptions, render_gradcam

    model, naming = shapes
    record = get(client, "/api/gradcam/0.json").json()
    assert record["head"] == "classes" and record["layer"] == "shapes"
    top = record["top"]
    assert record["name"] == top[0]["name"] and top[0]["score"] >= top[-1]["score"]
    result = render_gradcam(model, [str(CAT)], tmp_path, GradcamOptions(**naming, target="squares"))
    response = get(client, "/api/gradcam/0.png", params={"class": "squares"})
    assert response.status_code == 200
    assert response.content == result.images[0].picture.read_bytes()
    assert get(client, "/api/gradcam/0.json", params={"class": "squares"}).json()["name"] == "squares"


def test_every_attribution_method_has_the_bytes_of_the_explain_file(
    client: TestClient, shapes: Any, tmp_path: Path
) -> None:
    from cnnviz.methods.attribution import METHODS, general_methods
    from cnnviz.runs.attribute import AttributeOptions, render_attributions

    model, naming = shapes
    assert [m["name"] for m in get(client, "/api/model").json()["methods"]] == general_methods()
    for method in ("scorecam", "integrated-gradients", "occlusion"):
        options = AttributeOptions(**naming, methods=(method,), target="squares")
        result = render_attributions(model, [str(CAT)], tmp_path / method, options)
        response = get(client, "/api/explain/0.png", params={"method": method, "class": "squares"})
        assert response.status_code == 200, response.text
        assert response.content == result.images[0].picture.read_bytes(), method
        record = get(client, "/api/explain/0.json", params={"method": method, "class": "squares"}).json()
        assert (record["method"], record["name"], record["file"]) == (method, "squares", "attributions_squares.png")
        assert record["layer"] == ("shapes" if METHODS[method].needs_layer else "")
    tasks = {t["key"]: t for t in get(client, "/api/tasks").json()}
    occlusion = tasks["explain occlusion 0 squares"]
    assert occlusion["state"] == "done" and occlusion["done"] == occlusion["total"] > 1  # one per patch
    missing = get(client, "/api/explain/0.png", params={"method": "saliency"})
    assert missing.status_code == 404 and "no attribution method 'saliency'" in missing.json()["error"]


def test_without_gradcam_its_routes_say_so(shapes: tuple[Any, dict[str, Any]]) -> None:
    model, naming = shapes
    explorer = Explorer(model, [str(CAT)], ExploreOptions(**naming, gradcam=False))
    try:
        client = TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE)
        assert get(client, "/api/model").json()["gradcam"] is False
        response = get(client, "/api/gradcam/0.png")
        assert response.status_code == 400 and "--no-gradcam" in response.json()["error"]
        assert get(client, "/api/maps/0/edges.png").status_code == 200
    finally:
        explorer.close()


def test_an_unknown_class_is_a_clear_400(client: TestClient) -> None:
    response = get(client, "/api/gradcam/0.png", params={"class": "zebra"})
    assert response.status_code == 400 and "zebra" in response.json()["error"]


def test_kernels_and_maximize_have_the_bytes_of_the_commands_files(
    client: TestClient, shapes: Any, tmp_path: Path
) -> None:
    from cnnviz.runs.filters import FilterOptions, render_filters
    from cnnviz.runs.maximize import MaximizeRunOptions, render_maximize

    model, naming = shapes
    render_filters(model, tmp_path, FilterOptions(**naming, layer="parts", filters="3"))
    assert get(client, "/api/kernels/parts/3.png").content == (tmp_path / "filters_parts.png").read_bytes()
    render_maximize(model, tmp_path, MaximizeRunOptions(**naming, layer="edges", filters="5"))
    assert get(client, "/api/maximize/edges/5.png").content == (tmp_path / "maximize_edges.png").read_bytes()
    tasks = get(client, "/api/tasks").json()
    task = next(t for t in tasks if "maximize" in t["key"])
    assert task["key"] == "maximize edges 5" and task["state"] == "done" and task["done"] == task["total"] > 0


def test_top_records_and_picture_are_the_top_commands(client: TestClient, shapes: Any, tmp_path: Path) -> None:
    from cnnviz.runs.top import TopOptions, render_top

    model, naming = shapes
    given = [str(CAT), str(CAMERA)]
    render_top(model, given, tmp_path, TopOptions(**naming, layer="parts", k=2, json=tmp_path / "top.json"))
    expected = json.loads((tmp_path / "top.json").read_text())
    served = get(client, "/api/top/parts.json").json()
    assert [{k: v for k, v in r.items() if k != "image_id"} for r in served] == expected
    assert {r["image_id"] for r in served} <= {"0", "1"}
    assert all(given[int(r["image_id"])] == r["image"] for r in served)
    render_top(model, given, tmp_path / "one", TopOptions(**naming, layer="parts", k=2, filters="7"))
    assert get(client, "/api/top/parts/7.png").content == (tmp_path / "one" / "top_parts.png").read_bytes()


def test_stats_say_which_filters_are_dead(client: TestClient, shapes: Any) -> None:
    from cnnviz.methods.stats import filter_stats

    model, _ = shapes
    rows = get(client, "/api/stats/shapes.json").json()
    found = filter_stats(model, [str(CAT), str(CAMERA)], ["shapes"])
    expected = [row for layer in found.layers for row in layer.rows()]
    assert rows == json.loads(json.dumps(expected))
    assert len(rows) == 32 and {"dead", "rare", "active_fraction"} <= rows[0].keys()
    unknown = get(client, "/api/dead/shapes.json")
    assert unknown.status_code == 404 and unknown.json()["error"] == "no scan 'dead'; the explorer serves: top, stats"


def test_an_overlay_is_one_map_over_its_image(client: TestClient) -> None:
    response = get(client, "/api/overlay/0/edges/2.png")
    assert response.status_code == 200
    overlay = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    cat = np.asarray(Image.open(io.BytesIO(get(client, "/api/images/0.png").content)))
    assert overlay.shape == cat.shape  # one tile: the image's size, no header


# -- nested, bfloat16 ---------------------------------------------------------------------------------------------


def test_nested_layer_names_are_url_encoded_and_served(keras: Any, tmp_path: Path) -> None:
    inner = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="conv")], name="base")
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inner(inputs)), name="outer")
    Image.fromarray(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)).save(tmp_path / "x.png")
    explorer = Explorer(model, [str(tmp_path / "x.png")], ExploreOptions(precision="bfloat16"))
    try:
        client = TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE)
        assert [row["name"] for row in get(client, "/api/model").json()["layers"]] == ["base/conv"]
        assert get(client, "/api/model").json()["precision"] == "bfloat16"
        response = get(client, f"/api/maps/0/{quote('base/conv', safe='')}.png")
        assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
        assert get(client, f"/api/maps/0/{quote('base/conv', safe='')}.json").json()["shape"] == [14, 14, 4]
        assert get(client, "/api/maps/0/conv.png").status_code == 404
    finally:
        explorer.close()


def test_a_model_of_arrays_serves_what_fits_it_and_says_why_not_the_rest(keras: Any, tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((32, 2)), keras.layers.Conv1D(4, 3, name="c1"), keras.layers.GlobalAveragePooling1D()], name="seq"
    )
    np.save(tmp_path / "a.npy", np.linspace(0, 1, 64, dtype=np.float32).reshape(32, 2))
    explorer = Explorer(model, [str(tmp_path / "a.npy")], ExploreOptions())
    try:
        client = TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE)
        strip = Image.open(io.BytesIO(get(client, "/api/images/0.png").content))
        assert (strip.width, strip.height) == (32, 1)  # the array's channel mean, one grey row
        assert get(client, "/api/maps/0/c1.json").json()["shape"] == [30, 4]
        assert get(client, "/api/maps/0/c1.png").status_code == 200
        top = get(client, "/api/top/c1.json")
        assert (
            top.status_code == 422 and top.json()["error"] == "layer 'c1' is a Conv1D with 1-D maps; top needs 2-D maps"
        )
        assert get(client, "/api/overlay/0/c1/0.png").status_code == 400
        assert len(get(client, "/api/stats/c1.json").json()) == 4
    finally:
        explorer.close()


def test_a_model_of_two_inputs_takes_one_feed_for_every_image(keras: Any) -> None:
    image = keras.Input((8, 8, 3), name="image")
    extra = keras.Input((2,), name="extra")
    maps = keras.layers.Conv2D(2, 3, name="conv")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    model = keras.Model([image, extra], keras.layers.Concatenate()([pooled, extra]))
    with pytest.raises(OptionError, match="the same array for every image"):
        Explorer(model, [], ExploreOptions(feed={"extra": np.zeros((3, 2), np.float32)}))
    explorer = Explorer(model, [str(CAT)], ExploreOptions(feed={"extra": np.ones((2,), np.float32)}))
    try:
        client = TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE)
        layout = get(client, "/api/maps/0/conv.json").json()
        assert layout["shape"] == [6, 6, 2] and get(client, "/api/maps/0/conv.png").status_code == 200
        assert get(client, "/api/model").json()["layers"][0]["name"] == "conv"
    finally:
        explorer.close()


# -- the guard -----------------------------------------------------------------------------------------------------


def test_a_request_without_the_token_or_with_a_wrong_one_is_refused(client: TestClient) -> None:
    for headers in ({}, {"authorization": "token wrong"}, {"cookie": f"{cookie_name(PORT)}=wrong"}):
        response = client.get("/api/model", headers=headers)
        assert response.status_code == 403 and "token" in response.text
    assert client.get("/", headers={}).status_code == 403
    assert client.get("/api/model", params={"token": TOKEN}).status_code == 200


def test_the_first_page_moves_the_token_into_a_cookie(explorer: Explorer) -> None:
    fresh = TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE, follow_redirects=False)
    first = fresh.get("/", params={"token": TOKEN, "layer": "edges"})
    assert first.status_code == 303 and first.headers["location"] == "/?layer=edges"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{cookie_name(PORT)}={TOKEN}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = fresh.get("/", headers={"cookie": f"{cookie_name(PORT)}={TOKEN}"})
    assert page.status_code == 200 and "app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_a_foreign_host_is_refused_even_with_the_token(client: TestClient) -> None:
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.nip.io:8765", ""):
        response = client.get("/api/model", headers={**AUTH, "host": host})
        assert response.status_code == 403 and "Host" in response.text, host
    for host in ("localhost:8765", "127.0.0.1:8765", "[::1]:8765"):
        assert client.get("/api/model", headers={**AUTH, "host": host}).status_code == 200, host


class _Opens:
    """Files opened while :attr:`watching` (an audit hook: every open in this process, Python's and Pillow's)."""

    def __init__(self) -> None:
        self.watching = False
        self.paths: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.watching and event == "open" and isinstance(args[0], str | bytes):
            self.paths.append(str(args[0]))


_OPENS = _Opens()


def test_path_like_ids_are_404_and_read_no_file(client: TestClient, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(secret)
    tricks = [
        "/api/images/..%2F..%2Fetc%2Fpasswd.png",
        f"/api/images/{quote(str(secret), safe='')}.png",
        "/api/maps/..%2F0/edges.png",
        "/api/maps/%2e%2e/edges.png",
        "/api/maps/0/..%2F..%2Fetc%2Fpasswd.png",
        "/api/maps/0/%2e%2e%2fedges.png",
        f"/api/maps/{quote(str(secret), safe='')}/edges.png",
        "/api/kernels/edges/99.png",
        "/api/top/..%2Fedges.json",
        "/static/..%2Fapp.py",
        "/static/%2e%2e%2fviews.py",
        "/api/gradcam/-1.png",
        "/api/images/1e1.png",
    ]
    _OPENS.watching = True
    try:
        answers = [get(client, path) for path in tricks]
    finally:
        _OPENS.watching = False
    assert [a.status_code for a in answers] == [404] * len(tricks), [
        (t, a.text) for t, a in zip(tricks, answers, strict=True)
    ]
    assert not [path for path in _OPENS.paths if not path.startswith(("/proc", "/sys"))], _OPENS.paths


# -- uploads -------------------------------------------------------------------------------------------------------


def _png_header_only(rows: int, cols: int) -> bytes:
    """A PNG that says it is rows x cols and holds almost nothing: what a decompression bomb announces."""
    header = struct.pack(">IIBBBBB", cols, rows, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    data = zlib.compress(b"\x00" * 64)
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat


def test_bad_uploads_get_a_clear_4xx_and_the_server_goes_on(client: TestClient) -> None:
    before = len(get(client, "/api/images").json())
    cat = CAT.read_bytes()
    bad = {
        "notes.txt": (b"just some text, not an image\n", 400, "not an image"),
        "cut.jpg": (cat[: len(cat) // 3], 400, "truncated"),
        "bomb.png": (_png_header_only(40000, 40000), 400, "decompression bomb"),
        "huge.jpg": (cat + b"\x00" * (1 << 20), 413, "limit"),
        "empty.png": (b"", 400, "empty"),
    }
    for name, (body, status, words) in bad.items():
        response = client.post("/api/images", params={"name": name}, content=body, headers=AUTH)
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["error"], (name, response.json())
        assert get(client, "/api/images").status_code == 200
    assert len(get(client, "/api/images").json()) == before


def test_uploads_are_counted(explorer: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnviz.explorer import shelf

    kept = sum(image.data is not None for image in explorer.shelf)
    monkeypatch.setattr(shelf, "MAX_UPLOADS", kept)
    with pytest.raises(shelf.UploadTooLarge, match=f"at most {kept} uploads"):
        explorer.shelf.add("one-more.jpg", CAT.read_bytes())


def test_an_uploaded_image_gets_an_id_and_its_maps(client: TestClient) -> None:
    response = client.post("/api/images", params={"name": "../../cat.jpg"}, content=CAT.read_bytes(), headers=AUTH)
    assert response.status_code == 201, response.text
    added = response.json()
    assert added["name"] == "cat.jpg" and added["uploaded"] is True
    assert added in get(client, "/api/images").json()
    # the same photo under the same name: the same grid as the given cat.jpg's, byte for byte
    assert get(client, f"/api/maps/{added['id']}/parts.png").content == get(client, "/api/maps/0/parts.png").content


def test_a_top_scan_after_an_upload_covers_it(client: TestClient) -> None:
    astronaut = (ROOT / "sample_images" / "astronaut.jpg").read_bytes()
    added = client.post("/api/images", params={"name": "astronaut.jpg"}, content=astronaut, headers=AUTH).json()
    count = len(get(client, "/api/images").json())
    records = get(client, "/api/top/edges.json").json()
    task = next(t for t in get(client, "/api/tasks").json() if t["key"] == f"top edges {count}")
    assert task["done"] == task["total"] == count and task["state"] == "done"
    assert added["id"] in {r["image_id"] for r in records}  # its bright edges win some filter's top places
    assert get(client, "/api/top/edges/0.png").status_code == 200


# -- the cache and the model thread ----------------------------------------------------------------------------------


def test_the_cache_keeps_recent_views_under_its_byte_cap() -> None:
    cache = ViewCache(max_bytes=250)

    def value(size: int) -> Any:
        return lambda: _done(b"x" * size)

    for key in "abc":
        assert cache.get(key, value(100)).result() == b"x" * 100
    assert len(cache) == 2 and cache.bytes == 200  # "a" went when "c" came
    assert cache.peek("a") is None and cache.peek("b") is not None
    cache.get("b", value(1))  # used: "c" is now the oldest
    cache.get("d", value(100))
    assert cache.peek("c") is None and cache.peek("b") is not None
    assert cache.get("big", value(300)).result() == b"x" * 300 and cache.peek("big") is None


def test_a_view_being_computed_is_computed_once_for_every_request() -> None:
    cache = ViewCache(max_bytes=1000)
    release = threading.Event()
    calls: list[int] = []
    pending: Future[Any] = Future()

    def compute() -> Future[Any]:
        calls.append(1)
        return pending

    waiting = [cache.get("view", compute) for _ in range(5)]
    threading.Timer(0.05, lambda: (release.set(), pending.set_result(b"done"))).start()
    assert [future.result(timeout=5) for future in waiting] == [b"done"] * 5 and calls == [1]


def test_a_failed_computation_is_not_kept() -> None:
    cache = ViewCache(max_bytes=1000)
    failed: Future[Any] = Future()
    failed.set_exception(RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        cache.get("view", lambda: failed).result()
    assert cache.get("view", lambda: _done(b"ok")).result() == b"ok"


def test_urgent_jobs_run_between_the_steps_of_a_task() -> None:
    worker = ModelWorker()
    order: list[str] = []
    step_reached = threading.Event()
    go_on = threading.Event()

    def task(progress: Any) -> str:
        for step in range(3):
            order.append(f"step {step}")
            if step == 0:
                step_reached.set()
                go_on.wait(5)
            progress(step + 1, 3)
        return "finished"

    background = worker.start_task("t", "a task", task)
    step_reached.wait(5)
    urgent = worker.submit(lambda: order.append("map"))
    go_on.set()
    assert background.result(5) == "finished" and urgent.result(5) is None
    assert order == ["step 0", "map", "step 1", "step 2"]
    assert worker.tasks["t"].record() | {} == {
        "key": "t",
        "what": "a task",
        "done": 3,
        "total": 3,
        "state": "done",
        "error": "",
    }
    worker.stop()


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def test_an_atlas_is_served_from_its_list_of_files_and_linked_from_the_cards(
    shapes: tuple[Any, dict[str, Any]], tmp_path: Path
) -> None:
    from cnnviz.runs.atlas import AtlasOptions, build_atlas

    model, naming = shapes
    options = AtlasOptions(**naming, filters="0:2", steps=2, k=2, size=(48, 48), side=48)
    site = build_atlas(model, [str(CAT)], tmp_path, options).folder
    assert site is not None
    with pytest.raises(OptionError, match="not an atlas"):
        ExploreOptions(atlas=str(tmp_path))
    explorer = Explorer(model, [str(CAT)], ExploreOptions(**naming, atlas=str(site)))
    try:
        client = TestClient(build_app(explorer, TOKEN, PORT), base_url=BASE)
        record = get(client, "/api/model").json()["atlas"]
        assert record["parts"] == {"folder": "parts", "units": [0, 1]}
        page = get(client, "/atlas/parts/1.html")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.content == (site / "parts" / "1.html").read_bytes()
        assert get(client, "/atlas/").content == (site / "index.html").read_bytes()
        assert get(client, "/atlas/parts/img/1_max.png").headers["content-type"] == "image/png"
        for missing in ("/atlas/parts/7.html", "/atlas/../.atlas-scan.pickle", "/atlas/%2e%2e/manifest.json"):
            assert get(client, missing).status_code == 404, missing
        assert client.get("/atlas/index.html").status_code in (401, 403)  # the token is required here too
    finally:
        explorer.close()
