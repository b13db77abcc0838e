"""``sensor_placement.png``: every method's test error at the primary sensor counts (layouts
as points, mean with 95% whiskers; ``ppo_sampled`` is the best of the policy's samples on
validation) and PPO's learning curves on validation beside the
classical layouts' validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.figures.common import new_figure, points_with_ci, redraw_from, save

COLORS = {"ppo": "tab:red", "ppo_sampled": "tab:orange", "qr": "tab:blue", "det_greedy": "tab:cyan", "greedy": "tab:green",
          "annealing": "tab:purple", "random": "0.5", "oracle_search": "black"}


def draw(out: dict[str, Any], path: Path) -> Path:
    res, summ = out["results"], out["summary"]
    cells = [(d, k) for d, ks in res["primary"].items() for k in map(str, ks)
             if k in summ.get(d, {})]
    fig, axes = new_figure(4.2 * (len(cells) + 1), 3.6, ncols=len(cells) + 1)
    for ax, (d, k) in zip(axes, cells, strict=False):
        cell = summ[d][k]
        names = [m for m in COLORS if m in cell]
        for x, m in enumerate(names):
            key = {"ppo": "cells", "ppo_sampled": "sampled"}.get(m)
            lays = (res["baselines"][d][k]["methods"][m]["layouts"] if key is None else
                    [r[key][d][k] for r in res["ppo"].values() if key in r])
            vals = [float(np.mean(lay["test"])) for lay in lays]
            points_with_ci(ax, x, vals, cell[m]["rel_l2"], cell[m]["ci95"] or 0.0, COLORS[m],
                           log_floor=0.3 * min(vals))
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set_ylabel("test relative L2 (gappy POD)")
        ax.set_yscale("log")
        ax.set_title(f"{d}, K={k}", fontsize=9)
    ax = axes[-1]
    for s, r in res["ppo"].items():
        for ls, k in zip(("-", "--"), r["config"]["eval_k"], strict=False):
            steps = [p["steps"] for p in r["curve"]]
            ax.plot(steps, [p[f"val_rel_l2_k{k}"] for p in r["curve"]], ls, marker=".",
                    color="tab:red",
                    alpha=0.4 + 0.2 * int(s), label=f"PPO seed {s}, K={k}")
    for d, k in cells:
        for m, ls in (("qr", ":"), (summ[d][k]["best_non_learned"], "-.")):
            ax.axhline(summ[d][k][m]["val_rel_l2"], color=COLORS[m], ls=ls, lw=1,
                       label=f"{m} K={k} (val)")
    ax.set_xlabel("PPO steps")
    ax.set_ylabel("validation relative L2")
    ax.set_yscale("log")
    ax.legend(fontsize=6)
    return save(fig, path, "SensorPlacement: layouts scored by gappy POD")


def redraw(results_dir: Path) -> Path:
    return redraw_from(results_dir, "sensor_placement", draw)
