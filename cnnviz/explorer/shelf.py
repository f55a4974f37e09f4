"""The explorer's images: those given at start, and those uploaded since, each known by an id.

No request names a file: an image is asked for by its id, and ids are handed out here, so nothing outside the
given inputs can be read. Uploads stay in memory (never written to disk) and are decoded once on arrival, with
the same guards as the commands' (:func:`cnnviz.inputs.reader.load_input`: damaged files, non-images,
decompression bombs), so a bad one is refused there and then.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.errors import CnnvizError, ImageLoadError
from cnnviz.inputs.gather import Input
from cnnviz.inputs.reader import Reader

#: Uploads kept at most: they stay in memory, so a page cannot fill it however many it sends.
MAX_UPLOADS = 256
#: Uploaded names are kept to these characters and this length (they are shown, and named in headers).
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")
MAX_NAME = 80


class UploadTooLarge(CnnvizError):
    """An upload over the size limit."""


@dataclass(frozen=True)
class Shelved:
    """One image: its id, the name it is shown by, its path as the run found it (for an upload, a name of its own
    that is not a file), and an upload's bytes."""

    id: str
    name: str
    path: str
    data: bytes | None = None

    def record(self) -> dict[str, Any]:
        """The image as ``/api/images`` lists it."""
        return {"id": self.id, "name": self.name, "uploaded": self.data is not None}


class Shelf:
    """The images the explorer knows, in the order they came.

    Args:
        reader: reads images as the model takes them.
        inputs: the images given at start.
        upload_limit: the largest upload, in bytes.
    """

    def __init__(self, reader: Reader, inputs: list[Input], upload_limit: int) -> None:
        self.reader = reader
        self.upload_limit = upload_limit
        self._lock = threading.Lock()
        self._images = [Shelved(str(number), Path(item.path).name, item.path) for number, item in enumerate(inputs)]

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._images))

    def __len__(self) -> int:
        return len(self._images)

    def get(self, image_id: str) -> Shelved | None:
        """The image of ``image_id``, None for an id that is not one."""
        if not image_id.isdigit():
            return None
        number = int(image_id)
        with self._lock:
            return self._images[number] if number < len(self._images) else None

    def read(self, image: Shelved) -> tuple[np.ndarray, bool]:
        """The image as read for the model (:meth:`cnnviz.inputs.reader.Reader.read`)."""
        return self.reader.read(image.path, image.data)

    def add(self, name: str, data: bytes) -> Shelved:
        """Take an upload: check its size and decode it, then give it an id.

        Raises:
            UploadTooLarge: over the size limit, or :data:`MAX_UPLOADS` kept already.
            ImageLoadError: empty, damaged, not an image, a decompression bomb, or not what the model takes.
        """
        with self._lock:
            uploads = sum(image.data is not None for image in self._images)
        if uploads >= MAX_UPLOADS:
            raise UploadTooLarge(f"the explorer keeps at most {MAX_UPLOADS} uploads; restart it for more")
        if len(data) > self.upload_limit:
            raise UploadTooLarge(f"the upload is {len(data):,} bytes; the limit is {self.upload_limit:,}")
        shown = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name)[-MAX_NAME:].strip() or "upload"
        if not data:
            raise ImageLoadError(f"{shown}: the upload is empty")
        with self._lock:
            number = len(self._images)
        # Not a file: the reader gets the bytes. The suffix tells it an array (.npy) from an image.
        candidate = Shelved(str(number), shown, f"upload {number}/{shown}", data)
        self.read(candidate)
        with self._lock:
            candidate = Shelved(str(len(self._images)), shown, f"upload {len(self._images)}/{shown}", data)
            self._images.append(candidate)
        return candidate

    def numbers(self) -> dict[str, int]:
        """Each image's place, by path (what a scan over all images is given)."""
        with self._lock:
            return {image.path: number for number, image in enumerate(self._images)}
