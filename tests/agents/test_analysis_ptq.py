"""The DynamicPTQ analysis hook of agents.evaluate."""

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.analysis.hooks import HookContext, find_hooks, register_hook, run_hooks
from agents.evaluate import main

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]


def test_hook_registry_matches_by_prefix(tmp_path):
    register_hook("deploygym/NoSuchEnv", lambda ctx: {"ok": ctx.env_id}, name="probe")
    assert [n for n, _ in find_hooks("deploygym/NoSuchEnv-v0")] == ["probe"]
    assert "probe" not in [n for n, _ in find_hooks("deploygym/DynamicPTQ-v0")]
    assert "ptq_analysis" in [n for n, _ in find_hooks("deploygym/DynamicPTQ-v0")]
    res = run_hooks(HookContext("deploygym/NoSuchEnv-v0", {}, None, tmp_path))
    assert res == {"probe": {"ok": "deploygym/NoSuchEnv-v0"}}


def test_evaluate_runs_ptq_analysis(tmp_path):
    out = tmp_path / "eval"
    rec = main(["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV, "--random",
                "--episodes", "3", "--render-every", "0", "--out", str(out), "--no-progress",
                "--analysis", "on", "--hook-opts", "limit:120", "greedy_limit:20",
                "--baselines", "none"])
    a = rec["analysis"]["ptq_analysis"]
    pol = a["policy"]
    assert pol["n"] == 120 and abs(pol["drop"] - (pol["fp_acc"] - pol["dptq_acc"])) < 1e-9
    assert len(a["per_class_drop"]) == 10
    hist = a["layer_bits_hist"]
    assert len(hist) == len(a["layer_names"]) and all(sum(r) == 120 for r in hist)
    assert {"uniform4", "uniform8", "random_budget", "greedy"} <= set(a["baselines"])
    assert a["baselines"]["uniform8"]["mean_bits"] == 8.0
    v = a["vulnerability"]
    assert len(v["layer_recovery_points"]) == len(a["layer_names"])
    assert {"failing", "surviving"} == set(v["inputs"])
    for png in a["plots"]:
        assert (out / png).exists()
    assert "per_class_drop.png" in a["plots"] and "layer_bits.png" in a["plots"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["analysis"]["ptq_analysis"]["policy"] == pol
    tb = EventAccumulator(rec["tensorboard"], size_guidance={"histograms": 0, "images": 0,
                                                             "tensors": 0})
    tb.Reload()
    # one table instead of a single-point chart per number
    assert not [t for t in tb.Tags()["scalars"] if t.startswith("analysis/")]
    table = tb.Tensors("analysis/ptq/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"| policy | {pol['fp_acc']:.4g} |" in table and "| greedy |" in table
    assert any(t.startswith("analysis/bits/") for t in tb.Tags()["histograms"])
    assert "analysis/worst_failures" in tb.Tags()["images"] or not a["vulnerability"][
        "inputs"]["failing"]["n"]


def test_uniform_baselines_are_feasible_under_a_maximum_budget(tmp_path):
    """Robust reward caps mean bits: uniform 8 would be repaired down to the budget, so the
    baselines are uniform at the budget and at the lowest bits, each with its own mean bits."""
    rec = main(["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV, "reward:robust",
                "--random", "--episodes", "2", "--render-every", "0", "--out", str(tmp_path),
                "--no-progress", "--analysis", "on", "--hook-opts", "limit:60", "greedy_limit:10",
                "--baselines", "none"])
    base = rec["analysis"]["ptq_analysis"]["baselines"]
    uniform = {k: v for k, v in base.items() if k.startswith("uniform")}
    assert set(uniform) == {"uniform2", "uniform4"}
    assert [uniform[k]["mean_bits"] for k in ("uniform2", "uniform4")] == [2.0, 4.0]
