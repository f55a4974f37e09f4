"""``cnnviz explore``: a local web app over one model and its images."""

from __future__ import annotations

from typing import Any

import click

from cnnviz.cli.common import (
    EXIT_INTERRUPTED,
    ModelChoice,
    images_command,
    labels_and_head,
    option_group,
    reading_options,
    reported_errors,
)
from cnnviz.cli.settings import SettingsCommand, SettingsGroup

# None of these import TensorFlow: the library imports it inside the functions that need it.
from cnnviz.draw.render import MAP_NORMS, MAP_ORDERS
from cnnviz.explorer.options import DEFAULT_PORT, DEFAULT_UPLOAD_MB, LOOPBACK, ExploreOptions
from cnnviz.methods.attribution import AttributionSettings
from cnnviz.methods.top import DEFAULT_K


#: The methods' settings, for every method of the 'Where it looks' menu.
@images_command(SettingsCommand, required=False, groups=[SettingsGroup(AttributionSettings)])
@option_group(
    "serving",
    [
        click.option(
            "--port",
            "-p",
            type=click.IntRange(0, 65535),
            default=DEFAULT_PORT,
            show_default=True,
            help="The port to serve on; 0 picks a free one.",
        ),
        click.option(
            "--host",
            default=LOOPBACK,
            show_default=True,
            help="The address to listen on. Anything but this machine's loopback lets other machines ask (the token is "
            "still required).",
        ),
        click.option(
            "--norm", type=click.Choice(MAP_NORMS), help="How feature maps are normalised, as featuremaps --norm."
        ),
        click.option("--cmap", help="The feature maps' colormap."),
        click.option(
            "--order", type=click.Choice(MAP_ORDERS), help="The maps' order in a grid, as featuremaps --order."
        ),
        click.option(
            "-k",
            "k",
            type=click.IntRange(1),
            default=DEFAULT_K,
            show_default=True,
            help="Images kept per filter on its card (top).",
        ),
        *labels_and_head(),
        click.option(
            "--cache-mb",
            type=click.IntRange(16),
            default=None,
            help="Memory for computed views, in MiB (default: a 48th of this machine's memory, at most 2048).",
        ),
        click.option(
            "--upload-mb",
            type=click.IntRange(1),
            default=DEFAULT_UPLOAD_MB,
            show_default=True,
            help="The largest image a page may upload, in MiB.",
        ),
    ],
    renamed=("output",),
    defaults=ExploreOptions,
)
@click.option("--no-browser", is_flag=True, help="Print the address, do not open a browser.")
@click.option(
    "--atlas",
    type=click.Path(file_okay=False, exists=True),
    help="An atlas of this model (cnnviz atlas's OUTPUT/<model>/atlas): each filter card links to its unit's page.",
)
@click.option(
    "--no-gradcam",
    is_flag=True,
    help="No Grad-CAM tab: keras.applications models load without their classifier head (VGG16's is 528 MB more "
    "to download).",
)
@reading_options
def explore(
    images: tuple[str, ...],
    choice: ModelChoice,
    serving: dict[str, Any],
    no_browser: bool,
    atlas: str | None,
    no_gradcam: bool,
    reading: dict[str, Any],
    quiet: bool,
    settings: AttributionSettings,
) -> None:
    """Explore a model live in the browser: its conv layers, every layer's maps for your images, and for any
    filter its kernels, what it responds to, the image patches that excite it most and whether it is dead;
    Grad-CAM for any class.

    IMAGES are image files, folders and quoted glob patterns; more can be uploaded from the page. The model is
    loaded once; the server listens on this machine only (--host changes that) and every request needs the
    token in the printed address. Ctrl-C stops it.

    \b
    Examples:
      cnnviz explore sample_images/ --model shapes
      cnnviz explore sample_images/cat.jpg                    # VGG16, ImageNet weights
      cnnviz explore photos/ --model my_model.keras --port 0 --no-browser
      cnnviz explore sample_images/ --model shapes --masks 500 --samples 20   # settings of the menu's methods
      cnnviz explore sample_images/ --model shapes --atlas out/shapes/atlas   # cards link to the atlas's pages
    """
    from cnnviz.explorer.serve import prepare, serve

    with reported_errors(choice.verbose):
        options = ExploreOptions(
            **choice.keywords(), **reading, **serving, gradcam=not no_gradcam, settings=settings, atlas=atlas
        )
        if not quiet:
            click.echo(f"loading {choice.ref.label} ...", err=True)
        handle = prepare(choice.load(include_top=not no_gradcam), list(images), options)
    if options.host not in (LOOPBACK, "localhost", "::1"):
        click.echo(
            f"warning: listening on {options.host}: other machines that reach it can ask (with the token)", err=True
        )
    images_count, layers_count = len(handle.explorer.shelf), len(handle.explorer.layers)
    click.echo(
        f"cnnviz explore: {images_count} image{'' if images_count == 1 else 's'}, "
        f"{layers_count} conv layer{'' if layers_count == 1 else 's'}"
    )
    click.echo(f"open {handle.url}")
    click.echo("Ctrl-C stops it.")
    if not no_browser:
        import webbrowser

        webbrowser.open(handle.url)
    try:
        serve(handle)
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    click.echo("stopped.")
