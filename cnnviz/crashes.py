"""Native crashes made visible: what cnnviz was doing when TensorFlow took the process down.

A bug in a native kernel (TensorFlow 2.21's oneDNN kernels corrupt the heap on some strided 1x1 convolutions) kills
the process with a signal: Python's own error handling never runs, and a user would see a bare ``Segmentation
fault`` or nothing at all. So the ``cnnviz`` command runs its work in a forked child with :mod:`faulthandler` on
(it prints the Python stack at the crash) while the parent, which never imports TensorFlow, waits; if the child
dies by a signal, the parent says which command crashed, what the library was doing at the time (recorded by
:func:`doing`), and how to run again on TensorFlow's plain kernels.

The library records its long native stretches with :func:`doing`; outside the command it only keeps a list.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from cnnviz._keras import chosen_backend

#: Where a supervised child writes what it is doing; set by :func:`supervise` in the child only.
NOTE_VARIABLE = "CNNVIZ_ACTIVITY_FILE"
_activities: list[str] = []
#: The signals that mean the process crashed, rather than was stopped.
CRASHES = frozenset(
    getattr(signal, name) for name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE") if hasattr(signal, name)
)


@contextmanager
def doing(activity: str) -> Iterator[None]:
    """Record ``activity`` ("Grad-CAM of layer 'conv2' of model 'm'") as what cnnviz is doing, until the block
    ends, so a native crash inside it can be explained."""
    _activities.append(activity)
    _write()
    try:
        yield
    finally:
        _activities.pop()
        _write()


def current() -> str:
    """What cnnviz is doing now, outermost first; empty outside any :func:`doing` block."""
    return "; ".join(_activities)


def _write() -> None:
    path = os.environ.get(NOTE_VARIABLE)
    if not path:
        return
    with suppress(OSError), open(path, "w", encoding="utf-8") as note:  # a courtesy: the run goes on without it
        note.write(current())


def supervise(entry: Callable[[], object], command: list[str]) -> None:
    """Run ``entry`` (the click command) in a forked child and explain a native crash; exit with its status.

    Where there is no ``os.fork`` or ``signal.sigtimedwait`` (Windows, macOS), or inside a child already,
    ``entry`` runs here with :mod:`faulthandler` on.

    Signals: a terminal's Ctrl-C reaches both processes (one process group); the parent leaves it to the child,
    which stops as a run does (exit 130). A SIGINT, SIGTERM or SIGHUP sent to the parent alone (``kill``, a CI
    job's timeout) is passed on to the child: the parent tells the two apart by the signal's origin (``si_code``).
    """
    if not (hasattr(os, "fork") and hasattr(signal, "sigtimedwait")) or os.environ.get(NOTE_VARIABLE):
        faulthandler.enable()
        entry()
        return
    handle, note_path = tempfile.mkstemp(prefix="cnnviz-activity-", suffix=".txt")
    os.close(handle)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which exits through SystemExit as a command does
        os.environ[NOTE_VARIABLE] = note_path
        faulthandler.enable()
        entry()
        sys.exit(0)
    status = _wait(child)
    try:
        with open(note_path, encoding="utf-8") as note:
            activity = note.read().strip()
    except OSError:
        activity = ""
    finally:
        _remove(note_path)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number in CRASHES:
            onednn, backend = os.environ.get("TF_ENABLE_ONEDNN_OPTS"), _backend_of(command)
            sys.stderr.write(crash_report(command, number, activity, onednn, backend))
        sys.exit(128 + number)
    sys.exit(os.WEXITSTATUS(status))


#: Signals the parent passes on to the child when they were sent to the parent alone.
_PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if hasattr(signal, "SIGHUP") else ()
#: ``si_code`` of a signal the kernel sent (a terminal's Ctrl-C), as opposed to ``kill`` (SI_USER, 0).
_SI_KERNEL = 0x80


def _wait(child: int) -> int:
    """Wait for the child's exit status, passing on the signals meant for it."""
    waited = (*_PASSED_ON, signal.SIGCHLD)
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        while True:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                return status
            # A timeout, in case the child ended before SIGCHLD was blocked (the signal is then lost).
            info = signal.sigtimedwait(waited, 1.0)
            if info is not None and info.si_signo in _PASSED_ON and info.si_code != _SI_KERNEL:
                os.kill(child, info.si_signo)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)


def _remove(path: str) -> None:
    with suppress(OSError):
        os.remove(path)


def _backend_of(command: list[str]) -> str:
    """The Keras backend a ``cnnviz`` command ran on: its ``--backend``, else what Keras would pick."""
    for place, word in enumerate(command[:-1]):
        if word == "--backend":
            return command[place + 1]
        if word.startswith("--backend="):
            return word.split("=", 1)[1]
    return chosen_backend()


def crash_report(
    command: list[str], number: int, activity: str, onednn: str | None = None, backend: str = "tensorflow"
) -> str:
    """What the parent prints when the command's process died by signal ``number``; ``onednn`` is the
    ``TF_ENABLE_ONEDNN_OPTS`` the command ran with (None: TensorFlow's default), ``backend`` Keras's backend.

    >>> print(crash_report(["cnnviz", "gradcam", "a.jpg"], 11, "Grad-CAM of layer 'c'"), end="")  # doctest: +ELLIPSIS
    Error: cnnviz gradcam a.jpg crashed inside native code (SIGSEGV, exit 139) while: Grad-CAM of layer 'c'.
    The Python stack at the crash is above (faulthandler). ...TF_ENABLE_ONEDNN_OPTS=0 ...
    """
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    what = f" while: {activity}" if activity else ""
    words = " ".join(["cnnviz", *command[1:]])
    if backend != "tensorflow":
        hint = f"Keras ran on its {backend} backend; please report the model's layer kinds and this output to cnnviz."
    elif onednn == "0":
        hint = (
            "TensorFlow's plain kernels were in use (TF_ENABLE_ONEDNN_OPTS=0); please report the model's layer "
            "kinds and this output to cnnviz."
        )
    else:
        hint = (
            "TensorFlow's oneDNN kernels (on by default on x86 CPUs) have crashed like this on some layers: run "
            "again with TF_ENABLE_ONEDNN_OPTS=0 in the environment to use its plain kernels, and please report "
            "the model's layer kinds to cnnviz."
        )
    return (
        f"Error: {words} crashed inside native code ({name}, exit {128 + number}){what}.\n"
        f"The Python stack at the crash is above (faulthandler). {hint}\n"
    )
