"""benchmarks/fields_regimes.py at a tiny scale: the summary's shape, p-values against gappy
POD, and per-run files that a second call reuses instead of re-running."""

from __future__ import annotations

import json

import pytest

from benchmarks import fields_regimes as fr


@pytest.fixture
def tiny(monkeypatch):
    scale = fr.SCALES["smoke"] | {"ks": [4], "conditions": ["0", "0.05+drop0.25"]}
    monkeypatch.setitem(fr.SCALES, "smoke", scale)
    return scale


def test_map_has_every_method_and_runs_are_resumed(tiny, tmp_path) -> None:
    argv = ["--scale", "smoke", "--fields", "cylinder", "--no-solver", "--workers", "1",
            "--results-dir", str(tmp_path)]
    out = fr.main(argv)
    fixed = out["summary"]["cylinder"]["fixed"]["K4"]
    unseen = out["summary"]["cylinder"]["unseen"]["K4"]
    assert set(fixed) == {"0", "0.05+drop0.25"}
    cell = fixed["0.05+drop0.25"]
    for m in ("gappy_pod", "qr_gappy_pod", "shallow_decoder", "ridge_linear", "cnn_faithful",
              "cnn_improved"):
        assert len(cell[m]["per_seed"]) == 2, m
    assert "shallow_decoder" not in unseen["0"]  # a fixed-layout method only
    assert "p_vs_gappy_pod" in cell["cnn_improved"] and "p_vs_gappy_pod" not in cell["gappy_pod"]
    assert cell["best_learned"] in ("shallow_decoder", "cnn_faithful", "cnn_improved")
    assert out["runs_done"] == out["runs_total"] == len(fr.jobs(tiny, ["cylinder"]))
    assert out["pod_energy_modes"]["cylinder"]["0.9"] <= out["pod_energy_modes"]["cylinder"]["0.99"]
    cnn_runs = [k for k, v in out["training"].items() if "best_epoch" in v]
    assert cnn_runs and all(out["training"][k]["best_epoch"] <= out["training"][k]["epochs_run"]
                            for k in cnn_runs)
    files = sorted((tmp_path / "fields_regimes_smoke").rglob("*-s*.json"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = fr.main(argv)  # every run is reused from its file
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    assert json.dumps(again["summary"]) == json.dumps(out["summary"])
    assert (tmp_path / "fields_regimes_smoke.png").exists()


def test_long_scale_reruns_exactly_the_cnns_that_reached_their_epoch_cap(tmp_path) -> None:
    todo = fr.jobs(fr.SCALES["long"], ["cylinder"])
    cnn = [j for j in todo if j["method"].startswith("cnn")][:4]
    other = next(j for j in todo if not j["method"].startswith("cnn"))
    notes = [{"best_epoch": 52, "epochs_run": 60, "stopped_early": False},   # at the cap
             {"best_epoch": 20, "epochs_run": 30, "stopped_early": True},    # converged
             {"best_epoch": 60, "epochs_run": 60, "stopped_early": False}]   # best = last
    for job, note in zip(cnn[:3], notes, strict=True):  # cnn[3] has no run file yet
        path = fr.run_path(tmp_path, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"training": note}))
    fr.run_path(tmp_path, other).write_text(json.dumps({"training": {"0": {"best_epoch": 0}}}))
    assert fr.capped(tmp_path, todo) == [cnn[2], cnn[0]]


def test_rerun_changes_compare_each_finished_rerun_with_its_capped_run(tmp_path) -> None:
    job = next(j for j in fr.jobs(fr.SCALES["long"], ["cylinder"]) if j["method"] == "cnn-faithful")
    unrun = {**job, "seed": 99}
    for root, best, runs, err in ((tmp_path / "cap", 60, 60, 0.10), (tmp_path / "long", 81, 91, 0.08)):
        path = fr.run_path(root, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        test = {"8": {"cnn_faithful": {"0": err, "0.05": 1.0}},
                "16": {"cnn_faithful": {"0": err / 2, "0.05": 1.0}}}
        path.write_text(json.dumps({"test": test, "training": {
            "best_epoch": best, "epochs_run": runs, "stopped_early": root.name == "long"}}))
    out = fr.rerun_changes(tmp_path / "cap", tmp_path / "long", [job, unrun])
    (key, row), = out.items()
    assert key == f"cylinder/{fr.run_path(tmp_path, job).stem}"
    assert row["cap"] == {"best_epoch": 60, "epochs_run": 60, "stopped_early": False,
                          "test_noise0": pytest.approx(0.075)}
    assert row["long"]["best_epoch"] == 81 and row["long"]["test_noise0"] == pytest.approx(0.06)
    assert row["test_change"] == pytest.approx(-0.2)
