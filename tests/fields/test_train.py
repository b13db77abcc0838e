"""Voronoi-CNN models, metrics and ``python -m fields.train`` on real COADS SST."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fields.netcdf import load_ferret
from fields.train import FieldTrainConfig, main, train
from fields.voronoi_cnn import VoronoiCNN, relative_l2, rmse


@pytest.fixture(scope="module")
def sst():
    return load_ferret("coads-sst")


def tiny(run_dir: Path, **kw) -> FieldTrainConfig:
    base = FieldTrainConfig(dataset="coads-sst", width=8, depth=3, kernel=3, out_kernel=3,
                            sensors=(10, 30),
                            train_layouts=6, eval_layouts=2, epochs=3, steps_per_epoch=3,
                            batch_size=4, max_eval=2, lr=3e-3, warmup_steps=2, run_dir=str(run_dir),
                            progress=False)
    return replace(base, **kw)


def test_faithful_network_matches_the_paper_layout() -> None:
    net = VoronoiCNN(2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(7, 7)] * 7 + [(3, 3)]
    assert [c.out_channels for c in convs] == [48] * 7 + [1]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 7
    assert VoronoiCNN(4, out_kernel=7)(torch.zeros(2, 4, 90, 180)).shape == (2, 90, 180)


def test_revisited_bn_variant_keeps_its_gamma_init() -> None:
    net = VoronoiCNN(4, width=8, depth=3, norm="revisited")
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 3 and all(torch.all(b.weight == 0.1) for b in bns)


def test_metrics_on_real_snapshots(sst) -> None:
    x = torch.from_numpy(sst.values[:2])
    valid = torch.from_numpy(sst.valid)
    assert relative_l2(x, x, valid).abs().max() == 0
    torch.testing.assert_close(relative_l2(torch.zeros_like(x), x, valid), torch.ones(2))
    torch.testing.assert_close(relative_l2(x * 1.1, x, valid), torch.full((2,), 0.1))
    shifted = x + 2.0  # land pixels change too but must not count
    torch.testing.assert_close(rmse(shifted, x, valid), torch.full((2,), 2.0))


def test_training_learns_writes_artifacts_and_is_deterministic(tmp_path: Path, sst) -> None:
    a = train(tiny(tmp_path / "a", epochs=4), sst)
    m = a["metrics"]
    assert set(m["test"]) == {"10", "30"}
    assert m["history"][0]["loss"] is None  # epoch 0: the untrained network, validated
    assert m["history"][-1]["loss"] < m["history"][1]["loss"]
    assert m["n_snapshots"] == {"train": 8, "val": 2, "test": 2}
    assert 0 < m["mean_field_rel_l2"] < 0.5  # the seasonal mean is a strong SST baseline
    for name in ("best.pt", "last.pt", "metrics.json", "reconstruction.png"):
        assert (tmp_path / "a" / name).exists()
    ev = EventAccumulator(str(tmp_path / "a")).Reload()
    assert "test/truth_recon_error_sensors" in ev.Tags()["images"]
    assert len(ev.Scalars("val/rel_l2")) == 5  # epoch 0 (untrained) + 4
    b = train(tiny(tmp_path / "b", epochs=4), sst)
    assert b["metrics"]["history"] == m["history"]


def test_anomaly_target_starts_at_the_mean_field_and_raw_does_not(sst) -> None:
    from fields.field_data import time_split
    from fields.train import Reconstructor
    from fields.voronoi import SensorGrid

    tr, _, te = time_split(sst)
    grid = SensorGrid.from_field(sst)
    lay = grid.random_layout(10, np.random.default_rng(0))
    x = torch.from_numpy(te.values)
    for target in ("anomaly", "raw"):
        cfg = FieldTrainConfig(width=4, depth=2, kernel=3, target=target)
        rec = Reconstructor.from_training(cfg, grid, tr, True)
        with torch.no_grad():
            pred = rec.predict(x, lay)
        mean = torch.from_numpy(tr.values.mean(0)).expand_as(x)
        at_mean = torch.allclose(pred * rec.valid, mean * rec.valid, atol=1e-5)
        assert at_mean == (target == "anomaly")
    torch.testing.assert_close(rec.output(rec.target(x)), x, atol=1e-4, rtol=1e-5)


def test_resume_continues_to_the_same_result(tmp_path: Path, sst) -> None:
    straight = train(tiny(tmp_path / "s"), sst)["metrics"]
    train(tiny(tmp_path / "r", epochs=1), sst)
    resumed = train(tiny(tmp_path / "r", resume=True), sst)["metrics"]
    assert resumed["history"] == straight["history"]
    assert resumed["test"] == straight["test"]
    with pytest.raises(ValueError, match="different config"):
        train(tiny(tmp_path / "r", resume=True, lr=0.5), sst)


def test_early_stopping_stops_when_validation_stalls(tmp_path: Path, sst) -> None:
    m = train(tiny(tmp_path / "e", epochs=6, lr=0.0, patience=1), sst)["metrics"]
    assert m["epochs_run"] == 1  # lr 0: epoch 1 does not improve on the untrained epoch 0
    assert m["best_epoch"] == 0


def test_cli_faithful_variant_with_unseen_sensor_counts(tmp_path: Path) -> None:
    res = main(["--dataset", "coads-sst", "--inputs", "faithful", "--width", "4", "--depth", "2", "--kernel", "3",
                "--sensors", "20", "--eval-sensors", "10", "50", "--train-layouts", "3",
                "--eval-layouts", "2", "--epochs", "1", "--steps-per-epoch", "2",
                "--batch-size", "2", "--max-eval", "2", "--run-dir", str(tmp_path / "cli"),
                "--no-progress"])
    saved = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert set(saved["metrics"]["test"]) == {"10", "50"}
    assert saved["config"]["inputs"] == "faithful" and "machine" in saved
    assert np.isfinite(res["metrics"]["test"]["50"]["rel_l2"])


def test_revisited_bn_run_trains_bn_scales_at_lr_over_100(tmp_path: Path, sst) -> None:
    train(tiny(tmp_path / "bn", norm="revisited", epochs=1, lr=1e-3), sst)
    ck = torch.load(tmp_path / "bn" / "last.pt", weights_only=True)
    lrs = {g["name"]: g["lr"] for g in ck["optimizer"]["param_groups"]}
    assert lrs["bn_scale"] == pytest.approx(1e-5) and lrs["decay"] == pytest.approx(1e-3)
    assert ck["optimizer"]["param_groups"][0]["weight_decay"] == 0


def test_evaluates_on_sensor_counts_unseen_in_training(tmp_path: Path, sst, monkeypatch) -> None:
    from fields import train as ft

    seen_k: list[set[int]] = []
    real = ft.Reconstructor.evaluate

    def spy(self, data, layouts):
        seen_k.append({lay.k for lay in layouts})
        return real(self, data, layouts)

    monkeypatch.setattr(ft.Reconstructor, "evaluate", spy)
    m = train(tiny(tmp_path / "u", epochs=1, eval_sensors=(20, 50)), sst)["metrics"]
    assert set(m["test"]) == {"20", "50"}
    assert all(np.isfinite(v["rel_l2"]) for v in m["test"].values())
    assert seen_k[-2:] == [{20}, {50}] and seen_k[0] == {20, 50}  # validation, ..., test


def test_trained_network_beats_the_mean_field_and_improves_with_more_sensors(tmp_path) -> None:
    # monthly navy-wind anomalies on a 12×24 grid: a real field the tiny net can learn
    cfg = FieldTrainConfig(dataset="navy-uwnd", coarsen=6, climatology=12, width=8, depth=3,
                           kernel=3, out_kernel=3, sensors=(3, 12, 48), train_layouts=32,
                           eval_layouts=3, epochs=12, steps_per_epoch=25, batch_size=16,
                           lr=3e-3, warmup_steps=20, patience=12, max_eval=20,
                           run_dir=str(tmp_path / "w"), progress=False)
    m = train(cfg)["metrics"]
    e = [m["test"][k]["rel_l2"] for k in ("3", "12", "48")]
    assert e[2] < e[1] < e[0] < m["mean_field_rel_l2"]
    assert m["updates"] == 25 * m["epochs_run"] and m["train_time_s"] > 0


def test_fixed_layout_protocol_trains_and_tests_on_one_layout_per_count(tmp_path, sst,
                                                                       monkeypatch) -> None:
    from fields import train as ft

    seen: list[set[tuple[int, ...]]] = []
    real = ft.Reconstructor.evaluate

    def spy(self, data, layouts):
        seen.append({tuple(lay.sensors) for lay in layouts})
        return real(self, data, layouts)

    monkeypatch.setattr(ft.Reconstructor, "evaluate", spy)
    m = train(tiny(tmp_path / "f", layouts="fixed", epochs=1), sst)["metrics"]
    fixed = {k: tuple(v[0]) for k, v in m["layouts"].items()}
    assert set(fixed) == {"10", "30"} and [len(v) for v in fixed.values()] == [10, 30]
    assert seen[0] == seen[-1] | seen[-2] == set(fixed.values())  # val and test: the same two
    other = train(tiny(tmp_path / "g", layouts="fixed", epochs=1, seed=1), sst)["metrics"]
    assert tuple(other["layouts"]["10"][0]) != fixed["10"]  # each seed draws its own layout
    with pytest.raises(ValueError, match="training counts"):
        train(tiny(tmp_path / "h", layouts="fixed", eval_sensors=(20,)), sst)


@pytest.mark.parametrize(("kw", "message"), [({"epochs": -1}, "epochs must be ≥ 1"),
                                             ({"lr": -1e-3}, "lr must be a finite number ≥ 0"),
                                             ({"sensors": (0, 8)}, "sensor counts must be ≥ 1")])
def test_bad_numbers_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        FieldTrainConfig(**kw)
