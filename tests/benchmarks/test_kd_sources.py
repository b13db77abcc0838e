"""The kd_sources benchmark's checks: P2's ordering per attack recipe, OpenGL vs the best target."""

from __future__ import annotations

from benchmarks.kd_sources import SOURCES, ordering_checks


def _rows(recipe: str, acc: dict[str, float]) -> list[dict]:
    return [{"source": s, "recipe": recipe, "test_acc_mean": a} for s, a in acc.items()]


FULL = {"target": 0.86, "digits": 0.75, "photos": 0.77, "opengl": 0.79, "leaves": 0.76,
        "fractals": 0.74, "noise": 0.55}
NOMIX = {**FULL, "target": 0.88, "opengl": 0.84, "leaves": 0.80}


def test_opengl_is_judged_by_its_best_attack_recipe_against_the_best_target_row():
    rows = _rows("full", FULL) + _rows("nomix", NOMIX) + [
        {"source": "target", "recipe": "plain", "test_acc_mean": 0.92}]
    c = ordering_checks(rows)
    assert c["opengl_best_attack_recipe"] == "nomix"
    assert c["opengl_best_vs_best_target"] == 0.84 / 0.92
    assert c["opengl_reaches_90pct_of_target"] is True
    assert c["full"]["opengl_vs_best_target"] == 0.79 / 0.92
    assert c["full"]["p2_ordering"] == {"target ≥ OOD real": True, "OOD real ≥ opengl": False,
                                        "opengl > leaves": True, "leaves > noise": True}
    assert c["nomix"]["opengl_vs_target_same_recipe"] == 0.84 / 0.88
    rows[-1]["test_acc_mean"] = 0.95  # 0.84 / 0.95 < 0.9
    assert ordering_checks(rows)["opengl_reaches_90pct_of_target"] is False


def test_a_recipe_run_on_only_some_sources_gets_no_ordering():
    rows = _rows("full", FULL) + _rows("nomix", {s: NOMIX[s] for s in ("target", "opengl")})
    c = ordering_checks(rows)
    assert "full" in c and "nomix" not in c
    assert c["opengl_best_attack_recipe"] == "nomix"
    assert set(FULL) == set(SOURCES)
