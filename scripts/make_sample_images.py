"""Write sample_images/ from the public-domain and CC0 photographs that scikit-image ships.

    pip install scikit-image && python scripts/make_sample_images.py

The files are committed; this script records where they came from. Sources and licences: sample_images/README.md.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "sample_images"
# file name -> scikit-image loader name
PICTURES = {
    "cat.jpg": "chelsea",
    "astronaut.jpg": "astronaut",
    "coffee.jpg": "coffee",
    "rocket.jpg": "rocket",
    "camera.png": "camera",
}


def main() -> None:
    import skimage.data

    OUT.mkdir(exist_ok=True)
    for name, loader in PICTURES.items():
        image = Image.fromarray(getattr(skimage.data, loader)())
        target = OUT / name
        if target.suffix == ".jpg":
            image.save(target, quality=90, optimize=True)
        else:
            image.save(target, optimize=True)
        print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
