"""Run every command on the sample images and print a digest of everything it wrote and printed, so that a
refactoring can be checked to leave the output unchanged, byte for byte:

    python scripts/output_digest.py > before.txt     # on the old code
    python scripts/output_digest.py > after.txt      # on the new code
    diff before.txt after.txt

Each line is a file's path below the output folder (or ``stdout of ...``) and the SHA-256 of its bytes; JSON
files (manifests, stats) and printed text are hashed with the output folder's own path replaced by ``<out>`` and
the checkout's by ``<root>``, so runs in different temporary folders and checkouts compare. Offline: the bundled
``shapes`` model and VGG16 with random weights.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = str(ROOT / "sample_images")
CAT = str(ROOT / "sample_images" / "cat.jpg")

#: (name, arguments); ``{out}`` is the run's own output folder.
COMMANDS = [
    ("layers", ["layers", "--model", "shapes", "--json"]),
    ("filters", ["filters", "--model", "shapes", "--layer", "*", "-o", "{out}"]),
    ("filters-symmetric", ["filters", "--model", "shapes", "--layer", "edges", "--norm", "symmetric", "-o", "{out}"]),
    ("featuremaps", ["featuremaps", SAMPLES, "--model", "shapes", "--save-raw", "-o", "{out}"]),
    (
        "featuremaps-layer",
        ["featuremaps", SAMPLES, "--model", "shapes", "--norm", "layer", "--fit", "pad", "-o", "{out}"],
    ),
    ("featuremaps-overlay", ["featuremaps", CAT, "--model", "shapes", "--overlay", "--max-maps", "8", "-o", "{out}"]),
    (
        "featuremaps-vgg16",
        ["featuremaps", CAT, "--weights", "none", "--size", "64", "--layer", "block1_*", "-o", "{out}"],
    ),
    ("stats", ["stats", SAMPLES, "--model", "shapes", "--csv", "{out}/s.csv", "--json", "{out}/s.json", "-o", "{out}"]),
    (
        "stats-ray",
        [
            "stats",
            SAMPLES,
            "--model",
            "shapes",
            "--engine",
            "ray",
            "--json",
            "{out}/s.json",
            "--no-charts",
            "-o",
            "{out}",
        ],
    ),
    ("top", ["top", SAMPLES, "--model", "shapes", "--layer", "parts", "--json", "{out}/t.json", "-o", "{out}"]),
    ("top-ray", ["top", SAMPLES, "--model", "shapes", "--layer", "edges", "--engine", "ray", "-o", "{out}"]),
    ("featuremaps-ray", ["featuremaps", SAMPLES, "--model", "shapes", "--engine", "ray", "-q", "-o", "{out}"]),
    ("gradcam", ["gradcam", SAMPLES, "--model", "shapes", "--save-raw", "-o", "{out}"]),
    ("gradcampp", ["gradcam", CAT, "--model", "shapes", "--method", "gradcam++", "--class", "circles", "-o", "{out}"]),
    (
        "maximize",
        [
            "maximize",
            "--model",
            "shapes",
            "--layer",
            "edges",
            "--steps",
            "8",
            "--size",
            "32",
            "--save-raw",
            "-o",
            "{out}",
        ],
    ),
    ("report", ["report", SAMPLES, "--model", "shapes", "-o", "{out}/report"]),
    (
        "explain",
        [
            "explain",
            SAMPLES,
            "--model",
            "shapes",
            "--method",
            "gradcam,gradcam++,scorecam,layercam,eigencam,gradient,integrated-gradients,occlusion",
            "--save-raw",
            "--json",
            "{out}/e.json",
            "-o",
            "{out}",
        ],
    ),
    (
        "explain-smoothgrad",
        ["explain", CAT, "--model", "shapes", "--method", "smoothgrad", "--samples", "8", "-o", "{out}"],
    ),
    ("explain-rise", ["explain", CAT, "--model", "shapes", "--method", "rise", "--masks", "300", "-o", "{out}"]),
    (
        "evaluate",
        [
            "evaluate",
            SAMPLES,
            "--model",
            "shapes",
            "--method",
            "gradcam,gradient",
            "--metric",
            "deletion,insertion,mufidelity",
            "--steps",
            "8",
            "--samples",
            "20",
            "--json",
            "{out}/v.json",
            "--csv",
            "{out}/v.csv",
            "-o",
            "{out}",
        ],
    ),
    (
        "evaluate-randomization",
        ["evaluate", CAT, "--model", "shapes", "--method", "gradcam", "--metric", "randomization", "-o", "{out}"],
    ),
]


def digest(data: bytes, out: Path) -> str:
    """The hash of ``data`` with the run's output folder and this checkout's folder named, not spelled: runs in
    different temporary folders and from different checkouts (before and after a change) compare."""
    named = data.replace(str(out).encode(), b"<out>").replace(str(ROOT).encode(), b"<root>")
    return hashlib.sha256(named).hexdigest()[:16]


def main() -> None:
    """Print the digest lines of every command."""
    from cnnviz.cli import main as cli

    for name, args in COMMANDS:
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder)
            result = CliRunner().invoke(cli, [arg.replace("{out}", folder) for arg in args])
            print(f"{name}: exit {result.exit_code}, stdout {digest(result.output.encode(), out)}")
            if result.exit_code != 0:
                print(result.output, file=sys.stderr)
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                data = path.read_bytes()
                print(f"  {path.relative_to(out)} {digest(data, out)}")


if __name__ == "__main__":
    main()
