"""A method defined here, in the test file only, runs on the local and the Ray engine with no edit to either: the
method shape (:mod:`cnnviz.methods.shape`) is all an engine needs."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from cnnviz.engines.dispatch import EngineReading, scan_inputs
from cnnviz.engines.naming import ModelRef
from cnnviz.inputs.gather import gather_inputs
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.extract import build_extractor
from cnnviz.methods.shape import Method
from tests.conftest import ROOT

#: Per layer: (per filter, how many positions were above the threshold; how many positions there were), and the
#: number of batches scanned.
Counts = tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]


class AboveThreshold(Method[Counts]):
    """Per filter, the fraction of positions above ``options`` (a threshold), over all images."""

    def __init__(self, model: Any, reader: Reader, options: float) -> None:
        super().__init__(model, reader, options)
        self.extractor = build_extractor(model, feeding=reader.settings)

    def scan(self, batch: Batch) -> Counts:
        counts = {}
        for layer, maps in self.extractor.forward(batch).items():
            above = (maps > self.options).sum(axis=(0, 1, 2))
            counts[layer] = (above, np.full_like(above, maps[..., 0].size))
        return counts, 1

    @staticmethod
    def merge(first: Counts, second: Counts) -> Counts:
        more = second[0]
        return {layer: (a + more[layer][0], n + more[layer][1]) for layer, (a, n) in first[0].items()}, first[
            1
        ] + second[1]

    def finish(self, partial: Counts | None) -> dict[str, np.ndarray]:
        assert partial is not None
        return {layer: above / total for layer, (above, total) in partial[0].items()}


INPUTS = gather_inputs([ROOT / "sample_images"])
SETTINGS = {"size": (64, 64)}


def _scanned(model: Any, **settings: Any) -> Any:
    return scan_inputs(AboveThreshold, 0.5, model, INPUTS, EngineReading(**SETTINGS, **settings))


def test_a_method_of_its_own_gives_one_answer_for_any_batch_size() -> None:
    model = ModelRef("shapes").load()
    runs = {size: _scanned(model, batch_size=size) for size in (1, 3, 8)}
    fractions = runs[8].method.finish(runs[8].partial)

    assert len(INPUTS) == 5 and [run.partial[1] for run in runs.values()] == [5, 2, 1]  # batches scanned
    for run in runs.values():
        assert run.failures == [] and run.precision == "float32"
        for layer, (above, total) in run.partial[0].items():
            np.testing.assert_array_equal(above, runs[8].partial[0][layer][0])
            np.testing.assert_array_equal(total, runs[8].partial[0][layer][1])
    # real answers, not zeros or ones: some filters fire above 0.5 somewhere, some nowhere, none everywhere
    assert list(fractions) == ["edges", "parts", "shapes"]
    assert all(value.min() >= 0.0 and value.max() < 1.0 for value in fractions.values())
    assert any(value.max() > 0.0 for value in fractions.values())


@pytest.mark.ray
def test_the_same_method_on_ray_over_two_blocks_gives_the_local_answer(cluster) -> None:  # type: ignore[no-untyped-def]
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test file
    local = _scanned(ModelRef("shapes").load(), batch_size=8)

    distributed = _scanned(ModelRef("shapes"), batch_size=3, engine="ray", ray_workers=1)

    assert distributed.partial[1] == 2  # two blocks of files, 3 and 2, each one batch
    assert distributed.failures == [] and distributed.method is None
    for layer, (above, total) in local.partial[0].items():
        np.testing.assert_array_equal(distributed.partial[0][layer][0], above)
        np.testing.assert_array_equal(distributed.partial[0][layer][1], total)
