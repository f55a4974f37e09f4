"""PNG encoders for a typical grid, and cnnviz's grid against the tutorials' matplotlib subplots.

    python bench/bench_png.py

The grid is VGG16's block1_conv2 for the sample cat (random weights): 64 maps of 224x224. The first table sets
cnnviz's own writer (cnnviz/draw/png.py: ISA-L's deflate, or zlib where isal is missing) against Pillow's encoder at
several settings. All timings are medians measured in this run; ratios are against the first row of each table.
Nothing is asserted.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import cnnviz

    model = cnnviz.load_model("vgg16", weights="none", size=(224, 224))
    maps = cnnviz.feature_maps(model, [ROOT / "sample_images" / "cat.jpg"], ["block1_conv2"])["block1_conv2"][0]
    picture = cnnviz.feature_map_grid(maps, header=cnnviz.Header(["block1_conv2"], "min", "max"))
    palette_image = picture.to_pil()
    rgb_image = palette_image.convert("RGB")

    print(f"grid {palette_image.width}x{palette_image.height}")
    print(f"{'encoding':40} {'ms':>8} {'KiB':>8} {'time':>7} {'size':>7}")
    from cnnviz.draw import png

    rows = [
        (
            f"P, cnnviz.draw.png level 1 ({'isal' if png.MAX_LEVEL == 3 else 'zlib'})",
            median_time(picture.png_bytes),
            len(picture.png_bytes()) / 1024,
        )
    ]
    for label, image, options in [
        ("P, Pillow compress_level=1", palette_image, {"compress_level": 1}),
        ("P, Pillow compress_level=6 (default)", palette_image, {"compress_level": 6}),
        ("P, Pillow compress_level=9", palette_image, {"compress_level": 9}),
        ("P, Pillow optimize=True", palette_image, {"optimize": True}),
        ("RGB, Pillow compress_level=1", rgb_image, {"compress_level": 1}),
        ("RGB, Pillow compress_level=6 (default)", rgb_image, {"compress_level": 6}),
    ]:

        def encode(image=image, options=options) -> bytes:  # type: ignore[no-untyped-def]
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", **options)
            return buffer.getvalue()

        rows.append((label, median_time(encode), len(encode()) / 1024))
    base_time, base_size = rows[0][1], rows[0][2]
    for label, seconds, size in rows:
        print(f"{label:40} {seconds * 1000:8.1f} {size:8.0f} {seconds / base_time:6.2f}x {size / base_size:6.2f}x")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def tutorial_subplots() -> bytes:
        # the seeds' way: one subplot per map, 8x8, imshow, savefig
        fig, axes = plt.subplots(8, 8, figsize=(16, 16))
        for index, ax in enumerate(axes.flat):
            ax.imshow(maps[..., index], cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    def cnnviz_grid() -> bytes:
        return cnnviz.feature_map_grid(maps, header=cnnviz.Header(["block1_conv2"], "min", "max")).png_bytes()

    naive = median_time(tutorial_subplots, repeats=3)
    ours = median_time(cnnviz_grid, repeats=3)
    print(f"\nmatplotlib 8x8 subplots + savefig: {naive * 1000:8.1f} ms   1.00x")
    print(
        f"cnnviz grid + PNG:                 {ours * 1000:8.1f} ms   {ours / naive:.3f}x "
        f"({naive / ours:.1f} times faster)"
    )


if __name__ == "__main__":
    main()
