"""The results table of a sweep: mean, std and 95% CI per condition, paired tests by seed.

One row per (condition, metric). A condition's baseline is the condition that differs from it
only in the sweep's ``baseline`` values (else the first one holding them). When the two share seeds,
the row also holds the paired comparison over those seeds: mean difference (condition −
baseline) with its 95% t-interval, the paired t statistic, two-sided and one-sided
(condition > baseline) p-values, and the number of seeds on which the condition is higher.
Written as ``results.csv`` and ``results.json`` (with provenance) in the sweep folder.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from models.io import atomic_write_json, provenance
from models.stats import mean_ci, paired_by_seed

COLUMNS = ["condition", "metric", "n", "mean", "std", "ci95_low", "ci95_high", "baseline",
           "n_pairs", "diff_mean", "diff_ci95_low", "diff_ci95_high", "t", "p_two_sided",
           "p_greater", "wins"]


def _matches(params: dict[str, Any], baseline: dict[str, Any]) -> bool:
    return all(str(params.get(k)) == str(v) for k, v in baseline.items())


def _baseline_of(params: dict[str, Any], baseline: dict[str, Any] | None,
                 conditions: dict[str, dict[str, Any]]) -> str | None:
    """The condition equal to ``params`` except for the baseline's values (a grid over
    epochs × bn compares each epochs' revisited with that epochs' standard), if it exists."""
    if not baseline:
        return None
    want = {k: str(v) for k, v in {**params, **baseline}.items()}
    return next((c for c, v in conditions.items()
                 if {k: str(x) for k, x in v["params"].items()} == want), None)


def build_table(results: list[dict[str, Any]], metrics: list[str] | None = None,
                baseline: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows of the results table from finished trial results (``status == "ok"``)."""
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return []
    conditions: dict[str, dict[str, Any]] = {}
    for r in ok:
        conditions.setdefault(r["condition"], {"params": r["params"], "by_seed": {}})
        conditions[r["condition"]]["by_seed"][r["seed"]] = r["metrics"]
    names = metrics or sorted({k for r in ok for k in r["metrics"]})
    base_name = next((c for c, v in conditions.items()
                      if baseline and _matches(v["params"], baseline)), None)
    if baseline is None:
        base_name = next(iter(conditions))
    rows = []
    for cond, v in conditions.items():
        for metric in names:
            vals = {s: m[metric] for s, m in v["by_seed"].items()
                    if metric in m and m[metric] is not None and math.isfinite(m[metric])}
            if not vals:
                continue
            ci = mean_ci(list(vals.values()))
            row: dict[str, Any] = {"condition": cond, "metric": metric, "n": len(vals),
                                   "mean": ci.mean, "std": ci.std, "ci95_low": ci.low,
                                   "ci95_high": ci.high,
                                   "params": v["params"], "seeds": sorted(vals)}
            ref = _baseline_of(v["params"], baseline, conditions) or base_name
            if ref is not None and cond != ref:
                base = {s: m[metric] for s, m in conditions[ref]["by_seed"].items()
                        if metric in m}
                row.update(baseline=ref, **paired_by_seed(vals, base))
            rows.append(row)
    return rows


def write_table(sweep_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """``results.csv`` (one line per row) and ``results.json`` (rows + sweep summary)."""
    sweep_dir = Path(sweep_dir)
    atomic_write_json({**summary, "table": rows, **provenance(None, summary.get("command"))},
                      sweep_dir / "results.json")
    tmp = sweep_dir / ".results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k, "")) for k in COLUMNS})
    tmp.replace(sweep_dir / "results.csv")


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def format_table(rows: list[dict[str, Any]], max_rows: int = 40) -> str:
    """A plain-text table for the terminal."""
    head = f"{'condition':<34} {'metric':<22} {'n':>3} {'mean ± std':>22} {'95% CI':>22} " \
           f"{'Δ vs base':>11} {'p':>8}"
    lines = [head, "-" * len(head)]
    for r in rows[:max_rows]:
        ci = (f"[{r['ci95_low']:.4g}, {r['ci95_high']:.4g}]" if math.isfinite(r["ci95_low"])
              else "—")
        d = f"{r['diff_mean']:+.4g}" if "diff_mean" in r else ""
        p = f"{r['p_two_sided']:.3g}" if "p_two_sided" in r else ""
        lines.append(f"{r['condition'][:34]:<34} {r['metric'][:22]:<22} {r['n']:>3} "
                     f"{r['mean']:>11.4g} ± {r['std']:<8.3g} {ci:>22} {d:>11} {p:>8}")
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more rows in results.csv")
    return "\n".join(lines)
