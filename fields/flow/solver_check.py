"""Validation of the LBM cylinder wake against published Re = 100 values: drag, lift, Strouhal.

Forces come from momentum exchange at the bounce-back surface (:meth:`CylinderLBM.body_force`),
``C_D = F_x / (½ ρ U² D)`` and ``C_L = F_y / (½ ρ U² D)`` with ρ = 1, and the Strouhal number
from the lift signal. Published values are for an unconfined cylinder; the wake here is periodic
across the flow (an infinite row of cylinders ``ny`` apart), so the blockage ``D / ny`` raises
drag and frequency a little, which is why it is stated next to every figure.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from fields.flow.cylinder import CylinderConfig
from fields.flow.lbm import CylinderLBM, LBMConfig, shedding_frequency
from models.device import intra_op_threads

# Unconfined cylinder at Re = 100.
PUBLISHED_RE100: dict[str, Any] = {
    "strouhal": {"value": 0.164, "range": [0.163, 0.166],
                 "source": "Williamson 1996 (Annu. Rev. Fluid Mech.), St-Re fit; Park et al. 1998"},
    "drag": {"value": 1.34, "range": [1.32, 1.36],
             "source": "Park, Kwon & Choi 1998 (KSME Int. J.) 1.33; Henderson 1995 (Phys. "
                       "Fluids) 1.35"},
    "lift_amplitude": {"value": 0.33, "range": [0.32, 0.35], "source": "Park et al. 1998"},
}


def refined(cfg: LBMConfig, factor: int) -> LBMConfig:
    """The same geometry in diameters on a grid ``factor`` times finer (same Re and Mach)."""
    kw = {"nx": cfg.nx * factor, "ny": cfg.ny * factor, "diameter": cfg.diameter * factor,
          "center_x": cfg.center_x * factor}
    if cfg.center_y is not None:
        kw["center_y"] = cfg.center_y * factor
    return replace(cfg, **kw)


def force_coefficients(cfg: LBMConfig, warmup_periods: float = 14.0, periods: float = 8.0,
                       compile: bool = True, threads: int | None = 1) -> dict[str, Any]:
    """Run the wake and measure mean drag, lift amplitude and St over ``periods`` shedding
    periods after ``warmup_periods`` (both in units of the period expected at St ≈ 0.165)."""
    period = cfg.diameter / (0.165 * cfg.u_in)
    warmup, measure = int(warmup_periods * period), int(periods * period)
    with intra_op_threads(threads):
        sim = CylinderLBM(cfg, compile=compile)
        t0 = time.perf_counter()
        for _ in range(warmup):
            sim.step()
        fx, fy = np.empty(measure), np.empty(measure)
        for t in range(measure):
            sim.step()
            fx[t], fy[t] = sim.body_force()
        seconds = time.perf_counter() - t0
        sim.check_finite()
    scale = 0.5 * cfg.u_in ** 2 * cfg.diameter
    cl = fy / scale
    st = shedding_frequency(cl) * cfg.diameter / cfg.u_in
    n = int(round(len(cl) * st * cfg.u_in / cfg.diameter)) or 1  # whole periods only
    whole = cl[: int(n * cfg.diameter / (st * cfg.u_in))]
    return {"grid": [cfg.ny, cfg.nx], "diameter": cfg.diameter, "blockage": cfg.diameter / cfg.ny,
            "reynolds": cfg.reynolds, "u_in": cfg.u_in, "tau": cfg.tau,
            "warmup_steps": warmup, "measured_steps": measure,
            "drag": float(np.mean(fx[: len(whole)]) / scale),
            "lift_amplitude": float((whole.max() - whole.min()) / 2),
            "lift_rms": float(np.sqrt(np.mean(whole ** 2))), "strouhal": float(st),
            "seconds": seconds, "config": asdict(cfg)}


def validate(base: LBMConfig | None = None, factors: tuple[int, ...] = (1, 2),
             compile: bool = True, **kw: float) -> dict[str, Any]:
    """Force coefficients at each refinement ``factor`` of ``base`` (default: the dataset's
    grid), next to the published unconfined values; ``kw`` go to :func:`force_coefficients`."""
    base = base or CylinderConfig()
    base = LBMConfig(**{k: v for k, v in asdict(base).items()
                        if k in LBMConfig.__dataclass_fields__})
    runs = {f"x{f}": force_coefficients(refined(base, f), compile=compile, **kw)
            for f in factors}
    return {"runs": runs, "published_unconfined": PUBLISHED_RE100,
            "note": f"periodic across the flow: blockage D/ny = {base.diameter / base.ny:.3f}; "
                    f"full-way bounce-back (staircase cylinder), momentum-exchange forces"}
