"""The ``cnnviz`` command: a thin click layer over the library. It parses options, calls one library function
per command, and prints where things went. Library errors become ``Error: ...`` with no traceback."""

from __future__ import annotations

import functools
import os
import sys

import click

from cnnviz._keras import BACKENDS, check_backend_installed, chosen_backend
from cnnviz._version import __version__
from cnnviz.cli.atlas import atlas
from cnnviz.cli.attributions import explain, gradcam
from cnnviz.cli.common import CONTEXT, WHOLE_PROCESS
from cnnviz.cli.compare import compare
from cnnviz.cli.evaluate import evaluate
from cnnviz.cli.explore import explore
from cnnviz.cli.grids import animate, featuremaps, filters, layers
from cnnviz.cli.maximize import maximize
from cnnviz.cli.report import report
from cnnviz.cli.stats import stats
from cnnviz.cli.top import top
from cnnviz.crashes import supervise
from cnnviz.errors import OptionError


def _set_backend(context: click.Context, parameter: click.Parameter, backend: str | None) -> None:
    """Point Keras at ``backend`` before it is imported (it picks its backend once, on import)."""
    if backend is None:
        return
    try:
        check_backend_installed(backend)
    except OptionError as exc:
        raise click.BadParameter(str(exc), context, parameter) from None
    if "keras" in sys.modules and chosen_backend() != backend:
        raise click.BadParameter(f"Keras is already running on {chosen_backend()} in this process", context, parameter)
    os.environ["KERAS_BACKEND"] = backend


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="cnnviz")
@click.option(
    "--backend",
    type=click.Choice([*BACKENDS, "torch"]),
    callback=_set_backend,
    expose_value=False,
    help="The Keras backend to run on (default: KERAS_BACKEND, else ~/.keras/keras.json, else tensorflow). On a "
    "CPU TensorFlow is the faster; JAX gives the same results, for models and training set up for it.",
)
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
      cnnviz top sample_images/ --model shapes --layer edges    # the image patches that excite each filter
      cnnviz gradcam sample_images/cat.jpg                      # where VGG16 looks, and its top-5 classes
      cnnviz explain sample_images/ --model shapes --method all # every attribution method, side by side
      cnnviz evaluate sample_images/ --model shapes --method all  # which of them to trust: scores
      cnnviz compare shapes tuned.keras sample_images/          # what fine-tuning changed, layer by layer
      cnnviz report sample_images/ --model shapes -o report/    # everything on one page
      cnnviz atlas sample_images/ --model shapes                # a page for every unit: a static site
      cnnviz explore sample_images/ --model shapes              # browse it live in the browser
      cnnviz --backend jax gradcam sample_images/cat.jpg --model shapes   # on JAX

    Run 'cnnviz COMMAND -h' for a command's options.
    """


for _command in (
    layers,
    filters,
    featuremaps,
    stats,
    top,
    maximize,
    gradcam,
    explain,
    evaluate,
    compare,
    report,
    atlas,
    explore,
    animate,
):
    main.add_command(_command)


#: Arguments that only print text: no model runs, so no native crash to explain and no child process to pay for.
_TEXT_ONLY = ("-h", "--help", "--version")


def run() -> None:
    """The ``cnnviz`` console command: :func:`main` under :func:`cnnviz.crashes.supervise`, so that a crash in
    native code says what cnnviz was doing instead of leaving a bare "Segmentation fault"."""
    if len(sys.argv) < 2 or any(arg in _TEXT_ONLY for arg in sys.argv[1:]):
        main()
    supervise(functools.partial(main, obj={WHOLE_PROCESS: True}), sys.argv)


if __name__ == "__main__":  # pragma: no cover
    run()
