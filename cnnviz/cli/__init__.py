"""The ``cnnviz`` command: a thin click layer over the library. It parses options, calls one library function
per command, and prints where things went. Library errors become ``Error: ...`` with no traceback."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

# None of these import TensorFlow: the library imports it inside the functions that need it, so --help and
# option errors stay instant.
from cnnviz import __version__
from cnnviz.crashes import supervise
from cnnviz.draw.overlay import DEFAULT_ALPHA
from cnnviz.draw.render import FILTER_NORMS, MAP_NORMS, palette
from cnnviz.engines.maximize_run import DEFAULT_FILTERS
from cnnviz.engines.runs import (
    DEFAULT_OVERLAY_MAPS,
    FilterOptions,
    MapOptions,
    Report,
    layer_rows,
    render_feature_maps,
    render_filters,
)
from cnnviz.errors import CnnvizError, OptionError, brief
from cnnviz.inputs.gather import gather_inputs
from cnnviz.inputs.images import FITS
from cnnviz.inputs.preprocess import MODES
from cnnviz.methods.gradcam import METHODS
from cnnviz.methods.maximize import DEFAULT_SIZE, DEFAULT_STEPS, PARAMETRIZATIONS
from cnnviz.methods.stats import DEFAULT_RARE
from cnnviz.models.load import load_model, names_a_file
from cnnviz.models.zoo import APPLICATIONS
from cnnviz.output.animate import DEFAULT_DURATION_MS, animate_folder
from cnnviz.output.files import check_writable, model_folder, safe_name
from cnnviz.selection import check_selection

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

#: What each --fit did, as a run reports it.
FIT_NOTES = {
    "crop": "the short side fits, the long side's ends are cut off; --fit pad keeps the whole image",
    "pad": "the whole image, bordered with the pixel the model sees as zero",
    "stretch": "squashed to the model's input size; --fit crop keeps proportions",
}


class SizeType(click.ParamType):
    """``224`` or ``ROWSxCOLS`` (``224x320``)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().split("x")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2) or min(numbers, default=0) < 1:
            self.fail(f"'{value}' is not a size: use N or ROWSxCOLS, e.g. 224 or 224x320", param, ctx)
        return (numbers[0], numbers[-1])


#: The exit status of a run stopped by Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


@contextmanager
def reported_errors(verbose: bool, interrupted: str = "") -> Iterator[None]:
    """Turn library and unexpected errors into ``Error: ...``: exit 2 for an option value that cannot be used (a
    usage error, as click's own), 1 for the rest, 130 for Ctrl-C (with ``interrupted`` said first).
    ``--verbose`` adds the traceback."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except KeyboardInterrupt:
        click.echo(f"Interrupted.{' ' + interrupted if interrupted else ''}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OptionError as exc:
        if verbose:
            traceback.print_exc()
        raise click.UsageError(str(exc), click.get_current_context(silent=True)) from exc
    except CnnvizError as exc:
        if verbose:
            traceback.print_exc()
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        hint = "" if verbose else " (run again with --verbose for the traceback)"
        raise click.ClickException(f"unexpected {type(exc).__name__}: {brief(exc)}{hint}") from exc


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command shares: which model, which weights, and how loud."""
    decorators = [
        click.option(
            "--model",
            "-m",
            default="vgg16",
            show_default=True,
            help="A keras.applications name (vgg16, resnet50, mobilenetv2, ...), the bundled offline model "
            "'shapes', or a .keras / .h5 file or SavedModel folder.",
        ),
        click.option(
            "--weights",
            default=None,
            help="For keras.applications names: imagenet (default; downloaded once by Keras), none (random), or a "
            "weights file. For a model file: a weights file to load into it.",
        ),
        click.option(
            "--size",
            type=SizeType(),
            default=None,
            help="Input size, N or ROWSxCOLS. keras.applications models are built at it; models of free input "
            "size take images at it (default: the image's own size, longest side capped at 512).",
        ),
        click.option(
            "--unsafe", is_flag=True, help="Allow model files that run Python code when loaded (Lambda layers)."
        ),
        click.option(
            "--import",
            "imports",
            multiple=True,
            metavar="MODULE",
            help="A Python module or .py file to import before loading, for your own layer classes; repeat it.",
        ),
        click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of errors."),
    ]
    return _with_options(command, decorators, "choice", ModelChoice)


def _with_options(
    command: Callable[..., Any], decorators: list[Callable[..., Any]], name: str, bundle: type
) -> Callable[..., Any]:
    """Apply click option decorators, and hand the command their values packed into one ``bundle`` object,
    passed as ``name``: the bundle's dataclass fields name the options."""
    fields = [field.name for field in dataclasses.fields(bundle)]

    @functools.wraps(command)
    def packed(**kwargs: Any) -> Any:
        kwargs[name] = bundle(*(kwargs.pop(field) for field in fields))
        return command(**kwargs)

    return functools.reduce(lambda cmd, deco: deco(cmd), reversed(decorators), packed)


