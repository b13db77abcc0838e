"""``benchmarks/sensor_placement.py --scale smoke``: every method (the agent's greedy and
best-of-n layouts included) in summary[field][K], the agent's statistics against each, and
stages that resume instead of redoing finished runs."""

from __future__ import annotations

import json

import torch

from benchmarks import sensor_placement as sp


def test_smoke_run_summarises_every_method_and_resumes(tmp_path):
    argv = ["--scale", "smoke", "--results-dir", str(tmp_path / "res"),
            "--runs-dir", str(tmp_path / "runs")]
    threads = torch.get_num_threads()
    out = sp.main(argv)
    assert torch.get_num_threads() == threads  # the evaluation's one thread is given back
    cell = out["summary"]["coads-sst"]["2"]
    for m in ("ppo", "ppo_sampled", "qr", "det_greedy", "greedy", "annealing", "random",
              "oracle_search"):
        assert cell[m]["rel_l2"] > 0, m
    assert cell["random"]["n"] == 10 and cell["ppo"]["steps"] == [64]
    assert cell["ppo_sampled"]["evaluations"] == 8  # the smoke scale's samples
    assert cell["oracle_best"]["rel_l2"] <= min(cell[m]["rel_l2"] for m in sp.METHODS)
    for agent in ("ppo", "ppo_sampled"):
        assert set(cell[f"{agent}_rl"]) >= {"iqm", "iqm_ci95"}
        assert all(f"p_{agent}_lt_{m}" in cell for m in ("random", "qr", "det_greedy",
                                                         "greedy", "annealing"))
        assert {f"{agent}_beats_random_p05", f"{agent}_beats_qr_p05",
                f"{agent}_within_5pct_of_best_non_learned",
                f"{agent}_beats_best_non_learned"} <= set(cell["targets"])
    assert out["summary"]["coads-sst"]["3"]["role"].startswith("generalisation")
    assert (tmp_path / "res" / "sensor_placement_smoke.png").exists()
    files = tmp_path / "res" / "sensor_placement_smoke"
    stamps = {p.name: p.stat().st_mtime_ns for p in files.glob("baselines-*.json")}
    again = sp.main([*argv, "--stage", "baselines"])
    assert again is None
    assert stamps == {p.name: p.stat().st_mtime_ns for p in files.glob("baselines-*.json")}
    # the committed-file check: the summary is a function of the stored per-layout errors
    rec = json.loads((tmp_path / "res" / "sensor_placement_smoke.json").read_text())
    assert sp.summary(rec["results"])["coads-sst"]["2"]["ppo"] == cell["ppo"]
