"""Validation of the Kolmogorov-flow solver (:mod:`fields.flow.kolmogorov`).

* **Linear stability** of the laminar state, two independent ways: the Galerkin eigenproblem
  of the linearised equations (:func:`growth_rate`, its critical Reynolds number by bisection)
  and the solver itself started from the laminar state plus a tiny perturbation
  (:func:`dns_growth_rate`). In the long-wave limit the eigenproblem must reproduce Meshalkin &
  Sinai (1961): critical ``R = √2`` in their units, ``Re_c = (√2 n³)^½`` in these.
* **Energy balance**: over a long run the mean input ``⟨u·f⟩`` equals the mean dissipation
  ``ν⟨ω²⟩``; the mean dissipation in units of the laminar one and the spectrum slope.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np

from fields.flow.kolmogorov import KolmogorovConfig, KolmogorovFlow

MESHALKIN_SINAI_R = float(np.sqrt(2.0))  # long-wave critical Reynolds number, their units


def long_wave_critical_re(n: int) -> float:
    """Meshalkin & Sinai's long-wave limit in these units: ``R = Re² / n³ = √2``."""
    return float(np.sqrt(MESHALKIN_SINAI_R * n ** 3))


def growth_rate(re: float, n: int, alpha: float, modes: int = 24) -> float:
    """Largest real part of the eigenvalues of the laminar state linearised for perturbations
    ``exp(i(α x + m y))``, ``m`` in every residue class mod ``n`` (``modes`` per class)."""
    best = -np.inf
    for m0 in range(n):
        m = m0 + n * np.arange(-modes, modes + 1)
        k2 = alpha ** 2 + m.astype(float) ** 2
        size = len(m)
        a = np.diag(-k2 / re).astype(complex)
        for j in range(size):
            if j > 0:  # a_{m} ← a_{m−n}
                a[j, j - 1] += 0.5 * re * alpha * (1 / k2[j - 1] - 1 / n ** 2)
            if j < size - 1:  # a_{m} ← a_{m+n}
                a[j, j + 1] -= 0.5 * re * alpha * (1 / k2[j + 1] - 1 / n ** 2)
        best = max(best, float(np.linalg.eigvals(a).real.max()))
    return best


def torus_growth_rate(re: float, n: int, max_alpha: int = 8) -> float:
    """:func:`growth_rate` maximised over the integer x-wavenumbers of the 2π torus."""
    return max(growth_rate(re, n, float(a)) for a in range(1, max_alpha + 1))


def critical_re(n: int, alpha: float | None = None, lo: float = 1.0, hi: float = 100.0,
                tol: float = 1e-3) -> float:
    """The Reynolds number where the largest growth rate crosses zero (bisection), for one
    ``alpha`` or, with ``alpha=None``, on the 2π torus."""
    def rate(re: float) -> float:
        return torus_growth_rate(re, n) if alpha is None else growth_rate(re, n, alpha)

    if rate(lo) >= 0 or rate(hi) <= 0:
        raise ValueError(f"no stability change of the laminar state between Re={lo} and {hi}")
    while hi - lo > tol * lo:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def dns_growth_rate(re: float, n: int = 4, grid: int = 32, dt: float = 0.02,
                    time: float = 20.0, amplitude: float = 1e-6, seed: int = 0) -> float:
    """Exponential growth rate of a tiny perturbation of the laminar state in the solver,
    fitted over the second half of ``time`` (negative: the laminar state is stable)."""
    flow = KolmogorovFlow(KolmogorovConfig(reynolds=re, n_forcing=n, grid=grid, dt=dt))
    lam = flow.laminar_hat()
    flow.perturb(amplitude, np.random.default_rng(seed))
    steps = int(round(time / dt))
    t, logs = [], []
    for s in range(steps):
        flow.step()
        if s >= steps // 2:
            t.append(flow.time)
            logs.append(np.log(np.abs(flow.w_hat - lam).max() + 1e-300))
    return float(np.polyfit(t, logs, 1)[0])


def balance(diag: np.ndarray) -> dict[str, float]:
    """Time averages of a ``(T, 4)`` energy/enstrophy/input/dissipation series."""
    inp, dis = diag[:, 2], diag[:, 3]
    return {"mean_input": float(inp.mean()), "mean_dissipation": float(dis.mean()),
            "input_over_dissipation": float(inp.mean() / dis.mean()),
            "dissipation_std": float(dis.std()), "energy_mean": float(diag[:, 0].mean())}


def run_statistics(cfg: KolmogorovConfig, time: float = 500.0, every: float = 0.5
                   ) -> dict[str, Any]:
    """A run of ``time`` after ``cfg.warmup_time``: balance, ``D / D_lam`` and the spectrum."""
    flow = KolmogorovFlow(cfg)
    flow.perturb(cfg.perturbation, np.random.default_rng(cfg.seed))
    per = int(round(every / cfg.dt))
    warm, total = int(round(cfg.warmup_time / cfg.dt)), int(round(time / cfg.dt))
    for _ in range(warm):
        flow.step()
    diag, spec = [], []
    for s in range(total):
        flow.step()
        if (s + 1) % per == 0:
            d = flow.diagnostics()
            diag.append((d["energy"], d["enstrophy"], d["input"], d["dissipation"]))
            spec.append(flow.spectrum())
    flow.check_finite()
    diag_a, e_k = np.array(diag), np.mean(spec, axis=0)
    d_lam = cfg.reynolds / (2 * cfg.n_forcing ** 2)
    k = np.arange(len(e_k))
    fit = (k >= 2 * cfg.n_forcing) & (k <= cfg.grid // 4)  # between forcing and dissipation
    slope = float(np.polyfit(np.log(k[fit]), np.log(e_k[fit]), 1)[0])
    kmax = int(cfg.grid // 3)
    return {**balance(diag_a), "dissipation_over_laminar": float(diag_a[:, 3].mean() / d_lam),
            "dissipation_over_laminar_range": [float(diag_a[:, 3].min() / d_lam),
                                               float(diag_a[:, 3].max() / d_lam)],
            "spectrum_slope": slope, "spectrum_fit_k": [int(k[fit][0]), int(k[fit][-1])],
            "spectrum_tail_over_peak": float(e_k[kmax - 1] / e_k.max()),
            "spectrum": e_k[: kmax + 1].tolist(), "measured_time": time}


def validate(cfg: KolmogorovConfig | None = None, time: float = 500.0,
             dns_res: tuple[float, ...] = (8.0, 12.0)) -> dict[str, Any]:
    """Every check above for ``cfg`` (default: the dataset's), as a JSON-ready record."""
    cfg = cfg or KolmogorovConfig()
    n = cfg.n_forcing
    small = replace(cfg, grid=32)
    return {
        "config": asdict(cfg),
        "critical_re_torus": critical_re(n),
        "critical_re_long_wave": critical_re(n, alpha=0.01 * n),
        "critical_re_long_wave_published": long_wave_critical_re(n),
        "published_long_wave": "Meshalkin & Sinai 1961 (J. Appl. Math. Mech. 25): R_c = √2",
        "dns_growth": {f"{re:g}": {"dns": dns_growth_rate(re, n, small.grid, small.dt),
                                   "eigen": torus_growth_rate(re, n)} for re in dns_res},
        "run": run_statistics(cfg, time=time)}
