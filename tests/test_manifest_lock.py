"""Runs writing into one output folder at the same time all end up in its manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


#: A ``cnnviz`` process whose manifest merge is made to collide: each run waits at the merge until all six have
#: arrived, and reading the old manifest takes 0.3 s, so without a lock every run reads the same old manifest and
#: the last to write wins.
COLLIDING = """
import sys, time
from pathlib import Path
import cnnviz.runs.featuremaps as run
import cnnviz.output.manifest as manifest

barrier, runs = Path(sys.argv[1]), int(sys.argv[2])
real_update, real_read = run.update_manifest, manifest.read_manifest

def update(*args, **kwargs):
    (barrier / str(time.time_ns())).touch()
    while len(list(barrier.iterdir())) < runs:
        time.sleep(0.01)
    real_update(*args, **kwargs)

def read(path):
    records = real_read(path)
    time.sleep(0.3)
    return records

run.update_manifest, manifest.read_manifest = update, read
from cnnviz.cli import run as command
sys.argv = ["cnnviz", *sys.argv[3:]]
command()
"""


def test_six_runs_into_one_folder_at_once_all_end_up_in_the_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = []
    for number in range(6):
        images.append(tmp_path / f"p{number}.png")
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images[-1])
    out, barrier = tmp_path / "out", tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", COLLIDING, str(barrier), "6", "featuremaps", "-m", "shapes", "--layer", "edges"]
    command += ["-q", "-o", str(out)]
    runs = [subprocess.Popen([*command, str(image)], env=env, stderr=subprocess.PIPE, text=True) for image in images]
    errors = [run.communicate(timeout=300)[1] for run in runs]

    assert [run.returncode for run in runs] == [0] * 6, errors
    manifest = json.loads((out / "shapes" / "manifest.json").read_text())
    assert sorted(manifest["images"]) == sorted(str(image) for image in images)
    assert all(Path(record["layers"]["edges"]["png"]).is_file() for record in manifest["images"].values())
