"""What the commands share: option groups, the model choice, error reporting and printing."""

from __future__ import annotations

import dataclasses
import functools
import gc
import re
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
from cnnviz._keras import chosen_backend
from cnnviz.draw.render import palette
from cnnviz.engines.dispatch import DEFAULT_ENGINE, ENGINES
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import CnnvizError, OptionError, brief
from cnnviz.inputs.images import DEFAULT_FIT, FITS
from cnnviz.inputs.preprocess import DEFAULT_PREPROCESSING, MODES
from cnnviz.inputs.reader import DEFAULT_BATCH_SIZE
from cnnviz.models.precision import DEFAULT_PRECISION, PRECISIONS
from cnnviz.output.files import check_writable
from cnnviz.output.manifest import model_folder
from cnnviz.runs.contract import Progress, find_inputs
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
        raise click.UsageError(as_flags(str(exc)), click.get_current_context(silent=True)) from exc
    except CnnvizError as exc:
        if verbose:
            traceback.print_exc()
        raise click.ClickException(as_flags(str(exc))) from exc
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        hint = "" if verbose else " (run again with --verbose for the traceback)"
        raise click.ClickException(f"unexpected {type(exc).__name__}: {brief(exc)}{hint}") from exc


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command shares: which model, which weights, and how loud."""
    return _with_options(command, model_choice_options(), "choice", ModelChoice)


def model_choice_options() -> list[Callable[..., Any]]:
    """``--model`` and ``--weights``, then the options of how any model is loaded (:func:`loading_options`)."""
    return [
        click.option(
            "--model",
            "-m",
            default="vgg16",
            show_default=True,
            help="A keras.applications name (vgg16, resnet50, mobilenetv2, ...), the bundled offline model "
            "'shapes', a KerasHub preset name (resnet_50_imagenet, ...; the hub extra) or preset folder, or a "
            ".keras / .h5 file or SavedModel folder.",
        ),
        click.option(
            "--weights",
            default=None,
            help="For keras.applications names: imagenet (default; downloaded once by Keras), none (random), or a "
            "weights file. For a model file: a weights file to load into it.",
        ),
        *loading_options(),
    ]


def loading_options() -> list[Callable[..., Any]]:
    """How any model is loaded, whichever it is: its input size, code it needs, and how loud errors are."""
    return [
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


def option_group(
    name: str, decorators: list[Callable[..., Any]], renamed: Sequence[str] = (), defaults: type | None = None
) -> Callable[[Callable[..., Any]], Any]:
    """A decorator applying click option ``decorators``, each declared with the library's name for it: the command
    gets their values as one dict ``name``, keywords for the run's options. The library names in ``renamed`` are
    ones the command uses otherwise (``output`` is the folder): their options are found by their flags in
    :data:`RENAMED_FLAGS` (``--head``). Where ``defaults`` (the library's dataclass the values fill) declares a
    field's default, the option shows and takes that one: a default is written once, where the library reads it."""

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        keys: dict[str, str] = {}  # each option's click name: its library name

        @functools.wraps(command)
        def packed(**kwargs: Any) -> Any:
            kwargs[name] = {python: kwargs.pop(key) for key, python in keys.items()}
            return command(**kwargs)

        before = len(getattr(packed, "__click_params__", []))
        made = functools.reduce(lambda cmd, deco: deco(cmd), reversed(decorators), packed)
        library = {RENAMED_FLAGS[python]: python for python in renamed}
        declared = {field.name: field.default for field in dataclasses.fields(defaults)} if defaults else {}
        for param in getattr(made, "__click_params__", [])[before:]:
            keys[param.name] = library.get(param.opts[0], param.name)
            default = declared.get(keys[param.name], dataclasses.MISSING)
            if default is not dataclasses.MISSING:
                param.default = default
                param.show_default = not getattr(param, "is_flag", False)
        return made

    return wrap


#: The key of click's context object that says the command runs in a process of its own that ends with it.
WHOLE_PROCESS = "whole process"


@dataclass(frozen=True)
class ModelChoice:
    """The model options every command shares, as the user gave them; :attr:`ref` is the library's
    :class:`cnnviz.engines.naming.ModelRef`, which loads and names the model."""

    model: str
    weights: str | None
    size: tuple[int, int] | None
    unsafe: bool
    imports: tuple[str, ...]
    verbose: bool

    @property
    def ref(self) -> ModelRef:
        """The model, as the library names and loads it."""
        return ModelRef(self.model, self.weights, self.size, self.unsafe, self.imports)

    def load(self, **choice: Any) -> Any:
        """The model (:meth:`cnnviz.engines.naming.ModelRef.load`, which takes ``choice``). In the ``cnnviz``
        command's own process (:data:`WHOLE_PROCESS`), everything in memory so far, Keras and the model included,
        is then set aside from the garbage collector's full passes (:func:`gc.freeze`): the process ends with the
        run, and its full collections walked those ~430,000 objects again each time: featuremaps on 64 photos
        (VGG16, bfloat16) took a median 15.97 s before, 15.12 s after (four runs each, in turns). Called from
        Python (tests, notebooks), nothing is frozen: what the caller drops must stay collectable."""
        model = self.ref.load(**choice)
        context = click.get_current_context(silent=True)
        if context is not None and isinstance(context.obj, dict) and context.obj.get(WHOLE_PROCESS):
            gc.freeze()
        return model

    def keywords(self) -> dict[str, Any]:
        """The model's part of a run's options: how it is named, and ``size`` (:meth:`model_size`)."""
        return {**vars(self.ref.naming()), "size": self.model_size()}

    def model_size(self) -> tuple[int, int] | None:
        """``--size`` as images are read at it: keras.applications models are built at it instead."""
        return None if self.ref.is_application else self.size

    def folder(self, output: str) -> Path:
        """The model's output folder under ``output`` (:func:`cnnviz.output.manifest.model_folder`)."""
        return model_folder(output, self.ref.folder, self.ref.source)


def checked_cmap(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A colormap matplotlib knows, checked before any model is loaded."""
    try:
        palette(value)
    except OptionError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc
    return value


def selection_checker(what: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
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


def precision_option() -> Callable[..., Any]:
    """``--precision float32|bfloat16|auto``."""
    return choice_option(
        "--precision",
        PRECISIONS,
        DEFAULT_PRECISION,
        "What the model computes in. bfloat16 is about twice as fast on CPUs with AVX512-BF16 or AMX and on "
        "NVIDIA GPUs from Ampere on (pictures agree to a colour level or two); auto picks it where the GPU or, "
        "without one, the CPU has it. Exact numbers need float32.",
    )


def feeding_options() -> list[Callable[..., Any]]:
    """``--input NAME``, ``--feed NAME=FILE.npy`` (for models of several inputs) and ``--precision``, named as
    :class:`cnnviz.inputs.reader.FeedSettings` names them."""
    return [
        click.option(
            "--input",
            default=None,
            metavar="NAME",
            help="For a model of several inputs: the one that takes the images (default: the only image-shaped one).",
        ),
        click.option(
            "--feed",
            multiple=True,
            callback=_feeds,
            metavar="NAME=FILE.npy",
            help="For a model of several inputs: what input NAME gets, an array of its shape for every image or one "
            "row per image (leading axis: the number of images, in input order); repeat it. Default: zeros.",
        ),
        precision_option(),
    ]


def _feeds(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    """``--feed NAME=FILE.npy`` options as ``{name: the file's full path}`` (a Ray worker reads it elsewhere)."""
    feeds: dict[str, str] = {}
    for value in values:
        name, _, path = value.partition("=")
        if not name or not path:
            raise click.BadParameter(f"'{value}' is not NAME=FILE.npy", ctx, param)
        if not Path(path).is_file():
            raise click.BadParameter(f"no such file: {path}", ctx, param)
        feeds[name] = str(Path(path).resolve())
    return feeds or None


def choice_option(flag: str, choices: Sequence[str], default: str, help: str) -> Callable[..., Any]:
    """An option taking one of ``choices``, its default shown in the help."""
    return click.option(flag, type=click.Choice(choices), default=default, show_default=True, help=help)


def output_option(help: str) -> Callable[..., Any]:
    """The output folder option, ``--output`` / ``-o``."""
    return click.option(
        "--output", "-o", type=click.Path(file_okay=False), default="cnnviz_out", show_default=True, help=help
    )


def labels_and_head() -> list[Callable[..., Any]]:
    """``--labels FILE`` (class names) and ``--head NAME`` (which output a model of several explains), for the
    commands that explain a class."""
    return [
        click.option(
            "--labels",
            "labels_file",
            type=click.Path(exists=True, dir_okay=False),
            help="Class names, one per line in class order. Default: ImageNet's for 1,000-class models.",
        ),
        click.option("--head", metavar="NAME", help="For a model of several outputs: the one explained."),
    ]


def reading_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by the commands that run images through the model: handed to the command as ``reading``,
    keywords of :class:`cnnviz.inputs.reader.ReadingSettings` (but ``size``, which ``--size`` gives:
    :meth:`ModelChoice.keywords`), and ``quiet``."""
    group = option_group(
        "reading",
        [
            choice_option(
                "--preprocess",
                MODES,
                DEFAULT_PREPROCESSING,
                "How pixels are prepared: auto follows the model (keras.applications family, a leading Rescaling "
                "layer, else x/255).",
            ),
            choice_option(
                "--fit",
                FITS,
                DEFAULT_FIT,
                "How a photo gets a fixed model input size (VGG16: 224x224) of another shape. crop scales the short "
                "side to fit and cuts the ends of the long side: nothing is distorted and no border is added, as "
                "ImageNet models are evaluated. pad keeps the whole photo and fills the rest with the pixel the model "
                "sees as zero. stretch squashes the photo to the size, as the tutorials do. Models of free input size "
                "keep each photo's shape.",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(1),
                default=DEFAULT_BATCH_SIZE,
                show_default=True,
                help="Images per forward pass.",
            ),
            *feeding_options(),
        ],
    )
    quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary; errors only.")
    return group(quiet(command))


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options choosing the engine: handed to the command as ``engine``, keywords of
    :class:`cnnviz.engines.dispatch.EngineSettings`."""
    return option_group(
        "engine",
        [
            choice_option(
                "--engine",
                ENGINES,
                DEFAULT_ENGINE,
                "Where to run: here, or on Ray Data (a cluster at --address / RAY_ADDRESS, else a local Ray with this "
                "machine's cores). Ray needs pip install 'cnnviz[ray]'.",
            ),
            click.option(
                "--address",
                default=None,
                help="With --engine ray: the Ray cluster's address (auto on a node of a running cluster, "
                "ray://host:10001).",
            ),
            click.option(
                "--workers",
                "ray_workers",
                type=click.IntRange(1),
                default=None,
                help="With --engine ray: model workers (one CPU each). Default: one per CPU the reading leaves free.",
            ),
        ],
    )(command)


def images_command(
    cls: type[click.Command] = click.Command, required: bool = True, **attrs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """The head of every command over images: a click command (``cls``, made with ``attrs``) taking ``IMAGES...``
    (``required`` or not) and the model options (:func:`model_options`)."""

    def wrap(function: Callable[..., Any]) -> click.Command:
        function = click.argument("images", nargs=-1, required=required)(model_options(function))
        return click.command(cls=cls, context_settings=CONTEXT, **attrs)(function)

    return wrap


def run_options(output_help: str, engine: bool = True) -> Callable[[Callable[..., Any]], Any]:
    """The tail of every command over images: the output folder (``output_help``), how images are read
    (:func:`reading_options`) and, with ``engine``, where the run goes (:func:`engine_options`)."""

    def wrap(function: Callable[..., Any]) -> Any:
        function = reading_options(engine_options(function) if engine else function)
        return output_option(output_help)(function)

    return wrap


def run_over_images(
    run: Callable[..., Any],
    choice: ModelChoice,
    images: Sequence[str],
    output: str,
    options: Any,
    quiet: bool,
    include_top: bool = False,
    folder: Path | None = None,
    unit: str = "image",
    then: str | None = None,
    **extra: Any,
) -> Any:
    """Find the inputs (:func:`cnnviz.runs.contract.find_inputs`: URIs too on Ray), check the model's folder under
    ``output`` can be written (unless the options' ``writes_folder`` says it is not written), and call
    ``run(model, inputs, folder, options, progress)`` (the model's folder under ``output``, unless ``folder`` is
    given) under a progress bar, on the
    engine the options name: the model is loaded here for the local engine (:meth:`ModelChoice.load`, with its
    classifier head where ``include_top``), and named for Ray's workers, which load it themselves (a line on
    standard error says which cluster, unless ``quiet``). The bar counts ``unit``, then ``then`` for a run of two
    kinds of work (:func:`progress_bar`); ``extra`` keywords go to ``run`` as they are."""
    out = folder if folder is not None else choice.folder(output)
    engine = getattr(options, "engine", DEFAULT_ENGINE)
    inputs = find_inputs(images, output, engine)
    if getattr(options, "writes_folder", True):
        check_writable(out)
    with progress_bar(quiet, unit, then) as progress:
        if engine != "ray":
            return run(choice.load(include_top=include_top), inputs, out, options, progress, **extra)
        if not quiet:
            click.echo(ray_line(options), err=True)
        return run(choice.ref.resolved(), inputs, out, options, progress, **extra)


def ray_line(options: Any) -> str:
    """Connect to the Ray cluster the options name (:class:`cnnviz.engines.dispatch.EngineSettings`) and say which,
    and how many workers fit on it."""
    from cnnviz.engines.dispatch import ray_cluster

    cluster, actors = ray_cluster(options)
    workers = options.ray_workers
    note = "" if workers in (None, actors) else f" (of {workers} asked: more would starve the reading)"
    return f"ray: {cluster.address} cluster, {cluster.cpus:g} CPUs, {actors} workers{note}"


def view_options(norms: tuple[str, ...], view: type, *more: Callable[..., Any]) -> Callable[[Callable[..., Any]], Any]:
    """Options shared by the commands that draw grids, and ``more`` of a command's own view: handed to the command
    as ``view``, keywords of ``view`` (a :class:`cnnviz.draw.view.ViewSettings`), whose defaults they show."""
    return option_group(
        "view",
        [
            *more,
            click.option("--norm", type=click.Choice(norms), help="Normalisation."),
            click.option("--cmap", callback=checked_cmap, help="Any matplotlib colormap name."),
            click.option(
                "--scale",
                type=click.IntRange(1, 64),
                default=None,
                help="Nearest-neighbour enlargement (default: auto).",
            ),
            click.option(
                "--no-labels",
                "labels",
                flag_value=False,
                default=True,
                help="Bare grids, without the header strip and colorbar.",
            ),
            click.option(
                "--no-index",
                "index",
                flag_value=False,
                default=True,
                help="Leave out the numbers on tiles (maps, filters).",
            ),
        ],
        defaults=view,
    )


#: The library's option names whose flag is not their name with dashes (:func:`as_flags`).
RENAMED_FLAGS = {
    "output": "--head",
    "target": "--class",
    "labels_file": "--labels",
    "imports": "--import",
    "ray_workers": "--workers",
    "layers": "--layer",
}
_NAMED_OPTION = re.compile(r"`([a-z][a-z0-9_]*)`")


def as_flags(text: str) -> str:
    """Library text as the command line says it: each option the library names in backquotes (its Python name,
    :mod:`cnnviz.errors`) becomes its flag.

    >>> as_flags("choose with `max_maps`; `output` names the head; `feed` meta=FILE.npy")
    'choose with --max-maps; --head names the head; --feed meta=FILE.npy'
    """
    return _NAMED_OPTION.sub(lambda found: RENAMED_FLAGS.get(found[1], "--" + found[1].replace("_", "-")), text)


def say_notes(notes: Sequence[str]) -> None:
    """A run's notes, as the command line names options."""
    for note in notes:
        click.echo(f"note: {as_flags(note)}")


def say(notes: Sequence[str], written: Sequence[Path]) -> None:
    """A run's notes, then each file it wrote."""
    say_notes(notes)
    for path in written:
        click.echo(f"wrote {path}")


@contextmanager
def progress_bar(quiet: bool, unit: str = "image", then: str | None = None) -> Iterator[Progress]:
    """A run's progress hook that draws a bar (units/s, time left) on a terminal's standard error, unless
    ``quiet``; the run says the total as it goes. A run of two kinds of work (the atlas: images, then units) says a
    new total when the second starts: the bar starts again at 0, counting ``then``."""
    from tqdm import tqdm

    with tqdm(total=0, unit=unit, disable=True if quiet else None, leave=False, smoothing=0.1) as bar:

        def advance(done: int, total: int) -> None:
            if bar.total != total:
                if then is not None and bar.n:
                    bar.unit = then
                    bar.reset(total=total)
                bar.total = total
                bar.refresh()
            bar.update(done)

        yield advance


def say_run(result: Any, *lines: str) -> None:
    """What every run over images says first: its notes, ``lines`` (what it computed), its preprocessing, and the
    backend and precision where they are not the defaults."""
    say_notes(result.notes)
    for line in lines:
        click.echo(line)
    if result.preprocessing is not None:
        click.echo(f"preprocessing: {result.preprocessing.name} ({result.preprocessing.description})")
    say_computation(result)


def say_computation(result: Any) -> None:
    """The Keras backend and the run's precision, where they are not the defaults (TensorFlow, float32)."""
    backend = chosen_backend()
    if backend != "tensorflow":
        click.echo(f"backend: {backend}")
    if getattr(result, "precision", "float32") != "float32":
        click.echo(f"precision: {result.precision} (the model computed in it; cnnviz reduced and drew in float32)")


def exit_on_failures(failures: Sequence[tuple[str, Exception]], total: int, verbose: bool, after: str = "") -> None:
    """Name each input that failed (with its traceback under --verbose), then exit 1 if any did."""
    for _path, error in failures:
        if verbose:
            traceback.print_exception(error)
        click.echo(f"Error: {as_flags(str(error))}", err=True)
    if failures:
        if total > 1:
            click.echo(f"Error: {len(failures)} of {total} inputs failed{after}", err=True)
        sys.exit(1)