@dataclass(frozen=True)
class ModelChoice:
    """The model options every command shares, as the user gave them."""

    model: str
    weights: str | None
    size: tuple[int, int] | None
    unsafe: bool
    imports: tuple[str, ...]
    verbose: bool

    def load(self, need_weights: bool = True, include_top: bool = False) -> Any:
        """The Keras model (call inside :func:`reported_errors`).

        Args:
            need_weights: False when only the architecture matters (``layers``): a keras.applications model is
                then built without weights, and ``--weights`` is not loaded at all.
            include_top: build a keras.applications model with its classifier head (Grad-CAM needs the class
                scores).
        """
        weights = self.weights if need_weights else ("none" if self.is_application else None)
        return load_model(
            self.model, weights, include_top=include_top, size=self.size, unsafe=self.unsafe, imports=self.imports
        )

    def spec(self) -> Any:
        """The model as the Ray engine's workers load it: files by their full paths."""
        from cnnviz.engines.ray_engine import ModelSpec

        def full(path: str | None) -> str | None:
            return str(Path(path).resolve()) if path is not None and Path(path).exists() else path

        imports = tuple(full(item) or item for item in self.imports)
        return ModelSpec(full(self.model) or self.model, full(self.weights), self.size, self.unsafe, imports)

    @property
    def is_application(self) -> bool:
        """Whether ``--model`` names a keras.applications model rather than a file."""
        return self.model.lower() in APPLICATIONS and not names_a_file(self.model)

    @property
    def weights_kind(self) -> str:
        """How the weights come: ``imagenet``, ``random``, a weights file's path, or ``model file``."""
        if self.weights is None:
            return "imagenet" if self.is_application else "model file"
        lowered = self.weights.lower()
        if lowered in ("none", "imagenet"):
            return "random" if lowered == "none" else lowered
        return self.weights

    @property
    def name(self) -> str:
        """The model's name: a file's name, or the lower-cased model name."""
        return Path(self.model).name if names_a_file(self.model) else self.model.lower()

    @property
    def label(self) -> str:
        """How headers and manifests name the model: its name, and the weights where they are not the model's
        own: ``vgg16 (random weights)``."""
        kind = self.weights_kind
        if kind in ("imagenet", "model file"):
            return self.name
        return f"{self.name} ({'random weights' if kind == 'random' else 'weights ' + Path(kind).name})"

    def naming(self) -> dict[str, Any]:
        """How a run names the model in headers and manifests: the keywords of the render functions."""
        return {"model_label": self.label, "weights": self.weights_kind, "source": self.source}

    @property
    def source(self) -> str:
        """What identifies the model and its weights across runs: full paths for files, names otherwise."""
        model = str(Path(self.model).resolve()) if names_a_file(self.model) else self.model.lower()
        kind = self.weights_kind
        weights = kind if kind in ("imagenet", "model file", "random") else str(Path(kind).resolve())
        return f"{model} with {weights}" if kind != "model file" else model

    @property
    def folder(self) -> str:
        """The output subfolder for this model, so that different models' (and weights') grids never mix:
        ``vgg16``, ``vgg16-random``, ``my_model``, ``my_model-finetuned`` (for ``--weights finetuned.weights.h5``)."""
        path = Path(self.model)
        name = path.name.split(".")[0] if names_a_file(self.model) else self.model.lower()
        kind = self.weights_kind
        if kind in ("imagenet", "model file"):
            return safe_name(name)
        return safe_name(f"{name}-{'random' if kind == 'random' else Path(kind).name.split('.')[0]}")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="cnnviz")
def main() -> None:
    """See what a convolutional network has learned: filters, feature maps, what filters respond to and where the
    model looks, as PNG grids and one HTML report.

    \b
    Examples:
      cnnviz featuremaps sample_images/cat.jpg --model shapes   # offline, bundled model
      cnnviz layers                                             # the conv layers of VGG16
      cnnviz filters --layer block5_conv1                       # VGG16's learned kernels
      cnnviz featuremaps photos/ --model my_model.keras -o out/
      cnnviz maximize --model shapes --layer shapes             # what each filter responds to
      cnnviz gradcam sample_images/cat.jpg                      # where VGG16 looks, and its top-5 classes
      cnnviz report sample_images/ --model shapes -o report/    # everything on one page

    Run 'cnnviz COMMAND -h' for a command's options.
    """


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON, for scripts.")
def layers(choice: ModelChoice, as_json: bool) -> None:
    """List the convolution layers of a model: name, kind, kernel, output shape and parameter count.

    Layers of nested models (a VGG16 base inside your classifier) are listed as outer/inner and can be
    given to --layer by that name. Shapes and counts do not depend on weights, so keras.applications models are
    built without downloading any.

    \b
    Examples:
      cnnviz layers
      cnnviz layers --model resnet50 --weights none
      cnnviz layers --model my_model.keras --json
    """

    with reported_errors(choice.verbose):
        rows = layer_rows(choice.load(need_weights=False), choice.size)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if choice.weights is not None:
        click.echo("note: --weights is not loaded: layers, shapes and counts do not depend on weights")
    click.echo(f"{choice.name}: {len(rows)} conv layer{'' if len(rows) == 1 else 's'}")
    if not rows:
        return
    table = [["name", "kind", "kernel", "output", "params"]] + [
        [r["name"], r["kind"], r["kernel"], r["output"], f"{r['params']:,}"] for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row[:4], widths, strict=False)] + [row[4].rjust(widths[4])]
        click.echo("  ".join(cells))
    click.echo(f"total conv params: {sum(r['params'] for r in rows):,}")


