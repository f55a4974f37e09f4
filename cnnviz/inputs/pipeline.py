"""Overlapping the stages of a long run: reading the next batch while the model runs on this one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items``, produced ahead by a background thread: at most ``depth`` items wait, so memory stays
    bounded. Pillow's decoders and numpy release the GIL, so reading overlaps the model's forward pass.

    An exception raised while producing is raised here, at the item it stopped. Closing this iterator early (a
    ``break``, Ctrl-C) stops the thread at its next item.
    """
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            offer(_Failure(exc))
            return
        offer(_DONE)

    worker = threading.Thread(target=produce, name="cnnviz-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
