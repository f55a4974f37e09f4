"""The explorer's web app: thin routes over :class:`cnnviz.explorer.views.Explorer`, behind a guard.

A local server is reachable by every process on the machine and by every page its browser opens, so every
request must carry the token printed with the URL (as ``?token=``, then as the cookie the first page sets, or as
an ``Authorization: token ...`` header), and its ``Host`` must be this server's own (a name that resolves to
127.0.0.1 for a page of another site, DNS rebinding, is refused). Routes take ids, never file paths; uploads are
size-limited before they are read in full.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cnnviz.errors import CnnvizError, ImageLoadError, OptionError, brief
from cnnviz.explorer.shelf import UploadTooLarge
from cnnviz.explorer.views import Explorer, NotFound

#: The page's files, shipped in the package; nothing else is served.
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def cookie_name(port: int) -> str:
    """The token's cookie; cookies do not tell ports apart, so two explorers on one machine name theirs apart."""
    return f"cnnviz_token_{port}"


def host_allowed(host: str, bound: str) -> bool:
    """Whether a request's ``Host`` header names this server: ``localhost``, an IP address (a rebinding page
    cannot make the browser send one for its own name), or the host it was started on.

    >>> host_allowed("127.0.0.1:8765", "127.0.0.1"), host_allowed("localhost:1", "127.0.0.1")
    (True, True)
    >>> host_allowed("evil.example:8765", "127.0.0.1"), host_allowed("[::1]:80", "127.0.0.1")
    (False, True)
    """
    name = host.strip()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.split(":")[0]
    name = name.lower().rstrip(".")
    if not name:
        return False
    if name in ("localhost", bound.lower()):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: the ``Host`` check and the token, before any route."""

    def __init__(self, app: ASGIApp, token: str, port: int, bound: str) -> None:
        self.app, self.token, self.port, self.bound = app, token, port, bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if not host_allowed(headers.get("host", ""), self.bound):
            await _refuse(scope, receive, send, 403, "this server answers to its own address only (Host refused)")
            return
        given = self._token(scope, headers)
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            message = "a valid token is required: open the URL 'cnnviz explore' printed (it ends in ?token=...)"
            await _refuse(scope, receive, send, 403, message)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _token(self, scope: Scope, headers: dict[str, str]) -> str | None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query:
            return query["token"][0]
        authorization = headers.get("authorization", "")
        for scheme in ("token ", "bearer "):
            if authorization.lower().startswith(scheme):
                return authorization[len(scheme) :].strip()
        name = cookie_name(self.port)
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    await PlainTextResponse(message + "\n", status_code=status)(scope, receive, send)


async def _wait(future: Future[Any]) -> Any:
    return await asyncio.wrap_future(future)


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"cache-control": "no-cache"})


def _error(exc: Exception) -> Response:
    """A library error as an HTTP answer with its message: what was asked for is missing (404), too large (413),
    not an image or not an option that works (400), or cannot be computed for this model (422)."""
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, UploadTooLarge):
        status = 413
    elif isinstance(exc, ImageLoadError | OptionError):
        status = 400
    elif isinstance(exc, CnnvizError):
        status = 422
    else:
        status = 500
    text = str(exc) if isinstance(exc, CnnvizError) else f"unexpected {type(exc).__name__}: {brief(exc)}"
    return JSONResponse({"error": text}, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]


def _answered(handler: Handler) -> Handler:
    """A route whose library errors become answers (:func:`_error`) instead of a server error."""

    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except (CnnvizError, ValueError) as exc:
            return _error(exc)
        except Exception as exc:  # a bug: still an answer, and the server goes on
            return _error(exc)

    return route


def _filter(request: Request) -> int:
    return int(request.path_params["filter"])


def build_app(explorer: Explorer, token: str, port: int, bound: str = "127.0.0.1") -> ASGIApp:
    """The web app over ``explorer``: its page, its API (README, "The explorer's API") and the guard.

    Args:
        explorer: the model and its views.
        token: what every request must carry.
        port: the port it is served on (names the token's cookie).
        bound: the address it listens on (a ``Host`` it answers to).
    """
    files = resources.files("cnnviz.explorer") / "static"
    page = (files / "index.html").read_text(encoding="utf-8")
    assets = {name: ((files / name).read_bytes(), kind) for name, kind in STATIC.items()}

    async def index(request: Request) -> Response:
        if "token" in request.query_params:  # the first visit: the token moves to a cookie, out of the address
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            target = "/" + ("?" + rest if rest else "")
            response: Response = RedirectResponse(target, status_code=303)
            response.set_cookie(cookie_name(port), token, httponly=True, samesite="strict")
            return response
        return Response(page, media_type="text/html", headers={"cache-control": "no-store"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return PlainTextResponse("not found\n", status_code=404)
        data, kind = assets[name]
        return Response(data, media_type=kind, headers={"cache-control": "no-cache"})

    async def atlas(request: Request) -> Response:
        found = explorer.atlas.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("not found\n", status_code=404)
        return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})

    async def model(request: Request) -> Response:
        return JSONResponse(explorer.model_record())

    async def images(request: Request) -> Response:
        return JSONResponse([image.record() for image in explorer.shelf])

    async def upload(request: Request) -> Response:
        limit = explorer.shelf.upload_limit
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise UploadTooLarge(f"the upload is {int(declared):,} bytes; the limit is {limit:,}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise UploadTooLarge(f"the upload is over the limit of {limit:,} bytes")
        name = request.query_params.get("name", "upload")
        added = await asyncio.to_thread(explorer.shelf.add, name, bytes(body))
        return JSONResponse(added.record(), status_code=201)

    async def image_png(request: Request) -> Response:
        return _png(await _wait(explorer.image_png(explorer.image(request.path_params["image"]))))

    async def maps(request: Request) -> Response:
        image = explorer.image(request.path_params["image"])
        return _png(await _wait(explorer.map_png(image, request.path_params["layer"])))

    async def layout(request: Request) -> Response:
        image = explorer.image(request.path_params["image"])
        return JSONResponse(await _wait(explorer.map_layout(image, request.path_params["layer"])))

    async def overlay(request: Request) -> Response:
        image = explorer.image(request.path_params["image"])
        return _png(await _wait(explorer.overlay_png(image, request.path_params["layer"], _filter(request))))

    async def kernel(request: Request) -> Response:
        return _png(await _wait(explorer.kernel_png(request.path_params["layer"], _filter(request))))

    async def maximize(request: Request) -> Response:
        return _png(await _wait(explorer.maximize_png(request.path_params["layer"], _filter(request))))

    async def scan(request: Request) -> Response:
        records = explorer.scan_records(request.path_params["scan"], request.path_params["layer"])
        return JSONResponse(await _wait(records))

    async def top_png(request: Request) -> Response:
        return _png(await _wait(explorer.top_png(request.path_params["layer"], _filter(request))))

    async def gradcam(request: Request) -> Response:
        image = explorer.image(request.path_params["image"])
        picture, _ = await _wait(explorer.gradcam(image, request.query_params.get("class")))
        return _png(picture)

    async def gradcam_record(request: Request) -> Response:
        image = explorer.image(request.path_params["image"])
        _, record = await _wait(explorer.gradcam(image, request.query_params.get("class")))
        return JSONResponse(record)

    def _explained(request: Request) -> Future[tuple[bytes, dict[str, Any]]]:
        image = explorer.image(request.path_params["image"])
        query = request.query_params
        return explorer.explanation(image, query.get("method", "gradcam"), query.get("class"))

    async def explanation(request: Request) -> Response:
        picture, _ = await _wait(_explained(request))
        return _png(picture)

    async def explanation_record(request: Request) -> Response:
        _, record = await _wait(_explained(request))
        return JSONResponse(record)

    async def tasks(request: Request) -> Response:
        return Response(json.dumps(explorer.tasks()), media_type="application/json")

    layer, number = "{layer:path}", "{filter:int}"
    routes = [
        Route("/", index),
        Route("/static/{name}", asset),
        Route("/atlas/{name:path}", atlas),
        Route("/api/model", _answered(model)),
        Route("/api/images", _answered(images), methods=["GET"]),
        Route("/api/images", _answered(upload), methods=["POST"]),
        Route("/api/images/{image}.png", _answered(image_png)),
        Route(f"/api/overlay/{{image}}/{layer}/{number}.png", _answered(overlay)),
        Route(f"/api/maps/{{image}}/{layer}.png", _answered(maps)),
        Route(f"/api/maps/{{image}}/{layer}.json", _answered(layout)),
        Route(f"/api/kernels/{layer}/{number}.png", _answered(kernel)),
        Route(f"/api/maximize/{layer}/{number}.png", _answered(maximize)),
        Route(f"/api/top/{layer}/{number}.png", _answered(top_png)),
        Route("/api/gradcam/{image}.png", _answered(gradcam)),
        Route("/api/gradcam/{image}.json", _answered(gradcam_record)),
        Route("/api/explain/{image}.png", _answered(explanation)),
        Route("/api/explain/{image}.json", _answered(explanation_record)),
        Route("/api/tasks", _answered(tasks)),
        # last: the layer scans (top, stats: cnnviz.explorer.scans.SCANS) by name
        Route(f"/api/{{scan}}/{layer}.json", _answered(scan)),
    ]
    return Guard(Starlette(routes=routes), token, port, bound)
