"""Sensor noise/failures are seeded and identical for every method; gappy POD and the shallow
decoder recover a rank-r field exactly from K ≥ r clean readings; the noise-trained CNN runs."""

from __future__ import annotations

import numpy as np
import pytest

from fields.classical.pod import POD, relative_l2_np
from fields.field_data import FieldData
from fields.regimes.cnn import cnn_predictor, fit_cnn
from fields.regimes.evaluate import gappy_predictor, measured_sets, score, tune_gappy
from fields.regimes.noise import Condition, condition_rng, field_std, measure
from fields.regimes.shallow import ShallowConfig, fit_shallow
from fields.train import FieldTrainConfig
from fields.voronoi import SensorGrid

H, W, R = 8, 10, 4


def _rank_r(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    modes = np.linalg.qr(rng.standard_normal((H * W, R)))[0]
    coef = rng.standard_normal((n, R)) * np.array([3.0, 2.0, 1.5, 1.0])
    return (1.0 + coef @ modes.T).reshape(n, H, W).astype(np.float32)


def _field(values: np.ndarray) -> FieldData:
    n = len(values)
    return FieldData("synthetic", values, np.ones(values.shape, bool),
                     {"time": np.arange(n, dtype=float), "y": np.arange(H, dtype=float),
                      "x": np.arange(W, dtype=float)}, "time", False)


def test_measurement_is_seeded_and_reads_only_working_sensors() -> None:
    values = _rank_r(50)
    sensors = np.array([3, 17, 25, 40, 41, 60, 77, 79])
    cond = Condition(0.1, 0.25)
    sigma = field_std(values, np.ones((H, W), bool))
    a, wa = measure(values, sensors, cond, sigma, condition_rng(0, cond, 8, "test"))
    b, wb = measure(values, sensors, cond, sigma, condition_rng(0, cond, 8, "test"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(wa, wb)
    assert len(wa) == 6 and set(wa) < set(sensors)  # 25 % of 8 sensors failed
    flat = a.reshape(50, -1)
    assert np.isnan(np.delete(flat, wa, axis=1)).all() and np.isfinite(flat[:, wa]).all()
    noise = flat[:, wa] - values.reshape(50, -1)[:, wa]
    assert noise.std() == pytest.approx(0.1 * sigma, rel=0.25)
    c, _ = measure(values, sensors, cond, sigma, condition_rng(0, cond, 8, "val"))
    assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(c))  # another split, other draw
    clean, w0 = measure(values, sensors, Condition(), sigma, condition_rng(0, Condition(), 8, "t"))
    np.testing.assert_array_equal(w0, sensors)
    np.testing.assert_array_equal(clean.reshape(50, -1)[:, sensors],
                                  values.reshape(50, -1)[:, sensors])
    with pytest.raises(ValueError, match="drop"):
        Condition(0.0, 1.0)
    assert Condition.parse(cond.key) == cond


def test_gappy_pod_and_shallow_decoder_recover_a_rank_r_field_exactly() -> None:
    values = _rank_r(120)
    tr, va, te = values[:80], values[80:100], values[100:]
    valid = np.ones((H, W), bool)
    sensors = np.sort(np.random.default_rng(3).choice(H * W, size=R + 2, replace=False))
    sigma = field_std(tr, valid)
    sets = measured_sets(va, [sensors], [Condition()], sigma, 0, "val")["0"]
    test = measured_sets(te, [sensors], [Condition()], sigma, 0, "test")["0"]
    pod = POD(_field(tr), valid)
    choice = tune_gappy(pod, sets, valid, ranks=(2, R, 8), lams=(1e-8, 1e-2))
    assert choice.rank >= R
    assert score(gappy_predictor(pod, choice.rank, choice.lam), test, valid) < 1e-4
    rec, info = fit_shallow(sensors, tr, sets, valid, Condition(),
                            ShallowConfig(epochs=2, steps_per_epoch=5))
    assert score(rec.predict, test, valid) < 1e-3
    assert info["ridge_lam"] <= 1e-4 and info["best_val_rel_l2"] < 1e-3
    # with fewer sensors than the rank neither can be exact
    few = sensors[: R - 2]
    few_test = measured_sets(te, [few], [Condition()], sigma, 0, "test")["0"]
    assert score(gappy_predictor(pod, R, 1e-8), few_test, valid) > 1e-2


def test_every_method_sees_the_same_noisy_readings_and_only_them() -> None:
    values = _rank_r(90)
    data = _field(values)
    tr, va = data.subset(slice(0, 60)), data.subset(slice(60, 90))
    valid = np.ones((H, W), bool)
    sensors = np.array([1, 12, 23, 34, 45, 56, 67, 78])
    sigma = field_std(tr.values, valid)
    conds = [Condition(0.05), Condition(0.05, 0.25)]
    sets = measured_sets(va.values, [sensors], conds, sigma, 1, "val")
    again = measured_sets(va.values, [sensors], conds, sigma, 1, "val")
    for key in sets:
        np.testing.assert_array_equal(sets[key][0].measured, again[key][0].measured)
    grid = SensorGrid.from_field(data)
    cfg = FieldTrainConfig(dataset="synthetic", width=4, depth=2, kernel=3, epochs=2,
                           steps_per_epoch=3, batch_size=4, warmup_steps=2, patience=2)
    rec, info = fit_cnn(cfg, grid, tr, [sensors], sets["0.05"], conds, sigma, False)
    assert info["best_epoch"] in (0, 1, 2) and len(info["val_history"]) == info["epochs_run"] + 1
    shallow, _ = fit_shallow(sensors, tr.values, sets["0.05+drop0.25"], valid, conds[1],
                             ShallowConfig(epochs=1, steps_per_epoch=2))
    pod = POD(tr, valid)
    methods = {"gappy": gappy_predictor(pod, R, 1e-3), "cnn": cnn_predictor(rec),
               "shallow": shallow.predict}
    for key, (m,) in sets.items():  # NaN off the working sensors: reading them shows up
        for name, predict in methods.items():
            out = predict(m.measured, m.working)
            assert np.isfinite(out).all(), (name, key)
            moved = m.measured.copy()
            moved.reshape(len(moved), -1)[:, m.working[0]] += 10 * sigma
            assert not np.allclose(predict(moved, m.working), out), (name, key)
    assert relative_l2_np(methods["gappy"](sets["0.05"][0].measured, sensors), va.values,
                          valid).mean() < 0.2
