"""Kolmogorov flow: exact conservation by the dealiased nonlinear term, the energy budget, the
laminar state's stability change (eigenproblem, solver, Meshalkin–Sinai) and the cache."""

from __future__ import annotations

import numpy as np
import pytest

from fields import array_cache
from fields.flow.kolmogorov import KolmogorovConfig, KolmogorovFlow, load_kolmogorov
from fields.flow.kolmogorov_check import (
    critical_re,
    dns_growth_rate,
    growth_rate,
    long_wave_critical_re,
)


def _inner(flow: KolmogorovFlow, a: np.ndarray, b: np.ndarray) -> float:
    w = np.full(a.shape[1], 2.0)
    w[0] = w[-1] = 1.0
    return float((np.real(a * np.conj(b)) * w).sum() / flow.cfg.grid ** 4)


def test_advection_conserves_energy_and_enstrophy_exactly() -> None:
    flow = KolmogorovFlow(KolmogorovConfig(grid=32))
    rng = np.random.default_rng(0)  # every retained mode excited: aliasing would show
    flow.w_hat = np.fft.rfft2(rng.standard_normal((32, 32))) * flow.keep
    adv = flow.advection_hat(flow.w_hat)
    scale = _inner(flow, flow.w_hat, flow.w_hat)
    assert abs(_inner(flow, flow.w_hat, adv)) < 1e-12 * scale  # enstrophy
    assert abs(_inner(flow, flow.w_hat * flow.inv_k2, adv)) < 1e-12 * scale  # energy
    assert np.abs(adv).max() > 1e-3 * np.sqrt(scale) * 32 ** 2  # ... and it is not zero


def test_energy_changes_by_input_minus_dissipation() -> None:
    flow = KolmogorovFlow(KolmogorovConfig(reynolds=30.0, grid=32, dt=0.005))
    flow.perturb(0.5, np.random.default_rng(1))
    e0 = flow.diagnostics()["energy"]
    budget, prev = 0.0, flow.diagnostics()
    for _ in range(400):
        flow.step()
        d = flow.diagnostics()
        budget += 0.5 * flow.dt * (prev["input"] - prev["dissipation"] + d["input"]
                                   - d["dissipation"])
        prev = d
    change = prev["energy"] - e0
    dissipated = 400 * flow.dt * prev["dissipation"]
    assert abs(change - budget) < 1e-4 * dissipated
    assert abs(change) > 1e-3 * dissipated  # the energy really moved


def test_laminar_state_is_the_fixed_point_with_its_dissipation() -> None:
    cfg = KolmogorovConfig(reynolds=40.0, grid=32)
    flow = KolmogorovFlow(cfg)
    d = flow.diagnostics()
    assert d["dissipation"] == pytest.approx(cfg.reynolds / (2 * cfg.n_forcing ** 2))
    assert d["input"] == pytest.approx(d["dissipation"])
    w0 = flow.w_hat.copy()
    for _ in range(20):
        flow.step()
    np.testing.assert_allclose(flow.w_hat, w0, atol=1e-9 * np.abs(w0).max())


def test_stability_changes_where_theory_and_solver_agree() -> None:
    # the eigenproblem in the long-wave limit is Meshalkin & Sinai's R_c = √2
    assert critical_re(4, alpha=0.04) == pytest.approx(long_wave_critical_re(4), rel=2e-3)
    re_c = critical_re(4)
    assert 9.5 < re_c < 10.5
    for re in (8.0, 12.0):  # the solver's growth of a tiny kick matches the eigenvalue
        dns = dns_growth_rate(re, n=4, grid=32, time=20.0)
        eig = max(growth_rate(re, 4, float(a)) for a in range(1, 6))
        assert dns == pytest.approx(eig, abs=2e-3)
        assert (dns > 0) == (re > re_c)


def test_snapshots_are_cached_under_their_config(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(array_cache, "cache_dir", lambda: tmp_path)
    cfg = KolmogorovConfig(reynolds=20.0, grid=16, n_forcing=2, dt=0.05, warmup_time=1.0,
                           sample_every=0.5, n_snapshots=6, subsample=2)
    data = load_kolmogorov(cfg, progress=False)
    assert data.values.shape == (6, 8, 8) and data.valid.all()
    assert np.all(np.diff(data.coords["time"]) > 0)
    assert len(list(tmp_path.glob("kolmogorov-*.npz"))) == 1
    again = load_kolmogorov(cfg, progress=False)
    np.testing.assert_array_equal(again.values, data.values)
    with pytest.raises(ValueError, match="subsample"):
        KolmogorovConfig(grid=16, subsample=3).validate()
