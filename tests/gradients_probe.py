"""Run in a child process by tests/test_onednn.py: Grad-CAM, Grad-CAM++, input gradients and maximize through a
model, on the kernels the child's environment selects (TF_ENABLE_ONEDNN_OPTS), saved to an .npz file.

    python tests/gradients_probe.py MODEL.keras OUT.npz [--as-is]

``--as-is`` runs strided 1x1 convolutions as they are instead of as cnnviz's stride-1 twins: on oneDNN that is
the path that crashed, on the plain kernels it is the reference the twins must equal.
"""

from __future__ import annotations

import sys

import numpy as np

from cnnviz.inputs.reader import FeedSettings

#: What the probe explains and maximises: conv1's gradient flows back through the strided 1x1 shortcut.
GRADCAM_LAYER = "conv1"
MAXIMIZE_LAYER = "conv_last"


def pixels() -> np.ndarray:
    """Two 32x32 RGB pictures in 0..1, the same in every process."""
    return np.random.default_rng(7).uniform(0.0, 1.0, (2, 32, 32, 3)).astype(np.float32)


def probe(model_path: str, as_is: bool = False) -> dict[str, np.ndarray]:
    """The arrays the test compares across kernels."""
    from cnnviz import load_model
    from cnnviz.methods.gradcam import GradCam
    from cnnviz.methods.maximize import MaximizeOptions, Maximizer
    from cnnviz.models import graph

    if as_is:
        graph._pointwise_strides = lambda layer: None  # type: ignore[assignment]
    model = load_model(model_path)
    batch = pixels()
    found = Maximizer(
        model, MAXIMIZE_LAYER, MaximizeOptions(steps=6, size=32, batch_size=4), feeding=FeedSettings(preprocess="none")
    )
    maximized = found([0, 1, 2, 3])
    from cnnviz.methods.attribution import AttributionSettings, attribute

    pixel_methods = ["gradient", "integrated-gradients"]  # the input gradient, back through the shortcut
    pixelwise = attribute(model, batch, pixel_methods, 1, settings=AttributionSettings(steps=4)).heatmaps
    return {
        "gradient": pixelwise["gradient"],
        "integrated": pixelwise["integrated-gradients"],
        "gradcam": GradCam(model, GRADCAM_LAYER, "gradcam")(batch, 1).heatmaps,
        "gradcampp": GradCam(model, GRADCAM_LAYER, "gradcam++")(batch, 1).heatmaps,
        "maximize": maximized.images,
        "reached": maximized.activations,
    }


if __name__ == "__main__":
    arrays = probe(sys.argv[1], as_is="--as-is" in sys.argv[3:])
    np.savez(sys.argv[2], **arrays)  # type: ignore[arg-type]
