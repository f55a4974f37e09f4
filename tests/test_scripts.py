"""The training scripts, on data the tests make, and the bundled model they produce."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cnnviz import conv_layers, feature_maps, layer_kernels, load_model
from cnnviz.draw.render import dead_filters, flat_tiles
from cnnviz.models.load import BUNDLED_DIR
from tests.conftest import ROOT, load_script


def _write_cifar_batch(path: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"labels": [int(v) for v in rng.integers(0, 10, count)],
    }
    with path.open("wb") as file:
        pickle.dump(batch, file)


def test_train_cifar_on_a_tiny_cifar_folder_saves_a_model_cnnviz_reads(tmp_path: Path) -> None:
    data = tmp_path / "cifar-10-batches-py"
    data.mkdir()
    _write_cifar_batch(data / "data_batch_1", 24, 0)
    _write_cifar_batch(data / "data_batch_2", 16, 1)
    _write_cifar_batch(data / "test_batch", 8, 2)
    out = tmp_path / "cifar.keras"

    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_cifar.py"),
            "--data-dir",
            str(data),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "-o",
            str(out),
            "--visualize",
            str(tmp_path / "viz"),
        ],
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    viz = tmp_path / "viz"
    labels = pickle.loads((data / "test_batch").read_bytes())[b"labels"]
    first, second = (f"test{index}_{load_script('train_cifar').CLASSES[labels[index]]}" for index in (0, 1))
    for step in ("epoch_001", "epoch_002"):
        drawn = {str(p.relative_to(viz / step)) for p in (viz / step).rglob("*.png")}
        assert drawn == {"filters_conv2d.png", "filters_conv2d_1.png"} | {
            f"{name}/{layer}.png" for name in (first, second) for layer in ("conv2d", "conv2d_1")
        }
    with Image.open(viz / "filters_conv2d.gif") as gif:
        assert gif.n_frames == 2
    model = load_model(out)
    assert [(c.path, c.output_shape, c.params) for c in conv_layers(model)] == [
        ("conv2d", (32, 32, 32), 896),
        ("conv2d_1", (32, 32, 32), 9248),
    ]


def test_cifar_folder_reader_keeps_pixel_layout(tmp_path: Path) -> None:
    train_cifar = load_script("train_cifar")
    data = tmp_path / "c"
    data.mkdir()
    _write_cifar_batch(data / "data_batch_1", 2, 0)
    _write_cifar_batch(data / "test_batch", 1, 1)
    with (data / "data_batch_1").open("rb") as file:
        raw = pickle.load(file)

    (x_train, y_train), (x_test, _) = train_cifar.load_cifar_dir(data)

    assert x_train.shape == (2, 32, 32, 3) and x_test.shape == (1, 32, 32, 3)
    # CIFAR stores all red values, then green, then blue, row by row
    assert x_train[1, 0, 5].tolist() == [raw[b"data"][1][5], raw[b"data"][1][1024 + 5], raw[b"data"][1][2048 + 5]]
    assert y_train.tolist() == raw[b"labels"]


def test_train_cifar_reports_a_missing_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_cifar.py"), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "has no data_batch_* and test_batch files" in done.stderr and "Traceback" not in done.stderr


def test_bundled_model_classifies_fresh_pictures_as_its_card_says() -> None:
    train_shapes = load_script("train_shapes")
    facts = json.loads((BUNDLED_DIR / "shapes.json").read_text())
    model = load_model("shapes")
    images, labels = train_shapes.make_dataset(220, seed=12345)  # a seed training never saw

    predicted = model.predict(images.astype(np.float32), verbose=0).argmax(axis=1)

    accuracy = (predicted == labels).mean()
    assert facts["classes"] == train_shapes.CLASSES
    assert accuracy >= 0.95
    assert facts["held_out_accuracy"] >= 0.95
    # the card's figure holds on pictures it was not measured on, within what 220 pictures can tell
    assert accuracy >= facts["held_out_accuracy"] - 0.03


def _grating(degrees: float, period: int = 8) -> np.ndarray:
    """64x64 RGB picture of thin white lines on black, their normal at ``degrees``."""
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float32)
    angle = math.radians(degrees)
    phase = (cols * math.cos(angle) + rows * math.sin(angle)) * 2 * math.pi / period
    lines = (np.sin(phase) > 0.5).astype(np.float32) * 255.0
    return np.repeat(lines[:, :, None], 3, axis=-1)


def test_bundled_first_layer_holds_oriented_line_detectors() -> None:
    angles = [0.0, 22.5, 45.0, 67.5, 90.0, 112.5, 135.0, 157.5]
    gratings = np.stack([_grating(angle) for angle in angles])

    maps = feature_maps(load_model("shapes"), gratings, ["edges"])["edges"]
    tuning = maps.mean(axis=(1, 2))  # (angle, filter): mean response of each filter to lines at each angle

    # every filter is tuned: its best orientation draws at least 4 times its worst one's response
    assert (tuning.max(axis=0) > 4 * tuning.min(axis=0)).all(), tuning
    # and between them they prefer many orientations, not one
    assert len(set(tuning.argmax(axis=0).tolist())) >= 6


def _coherence(kernel: np.ndarray) -> float:
    """How strongly a 2-D kernel has one orientation: 0 for none (a blob, noise), 1 for a perfect edge or line
    (from the eigenvalues of its gradient structure tensor)."""
    grad_rows, grad_cols = np.gradient(kernel.astype(np.float64))
    tensor = np.array(
        [
            [np.sum(grad_cols * grad_cols), np.sum(grad_cols * grad_rows)],
            [np.sum(grad_cols * grad_rows), np.sum(grad_rows * grad_rows)],
        ]
    )
    small, large = np.linalg.eigvalsh(tensor)
    return float((large - small) / (large + small))


def test_every_bundled_first_layer_filter_is_alive_and_oriented() -> None:
    edges = conv_layers(load_model("shapes"))[0]
    kernels = layer_kernels(edges)  # (8 filters, 3 channels, 5, 5)

    assert edges.path == "edges" and not dead_filters(kernels).any()
    coherence = [_coherence(kernel.sum(axis=0)) for kernel in kernels]
    assert min(coherence) > 0.2 and sorted(coherence)[1] > 0.5  # one weak one at most; edges sit near 0.7


def test_no_first_layer_map_of_the_readme_image_is_flat() -> None:
    maps = feature_maps(load_model("shapes"), [ROOT / "sample_images" / "cat.jpg"], ["edges"])["edges"][0]

    assert not flat_tiles(np.moveaxis(maps, -1, 0), (1, 2)).any()
    active = (maps > 0).mean(axis=(0, 1))  # the share of the picture where each filter fires
    assert (active > 0.05).all(), active


def test_bundled_model_is_small() -> None:
    assert (BUNDLED_DIR / "shapes.keras").stat().st_size < 2 * 1024 * 1024


def test_train_cifar_reports_a_missing_data_folder_as_the_cli_does(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_cifar.py"), "--data-dir", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )

    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: cannot read CIFAR-10 from {tmp_path / 'nowhere'}: ")
    assert "Traceback" not in done.stderr
