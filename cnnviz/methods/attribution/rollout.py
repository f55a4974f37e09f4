"""Attention rollout (Abnar & Zuidema 2020): how much each patch reaches a Vision Transformer's class token through
every block's attention. Each block's attention, averaged over its heads, is mixed half and half with the identity
(the residual connection) and its rows normalised; their product from the first block to the last says how much of
each input token ends up in each output token. The class token's row, on the patch grid, is the picture; a model
without a class token shows the mean over all tokens' rows. It takes no gradient and no class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnviz.errors import UnsupportedModel
from cnnviz.methods.attribution.base import Attributed, Attribution, AttributionBatch, upsampled
from cnnviz.methods.target import TargetModel


def attention_rollout(scores: Sequence[np.ndarray], extra: int) -> np.ndarray:
    """``(N, tokens - extra)``: each patch token's share of the class token (the first of ``extra`` leading
    tokens; with none, of the mean token) after every layer's attention ``(N, heads, tokens, tokens)``, in order.

    >>> one = np.array([[[[0.0, 1.0], [0.0, 1.0]]]])  # one head: both tokens attend to the second only
    >>> attention_rollout([one], extra=1).round(3).tolist()
    [[0.5]]
    >>> attention_rollout([one, one], extra=1).round(3).tolist()
    [[0.75]]
    """
    first = np.asarray(scores[0], dtype=np.float64)
    count, tokens = first.shape[0], first.shape[-1]
    identity = np.eye(tokens)
    rolled = np.broadcast_to(identity, (count, tokens, tokens))
    for layer in scores:
        mixed = 0.5 * np.asarray(layer, dtype=np.float64).mean(axis=1) + 0.5 * identity
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        rolled = mixed @ rolled
    rows = rolled[:, 0] if extra else rolled.mean(axis=1)
    return rows[:, extra:].astype(np.float32)


class AttentionRollout(Attribution):
    """Attention rollout (see the module)."""

    name = "attention-rollout"
    title = "Attention rollout"
    needs_attention = True

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        scores, grid = model.attention_scores(batch.inputs, batch.images)
        if not scores:  # the Attributor refuses such a model, naming the methods that apply
            raise UnsupportedModel(f"model '{model.source.name}' has no attention layers to roll out")
        shares = attention_rollout(scores, grid.extra).reshape(-1, grid.rows, grid.cols)
        rows, cols = batch.inputs.shape[1:3]
        return upsampled(shares, rows, cols)
