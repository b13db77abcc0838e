"""2-D Kolmogorov flow: a pseudo-spectral Navier–Stokes solver and its cached vorticity snapshots.

The flow on the torus ``[0, 2π)²`` driven by the body force ``sin(n y) x̂`` (Chandler & Kerswell
2013, J. Fluid Mech. 722, 554–595, with ``n = 4``), in the units where the forcing amplitude is
1 and ``ν = 1 / Re``::

    ∂ω/∂t + u·∇ω = ν ∇²ω − n cos(n y),      ω = ∂v/∂x − ∂u/∂y,   ∇²ψ = −ω,  u = ∂ψ/∂y,  v = −∂ψ/∂x.

Numerics: Fourier in both directions (``rfft2``), the product ``u·∇ω`` formed on the grid and
dealiased by the 2/3 rule (the state keeps only modes with ``|k_x|, |k_y| < N/3``, so the
truncated system conserves energy and enstrophy exactly without forcing and viscosity),
viscosity integrated exactly (integrating factor) and the rest by classical RK4.

The laminar state is ``u = (Re / n²) sin(n y)``: energy ``Re² / (4 n⁴)``, dissipation
``D_lam = Re / (2 n²)``. Above ``Re ≈ 10`` (n = 4) it is linearly unstable; at Re = 40 the flow
is chaotic with intermittent dissipation bursts (:mod:`fields.flow.kolmogorov_check`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from fields.array_cache import cache_path, cached
from fields.field_data import FieldData
from models.cache import announce_build


@dataclass(frozen=True)
class KolmogorovConfig:
    """Solver grid and physics, and the sampling of the snapshots (times in 1/forcing units)."""

    reynolds: float = 40.0
    n_forcing: int = 4
    grid: int = 64  # solver points per direction
    dt: float = 0.02
    warmup_time: float = 200.0  # the laminar flow breaks down within ~50 time units at Re=40
    sample_every: float = 0.5
    n_snapshots: int = 4000
    subsample: int = 2  # keep every subsample-th grid point in the stored snapshots
    perturbation: float = 0.1  # amplitude of the random initial kick (fraction of laminar ω)
    seed: int = 0

    def validate(self) -> None:
        if self.grid < 8 or self.grid % 2:
            raise ValueError(f"grid must be an even number ≥ 8, got {self.grid}")
        if not 0 < self.n_forcing < self.grid // 3:
            raise ValueError(f"forcing wavenumber {self.n_forcing} must lie in [1, "
                             f"{self.grid // 3}) for a {self.grid}-point grid")
        if self.reynolds <= 0 or self.dt <= 0 or self.sample_every < self.dt:
            raise ValueError("reynolds and dt must be > 0 and sample_every ≥ dt")
        if self.grid % self.subsample:
            raise ValueError(f"subsample {self.subsample} must divide grid {self.grid}")
        if self.n_snapshots < 1:
            raise ValueError(f"n_snapshots must be ≥ 1, got {self.n_snapshots}")


class KolmogorovFlow:
    """State (``w_hat``: rfft2 of the vorticity, rows = y, columns = x) and time stepping."""

    def __init__(self, cfg: KolmogorovConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        n = cfg.grid
        self.nu = 1.0 / cfg.reynolds
        self.ky = np.fft.fftfreq(n, 1.0 / n)[:, None]  # integer wavenumbers
        self.kx = np.fft.rfftfreq(n, 1.0 / n)[None, :]
        self.k2 = self.kx ** 2 + self.ky ** 2
        self.inv_k2 = np.where(self.k2 > 0, 1.0 / np.where(self.k2 > 0, self.k2, 1.0), 0.0)
        self.keep = (np.abs(self.kx) < n / 3) & (np.abs(self.ky) < n / 3)  # 2/3 rule
        y = np.arange(n) * (2 * np.pi / n)
        self.y = np.broadcast_to(y[:, None], (n, n))
        self.force_hat = np.fft.rfft2(-cfg.n_forcing * np.cos(cfg.n_forcing * self.y))
        self.forcing_u = np.sin(cfg.n_forcing * self.y)  # the body force's x component
        self.w_hat = self.laminar_hat()
        self.time = 0.0
        self._set_dt(cfg.dt)

    def _set_dt(self, dt: float) -> None:
        self.dt = dt
        self._e_half = np.exp(-self.nu * self.k2 * dt / 2)
        self._e_full = self._e_half ** 2

    def laminar_hat(self) -> np.ndarray:
        """rfft2 of the laminar vorticity ``−(Re / n) cos(n y)``."""
        n = self.cfg.n_forcing
        return np.fft.rfft2(-(self.cfg.reynolds / n) * np.cos(n * self.y)) * self.keep

    def perturb(self, amplitude: float, rng: np.random.Generator) -> None:
        """Add a random large-scale vorticity field of rms ``amplitude`` × laminar rms."""
        n = self.cfg.grid
        noise = np.fft.rfft2(rng.standard_normal((n, n))) * self.keep * (self.k2 <= 16)
        noise[0, 0] = 0
        w = np.fft.irfft2(noise, s=(n, n))
        lam = np.fft.irfft2(self.laminar_hat(), s=(n, n))
        self.w_hat = self.w_hat + np.fft.rfft2(w * amplitude * lam.std() / max(w.std(), 1e-30))

    def velocity(self, w_hat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)`` on the grid."""
        w_hat = self.w_hat if w_hat is None else w_hat
        psi = w_hat * self.inv_k2
        s = (self.cfg.grid, self.cfg.grid)
        return np.fft.irfft2(1j * self.ky * psi, s=s), np.fft.irfft2(-1j * self.kx * psi, s=s)

    def advection_hat(self, w_hat: np.ndarray) -> np.ndarray:
        """Dealiased ``−u·∇ω`` in Fourier space (no forcing, no viscosity)."""
        s = (self.cfg.grid, self.cfg.grid)
        u, v = self.velocity(w_hat)
        wx = np.fft.irfft2(1j * self.kx * w_hat, s=s)
        wy = np.fft.irfft2(1j * self.ky * w_hat, s=s)
        return -np.fft.rfft2(u * wx + v * wy) * self.keep

    def _rhs(self, w_hat: np.ndarray) -> np.ndarray:
        return self.advection_hat(w_hat) + self.force_hat

    def step(self) -> None:
        """One integrating-factor RK4 step of ``dt``."""
        w, dt, e, e2 = self.w_hat, self.dt, self._e_half, self._e_full
        k1 = dt * self._rhs(w)
        k2 = dt * self._rhs(e * (w + k1 / 2))
        k3 = dt * self._rhs(e * w + k2 / 2)
        k4 = dt * self._rhs(e2 * w + e * k3)
        self.w_hat = (e2 * w + (e2 * k1 + 2 * e * (k2 + k3) + k4) / 6) * self.keep
        self.time += dt

    def vorticity(self) -> np.ndarray:
        return np.fft.irfft2(self.w_hat, s=(self.cfg.grid, self.cfg.grid))

    def _mean_square(self, f_hat: np.ndarray) -> float:
        """Domain mean of ``f²`` from its rfft2 (Parseval, counting the mirrored columns)."""
        n = self.cfg.grid
        w = np.full(f_hat.shape[1], 2.0)
        w[0] = 1.0
        if n % 2 == 0:
            w[-1] = 1.0
        return float((np.abs(f_hat) ** 2 * w).sum() / n ** 4)

    def diagnostics(self) -> dict[str, float]:
        """Energy ``½⟨|u|²⟩``, enstrophy ``½⟨ω²⟩``, input ``⟨u·f⟩`` and dissipation ``ν⟨ω²⟩``."""
        w = self.w_hat
        energy = 0.5 * self._mean_square(w * np.sqrt(self.inv_k2))
        enstrophy = 0.5 * self._mean_square(w)
        u, _ = self.velocity()
        return {"energy": energy, "enstrophy": enstrophy,
                "input": float((u * self.forcing_u).mean()), "dissipation": 2 * self.nu * enstrophy}

    def spectrum(self) -> np.ndarray:
        """Energy spectrum ``E(k)`` in shells ``k = 0, 1, …`` (sums to the energy)."""
        n = self.cfg.grid
        w = np.full(self.w_hat.shape[1], 2.0)
        w[0] = 1.0
        w[-1] = 1.0
        dens = 0.5 * np.abs(self.w_hat) ** 2 * self.inv_k2 * w / n ** 4
        shell = np.rint(np.sqrt(self.k2)).astype(int)
        return np.bincount(shell.ravel(), weights=dens.ravel())

    def check_finite(self) -> None:
        if not np.isfinite(self.w_hat).all():
            raise FloatingPointError(f"the Kolmogorov flow blew up at t = {self.time:.2f}; "
                                     f"lower dt (now {self.dt}) or raise the grid")


