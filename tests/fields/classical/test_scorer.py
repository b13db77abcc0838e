"""The batched gappy-POD scorer equals the single-layout reconstruction it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from fields.classical.placement import random_placement
from fields.classical.pod import POD, cell_weights, relative_l2_np, select_gappy_pod
from fields.classical.scorer import GappyScorer, choose_rank_lam
from fields.classical.synthetic import synthetic_field as synthetic


@pytest.mark.parametrize("spherical", [False, True])
def test_batched_errors_equal_the_single_layout_reconstruction(spherical) -> None:
    data = synthetic(spherical=spherical)
    train, test = data.subset(slice(0, 40)), data.subset(slice(40, 60))
    pod = POD(train)
    weight = cell_weights(data) if spherical else None
    scorer = GappyScorer(pod, test.values, weight)
    rng = np.random.default_rng(1)
    layouts = np.stack([random_placement(data.valid, 5, rng) for _ in range(7)])
    ranks = np.array([1, 3, 5, 8, 2, 6, 4])
    lams = np.array([1e-6, 1e-3, 0.1, 1e-2, 1.0, 1e-4, 0.3])
    got = scorer.errors(scorer.rows(layouts), ranks, lams)
    assert got.shape == (7, len(test))
    for i, lay in enumerate(layouts):
        pred = pod.gappy(test.values, lay, int(ranks[i]), float(lams[i]))
        want = relative_l2_np(pred, test.values, data.valid, weight)
        np.testing.assert_allclose(got[i], want, rtol=1e-5)
    np.testing.assert_allclose(scorer.mean_errors(scorer.rows(layouts), ranks, lams, chunk=3),
                               got.mean(1), rtol=1e-12)
    # per-layout snapshots, padded layouts and the error map agree with the same reference
    snaps = np.stack([rng.choice(len(test), 4, replace=False) for _ in range(7)])
    padded = np.concatenate([scorer.rows(layouts), np.zeros((7, 3), dtype=np.int64)], 1)
    mask = np.arange(8) < 5
    errs, maps = scorer.error_maps(padded, ranks, lams, snaps, np.broadcast_to(mask, (7, 8)))
    np.testing.assert_allclose(errs, got[np.arange(7)[:, None], snaps], rtol=1e-6)
    pred = pod.gappy(test.values[snaps[2]], layouts[2], int(ranks[2]), float(lams[2]))
    ref = np.abs(pred - test.values[snaps[2]]).mean(0).reshape(-1)[pod.cells]
    np.testing.assert_allclose(maps[2], ref, rtol=1e-4, atol=1e-6)
    mean_field = np.zeros_like(test.values)
    mean_field.reshape(len(test), -1)[:, pod.cells] = pod.mean
    np.testing.assert_allclose(scorer.empty_errors(np.arange(len(test))),
                               relative_l2_np(mean_field, test.values, data.valid, weight),
                               rtol=1e-6)


def test_an_exactly_reconstructable_field_scores_zero() -> None:
    data = synthetic(rank=4)
    pod = POD(data.subset(slice(0, 40)))
    scorer = GappyScorer(pod, data.values[40:])
    layout = random_placement(data.valid, 8, np.random.default_rng(0))
    err = scorer.errors(scorer.rows(layout[None]), 4, 1e-10)
    assert err.max() < 1e-6
    assert scorer.errors(scorer.rows(layout[None]), 2, 1e-10).min() > 1e-3  # too few modes


def test_rank_and_lam_choice_equals_the_envs_grid_search() -> None:
    data = synthetic()
    train, val = data.subset(slice(0, 40)), data.subset(slice(40, 50))
    pod = POD(train)
    got = choose_rank_lam(pod, val.values, data.valid, 6)
    rng = np.random.default_rng([0, 11, 6])
    lays = [random_placement(data.valid, 6, rng) for _ in range(5)]
    want = select_gappy_pod(pod, val, lays, data.valid)
    assert (got.rank, got.lam) == (want.rank, want.lam)
    assert got.val_rel_l2 == pytest.approx(want.val_rel_l2, rel=1e-6)
    assert got.table.keys() == want.table.keys()
