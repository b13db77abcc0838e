"""Gappy POD, QR placement, area weighting and monthly anomalies on real ferret fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import qr

from fields.classical.placement import qr_placement, random_placement
from fields.classical.pod import POD, cell_weights, evaluate_gappy, relative_l2_np, select_gappy_pod
from fields.field_data import remove_climatology, split_sizes, time_split
from fields.netcdf import load_ferret
from fields.voronoi import SensorGrid
from fields.voronoi_cnn import relative_l2


@pytest.fixture(scope="module")
def winds():
    return load_ferret("navy-uwnd").coarsen(3)


@pytest.fixture(scope="module")
def blocks(winds):
    return time_split(winds)


def test_gappy_pod_recovers_a_field_in_its_span_exactly(blocks) -> None:
    tr, _, te = blocks
    pod = POD(tr)
    r = 6
    coef = np.random.default_rng(0).normal(size=(3, r)) * pod.std[:r]
    full = np.zeros((3, *tr.shape), dtype=np.float64)
    full.reshape(3, -1)[:, pod.cells] = pod.mean + coef @ pod.modes[:, :r].T
    sensors = qr_placement(pod, tr.valid, 10)
    rec = pod.gappy(full.astype(np.float32), sensors, rank=r, lam=0.0)
    np.testing.assert_allclose(rec, full, atol=1e-3 * np.abs(full).max())
    # only the readings are used: changing every other cell changes nothing
    noisy = full.copy()
    off = np.setdiff1d(pod.cells, sensors)
    noisy.reshape(3, -1)[:, off] += 5.0
    np.testing.assert_array_equal(pod.gappy(noisy.astype(np.float32), sensors, r, 0.0),
                                  pod.gappy(full.astype(np.float32), sensors, r, 0.0))
    # and it really reconstructs held-out data far better than the mean field
    e = evaluate_gappy(pod, te, [qr_placement(pod, tr.valid, 40)], 20, 1e-2, tr.valid)
    mean_field = np.zeros_like(te.values)
    mean_field.reshape(len(te), -1)[:, pod.cells] = pod.mean
    assert e < 0.8 * relative_l2_np(mean_field, te.values, tr.valid).mean()


def test_rank_and_lambda_are_chosen_on_validation_only(blocks) -> None:
    tr, va, te = blocks
    pod = POD(tr)
    rng = np.random.default_rng(1)
    layouts = [random_placement(tr.valid, 20, rng) for _ in range(3)]
    choice = select_gappy_pod(pod, va, layouts, tr.valid, ranks=(2, 8, 32), lams=(1e-4, 1e-1))
    assert choice.val_rel_l2 == min(choice.table.values())
    assert choice.table[f"r{choice.rank}_lam{choice.lam:g}"] == choice.val_rel_l2
    garbled = te.subset(slice(None))
    garbled.values[:] = 0  # the test block plays no part in the choice
    assert select_gappy_pod(pod, va, layouts, tr.valid, ranks=(2, 8, 32),
                            lams=(1e-4, 1e-1)).rank == choice.rank
    with pytest.raises(ValueError, match="rank"):
        pod.gappy(va.values, layouts[0], rank=pod.max_rank + 1, lam=0.0)
    ocean = tr.valid.copy()
    ocean[:, :10] = False  # a POD on part of the grid refuses sensors outside it
    with pytest.raises(ValueError, match="not valid"):
        POD(tr, ocean).gappy(va.values, np.arange(3), rank=2, lam=0.0)


def test_pysensors_qr_equals_scipy_pivoted_qr_on_the_same_modes(blocks) -> None:
    tr, _, _ = blocks
    pod = POD(tr)
    for k in (5, 16):
        _, _, piv = qr(pod.modes[:, :k].T, pivoting=True, mode="economic")
        np.testing.assert_array_equal(qr_placement(pod, tr.valid, k), pod.cells[piv[:k]])
    with pytest.raises(ValueError, match="different valid mask"):
        qr_placement(pod, np.eye(*tr.shape, dtype=bool), 4)


def test_area_weighting_discounts_errors_near_the_poles(winds) -> None:
    grid = SensorGrid.from_field(winds)
    w = cell_weights(winds)
    np.testing.assert_allclose(grid.weight.numpy(), w, rtol=1e-6)
    lat = winds.coords["lat"]
    truth = np.ones((1, *winds.shape), dtype=np.float32)
    valid = np.ones(winds.shape, bool)
    polar, equator = truth.copy(), truth.copy()
    polar[0, int(np.argmax(np.abs(lat)))] += 1.0
    equator[0, int(np.argmin(np.abs(lat)))] += 1.0
    flat = [relative_l2_np(p, truth, valid)[0] for p in (polar, equator)]
    area = [relative_l2_np(p, truth, valid, w)[0] for p in (polar, equator)]
    assert flat[0] == pytest.approx(flat[1])  # unweighted: a row is a row
    assert area[0] < 0.5 * area[1]  # weighted: the polar row is a sliver of the sphere
    # the torch metric the networks use agrees with the numpy one
    t = relative_l2(torch.from_numpy(polar), torch.from_numpy(truth), torch.from_numpy(valid),
                    grid.weight)
    assert t.item() == pytest.approx(area[0], rel=1e-5)


def test_monthly_anomalies_use_training_months_only(winds) -> None:
    n_train = split_sizes(len(winds))[0]
    anom = remove_climatology(winds, 12, n_train)
    tr = anom.values[:n_train]
    for p in range(12):  # each calendar month of the training block averages to zero
        assert np.abs(tr[p::12].mean(0)).max() < 1e-4
    changed = winds.subset(slice(None))
    changed.values[n_train:] += 10.0  # later blocks cannot move the climatology
    np.testing.assert_array_equal(remove_climatology(changed, 12, n_train).values[:n_train], tr)
    assert (anom.values[~winds.mask] == 0).all() and "anomaly" in anom.units
    # anomalies are smaller than the field: the seasonal cycle is gone
    assert np.abs(anom.values[n_train:]).mean() < np.abs(winds.values[n_train:]
                                                         - winds.values[:n_train].mean(0)).mean()
    with pytest.raises(ValueError, match="cycle"):
        remove_climatology(winds, 12, 5)
