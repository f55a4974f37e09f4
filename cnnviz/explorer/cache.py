"""A bounded cache of computed views, shared by every request of the explorer's server.

Views (PNG bytes, a layer's activations for an image, a layer's top images) are kept by key in least-recently-used
order under a cap on their total size in bytes: adding one past the cap lets the oldest go. A view being computed
is shared: every request for it waits for that one computation (:meth:`ViewCache.get`), and a computation that
fails is not kept, so the next request tries again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

import numpy as np

#: The default cap: this share of the machine's memory (24 GiB gives 512 MiB: the maps of four VGG16 photos and a
#: couple of hundred drawn grids, more than a person browsing looks at again) ...
MEMORY_SHARE = 48
#: ... but never more than this many MiB.
MAX_DEFAULT_MB = 2048
MIN_MB = 16


def default_cache_mb() -> int:
    """A cap sized for this machine: a :data:`MEMORY_SHARE`th of its memory, at most :data:`MAX_DEFAULT_MB` MiB."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not a POSIX system
        total = 8 << 30
    return max(MIN_MB, min(MAX_DEFAULT_MB, total // MEMORY_SHARE >> 20))


def size_of(value: Any) -> int:
    """The bytes a cached value holds: bytes, arrays, and dicts, lists and tuples of them (other values count a
    little, for their bookkeeping)."""
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(size_of(item) for item in value.values()) + 64 * len(value)
    if isinstance(value, list | tuple):
        return sum(size_of(item) for item in value) + 16 * len(value)
    return 64


class ViewCache:
    """Least-recently-used views under a byte cap, with computations in flight shared.

    Args:
        max_bytes: the cap on the total size of the values kept (:func:`size_of`). A value larger than the cap
            is handed to the requests waiting for it and not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, Future[Any]] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], Future[Any]]) -> Future[Any]:
        """The value of ``key``: at once from the cache, else from the computation in flight for it, else from a new
        one that ``compute()`` starts (called once, outside the lock) and whose result is then kept."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                self.hits += 1
                done: Future[Any] = Future()
                done.set_result(self._values[key][0])
                return done
            if key in self._pending:
                self.hits += 1
                return self._pending[key]
            self.misses += 1
            waiting: Future[Any] = Future()
            self._pending[key] = waiting
        try:
            started = compute()
        except BaseException as exc:
            self._settle(key, waiting, None, exc)
            raise
        started.add_done_callback(lambda finished: self._finished(key, waiting, finished))
        return waiting

    def peek(self, key: Hashable) -> Any | None:
        """The value of ``key`` if it is kept, without counting it as used; None otherwise."""
        with self._lock:
            found = self._values.get(key)
        return None if found is None else found[0]

    def _finished(self, key: Hashable, waiting: Future[Any], finished: Future[Any]) -> None:
        if finished.cancelled():
            with self._lock:
                self._pending.pop(key, None)
            waiting.cancel()
            return
        error = finished.exception()
        self._settle(key, waiting, None if error is not None else finished.result(), error)

    def _settle(self, key: Hashable, waiting: Future[Any], value: Any, error: BaseException | None) -> None:
        with self._lock:
            self._pending.pop(key, None)
            if error is None:
                self._keep(key, value)
        if waiting.cancelled():  # nobody waits for it any more; the value is kept all the same
            return
        if error is not None:
            waiting.set_exception(error)
        else:
            waiting.set_result(value)

    def _keep(self, key: Hashable, value: Any) -> None:
        size = size_of(value)
        if size > self.max_bytes:
            return
        self._values[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._values.popitem(last=False)
            self.bytes -= dropped

    def __len__(self) -> int:
        return len(self._values)
