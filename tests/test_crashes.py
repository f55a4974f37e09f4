"""A native crash under the ``cnnviz`` command says what cnnviz was doing, instead of a bare "Segmentation fault"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from cnnviz.crashes import current, doing

ROOT = Path(__file__).resolve().parent.parent

CRASHING = """
import ctypes, sys
from cnnviz.crashes import doing, supervise

def entry():
    with doing("Grad-CAM of layer 'conv'"), doing("the gradient"):
        print("before the crash", flush=True)
        ctypes.string_at(0)  # reads address 0: SIGSEGV

supervise(entry, ["cnnviz", "gradcam", "face.png"])
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("TF_ENABLE_ONEDNN_OPTS", None)
    environment.pop("KERAS_BACKEND", None)  # TensorFlow's hints, unless a test asks for another backend
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=False, timeout=120
    )


def test_a_crash_prints_the_stack_the_command_what_it_was_doing_and_the_onednn_hint() -> None:
    done = _run(CRASHING)

    assert done.returncode == 128 + signal.SIGSEGV
    assert done.stdout == "before the crash\n"
    assert "Fatal Python error: Segmentation fault" in done.stderr  # faulthandler, in the child
    assert 'File "<string>", line 8 in entry' in done.stderr  # where it happened
    last = done.stderr.strip().splitlines()[-2:]
    assert last[0] == (
        "Error: cnnviz gradcam face.png crashed inside native code (SIGSEGV, exit 139) while: Grad-CAM of layer "
        "'conv'; the gradient."
    )
    assert "run again with TF_ENABLE_ONEDNN_OPTS=0 in the environment" in last[1]


def test_with_the_plain_kernels_already_chosen_the_hint_asks_for_a_report() -> None:
    done = _run(CRASHING, TF_ENABLE_ONEDNN_OPTS="0")

    assert done.returncode == 139
    assert "TensorFlow's plain kernels were in use (TF_ENABLE_ONEDNN_OPTS=0)" in done.stderr
    assert "run again with" not in done.stderr


def test_on_jax_the_hint_names_the_backend_not_tensorflows_kernels() -> None:
    done = _run(CRASHING, KERAS_BACKEND="jax")

    assert done.returncode == 139
    assert done.stderr.strip().splitlines()[-1] == (
        "The Python stack at the crash is above (faulthandler). Keras ran on its jax backend; please report the "
        "model's layer kinds and this output to cnnviz."
    )
    assert "TF_ENABLE_ONEDNN_OPTS" not in done.stderr.strip().splitlines()[-1]


def test_the_command_runs_supervised_and_its_exit_status_comes_through(tmp_path: Path) -> None:
    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return _run(f"import sys; from cnnviz.cli import run; sys.argv = {['cnnviz', *args]!r}; run()")

    ok = command("layers", "--model", "shapes")
    missing = command("layers", "--model", "nosuch")
    usage = command("layers", "--nosuch")

    assert ok.returncode == 0 and ok.stdout.startswith("shapes: 3 conv layers\n"), ok.stderr
    assert ok.stderr == ""
    assert missing.returncode == 1 and missing.stderr.startswith("Error: no model 'nosuch'")
    assert usage.returncode == 2 and "No such option '--nosuch'" in usage.stderr
    assert "crashed" not in ok.stderr + missing.stderr + usage.stderr


def test_doing_nests_and_unwinds() -> None:
    assert current() == ""
    with doing("outer"):
        with doing("inner"):
            assert current() == "outer; inner"
        assert current() == "outer"
    assert current() == ""
