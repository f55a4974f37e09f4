"""Ctrl-C in a command's first seconds, while Keras and TensorFlow import, must stop the command. TensorFlow's
import code catches the KeyboardInterrupt of a SIGINT at some moments (seen here: 2.5 s into the import) and goes
on, so cnnviz holds the signal over the import and raises it afterwards.

Each test sets the signal state it tests: a process started in the background by a non-interactive shell (and by
many CI runners) inherits SIGINT ignored, where Python installs no KeyboardInterrupt handler at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnviz._keras import interrupt_after

#: A stand-in for Keras whose import swallows a Ctrl-C pressed during it, as TensorFlow's does.
SWALLOWING_IMPORT = """
import os, signal, time
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
except KeyboardInterrupt:
    pass
"""


@pytest.fixture
def terminal() -> Iterator[None]:
    """SIGINT as a process started from a terminal has it: Python's KeyboardInterrupt handler."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def ignored() -> Iterator[None]:
    """SIGINT ignored, as a process started in the background inherits it."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_that_the_block_swallows_is_raised_after_it(terminal: None) -> None:
    with pytest.raises(KeyboardInterrupt), interrupt_after():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        except KeyboardInterrupt:  # what the import does
            pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_keras_module_stops_on_a_ctrl_c_its_import_swallowed(tmp_path: Path) -> None:
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text(SWALLOWING_IMPORT)
    probe = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "  # as from a terminal
        "import cnnviz._keras as k; k.keras_module(); print('ran on after Ctrl-C')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert "ran on after Ctrl-C" not in done.stdout
    assert done.returncode != 0 and done.stderr.rstrip().endswith("KeyboardInterrupt"), done.stderr[-500:]


def test_without_ctrl_c_the_block_runs_and_the_handler_is_given_back(terminal: None) -> None:
    with interrupt_after():
        ran = True
    assert ran and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_ctrl_c_stays_ignored(ignored: None) -> None:
    with interrupt_after():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        ran = True
    assert ran and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
