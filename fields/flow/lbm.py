"""D2Q9 lattice-Boltzmann solver for the 2-D wake behind a circular cylinder, in PyTorch.

Every lattice update is a handful of whole-grid tensor operations (no Python loop over cells):

* collision: BGK or two-relaxation-time (TRT, magic parameter Λ = 1/4, stable near τ = 1/2);
* streaming: one ``gather`` with a precomputed source index (periodic in y);
* cylinder: full-way bounce-back on the cells inside the circle;
* inflow (x = 0): Zou–He velocity boundary (non-equilibrium bounce-back of the unknowns);
* outflow (x = nx − 1): zero-gradient copy of the unknown populations.

Lattice units: spacing 1, time step 1, sound speed 1/√3. The viscosity follows from the
Reynolds number, ``ν = U·D / Re`` and ``τ = 3ν + 1/2``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from models.device import compile_quietly

# D2Q9 velocity set: rest, 4 axis directions, 4 diagonals.
CX = (0, 1, 0, -1, 0, 1, -1, -1, 1)
CY = (0, 0, 1, 0, -1, 1, 1, -1, -1)
WEIGHTS = (4 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 36, 1 / 36, 1 / 36, 1 / 36)
OPPOSITE = (0, 3, 4, 1, 2, 7, 8, 5, 6)
RIGHT = (1, 5, 8)  # cx = +1: unknown at the inlet after streaming
LEFT = (3, 6, 7)  # cx = −1: unknown at the outlet after streaming
RIGHT_OPP = (3, 7, 6)  # OPPOSITE of RIGHT, in the same order
MIDDLE = (0, 2, 4)  # cx = 0
TAU_MIN = 0.505  # below this even TRT blows up at wake Mach numbers


@dataclass(frozen=True)
class LBMConfig:
    """Geometry and physics of the cylinder-wake simulation (lattice units)."""

    nx: int = 192  # cells along the flow
    ny: int = 112  # cells across the flow (periodic)
    diameter: float = 16.0
    center_x: float = 40.0
    center_y: float | None = None  # default: ny / 2
    reynolds: float = 100.0
    u_in: float = 0.1  # inflow velocity (Mach ≈ 0.17)
    collision: str = "trt"  # 'bgk' | 'trt'
    perturbation: float = 0.2  # transverse kick behind the cylinder, as a fraction of u_in
    dtype: str = "float32"

    @property
    def viscosity(self) -> float:
        return self.u_in * self.diameter / self.reynolds

    @property
    def tau(self) -> float:
        return 3.0 * self.viscosity + 0.5

    @property
    def cy(self) -> float:
        return self.ny / 2 if self.center_y is None else self.center_y

    def validate(self) -> None:
        if self.collision not in ("bgk", "trt"):
            raise ValueError(f"collision must be 'bgk' or 'trt', got {self.collision!r}")
        if not 0 < self.u_in < 0.3:
            raise ValueError(f"u_in={self.u_in} must lie in (0, 0.3) lattice units "
                             f"(Mach < 0.5); lower it and enlarge the diameter instead")
        if self.tau < TAU_MIN:
            raise ValueError(f"relaxation time τ={self.tau:.5f} < {TAU_MIN} is unstable; raise "
                             f"u_in or the diameter for Re={self.reynolds}")
        r = self.diameter / 2
        if not (r + 2 <= self.center_x <= self.nx - r - 2 and r + 1 <= self.cy <= self.ny - r - 1):
            raise ValueError("the cylinder does not fit inside the grid")


def lbm_step(f: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, w: torch.Tensor,
             opp: torch.Tensor, moments: torch.Tensor, solid_idx: torch.Tensor, src: torch.Tensor,
             u_in: float, omega_p: float, omega_m: float, trt: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One collide-and-stream update of ``f`` ``(9, ny, nx)``; returns ``(f_new, ux, uy)``."""
    f = f.clone()
    f[LEFT, :, -1] = f[LEFT, :, -2]  # outflow: zero gradient
    m = (moments @ f.reshape(9, -1)).view(3, *f.shape[1:])
    rho = m[0].clone()
    ux, uy = m[1] / m[0], m[2] / m[0]
    # Zou–He velocity inlet: impose u = (U, 0), density from the known populations.
    ux[:, 0] = u_in
    uy[:, 0] = 0
    rho[:, 0] = (f[MIDDLE, :, 0].sum(0) + 2 * f[LEFT, :, 0].sum(0)) / (1 - u_in)
    cu = cx * ux + cy * uy
    feq = w * (rho * (1 - 1.5 * (ux * ux + uy * uy)) + rho * cu * (cu * 4.5 + 3.0))
    f[RIGHT, :, 0] = feq[RIGHT, :, 0] + f[RIGHT_OPP, :, 0] - feq[RIGHT_OPP, :, 0]
    fneq = f - feq
    if trt:
        fneq_opp = fneq[opp]
        fout = f - (0.5 * omega_p) * (fneq + fneq_opp) - (0.5 * omega_m) * (fneq - fneq_opp)
    else:
        fout = f - omega_p * fneq
    flat = fout.view(9, -1)
    flat[:, solid_idx] = f.view(9, -1)[:, solid_idx][opp]  # bounce-back in the cylinder
    return flat.gather(1, src).view_as(f), ux, uy