def simulate(cfg: KolmogorovConfig, progress: bool = True) -> dict[str, np.ndarray]:
    """Warm up from a perturbed laminar state, then store ``n_snapshots`` vorticity fields
    (every ``subsample``-th point) and the energy/input/dissipation at every sample."""
    flow = KolmogorovFlow(cfg)
    flow.perturb(cfg.perturbation, np.random.default_rng(cfg.seed))
    per_sample = int(round(cfg.sample_every / cfg.dt))
    warm = int(round(cfg.warmup_time / cfg.dt))
    total = warm + per_sample * cfg.n_snapshots
    m = cfg.grid // cfg.subsample
    snaps = np.empty((cfg.n_snapshots, m, m), dtype=np.float32)
    diag = np.empty((cfg.n_snapshots, 4))
    bar = tqdm(total=total, desc=f"Kolmogorov flow Re={cfg.reynolds:g}", unit="step",
               disable=not progress, mininterval=1.0)
    t0 = time.perf_counter()
    for t in range(total):
        flow.step()
        k = t + 1 - warm
        if k > 0 and k % per_sample == 0:
            i = k // per_sample - 1
            snaps[i] = flow.vorticity()[::cfg.subsample, ::cfg.subsample]
            d = flow.diagnostics()
            diag[i] = (d["energy"], d["enstrophy"], d["input"], d["dissipation"])
        if (t + 1) % 500 == 0:
            bar.update(500)
            flow.check_finite()
    bar.update(total - bar.n)
    bar.close()
    flow.check_finite()
    return {"vorticity": snaps, "diagnostics": diag.astype(np.float64),
            "seconds": np.array(time.perf_counter() - t0)}


