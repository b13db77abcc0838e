"""benchmarks/bn_init_budget.py: the sweep file is the benchmark's plan, and the summary is a
function of the trial files alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bn_init_budget as bench  # noqa: E402

from agents.sweep.config import load_config  # noqa: E402
from agents.sweep.targets import get_target  # noqa: E402


def test_sweep_file_trials_are_the_benchmark_plan():
    cfg = load_config(ROOT / "sweeps" / "bn_init_budget.yaml")
    trials = cfg.trials()
    got = [(t.options["epochs"], t.options["variant"], t.seed) for t in trials]
    want = bench.plan(bench.SCALES["default"])
    assert len(got) == len(set(got)) and set(got) == set(want)
    head = [t for t in want if t[0] == max(bench.SCALES["default"]["ladder"])]
    assert {s for _, v, s in head if v == "revisited"} == set(range(15))
    # each trial's command is one training of the benchmark, written where the summary reads it
    argv = get_target(cfg.target).command(trials[0].options, trials[0].seed, Path("/tmp/t"), None)
    args = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    e, v, s = got[0]
    assert argv[0].endswith("bn_init_budget.py") and args["--epochs"] == str(e)
    assert args["--variant"] == v and args["--seeds"] == str(s)


def test_smoke_run_summary_rederived_from_trial_files(tmp_path):
    trials, res = tmp_path / "trials", tmp_path / "results"
    common = ["--scale", "smoke", "--trials-dir", str(trials), "--runs", str(tmp_path / "runs"),
              "--no-progress"]
    # one sweep-style trial first: its file is reused, not retrained, by the full run
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = bench.main([*common, "--epochs", "2", "--variant", "revisited", "--seeds", "1",
                          "--results-dir", str(tmp_path / "trial")])
        assert torch.get_num_threads() == 2  # the trial's one thread is not left behind
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "trial" / "bn_init_budget_trial.json").exists()
    first = (trials / "e2-revisited-s1.json").read_text()
    rec = bench.main([*common, "--results-dir", str(res)])
    assert (trials / "e2-revisited-s1.json").read_text() == first
    assert one["test_acc"] == json.loads(first)["test_acc"]
    plan = bench.plan(bench.SCALES["smoke"])
    assert sorted(p.stem for p in trials.glob("*.json")) == sorted(bench.trial_name(*t) for t in plan)
    assert rec["missing_trials"] == [] and rec["headline"]["complete"]
    assert rec["headline"]["n_seeds"] == 3 and set(rec["ladder"]) == {"2", "6"}
    assert set(rec["ablation"]["variants"]) == set(bench.ABLATION)
    # the summary is a function of the trial files: a second derivation gives the same keys
    again = bench.main([*common, "--results-dir", str(tmp_path / "again"), "--summarise"])
    for key in ("ladder", "ablation", "headline"):
        assert again[key] == rec[key]
    # and it follows the files: change one accuracy, the rung moves by that / n
    f = trials / "e6-revisited-s0.json"
    t = json.loads(f.read_text())
    t["test_acc"] += 0.2
    f.write_text(json.dumps(t))
    moved = bench.main([*common, "--results-dir", str(tmp_path / "moved"), "--summarise"])
    n = rec["ladder"]["6"]["n_seeds"]
    assert moved["ladder"]["6"]["diff_mean"] == pytest.approx(
        rec["ladder"]["6"]["diff_mean"] + 0.2 / n)
    # a trial file of another configuration is refused, not silently reused
    t["config"]["lr"] = 1.0
    f.write_text(json.dumps(t))
    with pytest.raises(ValueError, match="another configuration"):
        bench.main([*common, "--results-dir", str(res), "--stage", "ladder"])