def _checked_cmap(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A colormap matplotlib knows, checked before any model is loaded."""
    try:
        palette(value)
    except OptionError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc
    return value


def _selection_checker(what: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A callback that checks the form of a ``what`` selection (``0:16``); its range is checked once the layer
    is known."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            try:
                check_selection(value, what)
            except OptionError as exc:
                raise click.BadParameter(str(exc), ctx, param) from exc
        return value

    return check


@dataclass(frozen=True)
class Reading:
    """How the commands that run images through the model read them."""

    preprocess: str
    fit: str
    batch_size: int
    quiet: bool


def _choice_option(flag: str, choices: Sequence[str], default: str, help: str) -> Callable[..., Any]:
    """An option taking one of ``choices``, its default shown in the help."""
    return click.option(flag, type=click.Choice(choices), default=default, show_default=True, help=help)


def output_option(help: str) -> Callable[..., Any]:
    """The output folder option, ``--output`` / ``-o``."""
    return click.option(
        "--output", "-o", type=click.Path(file_okay=False), default="cnnviz_out", show_default=True, help=help
    )


def reading_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by the commands that run images through the model, handed to it as ``reading``."""
    decorators = [
        _choice_option(
            "--preprocess",
            MODES,
            "auto",
            "How pixels are prepared: auto follows the model (keras.applications family, a leading Rescaling "
            "layer, else x/255).",
        ),
        _choice_option(
            "--fit",
            FITS,
            "crop",
            "How a photo gets a fixed model input size (VGG16: 224x224) of another shape. crop scales the short "
            "side to fit and cuts the ends of the long side: nothing is distorted and no border is added, as ImageNet "
            "models are evaluated. pad keeps the whole photo and fills the rest with the pixel the model sees as zero. "
            "stretch squashes the photo to the size, as the tutorials do. Models of free input size keep each "
            "photo's shape.",
        ),
        click.option(
            "--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Images per forward pass."
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary; errors only."),
    ]
    return _with_options(command, decorators, "reading", Reading)


@dataclass(frozen=True)
class Engine:
    """Where the commands that run over many images run: here, or on a Ray cluster."""

    engine: str
    address: str | None
    workers: int | None

    def find(self, images: Sequence[str], exclude: str) -> list[Any]:
        """The input files: local paths and patterns, or with Ray also URIs (s3://, gs://)."""
        from cnnviz.engines.ray_engine import find_inputs, is_uri

        if self.engine == "ray":
            return find_inputs(images, exclude=exclude)
        if any(is_uri(item) for item in images):
            raise OptionError("URIs such as s3://bucket/images/ are read by the Ray engine: add --engine ray")
        return gather_inputs(images, exclude=exclude)

    def job(self, batch_size: int, progress: Callable[[int], object], quiet: bool = False) -> Any:
        """Connect to Ray and size the job for the cluster (a line on standard error says which and how, unless
        ``quiet``)."""
        from cnnviz.engines.ray_engine import Job, connect

        cluster = connect(self.address)
        actors = cluster.actors(self.workers)
        note = "" if self.workers in (None, actors) else f" (of {self.workers} asked: more would starve the reading)"
        if not quiet:
            click.echo(f"ray: {cluster.address} cluster, {cluster.cpus:g} CPUs, {actors} workers{note}", err=True)
        return Job(cluster, actors, batch_size, progress)


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options choosing the engine, handed to the command as ``engine``."""
    decorators = [
        _choice_option(
            "--engine",
            ("local", "ray"),
            "local",
            "Where to run: here, or on Ray Data (a cluster at --address / RAY_ADDRESS, else a local Ray with this "
            "machine's cores). Ray needs pip install 'cnnviz[ray]'.",
        ),
        click.option(
            "--address",
            default=None,
            help="With --engine ray: the Ray cluster's address (auto on a node of a running cluster, ray://host:10001).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(1),
            default=None,
            help="With --engine ray: model workers (one CPU each). Default: one per CPU the reading leaves free.",
        ),
    ]
    return _with_options(command, decorators, "engine", Engine)


@dataclass(frozen=True)
class View:
    """The drawing options shared by the commands that write grids."""

    norm: str
    cmap: str
    scale: int | None
    no_labels: bool
    no_index: bool
    output: str


def _view_options(norms: tuple[str, ...], default_norm: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options shared by the commands that draw grids, handed to the command as ``view``."""

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        decorators = [
            _choice_option("--norm", norms, default_norm, "Normalisation."),
            click.option(
                "--cmap",
                default="viridis",
                show_default=True,
                callback=_checked_cmap,
                help="Any matplotlib colormap name.",
            ),
            click.option(
                "--scale",
                type=click.IntRange(1, 64),
                default=None,
                help="Nearest-neighbour enlargement (default: auto).",
            ),
            click.option("--no-labels", is_flag=True, help="Bare grids, without the header strip and colorbar."),
            click.option("--no-index", is_flag=True, help="Leave out the numbers on tiles (maps, filters)."),
            output_option("Folder to write into."),
        ]
        return _with_options(command, decorators, "view", View)

    return wrap


@main.command(context_settings=CONTEXT)
@model_options
@click.option(
    "--layer",
    "-l",
    default=None,
    help="The conv layer (see 'cnnviz layers'), or a pattern for several. Default: the first conv layer.",
)
@click.option(
    "--filters",
    "filter_spec",
    default=None,
    callback=_selection_checker("filter"),
    help="Filters to draw, e.g. 0:16 or 1,5,9 (default: up to 64).",
)
@click.option(
    "--channels",
    default=None,
    callback=_selection_checker("channel"),
    help="Input channels to draw, e.g. 0:3 (default: up to 64).",
)
@click.option("--rgb", is_flag=True, help="Draw 3-channel kernels (a first layer's) as colour patches.")
@_view_options(FILTER_NORMS, "global")
def filters(
    choice: ModelChoice,
    layer: str | None,
    filter_spec: str | None,
    channels: str | None,
    rgb: bool,
    view: View,
) -> None:
    """Draw a conv layer's learned kernels: a numbered row of kernels per filter, one per input channel.

    The grid goes to OUTPUT/<model>/filters_<layer>.png; a dead filter (all weights near zero) is crossed out.

    --norm global is the tutorials' min-max over the whole layer; filter scales each filter on its own;
    symmetric keeps zero at the middle of the colormap, the honest view of signed weights
    (try it with --cmap RdBu_r).

    \b
    Examples:
      cnnviz filters --layer block5_conv1
      cnnviz filters --layer block1_conv1 --rgb
      cnnviz filters --model shapes --layer edges --norm symmetric --cmap RdBu_r
      cnnviz filters --layer block3_conv1 --filters 0:16 --channels 0:8 -o out/
    """

    options = FilterOptions(
        filter_spec, channels, view.norm, view.cmap, rgb, view.scale, not view.no_labels, not view.no_index
    )
    with reported_errors(choice.verbose):
        out = model_folder(view.output, choice.folder, choice.source)
        check_writable(out)
        report = render_filters(choice.load(), layer, out, options, **choice.naming())
    _say(report.notes, report.written)


def _say(notes: Sequence[str], written: Sequence[Path]) -> None:
    """A run's notes, then each file it wrote."""
    for note in notes:
        click.echo(f"note: {note}")
    for path in written:
        click.echo(f"wrote {path}")


@main.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option(
    "--layer",
    "-l",
    "layer_names",
    multiple=True,
    help="A conv layer to draw, or a pattern such as 'block5_*'; repeat it. Default: all.",
)
@click.option("--max-maps", type=click.IntRange(1), default=None, help="Draw at most this many maps per layer.")
@click.option("--save-raw", is_flag=True, help="Also write each layer's activations as .npy.")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave out images whose grids the manifest lists and that are on disk: continues an interrupted run.",
)
@click.option(
    "--overlay",
    is_flag=True,
    help="Blend each map, upsampled, onto the image, to show where each filter fires: <layer>_overlay.png "
    f"(up to {DEFAULT_OVERLAY_MAPS} maps a layer unless --max-maps says).",
)
@reading_options
@engine_options
@_view_options(MAP_NORMS, "map")
def featuremaps(
    images: tuple[str, ...],
    choice: ModelChoice,
    layer_names: tuple[str, ...],
    max_maps: int | None,
    save_raw: bool,
    skip_existing: bool,
    overlay: bool,
    reading: Reading,
    engine: Engine,
    view: View,
) -> None:
    """Draw the activations of conv layers for images: one PNG grid per image and layer.

    IMAGES are image files, folders (searched recursively) and quoted glob patterns ('photos/**/*.jpg'). All
    selected layers come from one forward pass per batch. Grids go to OUTPUT/<model>/<image>/<layer>.png, the
    image's path below its folder mirrored (a/cat.jpg -> a/cat/); OUTPUT/<model>/manifest.json lists every grid,
    with earlier runs', and every image that failed. A run that met bad images writes all the good ones, then
    exits with status 1. Tiles are numbered by channel; a flat map (the filter is dead on this image) is crossed
    out.

    --norm map scales each map on its own; layer uses one scale for the whole layer, so strong and weak maps
    can be compared; standardize is the tutorials' (x - mean) / std * 64 + 128.

    \b
    Examples:
      cnnviz featuremaps sample_images/cat.jpg --model shapes
      cnnviz featuremaps sample_images/cat.jpg --layer block1_conv2 --layer 'block5_*'
      cnnviz featuremaps photos/ --model my_model.keras --norm layer --cmap gray -o out/
      cnnviz featuremaps sample_images/cat.jpg --layer block3_conv1 --overlay --max-maps 16
      cnnviz featuremaps 'data/**/*.png' --model shapes --skip-existing -q    # in CI, resumable
      cnnviz featuremaps images/ --layer block1_conv1 --engine ray -o /shared/out/   # on Ray
    """

    options = MapOptions(
        layers=list(layer_names) or None,
        norm=view.norm,
        cmap=view.cmap,
        max_maps=max_maps,
        scale=view.scale,
        labels=not view.no_labels,
        save_raw=save_raw,
        preprocess=reading.preprocess,
        size=choice.size,
        batch_size=reading.batch_size,
        fit=reading.fit,
        index=not view.no_index,
        skip_existing=skip_existing,
        overlay=overlay,
    )
    out = model_folder(view.output, choice.folder, choice.source)
    manifest = out / "manifest.json"
    with reported_errors(choice.verbose, interrupted=f"What finished is listed in {manifest}"):
        if overlay and engine.engine == "ray":
            raise OptionError("--overlay runs with --engine local")
        inputs = engine.find(images, exclude=view.output)
        check_writable(out)
        if engine.engine == "ray":
            from cnnviz.engines.ray_engine import ray_feature_maps

            with _progress(len(inputs), reading.quiet) as bar:
                job = engine.job(reading.batch_size, bar.update, reading.quiet)
                report = ray_feature_maps(choice.spec(), inputs, out, options, job, **choice.naming())
        else:
            report = render_feature_maps(
                choice.load(), inputs, out, options, progress=not reading.quiet, **choice.naming()
            )
    if not reading.quiet:
        _summarise_maps(report, out)
    _exit_on_failures(report.failures, report.inputs, choice.verbose)


def _progress(total: int, quiet: bool) -> Any:
    """A progress bar over images (images/s, time left) on a terminal's standard error, unless ``quiet``."""
    from tqdm import tqdm

    return tqdm(total=total, unit="image", disable=True if quiet else None, leave=False, smoothing=0.1)


def _exit_on_failures(failures: Sequence[tuple[str, Exception]], total: int, verbose: bool, after: str = "") -> None:
    """Name each input that failed (with its traceback under --verbose), then exit 1 if any did."""
    for _path, error in failures:
        if verbose:
            traceback.print_exception(error)
        click.echo(f"Error: {error}", err=True)
    if failures:
        if total > 1:
            click.echo(f"Error: {len(failures)} of {total} inputs failed{after}", err=True)
        sys.exit(1)


def _summarise_maps(report: Report, out: Path) -> None:
    """What a featuremaps run did, in a few lines."""
    manifest = out / "manifest.json"
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.preprocessing is not None:
        click.echo(f"preprocessing: {report.preprocessing.name} ({report.preprocessing.description})")
    if report.fit != "none":
        click.echo(f"fit: {report.fit} ({FIT_NOTES[report.fit]})")
    folders = sorted({str(path.parent) for path in report.written})
    count = sum(1 for path in report.written if path.suffix == ".png")
    grids = f"{count} grid{'' if count == 1 else 's'}"
    if len(folders) == 1:
        click.echo(f"wrote {grids} to {folders[0]}")
    elif folders:
        click.echo(f"wrote {grids} for {len(folders)} images to {out / '<image>'}/")
    if report.skipped:
        click.echo(f"skipped {report.skipped} image{'' if report.skipped == 1 else 's'} drawn before (--skip-existing)")
    if report.written or report.failures or report.skipped:
        click.echo(f"manifest: {manifest}")


@main.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--layer", "-l", "layer_names", multiple=True, help="A conv layer or pattern; repeat it. Default: all.")
@click.option(
    "--threshold",
    type=float,
    default=0.0,
    show_default=True,
    help="For conv layers without a ReLU of their own: a position is active above this value. After a ReLU, "
    "active always means above 0.",
)
@click.option(
    "--rare",
    "rare_percent",
    type=click.FloatRange(0, 100),
    default=100 * DEFAULT_RARE,
    show_default=True,
    help="A filter active at fewer than this percent of positions (but not dead) is rarely active.",
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per filter as CSV here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write one object per filter as JSON here.")
@click.option("--no-charts", is_flag=True, help="Leave out the bar chart per layer.")
@output_option("Folder for the charts: OUTPUT/<model>/stats_<layer>.png.")
@reading_options
@engine_options
def stats(
    images: tuple[str, ...],
    choice: ModelChoice,
    layer_names: tuple[str, ...],
    threshold: float,
    rare_percent: float,
    csv_path: str | None,
    json_path: str | None,
    no_charts: bool,
    output: str,
    reading: Reading,
    engine: Engine,
) -> None:
    """Per-filter activation statistics over images: which filters are dead (never active on any image) and which
    rarely active, for pruning or for finding what went wrong in training.

    IMAGES are image files, folders (searched recursively) and quoted glob patterns. For each filter: its mean and
    largest activation, the share of positions where it is active, and on how many images it was active at all.
    The statistics are reduced inside the model, so a run costs about one forward pass per image. Prints a table
    per layer and writes a bar chart per layer; --csv and --json give every filter's numbers.

    \b
    Examples:
      cnnviz stats sample_images/ --model shapes
      cnnviz stats photos/ --layer 'block5_*' --rare 0.5 --csv stats.csv
      cnnviz stats 'data/**/*.png' --model my_model.keras --threshold 0.1 --json stats.json -q
      cnnviz stats s3://bucket/val/ --model /shared/my_model.keras --engine ray    # on a Ray cluster
    """
    from cnnviz.methods.stats import filter_stats
    from cnnviz.output.stats_report import stats_table, write_stats

    rare = rare_percent / 100
    out = model_folder(output, choice.folder, choice.source)
    with reported_errors(choice.verbose):
        inputs = engine.find(images, exclude=output)
        if not no_charts:
            check_writable(out)
        settings: dict[str, Any] = {
            "layers": list(layer_names) or None,
            "threshold": threshold,
            "preprocess": reading.preprocess,
            "size": choice.size,
            "fit": reading.fit,
        }
        with _progress(len(inputs), reading.quiet) as bar:
            if engine.engine == "ray":
                from cnnviz.engines.ray_engine import ray_stats

                job = engine.job(reading.batch_size, bar.update, reading.quiet)
                run = ray_stats(choice.spec(), inputs, job, **settings)
            else:
                run = filter_stats(
                    choice.load(), inputs, batch_size=reading.batch_size, progress=bar.update, **settings
                )
        written = write_stats(
            run.layers, out, choice.label, rare, charts=not no_charts, csv_path=csv_path, json_path=json_path
        )
    if not reading.quiet:
        click.echo(stats_table(run.layers, rare))
        for path in written:
            click.echo(f"wrote {path}")
    for _path, error in run.failures:
        click.echo(f"Error: {error}", err=True)
    if run.failures:
        click.echo(
            f"Error: {len(run.failures)} of {len(inputs)} inputs failed; the statistics leave them out", err=True
        )
        sys.exit(1)


def _square_side(size: tuple[int, int] | None) -> int:
    """The side of maximize's square images: ``--size N``, or :data:`DEFAULT_SIZE`."""
    if size is None:
        return DEFAULT_SIZE
    if size[0] != size[1] or size[0] < 8:
        raise click.UsageError(
            f"maximize draws square images of 8 pixels or more: give --size N, not {size[0]}x{size[1]}"
        )
    return size[0]


@main.command(context_settings=CONTEXT)
@model_options
@click.option("--layer", "-l", required=True, help="The conv layer whose filters to draw (see 'cnnviz layers').")
@click.option(
    "--filters",
    "filter_spec",
    default=None,
    callback=_selection_checker("filter"),
    help=f"Filters to draw, e.g. 0:64 or 1,5,9 (default: the first {DEFAULT_FILTERS}).",
)
@click.option(
    "--steps", type=click.IntRange(1), default=DEFAULT_STEPS, show_default=True, help="Gradient-ascent steps."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed, the same images.")
@_choice_option(
    "--param",
    PARAMETRIZATIONS,
    "fourier",
    "fourier: a scaled spectrum with decorrelated colours (legible); pixel: plain pixels, as most tutorials do.",
)
@click.option("--no-transforms", is_flag=True, help="No random jitter, scale and rotation between steps.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True, help="Filters optimised together.")
@click.option(
    "--save-raw", is_flag=True, help="Also write the images as .npy, (filters, size, size, channels) in 0..1."
)
@click.option("--no-labels", is_flag=True, help="A bare grid, without the header strip.")
@_choice_option("--preprocess", MODES, "auto", "How pixels are prepared for the model, as for featuremaps.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@output_option("Folder to write into: OUTPUT/<model>/maximize_<layer>.png.")
def maximize(
    choice: ModelChoice,
    layer: str,
    filter_spec: str | None,
    steps: int,
    seed: int,
    param: str,
    no_transforms: bool,
    batch_size: int,
    save_raw: bool,
    no_labels: bool,
    preprocess: str,
    quiet: bool,
    output: str,
) -> None:
    """Draw what each filter of a conv layer responds to: an image per filter, found by gradient ascent.

    --size N sets the images' side (default 128; keras.applications models are built at it). Each image
    starts as faint noise and is changed, step by step, to make its filter's mean activation as large
    as it can. By default the image lives in Fourier space with decorrelated colours, and every step sees it
    jittered, scaled and rotated a little (Lucid's recipe), which gives patterns a person can read rather than
    high-frequency noise. All chosen filters are optimised together in batches by one traced step; the same
    --seed gives the same picture, byte for byte.

    This is gradient work through the network: on 2 CPU cores VGG16's block5_conv1 takes about 0.09 s per filter
    and step at 128 pixels (8 filters x 64 steps: 45 s), so start with a few. Nested layers (vgg16/block5_conv1)
    work.

    \b
    Examples:
      cnnviz maximize --model shapes --layer shapes
      cnnviz maximize --layer block4_conv1 --filters 0:8 --steps 64
      cnnviz maximize --model my_model.keras --layer vgg16/block5_conv1 --filters 1,5,9 --seed 3
      cnnviz maximize --model shapes --layer edges --param pixel --no-transforms   # the naive way, to compare
    """
    from cnnviz.engines.maximize_run import render_maximize
    from cnnviz.methods.maximize import MaximizeOptions

    side = _square_side(choice.size)
    options = MaximizeOptions(steps=steps, size=side, seed=seed, parametrization=param, batch_size=batch_size)
    if no_transforms:
        options = dataclasses.replace(options, jitter=0, scale=0.0, rotate=0.0)
    out = model_folder(output, choice.folder, choice.source)
    with reported_errors(choice.verbose), _progress(0, quiet) as bar:
        check_writable(out)

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.unit = "filter-step"
            bar.update(done)

        report = render_maximize(
            choice.load(),
            layer,
            out,
            options,
            filters=filter_spec,
            preprocess=preprocess,
            save_raw=save_raw,
            labels=not no_labels,
            model_label=choice.label,
            progress=advance,
        )
    if quiet:
        return
    if report.result is not None:
        reached = ", ".join(
            f"{f}: {v:.3g}" for f, v in zip(report.result.filters, report.result.activations, strict=True)
        )
        click.echo(f"{report.result.layer}: mean activation reached per filter: {reached}")
    _say(report.notes, report.written)


@main.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option(
    "--class",
    "target",
    default=None,
    metavar="N|NAME",
    help="The class to explain: an index or a name (tabby, 'tiger cat'). Default: each image's top class.",
)
@click.option(
    "--layer",
    "-l",
    default=None,
    help="The layer to explain at: any layer of 2-D maps. Default: the last conv layer with maps larger than 1x1.",
)
@_choice_option("--method", METHODS, "gradcam", "gradcam++ separates several objects of one class better.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Class names, one per line in class order. Default: ImageNet's for 1,000-class models (shipped, offline).",
)
@click.option("--save-raw", is_flag=True, help="Also write each heatmap as .npy, rows x cols at the input size.")
@click.option("--cmap", default="jet", show_default=True, callback=_checked_cmap, help="The heatmap's colormap.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    default=DEFAULT_ALPHA,
    show_default=True,
    help="Opacity of the hottest places.",
)
@click.option("--no-labels", is_flag=True, help="Bare pictures, without the header strip.")
@output_option("Folder to write into: OUTPUT/<model>/<image>/gradcam_<class>.png.")
@reading_options
def gradcam(
    images: tuple[str, ...],
    choice: ModelChoice,
    target: str | None,
    layer: str | None,
    method: str,
    labels_file: str | None,
    save_raw: bool,
    cmap: str,
    alpha: float,
    no_labels: bool,
    output: str,
    reading: Reading,
) -> None:
    """Show where a classifier looked: Grad-CAM heatmaps over images, and the model's top-5 classes.

    Each picture shows the image as the model saw it, and beside it the heatmap of the class blended onto it.
    The gradient is taken of the class's score before the model's softmax where the graph has one (a
    softmax saturates), and the run says which. Layers of nested bases (vgg16/block5_conv3) work.

    keras.applications models are loaded with their classifier head (VGG16's ImageNet weights with the head
    are 528 MB, downloaded once); a model file must end in class scores.

    \b
    Examples:
      cnnviz gradcam sample_images/cat.jpg
      cnnviz gradcam sample_images/cat.jpg --class 'tiger cat' --method gradcam++
      cnnviz gradcam photos/ --model my_classifier.keras --labels classes.txt --save-raw -o out/
      cnnviz gradcam sample_images/ --model shapes --class circles
    """
    from cnnviz.engines.gradcam_run import GradcamOptions, render_gradcam

    options = GradcamOptions(
        target=target,
        layer=layer,
        method=method,
        labels_file=labels_file,
        cmap=cmap,
        alpha=alpha,
        save_raw=save_raw,
        labels=not no_labels,
        preprocess=reading.preprocess,
        size=choice.size if not choice.is_application else None,
        fit=reading.fit,
        batch_size=reading.batch_size,
    )
    out = model_folder(output, choice.folder, choice.source)
    with reported_errors(choice.verbose):
        inputs = gather_inputs(images, exclude=output)
        check_writable(out)
        report = render_gradcam(choice.load(include_top=True), inputs, out, options, model_label=choice.label)
    if not reading.quiet:
        click.echo(f"layer: {report.layer}; gradient of {report.score}")
        if report.preprocessing is not None:
            click.echo(f"preprocessing: {report.preprocessing.name} ({report.preprocessing.description})")
        value = "p" if report.probabilities else "score"
        for result in report.results:
            ranked = ", ".join(f"{name} {number:.3f}" for name, number in result.top)
            click.echo(f"{result.path}: top {value}: {ranked}")
            click.echo(f"  explained {result.target_name} (class {result.target}) -> {result.picture}")
            if result.raw is not None:
                click.echo(f"  raw heatmap -> {result.raw}")
    _exit_on_failures(report.failures, report.inputs, choice.verbose)


@main.command(context_settings=CONTEXT)
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("--no-gradcam", is_flag=True, help="Leave Grad-CAM out (for models that do not end in class scores).")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default="cnnviz_report",
    show_default=True,
    help="The report's folder: index.html and its pictures.",
)
@reading_options
def report(images: tuple[str, ...], choice: ModelChoice, no_gradcam: bool, output: str, reading: Reading) -> None:
    """Write one static HTML page about a model and images: OUTPUT/index.html.

    The page holds the conv-layer table, Grad-CAM for each image, and for every conv layer its filters, its
    dead-filter statistics over the images and its feature maps for each image (up to 64 maps a layer). It needs
    no server and nothing from the network: open it in a browser, or zip the folder and send it. Pictures load as
    you scroll, and an index on the left leads to each layer.

    keras.applications models are loaded with their classifier head, for Grad-CAM (VGG16's ImageNet weights
    with the head are 528 MB, downloaded once; --weights none works offline).

    \b
    Examples:
      cnnviz report sample_images/ --model shapes -o report/
      cnnviz report sample_images/cat.jpg -o report/
      cnnviz report photos/ --model my_model.keras --no-gradcam
    """
    from cnnviz.engines.report import write_report

    with reported_errors(choice.verbose):
        check_writable(output)
        result = write_report(
            choice.load(include_top=not no_gradcam),
            gather_inputs(images, exclude=output),
            output,
            model_label=choice.label,
            weights=choice.weights_kind,
            preprocess=reading.preprocess,
            fit=reading.fit,
            batch_size=reading.batch_size,
            gradcam=not no_gradcam,
        )
    if not reading.quiet:
        for note in result.notes:
            click.echo(f"note: {note}")
        click.echo(f"wrote {result.page} with {result.pictures} pictures")
    _exit_on_failures(result.failures, result.inputs, choice.verbose, after="; the page leaves them out")


@main.command(context_settings=CONTEXT)
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--output", "-o", type=click.Path(file_okay=False), default=None, help="Where the GIFs go. Default: FOLDER."
)
@click.option(
    "--duration",
    type=click.IntRange(1),
    default=DEFAULT_DURATION_MS,
    show_default=True,
    help="How long each frame shows, in milliseconds.",
)
@click.option("--verbose", is_flag=True, help="Show the traceback of an unexpected error.")
def animate(folder: str, output: str | None, duration: int, verbose: bool) -> None:
    """Turn grids drawn at successive steps into looping GIFs, one per grid.

    FOLDER holds one folder per step (epoch_001, epoch_002, ... or step_N, batch_N), each with the same PNG
    names inside, as a training run leaves them. FOLDER/epoch_*/filters_conv2d.png becomes
    FOLDER/filters_conv2d.gif, FOLDER/epoch_*/cat/conv2d.png becomes FOLDER/cat/conv2d.gif.

    \b
    Examples:
      cnnviz animate viz/
      cnnviz animate viz/ --duration 250 -o gifs/
    """
    with reported_errors(verbose):
        written = animate_folder(folder, output, duration_ms=duration)
    click.echo(f"wrote {len(written)} GIF{'' if len(written) == 1 else 's'} in {output or folder}")
    for path in written:
        click.echo(f"  {path}")


def run() -> None:
    """The ``cnnviz`` console command: :func:`main` under :func:`cnnviz.crashes.supervise`, so that a crash in
    native code says what cnnviz was doing instead of leaving a bare "Segmentation fault"."""
    supervise(main, sys.argv)


if __name__ == "__main__":  # pragma: no cover
    run()
