"""The kd_sources benchmark's bookkeeping: recipes chosen on validation only, the headline summary
keys, paired tests of P2's ordering, OpenGL against the target student and the baselines."""

from __future__ import annotations

import pytest

from benchmarks.kd_sources import RECIPES, SOURCES, final_plan, selected, summarise

SC = {"sources": SOURCES, "seeds": [0, 1, 2, 3, 4], "select_steps": 3000, "steps": 10000}
LEVEL = {"target": 0.90, "digits": 0.84, "photos": 0.83, "opengl": 0.85, "leaves": 0.82,
         "fractals": 0.80, "noise": 0.60, "deepinversion": 0.70, "dafl": 0.65}


def _select(best_val: str = "aug") -> dict:
    # validation prefers `best_val`; the test accuracy (never read here) prefers plain
    return {(s, r): {"val_acc": 0.8 + (0.05 if r == best_val else 0.0),
                     "test_acc": 0.9 if r == "plain" else 0.5}
            for s in SOURCES for r in RECIPES}


def _finals(choice: dict[str, str]) -> dict:
    out = {}
    for kind, s, r, seed in final_plan(SC, choice):
        level = LEVEL[s] + 0.002 * seed + (0.01 if r == "attack25" else 0.0)
        out[(kind, s, r, seed)] = {"test_acc": level, "compute_s": 12.0}
    return out


def test_recipe_is_chosen_on_validation_and_missing_selection_is_refused():
    assert set(selected(SC, _select("attack25")).values()) == {"attack25"}
    partial = {k: v for k, v in _select().items() if k != ("leaves", "plain")}
    with pytest.raises(RuntimeError, match="leaves"):
        selected(SC, partial)


def test_summary_has_the_headline_keys_and_paired_statistics():
    choice = selected(SC, _select("aug"))
    plan = final_plan(SC, choice)
    # share ablation {0, .25, .5} with and without mixup; the selected recipe is one of them
    assert sum(1 for k in plan if k[1] == "opengl") == 6 * 5
    assert {k[1] for k in plan} >= {"deepinversion", "dafl"}
    reports = {s: {"balance": {"relative_entropy": 0.99, "fallback_fraction": 0.1, "n": 100}}
               for s in SOURCES}
    reports["deepinversion"] = {"balance": {"compute_s": 30.0}}
    out = summarise(SC, choice, _finals(choice), _select("aug"), reports)
    cell = out["summary"]["opengl"]["aug"]
    assert {"mean", "ci95", "n_seeds", "pool_relative_entropy", "fallback_fraction"} <= set(cell)
    assert cell["mean"] == pytest.approx(100 * (0.85 + 0.004)) and cell["n_seeds"] == 5
    assert cell["selected_on_validation"] and not out["summary"]["opengl"]["attack25"][
        "selected_on_validation"]
    ratio = out["opengl_vs_target"]
    assert ratio["ratio_mean"] == pytest.approx(
        sum((0.85 + 0.002 * s) / (0.90 + 0.002 * s) for s in range(5)) / 5)
    assert ratio["met"] is False and ratio["n_seeds"] == 5
    by_recipe = out["opengl_recipes_vs_target"]
    assert set(by_recipe) == {"aug", "attack25", "attack50", "aug_nomix", "attack25_nomix",
                              "attack50_nomix"}
    assert by_recipe["attack25"]["ratio_mean"] == pytest.approx(
        sum((0.86 + 0.002 * s) / (0.90 + 0.002 * s) for s in range(5)) / 5)
    claims = {row["claim"]: row for row in out["ordering"]}
    assert claims["opengl ≥ leaves"]["diff_mean"] == pytest.approx(0.03)
    assert claims["opengl ≥ leaves"]["n_pairs"] == 5
    vs = out["boundary_ablation"]["vs_no_attack"]
    assert vs["attack25"]["diff_mean"] == pytest.approx(0.01)  # against aug (both with mixup)
    assert vs["attack50_nomix"]["diff_mean"] == pytest.approx(0.0)  # against aug_nomix
    assert set(vs) == {"attack25", "attack50", "attack25_nomix", "attack50_nomix"}
    b = out["baselines"]
    assert set(b) == {"deepinversion", "generator"}
    assert b["generator"]["compute_s"] == 12.0 and b["deepinversion"]["compute_s"] == 30.0
    assert b["deepinversion"]["n_seeds"] == 5 and "std" in b["generator"]
    assert b["generator"]["opengl_minus_this"]["diff_mean"] == pytest.approx(0.20)
    assert [r["source"] for r in out["table"]] == list(SOURCES)
    assert all("val_acc" in r and "test_acc" not in r for r in out["short_table"])
