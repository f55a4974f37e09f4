"""The precision a model runs in: float32, or bfloat16 where the hardware computes it natively.

bfloat16 keeps float32's range with three significant digits, enough for a picture of 256 colours, and CPUs with
AVX512-BF16 or AMX compute its dot products at twice the float32 rate (oneDNN uses them; so do NVIDIA GPUs from
Ampere on): VGG16's forward pass to its 13 conv layers took 0.68 s against 1.19 s in float32 here
(bench/bench_precision.py). cnnviz computes in bfloat16 through twins of the model's layers with Keras's
``mixed_bfloat16`` policy (float32 weights, shared; bfloat16 arithmetic), and reduces and draws in float32. The
layers up to the first conv layer, which see the pixels, stay in float32 (:func:`cnnviz.models.graph.trace`).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from cnnviz.errors import OptionError

PRECISIONS = ("float32", "bfloat16", "auto")
#: What the model computes in unless asked otherwise: exact numbers.
DEFAULT_PRECISION = PRECISIONS[0]
#: CPU flags (Linux's /proc/cpuinfo) that mean native bfloat16 dot products.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


#: The first CUDA compute capability with bfloat16 arithmetic in its tensor cores (Ampere).
BF16_GPU = (8, 0)


@cache
def native_bfloat16() -> bool:
    """Whether the model would compute bfloat16 natively here: on the GPU Keras's backend computes on, where it
    has one (CUDA compute capability :data:`BF16_GPU` or newer; a GPU that gives none is assumed not to), else on
    this machine's CPU (Linux: its flags; elsewhere assumed not)."""
    from cnnviz import backends

    gpu = backends.gpu_capability()
    if gpu is not None:
        return gpu >= BF16_GPU
    if not sys.platform.startswith("linux"):
        return False
    try:
        return has_bfloat16_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def has_bfloat16_flags(cpuinfo: str) -> bool:
    """Whether the ``flags`` lines of a Linux ``/proc/cpuinfo`` text name native bfloat16 (:data:`BF16_FLAGS`).

    >>> has_bfloat16_flags("flags\t\t: fpu avx512f avx512_bf16 amx_tile"), has_bfloat16_flags("flags : fpu avx2")
    (True, False)
    """
    flags = {
        flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()
    }
    return any(flag in flags for flag in BF16_FLAGS)


def check_precision(precision: str) -> None:
    """Raise :class:`OptionError` for a precision not in :data:`PRECISIONS` (without asking the machine what
    ``auto`` would be: options check themselves before Keras is imported)."""
    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")


def resolve_precision(precision: str) -> str:
    """``float32`` or ``bfloat16``: ``auto`` is bfloat16 where :func:`native_bfloat16`, else float32.

    Raises:
        OptionError: an unknown precision.
    """
    check_precision(precision)
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision
