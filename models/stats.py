"""Summary statistics of per-seed and per-episode results: the one implementation in the repo.

* :func:`mean_ci` / :func:`t_half_width` — the mean with its two-sided Student-t interval;
* :func:`paired` / :func:`paired_p` — conditions measured on the same seeds (or episodes):
  the mean difference with its t-interval, wins, and ``scipy.stats.ttest_rel``;
* :func:`unpaired_p` — independent samples: Welch's t-test (``scipy.stats.ttest_ind``);
* :func:`pm` — ``mean ± half-width`` as table text (no interval for one seed);
* :func:`iqm` / :func:`stratified_bootstrap_ci` / :func:`rl_aggregate` — the aggregates that
  Agarwal et al. (NeurIPS 2021, the ``rliable`` library) recommend for RL results: the
  interquartile mean and percentile intervals of a bootstrap that resamples runs
  independently within each task.

A t-test of differences that are all equal (no spread) is undefined: the ``*_p`` functions
return ``None`` then, and with fewer than two values; callers say what that means for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

ALTERNATIVES = ("two-sided", "greater", "less")


def _array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def t_half_width(values: Sequence[float] | np.ndarray, level: float = 0.95,
                 undefined: float | None = math.nan) -> float | None:
    """Half-width of the two-sided ``level`` t-interval of the mean (``undefined`` for fewer
    than two values)."""
    a = _array(values)
    if len(a) < 2:
        return undefined
    return float(stats.t.ppf(0.5 + level / 2, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))


def pm(mean: float | None, half: float | None, digits: int = 2, scale: float = 1.0) -> str:
    """``mean ± half`` as text (``scale`` multiplies both, e.g. 100 for fractions → %); no
    interval when ``half`` is ``None`` (one seed), ``–`` when ``mean`` is."""
    if mean is None:
        return "–"
    if half is None:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


@dataclass(frozen=True)
class MeanCI:
    """Mean, sample standard deviation and the t-interval ``[low, high]`` of ``n`` values
    (``std`` 0 and NaN bounds for a single value)."""

    mean: float
    std: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def half_width_or_none(self) -> float | None:
        """The half-width, or ``None`` for a single value: one seed has no interval."""
        return self.half_width if self.n > 1 else None


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> MeanCI:
    """:class:`MeanCI` of ``values``; at least one value."""
    a = _array(values)
    if len(a) == 0:
        raise ValueError("mean_ci needs at least one value")
    m = float(a.mean())
    half = t_half_width(a, level)
    return MeanCI(m, float(a.std(ddof=1)) if len(a) > 1 else 0.0, m - half, m + half, len(a))


def std(values: Sequence[float] | np.ndarray, ddof: int = 1) -> float:
    """Standard deviation with ``ddof`` (1: the sample's; 0: the population's), 0.0 when
    there are not more than ``ddof`` values."""
    a = _array(values)
    return float(a.std(ddof=ddof)) if len(a) > ddof else 0.0


def _no_spread(d: np.ndarray) -> bool:
    return bool(np.ptp(d) <= 1e-12 * np.abs(d).max())


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


def paired_p(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided"
             ) -> float | None:
    """p-value of the paired t-test of ``a`` against ``b`` (``greater``: mean(a − b) > 0);
    ``None`` under two pairs or when every difference is the same."""
    _check_alternative(alternative)
    x, y = _array(a), _array(b)
    if x.shape != y.shape:
        raise ValueError(f"paired series differ in length: {len(x)} vs {len(y)}")
    if len(x) < 2 or _no_spread(x - y):
        return None
    return float(stats.ttest_rel(x, y, alternative=alternative).pvalue)


def unpaired_p(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided"
               ) -> float | None:
    """p-value of Welch's t-test of independent samples ``a`` and ``b`` (unequal variances);
    ``None`` when either has fewer than two values or neither has any spread."""
    _check_alternative(alternative)
    x, y = _array(a), _array(b)
    if len(x) < 2 or len(y) < 2 or (_no_spread(x) and _no_spread(y)):
        return None
    return float(stats.ttest_ind(x, y, equal_var=False, alternative=alternative).pvalue)


@dataclass(frozen=True)
class Paired:
    """``a − b`` over shared seeds: mean difference, its t-interval (NaN under two pairs),
    the number of pairs where ``a`` is higher, the t statistic and p-values (``None``: no
    test, see :func:`paired_p`)."""

    n: int
    diff_mean: float | None
    diff_low: float
    diff_high: float
    wins: int
    t: float | None
    p_two_sided: float | None
    p_greater: float | None

    @property
    def diff_half_width(self) -> float:
        return (self.diff_high - self.diff_low) / 2


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Paired:
    """:class:`Paired` comparison of two series measured on the same seeds, in order."""
    x, y = _array(a), _array(b)
    if x.shape != y.shape:
        raise ValueError(f"paired series differ in length: {len(x)} vs {len(y)}")
    d = x - y
    if len(d) == 0:
        return Paired(0, None, math.nan, math.nan, 0, None, None, None)
    ci = mean_ci(d, level)
    p2 = paired_p(x, y)
    t = None if p2 is None else float(stats.ttest_rel(x, y).statistic)
    return Paired(len(d), ci.mean, ci.low, ci.high, int((d > 0).sum()), t, p2,
                  paired_p(x, y, "greater"))


def paired_by_seed(values: dict[Any, float], base: dict[Any, float]) -> dict[str, Any]:
    """:func:`paired` over the seeds (keys) both dicts have, as JSON-ready columns:
    ``n_pairs``; from two pairs on ``diff_mean``, ``diff_ci95_low``, ``diff_ci95_high``,
    ``wins``; and ``t``, ``p_two_sided``, ``p_greater`` when the t-test is defined."""
    seeds = sorted(set(values) & set(base))
    out: dict[str, Any] = {"n_pairs": len(seeds)}
    if len(seeds) < 2:
        return out
    r = paired([values[s] for s in seeds], [base[s] for s in seeds])
    out.update(diff_mean=r.diff_mean, diff_ci95_low=r.diff_low, diff_ci95_high=r.diff_high,
               wins=r.wins)
    if r.p_two_sided is not None:
        out.update(t=r.t, p_two_sided=r.p_two_sided, p_greater=r.p_greater)
    return out


# ------------------------------------------------------------------------------ RL aggregates
def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (``rliable``'s
    ``scipy.stats.trim_mean(scores, 0.25, axis=None)``)."""
    return float(stats.trim_mean(_array(scores), proportiontocut=0.25))


def mean_of(scores: Sequence[float] | np.ndarray) -> float:
    """The mean of all scores (any shape)."""
    return float(_array(scores).mean())


# statistics with a form that takes every bootstrap sample at once (one row each)
_BATCHED: dict[Callable, Callable[[np.ndarray], np.ndarray]] = {
    iqm: lambda rows: stats.trim_mean(rows, proportiontocut=0.25, axis=1),
    mean_of: lambda rows: rows.mean(1),
}


def _runs_by_tasks(scores: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    m = np.asarray(scores, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"scores must be a (runs, tasks) matrix, got shape {m.shape}")
    return m


def stratified_bootstrap_ci(scores: Sequence[Sequence[float]] | np.ndarray,
                            statistic: Callable[[np.ndarray], float] = iqm,
                            reps: int = 2000, level: float = 0.95, seed: int = 0
                            ) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``reps`` stratified bootstrap samples.

    ``scores`` is a ``(runs, tasks)`` matrix (a vector: one task). Each sample redraws the
    runs with replacement independently within every task (column), as ``rliable``'s
    ``StratifiedBootstrap`` does; ``statistic`` gets the resampled matrix.
    """
    m = _runs_by_tasks(scores)
    runs, tasks = m.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(runs, size=(int(reps), runs, tasks))
    samples = m[idx, np.arange(tasks)]  # (reps, runs, tasks)
    batched = _BATCHED.get(statistic)
    values = (batched(samples.reshape(len(samples), -1)) if batched is not None
              else np.array([statistic(s) for s in samples]))
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def rl_aggregate(scores: Sequence[Sequence[float]] | np.ndarray, reps: int = 2000,
                 level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """IQM and mean of a ``(runs, tasks)`` score matrix, each with its stratified-bootstrap
    interval, as a JSON-ready dict."""
    m = _runs_by_tasks(scores)
    iqm_ci = stratified_bootstrap_ci(m, iqm, reps, level, seed)
    mean_ci_ = stratified_bootstrap_ci(m, mean_of, reps, level, seed)
    return {"iqm": iqm(m), "iqm_ci95": list(iqm_ci), "mean": float(m.mean()),
            "mean_ci95": list(mean_ci_), "n_runs": int(m.shape[0]), "n_tasks": int(m.shape[1]),
            "bootstrap": f"stratified over runs within each task, {reps} samples, percentile"}


__all__ = ["MeanCI", "Paired", "iqm", "mean_ci", "mean_of", "paired", "paired_by_seed", "paired_p",
           "rl_aggregate", "std", "stratified_bootstrap_ci", "t_half_width",
           "unpaired_p"]
