"""Every committed benchmark result re-summarises to the same figures through models.stats.

Each test rebuilds a benchmark's summary from the per-seed (per-trial, per-episode) values
stored in its committed JSON, with the benchmark's own summary function, and compares every
key the committed file has (to float rounding; keys added since the run are left out).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _differences(new: Any, old: Any, path: str = "", rel: float = 1e-12) -> list[str]:
    """Where ``new`` differs from ``old`` beyond ``rel`` (keys only in ``new`` are ignored)."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{path}: {type(new).__name__} vs dict"]
        return [d for k in old for d in (_differences(new[k], old[k], f"{path}/{k}", rel)
                                          if k in new else [f"{path}/{k}: missing"])]
    if isinstance(old, list):
        if not isinstance(new, list | tuple) or len(new) != len(old):
            return [f"{path}: {new!r} vs {old!r}"]
        return [d for i, (x, y) in enumerate(zip(new, old, strict=True))
                for d in _differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(old, float) and isinstance(new, int | float):
        same = math.isclose(new, old, rel_tol=rel, abs_tol=1e-15) or (new != new and old != old)
        return [] if same else [f"{path}: {new!r} vs {old!r}"]
    return [] if new == old else [f"{path}: {new!r} vs {old!r}"]


def _committed(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def test_differences_sees_a_changed_figure():
    assert _differences({"a": [1.0, 2.0], "new": 1}, {"a": [1.0, 2.0]}) == []
    assert _differences({"a": [1.0, 2.0 + 1e-9]}, {"a": [1.0, 2.0]}) == ["/a[1]: 2.000000001 vs 2.0"]
    assert _differences({"a": {"p": None}}, {"a": {"p": 0.5}}) == ["/a/p: None vs 0.5"]


def test_bn_init_budget_from_its_trial_files():
    from benchmarks import bn_init_budget as b

    rec = _committed("bn_init_budget")  # a function of the trial files it lists
    acc = b.load_trials(RESULTS / "bn_init_budget", rec["trials"])
    assert len(acc) == rec["n_trials"] > 0
    new = {**b.summarise(acc, b.SCALES[rec["scale"]]), "table": b.table(acc)}
    assert _differences(new, {k: rec[k] for k in new}) == []


def test_ptq_pairs_hard_from_its_matrices():
    from benchmarks import ptq_pairs_hard as h
    from benchmarks.parts.ptq_hard_extras import EXTRAS

    rec = _committed("ptq_pairs_hard")
    for by_w in rec["summary"].values():  # merged from sibling files: tested below
        for cell in by_w.values():
            for key in EXTRAS:
                cell.pop(key, None)
    per_seed = {arch: {w: {int(s): m for s, m in by_seed.items()} for w, by_seed in by_w.items()}
                for arch, by_w in rec["matrix"].items()}
    new = {"summary": h.summarise(per_seed), "table": h.table(per_seed)}
    assert _differences(new, {k: rec[k] for k in new}) == []


def test_ptq_pairs_hard_markdown_gives_an_interval_only_over_seeds():
    from benchmarks import ptq_pairs_hard as h

    by_seed = {int(s): m for s, m in _committed("ptq_pairs_hard")["matrix"]["cnn"]["a"].items()}
    one = h.markdown(h.summarise({"cnn": {"a": {0: by_seed[0]}}})).splitlines()[-1]
    three = h.markdown(h.summarise({"cnn": {"a": by_seed}})).splitlines()[-1]
    assert "±" not in one and three.count("±") == one.count("|") - 4


def test_ptq_pairs_hard_extras_are_its_sibling_results(tmp_path):
    """conventions / committed_pairs_under / oracle_gain / dynamic_gain_by_observation in
    ptq_pairs_hard.json are exactly what merge_extras reads from the sibling files."""
    from benchmarks.parts.ptq_hard_extras import merge_extras

    for f in RESULTS.glob("ptq_*.json"):
        (tmp_path / f.name).write_text(f.read_text())
    rec = _committed("ptq_pairs_hard")
    cells = [c for by_w in rec["summary"].values() for c in by_w.values()]
    assert all(c["conventions"]["integer"]["det_pair_drop"] == c["det_pair_drop"] for c in cells)
    merged = merge_extras(tmp_path / "ptq_pairs_hard.json")
    assert _differences(merged["summary"], rec["summary"]) == []
    assert _differences(rec["summary"], merged["summary"]) == []


def test_ptq_oracle_observations_and_defences_from_their_run_files():
    from benchmarks.ptq import ptq_defences, ptq_observations, ptq_oracle

    oracle = _committed("ptq_oracle")
    combos = sorted({f.stem.rsplit("-", 1)[0] for f in ptq_oracle.OUT.glob("*.json")})
    assert combos and _differences(ptq_oracle.summarise(combos, list(ptq_oracle.NETWORKS)),
                                   oracle["summary"]) == []
    obs = _committed("ptq_observations")
    combos = sorted({"-".join(f.stem.split("-")[:3]) for f in ptq_observations.OUT.glob("*.json")})
    assert combos and _differences(ptq_observations.summarise(combos), obs["summary"]) == []
    defences = _committed("ptq_defences")
    sets = sorted(d.name for d in ptq_defences.OUT.iterdir() if d.is_dir())
    assert sets and _differences(ptq_defences.summarise(sets), defences["summary"]) == []


def test_fields_from_its_per_seed_errors():
    from benchmarks import fields as f

    rec = _committed("fields")
    rows = []
    for r in rec["rows"]:
        methods = {k.removesuffix("_per_seed"): dict(zip(r["seeds"], v, strict=True))
                   for k, v in r.items() if k.endswith("_per_seed")}
        new = f.cell_statistics(methods)
        stat_keys = {k for k in r if k.startswith("p_") or k.endswith(("_ci95", "_over_faithful"))}
        assert stat_keys <= set(new)
        assert _differences(new, {k: r[k] for k in new}, f"/rows/{r['dataset']}/{r['K']}") == []
        rows.append({**r, **new})
    assert len(rows) == len(rec["rows"]) > 0
    new = {"summary": f.summary(rows), "ablation": f.ablation_table(rows)}
    assert _differences(new, {k: rec[k] for k in new}) == []


def test_ptq_pairs_easy_from_its_per_seed_rows():
    from benchmarks import ptq_pairs as p

    rec = _committed("ptq_pairs")
    table = p.aggregate(rec["per_seed"])
    assert _differences({"table": table, "targets": p.targets(table)},
                        {"table": rec["table"], "targets": rec["targets"]}) == []


def test_sensor_placement_from_its_per_seed_errors():
    from benchmarks import sensor_placement as sp

    rec = _committed("sensor_placement")
    new = {"table": sp.make_table(rec["results"], rec["seeds"]),
           "summary": sp.summary(rec["results"])}
    assert _differences(new, {k: rec[k] for k in new}) == []


def test_bn_init_paired_statistics_from_its_accuracies():
    from benchmarks import bn_init

    rec = _committed("bn_init")
    runs = {c: [{"test_acc": a, "gamma_abs_drift": 0.0, "gamma_mean": 0.0, "train_time_s": 0.0}
                for a in v["test_acc"]] for c, v in rec["conditions"].items()}
    new = bn_init.summarise(runs, rec["seeds"])
    keys = ("paired_diff_mean", "paired_diff_std", "p_value_one_sided", "t_statistic",
            "revisited_wins")
    assert _differences({k: new[k] for k in keys}, {k: rec[k] for k in keys}) == []
    for c, cell in rec["conditions"].items():
        assert _differences({k: new["conditions"][c][k] for k in ("mean", "std")},
                            {k: cell[k] for k in ("mean", "std")}) == []


def test_kd_source_policy_summary_from_its_table():
    from benchmarks import kd_source_policy as kp

    rec = _committed("kd_source_policy")
    for setting, cells in rec["summary"].items():
        if setting == "batched_speedup":
            continue
        base = setting.removesuffix(" (held-out teacher)")
        new = kp.summarise(rec["table"], setting, rec["details"][base]["best_fixed"])
        assert _differences(new, cells, f"/{setting}") == []


def test_kd_source_plateau_from_its_curves():
    from benchmarks import kd_source_plateau as pl

    rec = _committed("kd_source_plateau")
    curves = [json.loads((RESULTS / "kd_source_plateau" / f).read_text())
              for f in rec["trial_files"]]
    new = pl.summarise(curves, rec["tolerance"])
    assert _differences(new, {k: rec[k] for k in new}) == []


def test_kd_sources_cells_and_paired_claims_from_their_per_seed_accuracies():
    from benchmarks import kd_sources as ks

    rec = _committed("kd_sources")
    for source, cells in rec["summary"].items():
        for recipe, cell in cells.items():
            new = ks._acc_cell(dict(zip(cell["seeds"], [v / 100 for v in cell["per_seed"]],
                                        strict=True)))
            assert _differences(new, {k: cell[k] for k in new}, f"/{source}/{recipe}",
                                rel=1e-9) == []
    head = {s: {seed: v / 100 for seed, v in zip(c[rec["selected"][s]]["seeds"],
                                                   c[rec["selected"][s]]["per_seed"], strict=True)}
            for s, c in rec["summary"].items()}
    for row in rec["ordering"]:
        a, b = row["claim"].split(" ≥ ")
        new = ks.paired_by_seed(head[a], head[b])
        assert _differences(new, {k: v for k, v in row.items() if k != "claim"},
                            f"/ordering/{row['claim']}", rel=1e-9) == []


@pytest.mark.parametrize("name", ["bn_init_budget", "ptq_pairs_hard", "fields"])
def test_the_shared_module_is_what_the_benchmark_uses(name):
    """No benchmark keeps its own t-interval or t-test (they all call models.stats)."""
    text = (ROOT / "benchmarks" / f"{name}.py").read_text()
    assert "models" in text and "stats" in text
    assert "t.ppf" not in text and "ttest_rel" not in text
