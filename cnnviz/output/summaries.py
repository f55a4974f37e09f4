"""TensorBoard event files written with TensorFlow's own summary API, without the ``tensorboard`` package.

``tf.summary.image`` and ``tf.summary.scalar`` live in the ``tensorboard`` package, which TensorFlow no longer
installs. What they write is plain ``tf.summary.write`` with a plugin's name in the metadata, and TensorFlow has
that: an image summary is the string tensor ``[width, height, png bytes]`` for the ``images`` plugin, a scalar
a float tensor for the ``scalars`` plugin. cnnviz writes those, with PNGs it has encoded already, so that
logging works on a bare TensorFlow and ``tensorboard --logdir`` (installed by whoever wants to look) shows them.
"""

from __future__ import annotations

import os
from typing import Any

from cnnviz.draw.render import Picture


def _metadata(plugin: str, data_class: str) -> Any:
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    metadata.data_class = getattr(summary_pb2, data_class)
    return metadata


class SummaryLog:
    """One TensorBoard run folder: image and scalar summaries, each at an integer step."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(os.fspath(folder))
        self._image = _metadata("images", "DATA_CLASS_BLOB_SEQUENCE")
        self._scalar = _metadata("scalars", "DATA_CLASS_SCALAR")

    def image(self, tag: str, picture: Picture, step: int) -> None:
        """Log ``picture`` under ``tag`` (shown in TensorBoard's Images tab)."""
        rows, cols = picture.pixels.shape[:2]
        tensor = self._tf.constant([str(cols).encode(), str(rows).encode(), picture.png_bytes()])
        with self._writer.as_default():
            self._tf.summary.write(tag, tensor, step=step, metadata=self._image)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Log one number under ``tag`` (shown in TensorBoard's Scalars tab)."""
        with self._writer.as_default():
            self._tf.summary.write(tag, self._tf.constant(value, self._tf.float32), step=step, metadata=self._scalar)

    def flush(self) -> None:
        """Write what is buffered to the event file."""
        self._writer.flush()
