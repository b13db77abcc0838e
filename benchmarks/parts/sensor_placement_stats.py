"""Summary statistics of ``benchmarks/sensor_placement.py`` from its per-layout test errors.

Every figure comes from the per-snapshot test errors stored in the results (so the committed
JSON re-summarises to the same numbers): a method's error is the mean over its layouts (seeds,
random draws) of the mean over test snapshots; window errors average ``window`` consecutive
test snapshots. All statistics go through :mod:`models.stats`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models import stats

METHODS = ("ppo", "ppo_sampled", "qr", "det_greedy", "greedy", "annealing", "random")
# the agent's rows: its deterministic layout, and the best of ``samples`` drawn from it
AGENTS = {"ppo": "cells", "ppo_sampled": "sampled"}
NON_LEARNED = ("qr", "det_greedy", "greedy", "annealing")


def _windows(test: list[float], window: int) -> np.ndarray:
    a = np.asarray(test, dtype=np.float64)
    n = len(a) // window * window
    return a[:n].reshape(-1, window).mean(1)


def _layouts(res: dict[str, Any], dataset: str, k: str) -> dict[str, list[dict[str, Any]]]:
    """Method → its layout records at (``dataset``, ``k``), the agent's one per seed."""
    out = {m: list(v["layouts"]) for m, v in res["baselines"][dataset][k]["methods"].items()}
    for agent, key in AGENTS.items():
        lays = [r[key][dataset][k] | {"seed": int(s), "steps": r["num_timesteps"]}
                for s, r in sorted(res["ppo"].items(), key=lambda x: int(x[0]))
                if k in r.get(key, {}).get(dataset, {})]
        if lays:
            out[agent] = lays
    return out


def _method_cell(lays: list[dict[str, Any]], window: int, evals: list[int] | None,
                 secs: list[float] | None, k: int) -> dict[str, Any]:
    means = [float(np.mean(lay["test"])) for lay in lays]
    if len(lays) > 1:
        ci = stats.mean_ci(means)
        unit = "layouts"
    else:
        ci = stats.mean_ci(_windows(lays[0]["test"], window))
        unit = "test windows"
    cell = {"rel_l2": float(np.mean(means)), "ci95": ci.half_width_or_none,
            "n": ci.n, "ci_over": unit, "val_rel_l2": float(np.mean([lay["val"] for lay in lays]))}
    if evals is not None:
        cell["evaluations"] = int(np.mean(evals))
    if secs is not None:
        cell["seconds_per_placement"] = float(np.mean(secs)) / k
    return cell


def _cell(res: dict[str, Any], dataset: str, k: str) -> dict[str, Any]:
    base = res["baselines"][dataset][k]
    window, kk = res["window"], int(k)
    lays = _layouts(res, dataset, k)
    cell: dict[str, Any] = {"rank": base["rank"], "lam": base["lam"],
                            "mean_field": float(np.mean(base["mean_field"]))}
    win = {m: np.mean([_windows(lay["test"], window) for lay in v], 0) for m, v in lays.items()}
    for m in [*METHODS, "oracle_search"]:
        if m not in lays:
            continue
        spec = base["methods"].get(m, {})
        if m in AGENTS:
            secs = [lay["seconds_per_placement"] * kk for lay in lays[m]]
            evals = [lay["evaluations"] for lay in lays[m]] if "evaluations" in lays[m][0] else None
        else:
            secs, evals = spec.get("seconds"), spec.get("evaluations")
        cell[m] = _method_cell(lays[m], window, evals, secs, kk)
        if len(lays[m]) > 1 and m in (*AGENTS, "annealing"):
            cell[m]["ci_over"] = "seeds"
    best = min(((float(np.mean(lay["test"])), m, i) for m, v in lays.items()
                if m != "oracle_search" for i, lay in enumerate(v)))
    lay = lays[best[1]][best[2]]
    spent = (lay.get("evaluations", 0) if best[1] in AGENTS
             else base["methods"][best[1]]["evaluations"][best[2]])
    cell["oracle_best"] = {"rel_l2": best[0], "method": best[1], "evaluations": int(spent),
                           "note": "the best test error of any layout found (selected on test)"}
    if best[1] in AGENTS:
        cell["oracle_best"]["training_steps"] = int(lay["steps"])
    nl = {m: cell[m]["rel_l2"] for m in NON_LEARNED}
    cell["best_non_learned"] = min(nl, key=nl.get)
    for agent in (a for a in AGENTS if a in lays):
        _agent_stats(cell, agent, lays[agent], win, nl, window)
    return cell


def _agent_stats(cell: dict[str, Any], agent: str, lays: list[dict[str, Any]],
                 win: dict[str, np.ndarray], nl: dict[str, float], window: int) -> None:
    """The agent row's training steps, RL aggregates, paired p-values and ratios."""
    cell[agent]["steps"] = [lay["steps"] for lay in lays]
    if "policy_forward_seconds_per_placement" in lays[0]:
        cell[agent]["policy_forward_seconds_per_placement"] = float(np.mean(
            [lay["policy_forward_seconds_per_placement"] for lay in lays]))
    scores = np.array([_windows(lay["test"], window) for lay in lays])
    cell[f"{agent}_rl"] = stats.rl_aggregate(scores)  # runs = seeds, tasks = test windows
    for m in ("random", *NON_LEARNED):
        cell[f"p_{agent}_lt_{m}"] = stats.paired_p(win[agent], win[m], "less")
    cell[f"{agent}_over_best_non_learned"] = cell[agent]["rel_l2"] / nl[cell["best_non_learned"]]
    cell[f"{agent}_over_qr"] = cell[agent]["rel_l2"] / nl["qr"]


def _targets(cell: dict[str, Any], primary: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in (a for a in AGENTS if a in cell):
        sig = {m: (cell[f"p_{a}_lt_{m}"] is not None and cell[f"p_{a}_lt_{m}"] < 0.05)
               for m in ("random", "qr")}
        ratio = cell[f"{a}_over_best_non_learned"]
        if primary:
            out |= {f"{a}_beats_random_p05": sig["random"], f"{a}_beats_qr_p05": sig["qr"],
                    f"{a}_within_5pct_of_best_non_learned": ratio <= 1.05,
                    f"{a}_beats_best_non_learned": ratio < 1.0}
        else:
            out[f"{a}_within_10pct_of_qr"] = cell[f"{a}_over_qr"] <= 1.10
    return out


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """``summary[field][K]``: every method's error, PPO's RL statistics, p-values, targets."""
    out: dict[str, Any] = {}
    for dataset, cells in res["baselines"].items():
        for k in cells:
            cell = _cell(res, dataset, k)
            primary = int(k) in res["primary"].get(dataset, [])
            cell["role"] = "primary" if primary else "generalisation (no retraining)"
            cell["targets"] = _targets(cell, primary)
            out.setdefault(dataset, {})[k] = cell
    return out


def make_table(res: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per field × K × method (mean, 95% half-width, n, p of PPO lower)."""
    rows = []
    for dataset, cells in summary(res).items():
        for k, cell in cells.items():
            for m in [*METHODS, "oracle_search"]:
                if m not in cell:
                    continue
                c = cell[m]
                rows.append({"dataset": dataset, "sensors": int(k), "method": m,
                             "rel_l2": c["rel_l2"], "ci95": c["ci95"], "n": c["n"],
                             "ci_over": c["ci_over"],
                             "p_ppo_less": cell.get(f"p_ppo_lt_{m}"),
                             "p_ppo_sampled_less": cell.get(f"p_ppo_sampled_lt_{m}"),
                             "seeds": seeds if m in AGENTS else []})
    return rows