class CylinderLBM:
    """State and time stepping of the D2Q9 cylinder flow; ``f`` has shape ``(9, ny, nx)``."""

    def __init__(self, cfg: LBMConfig, device: str | torch.device = "cpu",
                 compile: bool = False) -> None:
        """``compile=True`` fuses the step with ``torch.compile`` (≈5× faster on CPU after a
        one-off compilation of about a minute; falls back to eager if compilation fails)."""
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(device)
        dt = getattr(torch, cfg.dtype)
        kw = {"device": self.device, "dtype": dt}
        ny, nx = cfg.ny, cfg.nx
        self.cx = torch.tensor(CX, **kw).view(9, 1, 1)
        self.cy = torch.tensor(CY, **kw).view(9, 1, 1)
        self.w = torch.tensor(WEIGHTS, **kw).view(9, 1, 1)
        self.opp = torch.tensor(OPPOSITE, device=self.device)
        self.moments = torch.stack([torch.ones(9, **kw), self.cx.view(9), self.cy.view(9)])
        y, x = torch.meshgrid(torch.arange(ny, **kw), torch.arange(nx, **kw), indexing="ij")
        self.solid = (x - cfg.center_x) ** 2 + (y - cfg.cy) ** 2 <= (cfg.diameter / 2) ** 2
        self.solid_idx = self.solid.reshape(-1).nonzero().squeeze(1)
        # Streaming source index: population i at (y, x) comes from (y − cy_i, x − cx_i).
        src = []
        yi, xi = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        for i in range(9):
            src.append((((yi - CY[i]) % ny) * nx + (xi - CX[i]) % nx).reshape(-1))
        self.src = torch.stack(src).to(self.device)
        self.omega_p = 1.0 / cfg.tau
        lam = 0.25  # TRT magic parameter
        self.omega_m = 1.0 / (lam / (cfg.tau - 0.5) + 0.5)
        # Initial state: uniform inflow, rest inside the cylinder, a transverse kick behind it.
        ux = torch.full((ny, nx), cfg.u_in, **kw)
        kick = torch.exp(-((x - cfg.center_x - cfg.diameter) ** 2 + (y - cfg.cy) ** 2)
                         / cfg.diameter ** 2)
        uy = cfg.perturbation * cfg.u_in * kick
        ux[self.solid] = 0
        uy = uy.masked_fill(self.solid, 0)
        self.f = self.equilibrium(torch.ones_like(ux), ux, uy)
        self._links = self._boundary_links()
        self.steps = 0
        self._step = lbm_step
        if compile:
            try:
                compiled = compile_quietly(lbm_step, dynamic=False)
                compiled(self.f.clone(), self.cx, self.cy, self.w, self.opp, self.moments,
                         self.solid_idx, self.src, cfg.u_in, self.omega_p, self.omega_m,
                         cfg.collision == "trt")
                self._step = compiled
            except Exception as e:  # no C++ compiler, unsupported backend, ...
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); running the "
                              f"LBM step eagerly (slower)", stacklevel=2)

    def equilibrium(self, rho: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
        cu = self.cx * ux + self.cy * uy
        return self.w * (rho * (1 - 1.5 * (ux * ux + uy * uy)) + rho * cu * (cu * 4.5 + 3.0))

    def macroscopic(self, f: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Density and velocity ``(rho, ux, uy)``, each ``(ny, nx)``."""
        f = self.f if f is None else f
        m = (self.moments @ f.reshape(9, -1)).view(3, *f.shape[1:])
        rho = m[0]
        return rho, m[1] / rho, m[2] / rho

    @torch.no_grad()
    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one time step; returns the pre-collision velocity ``(ux, uy)``."""
        self.f, ux, uy = self._step(self.f, self.cx, self.cy, self.w, self.opp, self.moments,
                                    self.solid_idx, self.src, self.cfg.u_in, self.omega_p,
                                    self.omega_m, self.cfg.collision == "trt")
        self.steps += 1
        return ux, uy

    def _boundary_links(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per direction i: flat cells that just received population i across the body surface,
        from fluid into the body (``into``) and from the body into the fluid (``out``)."""
        solid = self.solid.reshape(-1)
        links = []
        for i in range(9):
            upstream = solid[self.src[i]]  # is the cell population i came from solid?
            links.append(((solid & ~upstream).nonzero().squeeze(1),
                          (~solid & upstream).nonzero().squeeze(1)))
        return links

    def body_force(self) -> tuple[float, float]:
        """Force ``(Fx, Fy)`` of the fluid on the cylinder by momentum exchange: the momentum
        that the last streaming carried into the body minus what it carried out (lattice units).
        """
        flat = self.f.reshape(9, -1)
        fx = fy = 0.0
        for i, (into, out) in enumerate(self._links):
            if CX[i] == 0 and CY[i] == 0:
                continue
            net = float(flat[i, into].sum() - flat[i, out].sum())
            fx += CX[i] * net
            fy += CY[i] * net
        return fx, fy

    def vorticity(self) -> torch.Tensor:
        """Dimensionless vorticity ``(∂v/∂x − ∂u/∂y) · D / U`` (0 inside the cylinder)."""
        _, ux, uy = self.macroscopic()
        dvdx = torch.gradient(uy, dim=1)[0]
        dudy = torch.gradient(ux, dim=0)[0]
        w = (dvdx - dudy) * (self.cfg.diameter / self.cfg.u_in)
        return w.masked_fill(self.solid, 0.0)

    def check_finite(self) -> None:
        if not torch.isfinite(self.f).all():
            raise FloatingPointError(
                f"LBM diverged after {self.steps} steps (τ={self.cfg.tau:.4f}); use "
                f"collision='trt', a lower u_in or a larger diameter")


def shedding_frequency(signal: np.ndarray, dt: float = 1.0) -> float:
    """Dominant frequency of ``signal`` from its mean period between upward zero crossings."""
    s = np.asarray(signal, dtype=np.float64)
    s = s - s.mean()
    idx = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))
    if len(idx) < 3:
        raise ValueError(f"only {len(idx)} upward zero crossings in the signal: no periodic "
                         f"shedding yet; run more steps")
    t = idx + s[idx] / (s[idx] - s[idx + 1])  # linear interpolation of the crossing
    return 1.0 / (float(np.mean(np.diff(t))) * dt)


def strouhal(signal: np.ndarray, cfg: LBMConfig, dt: float = 1.0) -> float:
    """``St = f·D/U`` from a probe or lift signal sampled every ``dt`` steps."""
    return shedding_frequency(signal, dt) * cfg.diameter / cfg.u_in


def default_probe(cfg: LBMConfig) -> tuple[int, int]:
    """(row, column) two diameters downstream of the cylinder on its axis."""
    return int(round(cfg.cy)), min(cfg.nx - 2, int(math.floor(cfg.center_x + 2 * cfg.diameter)))
