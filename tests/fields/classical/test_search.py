"""Every placement baseline finds a layout that reconstructs an exactly low-rank field exactly,
on a field where most layouts cannot (its modes live in two rows of the grid)."""

from __future__ import annotations

import numpy as np
import pytest

from fields.classical.placement import qr_placement, random_placement
from fields.classical.pod import POD
from fields.classical.scorer import GappyScorer
from fields.classical.search import anneal, det_greedy, greedy_forward
from fields.classical.synthetic import synthetic_field

RANK, LAM = 3, 1e-12


@pytest.fixture(scope="module")
def setup():
    base = synthetic_field(t=50, h=6, w=9, rank=RANK)
    values = base.values.copy()
    values[:, 2:] = np.where(base.mask[:, 2:], 2.0, 0.0)  # rows 2.. carry only the mean
    data = type(base)(base.name, values, base.mask, base.coords, base.sample_axis, False)
    pod = POD(data.subset(slice(0, 35)))
    val = GappyScorer(pod, data.values[35:42])
    test = GappyScorer(pod, data.values[42:])
    return data, pod, val, test


def _exact(scorer: GappyScorer, rows: np.ndarray) -> bool:
    return bool(scorer.errors(rows[None], RANK, LAM).max() < 1e-6)


def test_most_random_layouts_fail_but_the_best_of_a_hundred_succeeds(setup) -> None:
    data, pod, _, test = setup
    rng = np.random.default_rng(0)
    rows = [test.rows(random_placement(data.valid, RANK, rng)) for _ in range(100)]
    exact = [_exact(test, r) for r in rows]
    assert 0 < sum(exact) < 50


def test_qr_det_greedy_and_greedy_recover_an_exact_layout(setup) -> None:
    data, pod, val, test = setup
    assert _exact(test, test.rows(qr_placement(pod, data.valid, RANK)))
    assert _exact(test, det_greedy(pod, RANK, RANK))
    assert _exact(test, det_greedy(pod, RANK + 2, RANK))  # oversampled
    rows, spent = greedy_forward(val, RANK, RANK, LAM)
    assert _exact(test, rows) and spent == sum(len(pod.cells) - i for i in range(RANK))


def test_annealing_from_a_blind_layout_recovers_within_its_budget(setup) -> None:
    data, pod, val, test = setup
    blind = test.rows(np.flatnonzero(data.valid.reshape(-1))[-RANK:])  # bottom row: no signal
    assert not _exact(test, blind)
    rows, err, spent = anneal(val, blind, RANK, LAM, 2000, np.random.default_rng(0), batch=16)
    assert _exact(test, rows) and err < 1e-6 and spent <= 2000
    assert len(set(rows.tolist())) == RANK
