"""Gradients and compiled steps on PyTorch: ``torch.autograd``, and plain eager calls for compiled steps (see
:mod:`cnnviz.backends`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


def _as_tuple(outputs: Any) -> tuple[Any, ...]:
    return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)


def _numpy(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.detach().cpu().float().numpy(), dtype=np.float32)


def pullback(function: Callable[[Any], Any], x: np.ndarray) -> tuple[list[np.ndarray], Callable[..., np.ndarray]]:
    given = torch.as_tensor(x).requires_grad_(True)
    outputs = _as_tuple(function(given))

    def backward(cotangents: Sequence[np.ndarray | None]) -> np.ndarray:
        pairs = [
            (out, torch.as_tensor(c, dtype=out.dtype, device=out.device))
            for out, c in zip(outputs, cotangents, strict=True)
            if c is not None
        ]
        (grad,) = torch.autograd.grad(
            [out for out, _ in pairs], given, [c for _, c in pairs], retain_graph=True, allow_unused=True
        )
        return np.zeros_like(x) if grad is None else _numpy(grad)

    return [_numpy(out) for out in outputs], backward


def gradient(function: Callable[..., Any]) -> Callable[..., Any]:
    def grad(x: Any, *rest: Any) -> Any:
        with torch.enable_grad():
            given = x.detach().requires_grad_(True)
            (found,) = torch.autograd.grad(function(given, *rest), given, allow_unused=True)
        return torch.zeros_like(x) if found is None else found

    return grad


def compiled(function: Callable[..., Any], variables: Sequence[Any]) -> Callable[..., Any]:
    # Eager: each step runs as called (torch.compile is not tried here).
    return function
