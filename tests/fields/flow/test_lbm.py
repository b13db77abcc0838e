"""LBM cylinder wake: physics (Strouhal number), configuration errors and the disk cache."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch

from fields import array_cache
from fields.flow import cylinder
from fields.flow.cylinder import CylinderConfig, load_cylinder
from fields.flow.lbm import (
    CylinderLBM,
    LBMConfig,
    default_probe,
    shedding_frequency,
    strouhal,
)
from fields.netcdf import load_ferret
from models.device import intra_op_threads

COARSE = LBMConfig(nx=128, ny=72, diameter=8.0, center_x=32.0)  # blockage 0.11, τ = 0.524


@pytest.fixture(autouse=True)
def one_thread():
    """Small LBM kernels run fastest, and steadiest on a shared machine, on one thread."""
    with intra_op_threads(1):
        yield


def test_strouhal_number_and_drag_of_coarse_run_are_in_re100_range() -> None:
    sim = CylinderLBM(COARSE)
    py, px = default_probe(COARSE)
    warmup, measure = 5000, 4000
    probe = torch.empty(measure, dtype=torch.float64)
    force = np.empty((measure, 2))
    t0 = time.perf_counter()
    for t in range(warmup + measure):
        _, uy = sim.step()
        if t >= warmup:
            probe[t - warmup] = uy[py, px]
            force[t - warmup] = sim.body_force()
    mlups = (warmup + measure) * COARSE.nx * COARSE.ny / (time.perf_counter() - t0) / 1e6
    sim.check_finite()
    rho, _, _ = sim.macroscopic()
    assert abs(rho.mean().item() - 1.0) < 0.02  # mass stays put
    assert probe.std().item() > 0.1 * COARSE.u_in  # the wake really oscillates
    st = strouhal(probe.numpy(), COARSE)
    coef = force / (0.5 * COARSE.u_in ** 2 * COARSE.diameter)
    st_lift = strouhal(coef[:, 1], COARSE)
    print(f"coarse St = {st:.4f} (lift {st_lift:.4f}), C_D = {coef[:, 0].mean():.3f}, "
          f"{mlups:.1f} MLUPS")
    assert 0.15 <= st <= 0.19
    assert st_lift == pytest.approx(st, rel=0.03)  # the lift oscillates at the shedding rate
    # unconfined Re=100: C_D ≈ 1.33–1.35; 11% blockage and D = 8 cells push it up
    assert 1.3 < coef[:, 0].mean() < 1.9
    assert abs(coef[:, 1].mean()) < 0.3 * coef[:, 1].std()  # the lift averages out


def test_vorticity_is_zero_inside_the_cylinder_and_nonzero_in_the_flow() -> None:
    sim = CylinderLBM(COARSE)
    w = sim.vorticity()
    assert w.shape == (COARSE.ny, COARSE.nx)
    assert (w[sim.solid] == 0).all()
    assert w.abs().max() > 0


def test_shedding_frequency_reads_period_and_rejects_flat_signal() -> None:
    t = np.arange(5000)
    assert shedding_frequency(np.sin(2 * np.pi * t / 612.5)) == pytest.approx(1 / 612.5, rel=1e-3)
    with pytest.raises(ValueError, match="zero crossings"):
        shedding_frequency(np.full(100, 0.3))


@pytest.mark.parametrize("kw, match", [
    ({"reynolds": 1000.0}, "unstable"),
    ({"u_in": 0.5}, "Mach"),
    ({"center_x": 2.0}, "does not fit"),
    ({"collision": "mrt"}, "collision"),
])
def test_invalid_configs_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CylinderLBM(LBMConfig(**kw))


TINY = CylinderConfig(nx=48, ny=32, diameter=6.0, center_x=14.0, warmup_steps=40,
                      sample_every=10, n_snapshots=4)


def test_cylinder_dataset_is_cached_verified_and_rebuilt_when_corrupt(monkeypatch) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too short to measure a Strouhal number
        first = load_cylinder(TINY, compile=False, progress=False)
    assert first.values.shape == (4, 32, 48) and first.sample_axis == "time"
    assert not first.valid.all() and first.valid.mean() > 0.9  # the cylinder is masked
    path = array_cache.cache_path("cylinder", cylinder.asdict(TINY))
    assert path.exists()

    def boom(*a, **k):
        raise AssertionError("simulate() ran although the cache holds the data")

    monkeypatch.setattr(cylinder, "simulate", boom)
    again = load_cylinder(TINY, compile=False, progress=False)
    np.testing.assert_array_equal(again.values, first.values)

    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    monkeypatch.undo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rebuilt = load_cylinder(TINY, compile=False, progress=False)
    assert any(path.name in str(w.message) and "rebuilding" in str(w.message) for w in caught)
    np.testing.assert_allclose(rebuilt.values, first.values, atol=1e-5)
    array_cache.load_arrays(path, cylinder.asdict(TINY))  # the rebuilt file verifies


def test_trt_equals_bgk_at_tau_one_and_differs_otherwise() -> None:
    def run(collision: str, re: float) -> torch.Tensor:
        sim = CylinderLBM(LBMConfig(nx=48, ny=32, diameter=6.0, center_x=14.0, reynolds=re,
                                    collision=collision))
        for _ in range(60):
            sim.step()
        return sim.f

    re_tau1 = 0.1 * 6.0 * 6  # ν = 1/6 ⇒ τ = 1 ⇒ ω⁺ = ω⁻ = 1
    torch.testing.assert_close(run("trt", re_tau1), run("bgk", re_tau1))
    assert not torch.allclose(run("trt", 30.0), run("bgk", 30.0))


def test_cache_detects_tampered_arrays_and_foreign_configs(tmp_path) -> None:
    field = load_ferret("coads-sst")
    arrays = {"sst": field.values[:2]}
    path = tmp_path / "x.npz"
    array_cache.save_arrays(path, arrays, {"a": 1})
    np.testing.assert_array_equal(array_cache.load_arrays(path, {"a": 1})["sst"], arrays["sst"])
    with pytest.raises(array_cache.CacheError, match="different config"):
        array_cache.load_arrays(path, {"a": 2})
    with np.load(path) as z:
        meta = z["__meta__"]
    tampered = arrays["sst"].copy()
    tampered[0, 45, 90] += 1
    np.savez(path, __meta__=meta, sst=tampered)  # a valid zip whose data no longer match
    with pytest.raises(array_cache.CacheError, match="sha256"):
        array_cache.load_arrays(path, {"a": 1})
