"""Who won: the evaluated agent against its env family's baselines, on the same episodes.

:func:`judge` plays every baseline of :mod:`agents.analysis.baselines` on the seeds the agent
was evaluated on (or reads the env's own per-episode baseline values), then compares the
headline metric episode by episode: the mean and 95% CI of each side, the mean paired gap
(agent − baseline) with its 95% CI, a two-sided paired t-test (``scipy.stats.ttest_rel``),
and the verdict in words:

* ``beats`` — the gap favours the agent (in the metric's direction) and p < ``alpha``;
* ``does not beat`` — the gap favours the baseline and p < ``alpha``;
* ``not significant`` — p ≥ ``alpha`` (including identical episodes, p = 1).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.analysis.baselines import FAMILIES, Baseline, Family, Metric
from agents.episodes import rollout
from envs.registry import family_of
from models import stats

ALPHA = 0.05
TEST = "paired t-test on per-episode values, two-sided (scipy.stats.ttest_rel)"


def family_for(env_id: str) -> Family | None:
    """The verdict definition of ``env_id``'s family, or ``None`` if it has none."""
    name = family_of(env_id)
    return FAMILIES.get(name) if name else None


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, list[float]]:
    """Mean and the t-interval of the mean (``[nan, nan]`` for fewer than 2 values)."""
    ci = stats.mean_ci(x, level)
    return ci.mean, [ci.low, ci.high]


def compare(agent: np.ndarray, base: np.ndarray, higher_is_better: bool,
            alpha: float = ALPHA) -> dict[str, Any]:
    """The paired comparison of two per-episode series (same episodes, same order)."""
    agent, base = np.asarray(agent, np.float64), np.asarray(base, np.float64)
    if agent.shape != base.shape:
        raise ValueError(f"paired series differ in length: {agent.shape} vs {base.shape}")
    diff = agent - base
    gap, gap_ci = mean_ci(diff)
    b_mean, b_ci = mean_ci(base)
    p = stats.paired_p(agent, base)
    if p is None:  # no t-test: one episode, or the same gap on every episode
        p = 1.0 if not diff.any() else float("nan") if len(diff) < 2 else 0.0
    if not p < alpha:
        verdict = "not significant"
    else:
        verdict = "beats" if (gap > 0) == higher_is_better else "does not beat"
    return {"mean": b_mean, "ci95": b_ci, "gap": gap, "gap_ci95": gap_ci, "p_value": p,
            "verdict": verdict, "n": int(len(diff)), "identical": not diff.any()}


def baseline_values(env: gym.Env, baseline: Baseline, metric: Metric,
                    agent_scalars: dict[str, list[float]], episodes: int, seed: int,
                    progress: bool) -> tuple[np.ndarray, dict[str, list[float]] | None]:
    """The baseline's metric on the agent's episodes ``seed .. seed + episodes - 1``, and
    its episodes' scalars when it was played (``None`` when read from the env's info)."""
    if baseline.info_key is not None:
        if baseline.info_key not in agent_scalars:
            raise KeyError(f"the env reports no {baseline.info_key!r} at episode end")
        return np.asarray(agent_scalars[baseline.info_key][:episodes], float), None
    played = rollout(env, baseline.make_agent(env), episodes, seed, progress=progress,
                     desc=baseline.name)
    return metric.values(played["scalars"]), played["scalars"]


def judge(env: gym.Env, family: Family, agent_scalars: dict[str, list[float]], seed: int, *,
          split: str, episodes: int | None = None, options: dict[str, Any] | None = None,
          progress: bool = True, alpha: float = ALPHA, skip: str | None = None
          ) -> dict[str, Any]:
    """The verdict of the agent whose episodes (seeded ``seed + i``) gave ``agent_scalars``.

    Args:
        env: the env the agent was evaluated in (baselines are played in it).
        episodes: compare on the first ``episodes`` episodes only (default: all).
        options: for the family's baselines (``seed``, ``static_evals``, ``static_limit``).
        skip: why the baselines are not run (then only the agent's row; ``skipped`` says why).

    Returns the JSON-ready verdict: ``metric``, ``split``, ``agent`` (mean, ci95, n),
    ``baselines`` (per name: :func:`compare` + ``description``), ``test``, ``alpha``, and
    ``series`` (per-episode values of the agent and each baseline, for plots).
    """
    metric = family.metric(env)
    a_all = metric.values(agent_scalars)
    n = len(a_all) if episodes is None else min(int(episodes), len(a_all))
    if n < 1:
        raise ValueError(f"no episodes to compare (episodes={episodes})")
    a = a_all[:n]
    a_mean, a_ci = mean_ci(a)
    out: dict[str, Any] = {
        "family": family.name, "split": split,
        "metric": {"key": metric.key, "description": metric.description,
                   "direction": metric.direction},
        "episodes": n, "seeds": [seed, seed + n - 1], "test": TEST, "alpha": alpha,
        "agent": {"mean": a_mean, "ci95": a_ci, "n": n}, "baselines": {},
        "series": {"agent": a.tolist()}, "skipped": skip}
    for b in ([] if skip else family.baselines(env, {"seed": seed, **(options or {})})):
        values, _ = baseline_values(env, b, metric, agent_scalars, n, seed, progress)
        out["baselines"][b.name] = {"description": b.description,
                                    **compare(a, values, metric.higher_is_better, alpha)}
        out["series"][b.name] = values.tolist()
    return out


def _num(x: float, width: int = 8) -> str:
    return f"{x:{width}.3g}" if np.isfinite(x) else f"{'–':>{width}s}"


def format_table(v: dict[str, Any]) -> str:
    """The verdict as a plain-text table with a one-line summary of who won."""
    m = v["metric"]
    lines = [f"verdict on {v['split']} ({v['episodes']} episodes, seeds {v['seeds'][0]}.."
             f"{v['seeds'][1]}): {m['key']} — {m['description']}; {m['direction']}",
             f"{'':16s} {'mean':>8s} {'95% CI':>19s} {'agent−base':>10s} {'p':>8s}  verdict"]
    a = v["agent"]
    lines.append(f"{'agent':16s} {_num(a['mean'])} [{_num(a['ci95'][0])}, "
                 f"{_num(a['ci95'][1])}]")
    for name, r in v["baselines"].items():
        lines.append(f"{name[:16]:16s} {_num(r['mean'])} [{_num(r['ci95'][0])}, "
                     f"{_num(r['ci95'][1])}] {_num(r['gap'], 10)} {_num(r['p_value'])}  "
                     f"agent {r['verdict']}" + (" (identical episodes)" if r["identical"] else ""))
    lines.append(who_won(v))
    return "\n".join(lines)


def who_won(v: dict[str, Any]) -> str:
    """One sentence: which baselines the agent beats, loses to, and ties with."""
    by = {w: [n for n, r in v["baselines"].items() if r["verdict"] == w]
          for w in ("beats", "does not beat", "not significant")}
    if not v["baselines"]:
        return f"who won: no baselines were run ({v.get('skipped') or 'none defined'})"
    parts = [f"beats {', '.join(by['beats']) or 'none'}"]
    if by["does not beat"]:
        parts.append(f"loses to {', '.join(by['does not beat'])}")
    if by["not significant"]:
        parts.append(f"not significantly different from {', '.join(by['not significant'])}")
    return (f"who won: the agent {'; '.join(parts)} "
            f"(p < {v['alpha']:g}, {len(v['baselines'])} baselines)")
