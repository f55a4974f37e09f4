"""``cnnviz explore`` as a user runs it: the help, the printed address, a quiet terminal, Ctrl-C, and the errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cnnviz.cli import main
from cnnviz.errors import OptionError

ROOT = Path(__file__).resolve().parent.parent


def test_the_help_shows_examples_and_the_safe_defaults() -> None:
    result = CliRunner().invoke(main, ["explore", "-h"])
    assert result.exit_code == 0
    assert "cnnviz explore sample_images/ --model shapes" in result.output
    assert "127.0.0.1" in result.output and "--no-browser" in result.output and "--upload-mb" in result.output


def test_bad_options_are_refused_before_the_model_loads() -> None:
    result = CliRunner().invoke(main, ["explore", "--model", "shapes", "--port", "70000"])
    assert result.exit_code == 2 and "70000" in result.output
    result = CliRunner().invoke(main, ["explore", "--model", "shapes", "--cache-mb", "4"])
    assert result.exit_code == 2 and "--cache-mb" in result.output


def test_a_missing_web_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnviz

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(OptionError, match=r"pip install 'cnnviz\[explore\]'"):
        cnnviz.explore(object(), [], port=0)


def _started(process: subprocess.Popen[str]) -> list[str]:
    """The lines the command printed up to the address, read as it prints them."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("open http"):
            return lines
    raise AssertionError(f"no address printed: {lines}")


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_command_serves_until_ctrl_c_and_ends_without_a_traceback(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "cnnviz", "explore", str(ROOT / "sample_images" / "cat.jpg")]
    command += ["--model", "shapes", "--port", "0", "--no-browser"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = _started(process)
        assert lines[0] == "cnnviz explore: 1 image, 3 conv layers"
        url = lines[-1].removeprefix("open ")
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        base, token = url.split("/?token=")
        assert [layer["name"] for layer in _get(f"{base}/api/model", token)["layers"]] == ["edges", "parts", "shapes"]
        assert _get(f"{base}/api/images", token) == [{"id": "0", "name": "cat.jpg", "uploaded": False}]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode in (0, 130), (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    # the terminal stays quiet: what the command says, and nothing of TensorFlow's start-up log or uvicorn's
    assert [line for line in err.splitlines() if line] == ["loading shapes ..."], err
