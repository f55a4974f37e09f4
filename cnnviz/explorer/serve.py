"""Serving the explorer: a uvicorn server on a socket of its own, in this thread (the command) or in a thread
beside a notebook's (:func:`start`)."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from cnnviz.errors import CnnvizError, OptionError
from cnnviz.explorer.options import ExploreOptions
from cnnviz.explorer.views import Explorer
from cnnviz.inputs.gather import Images, Input

#: How long :func:`start` waits for the server to answer.
STARTUP_SECONDS = 10.0


def _needs_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise OptionError(
            f"the explorer needs a web server ({exc.name} is not installed): pip install 'cnnviz[explore]'"
        ) from exc


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port).

    Raises:
        CnnvizError: the port is taken or the address is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "; choose another with `port` (0 picks a free one)" if exc.errno in (98, 48) else ""
        raise CnnvizError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class Server:
    """A running explorer: its address with the token (:attr:`url`), the explorer, and a way to stop it."""

    url: str
    explorer: Explorer
    token: str
    port: int
    server: Any
    socket: socket.socket
    thread: threading.Thread | None = None

    def stop(self) -> None:
        """Stop serving and let the model thread go."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.explorer.close()

    def _repr_html_(self) -> str:
        """In a notebook: a link to the page."""
        return f'<a href="{self.url}" target="_blank">cnnviz explorer: {self.explorer.label}</a>'


def prepare(model: Any, images: Images, options: ExploreOptions) -> Server:
    """Build the explorer and its app, listen, and warm the model up: everything before serving.

    Raises:
        OptionError: the web extra is missing, or the options do not fit the model.
        CnnvizError: the address cannot be listened on.
    """
    _needs_extra()
    import uvicorn

    from cnnviz.explorer.app import build_app

    explorer = Explorer(model, [os.fspath(item) if not isinstance(item, Input) else item for item in images], options)
    sock = _listen(options.host, options.port)
    port = sock.getsockname()[1]
    token = options.token or secrets.token_urlsafe(24)
    app = build_app(explorer, token, port, options.host)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    shown = f"[{options.host}]" if ":" in options.host else options.host
    handle = Server(f"http://{shown}:{port}/?token={token}", explorer, token, port, server, sock)
    explorer.warm_up()
    return handle


def serve(handle: Server) -> None:
    """Serve until Ctrl-C (or :meth:`Server.stop` from another thread)."""
    try:
        handle.server.run(sockets=[handle.socket])
    finally:
        handle.explorer.close()


def explore(
    model: Any,
    images: Images = (),
    options: ExploreOptions | None = None,
    **settings: Any,
) -> Server:
    """Serve the explorer over ``model`` and ``images`` in a background thread and return at once: for notebooks
    (the handle shows as a link) and tests. Open :attr:`Server.url`; :meth:`Server.stop` ends it.

    In a notebook::

        server = cnnviz.explore(model, ["cat.jpg"], port=0)
        server          # a link to http://127.0.0.1:40117/?token=...
        server.stop()

    Args:
        model: a Keras model.
        images: image files, folders and patterns; more can be uploaded from the page.
        options: how to read, draw and serve; or give its fields as keywords (``settings``).

    Raises:
        OptionError, CnnvizError: as :func:`prepare`.
    """
    if options is not None and settings:
        raise OptionError("give `options` or its fields as keywords, not both")
    options = options if options is not None else ExploreOptions(**settings)
    handle = prepare(model, images, options)
    server = handle.server
    server.install_signal_handlers = lambda: None  # a notebook's Ctrl-C is its own
    handle.thread = threading.Thread(
        target=server.run, kwargs={"sockets": [handle.socket]}, name="cnnviz-explore", daemon=True
    )
    handle.thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and handle.thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    return handle