def load_kolmogorov(cfg: KolmogorovConfig | None = None, *, progress: bool = True,
                    refresh: bool = False) -> FieldData:
    """Kolmogorov-flow vorticity as :class:`FieldData` (simulated once, then cached)."""
    cfg = cfg or KolmogorovConfig()
    cfg.validate()

    def build() -> dict[str, np.ndarray]:
        steps = int(round((cfg.warmup_time + cfg.sample_every * cfg.n_snapshots) / cfg.dt))
        announce_build(f"simulating the Kolmogorov flow ({steps} steps on {cfg.grid}²)",
                       cache_path("kolmogorov", asdict(cfg)), "3–6 min on one CPU core")
        return simulate(cfg, progress=progress)

    arrays = cached("kolmogorov", asdict(cfg), build, refresh=refresh)
    vort = arrays["vorticity"]
    n, m = vort.shape[0], vort.shape[1]
    diag = arrays["diagnostics"]
    d_lam = cfg.reynolds / (2 * cfg.n_forcing ** 2)
    axis = np.arange(m) * (2 * np.pi / m)
    return FieldData(
        name="kolmogorov", values=vort, mask=np.ones(vort.shape, dtype=bool),
        coords={"time": cfg.warmup_time + cfg.sample_every * np.arange(1, n + 1),
                "y": axis, "x": axis.copy()},
        sample_axis="time", spherical=False, units="ω (forcing units)",
        attrs={"reynolds": f"{cfg.reynolds:g}", "n_forcing": str(cfg.n_forcing),
               "solver_grid": str(cfg.grid),
               "mean_dissipation_over_laminar": f"{diag[:, 3].mean() / d_lam:.4f}",
               "mean_input_over_dissipation": f"{diag[:, 2].mean() / diag[:, 3].mean():.4f}"})
