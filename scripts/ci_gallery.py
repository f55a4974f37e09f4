"""Draw a model's filters and the feature maps of every image under a folder, and link them from one static
``index.html``: for CI jobs that keep the folder as an artifact, and for anyone who wants to browse a run.

    python scripts/ci_gallery.py sample_images --model shapes -o gallery
    python scripts/ci_gallery.py data/val --model my_model.keras --layer 'block5_*' -o gallery

The page opens from disk and needs no network (no scripts, fonts or styles from elsewhere); every link is
relative, so the folder can be moved or zipped. Names are escaped. Exits 1 when some images could not be drawn
(they are listed on the page), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path
from urllib.parse import quote

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }}
figure {{ display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; }}
figcaption {{ font-size: .85rem; color: #555; }}
img {{ max-width: 420px; border: 1px solid #ddd; }}
.failed {{ color: #a00; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
{sections}
</body>
</html>
"""


def link(target: Path, page_folder: Path) -> str:
    """A relative, URL-quoted link from the page's folder to ``target``, escaped for an HTML attribute."""
    return html.escape(quote(Path(os.path.relpath(target, page_folder)).as_posix()), quote=True)


def figure(target: Path, caption: str, page_folder: Path) -> str:
    """A linked thumbnail with its caption."""
    href = link(target, page_folder)
    text = html.escape(caption)
    thumbnail = f'<a href="{href}"><img src="{href}" alt="{text}" loading="lazy"></a>'
    return f"<figure>{thumbnail}<figcaption>{text}</figcaption></figure>"


def gallery_page(
    title: str,
    filters: list[tuple[str, Path]],
    images: list[tuple[str, list[tuple[str, Path]]]],
    failures: list[tuple[str, str]],
    page_folder: Path,
) -> str:
    """The HTML of the gallery: a section of filter grids, one per image of feature-map grids, and the failures.

    Args:
        title: the page's title (escaped here).
        filters: (layer, grid file) pairs.
        images: (image name, [(layer, grid file)]) per image.
        failures: (image, reason) pairs.
        page_folder: where index.html goes; links are relative to it.
    """
    sections = []
    if filters:
        sections.append("<h2>Filters</h2>\n" + "\n".join(figure(path, layer, page_folder) for layer, path in filters))
    for name, grids in images:
        body = "\n".join(figure(path, layer, page_folder) for layer, path in grids)
        sections.append(f"<h2>{html.escape(name)}</h2>\n{body}")
    if failures:
        items = "\n".join(f"<li>{html.escape(image)}: {html.escape(reason)}</li>" for image, reason in failures)
        sections.append(f'<h2 class="failed">Could not be drawn</h2>\n<ul class="failed">\n{items}\n</ul>')
    grids = len(filters) + sum(len(grids) for _, grids in images)
    summary = f"{len(images)} images drawn, {len(failures)} failed, {grids} grids."
    return PAGE.format(title=html.escape(title), summary=html.escape(summary), sections="\n".join(sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files, folders (searched recursively) or quoted globs")
    parser.add_argument("--model", "-m", default="shapes", help="as for cnnviz (default: the bundled 'shapes')")
    parser.add_argument("--weights", default=None, help="as for cnnviz")
    parser.add_argument("--layer", "-l", action="append", help="conv layers or patterns for the feature maps")
    parser.add_argument("--filters", default="*", help="conv layers or pattern whose kernels to draw (default: all)")
    parser.add_argument("--output", "-o", type=Path, default=Path("cnnviz_gallery"), help="folder for it all")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    import cnnviz
    from cnnviz.errors import CnnvizError, OptionError

    out: Path = args.output
    try:
        model = cnnviz.load_model(args.model, args.weights)
        filters = cnnviz.render_filters(model, out / "filters", cnnviz.FilterOptions(layer=args.filters))
        with tqdm(unit="image", disable=None, leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done)

            report = cnnviz.render_feature_maps(
                model, args.images, out / "maps", cnnviz.MapOptions(layers=args.layer), progress
            )
    except OptionError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except CnnvizError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    by_image: dict[str, list[tuple[str, Path]]] = {}
    for path in report.written:
        if path.suffix == ".png":
            key = path.parent.relative_to(out / "maps").as_posix()
            by_image.setdefault(key, []).append((path.stem, path))
    filter_grids = [(path.stem.removeprefix("filters_"), path) for path in filters.written]
    failures = [(image, str(error)) for image, error in report.failures]
    page = gallery_page(f"cnnviz: {model.name}", filter_grids, sorted(by_image.items()), failures, out)
    (out / "index.html").write_text(page, encoding="utf-8")
    print(f"wrote {out / 'index.html'} ({len(by_image)} images, {len(failures)} failed)")
    for _image, reason in failures:
        print(f"Error: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
