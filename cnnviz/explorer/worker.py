"""The explorer's model worker: one thread runs every model call, so requests never race the model.

Requests for a view (a forward pass for an image's maps, a Grad-CAM) are urgent. Long work (a layer's top images
over all images, a filter's maximisation) runs as tasks: it is queued behind urgent jobs, reports its progress, and
lets the urgent jobs queued meanwhile run at each step (:meth:`ModelWorker.let_urgent_run`), so a page stays
responsive while a ``maximize`` runs for seconds.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import PriorityQueue
from typing import Any

URGENT, BACKGROUND = 0, 1


@dataclass
class Task:
    """A long piece of work and how far it has got, as ``/api/tasks`` reports it."""

    key: str
    what: str
    done: int = 0
    total: int = 0
    state: str = "queued"
    error: str = ""

    def record(self) -> dict[str, Any]:
        """The task as JSON."""
        return {
            "key": self.key,
            "what": self.what,
            "done": self.done,
            "total": self.total,
            "state": self.state,
            "error": self.error,
        }


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    run: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)


class ModelWorker:
    """A thread that runs jobs one at a time, urgent ones first."""

    def __init__(self) -> None:
        self._queue: PriorityQueue[_Job] = PriorityQueue()
        self._count = itertools.count()
        self._thread = threading.Thread(target=self._loop, name="cnnviz-model", daemon=True)
        self._stopped = False
        self.tasks: dict[str, Task] = {}
        self._thread.start()

    def submit(self, run: Callable[[], Any], urgent: bool = True) -> Future[Any]:
        """Queue ``run()``; its result or error arrives in the future returned."""
        future: Future[Any] = Future()
        self._queue.put(_Job(URGENT if urgent else BACKGROUND, next(self._count), run, future))
        return future

    def start_task(self, key: str, what: str, run: Callable[[Callable[[int, int], None]], Any]) -> Future[Any]:
        """Queue long work as a task: ``run(progress)`` is called with a hook ``progress(done, total)`` that records
        how far it has got and lets urgent jobs run."""
        task = Task(key, what)
        self.tasks[key] = task

        def progress(done: int, total: int) -> None:
            task.done, task.total = done, total
            self.let_urgent_run()

        def work() -> Any:
            task.state = "running"
            try:
                result = run(progress)
            except BaseException as exc:
                task.state, task.error = "failed", str(exc)
                raise
            task.state = "done"
            return result

        return self.submit(work, urgent=False)

    def let_urgent_run(self) -> None:
        """From inside a job on the worker thread: run the urgent jobs queued now, then go back to it."""
        if threading.current_thread() is not self._thread:
            return
        while True:
            with self._queue.mutex:
                first = self._queue.queue[0] if self._queue.queue else None
            if first is None or first.priority != URGENT:
                return
            self._run(self._queue.get())

    def stop(self) -> None:
        """Let the thread end after the job it is running."""
        self._stopped = True
        self._queue.put(_Job(-1, -1, lambda: None, Future()))

    def _loop(self) -> None:
        while not self._stopped:
            self._run(self._queue.get())

    @staticmethod
    def _run(job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.run())
        except BaseException as exc:  # handed to whoever waits for it
            job.future.set_exception(exc)
