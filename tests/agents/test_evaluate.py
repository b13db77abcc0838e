import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from agents import evaluate, train
from models.cli import run_cli

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]


def test_random_policy_evaluation_is_seeded_and_logged(tmp_path):
    argv = ["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV, "--random",
            "--episodes", "6", "--render-every", "3", "--no-progress", "--baselines", "none"]
    a = evaluate.main([*argv, "--out", str(tmp_path / "a")])
    b = evaluate.main([*argv, "--out", str(tmp_path / "b")])
    assert a["summary"] == b["summary"]
    for key in ("fp_correct", "q_correct", "mean_bits", "kl", "return"):
        assert a["summary"][key]["n"] == 6
    assert a["summary"]["mean_bits"]["mean"] >= 4.0 - 1e-6  # the env's default budget holds
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert saved["seed"] == 1_000_000 and "agents.evaluate" in saved["command"]
    assert (tmp_path / "a" / "mean_bits.png").exists() and (tmp_path / "a" / "bits.png").exists()
    # the run is named after algo, env and seed, not "tb"
    assert a["tensorboard"] == str(tmp_path / "a" / "random_DynamicPTQ-v0_eval1000000")
    acc = EventAccumulator(a["tensorboard"], size_guidance={"images": 0})
    acc.Reload()
    assert len(acc.Scalars("episode/q_correct")) == 6
    assert "hist/bits" in acc.Tags()["histograms"]
    assert len(acc.Images("frames/final")) == 2
    # render_mode given as an env kwarg replaces the default instead of clashing with it
    c = evaluate.main([*argv, "--env-kwargs", *TINY_ENV, "render_mode:null", "--out",
                       str(tmp_path / "c")])
    assert c["summary"] == a["summary"]
    acc = EventAccumulator(c["tensorboard"], size_guidance={"images": 0})
    acc.Reload()
    assert not acc.Tags()["images"]


def test_categorical_keys_are_counted_and_the_verdict_is_logged(tmp_path):
    rec = evaluate.main(["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV,
                         "--random", "--episodes", "8", "--render-every", "0", "--no-progress",
                         "--verdict-opts", "static_evals:10", "static_limit:30",
                         "--out", str(tmp_path)])
    assert rec["split"] == "test" and rec["env_kwargs"]["split"] == "test"  # held out
    for key in ("label", "fp_pred", "q_pred", "index"):
        s = rec["summary"][key]
        assert "mean" not in s and sum(s["counts"].values()) == 8, key
    assert rec["summary"]["q_correct"]["n"] == 8 and "mean" in rec["summary"]["q_correct"]
    v = rec["verdict"]
    assert v["metric"]["key"] == "drop" and v["split"] == "test" and v["episodes"] == 8
    names = ["uniform4", "random_budget", "greedy", "best_static"]
    assert list(v["baselines"]) == names
    for r in v["baselines"].values():
        assert r["verdict"] in ("beats", "does not beat", "not significant")
        assert r["gap"] == pytest.approx(v["agent"]["mean"] - r["mean"])
    assert json.loads((tmp_path / "summary.json").read_text())["verdict"]["baselines"] == \
        json.loads(json.dumps(v["baselines"]))
    acc = EventAccumulator(rec["tensorboard"], size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    assert "episode/label" not in acc.Tags()["scalars"]  # a class is not an amount
    layout = layout_pb2.Layout()
    layout.ParseFromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["drop: running mean over episodes, agent vs baselines (higher is better)"] \
        == ["^verdict/drop/mean/"]
    for name in ("agent", *names):
        assert len(acc.Scalars(f"verdict/drop/mean/{name}")) == 8
    assert acc.Scalars("verdict/drop/mean/agent")[-1].value == pytest.approx(v["agent"]["mean"])
    data = plugin_data_pb2.HParamsPluginData()
    data.ParseFromString(acc.PluginTagToContent("hparams")["_hparams_/experiment"])
    metrics = {m.name.tag for m in data.experiment.metric_infos}
    assert metrics == {"verdict/drop/mean/agent", *{f"verdict/drop/mean/{n}" for n in names},
                       *{f"verdict/drop/gap/{n}" for n in names}}


def test_saved_agent_evaluation(tmp_path):
    folder = train.main(["--env-kwargs", *TINY_ENV, "-n", "64", "-f", str(tmp_path),
                         "--n-envs", "2", "--vec-env", "dummy", "--eval-freq", "0",
                         "--save-freq", "0", "--no-progress-bar", "-v", "0",
                         "--hyperparams", "n_steps:32", "batch_size:32", "n_epochs:1"])
    common = ["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV, "--episodes", "4",
              "--render-every", "0", "--no-progress", "--baselines", "none"]
    rec = evaluate.main([*common, "--agent", str(folder), "--out", str(tmp_path / "ev")])
    assert rec["summary"]["q_correct"]["n"] == 4
    # the pickle-free policy and the SB3 .zip are the same agent
    zipped = evaluate.main([*common, "--agent", str(folder / "model.zip"), "--trust-zip",
                            "--out", str(tmp_path / "ev-zip")])
    assert zipped["summary"] == rec["summary"]
    with pytest.raises(ValueError, match="can run code"):
        evaluate.main([*common, "--agent", str(folder / "model.zip")])
    with pytest.raises(FileNotFoundError, match="no such file"):
        evaluate.main(["--env", "deploygym/DynamicPTQ-v0", "--agent", str(tmp_path / "nope")])


def test_evaluate_pair_reproduces_its_committed_row(tmp_path):
    from agents.pairs import main as pairs_main

    pairs_main(["--dataset", "digits", "--model-kw", "width:4", "epochs:8", "--n-envs", "8",
                "--policy-steps", "64", "--round-eval", "50", "--rounds", "1", "--net-steps", "3",
                "--no-progress", "--out", str(tmp_path / "pair")])
    rec = evaluate.main(["--pair", str(tmp_path / "pair"), "--episodes", "2", "--render-every",
                         "0", "--no-progress", "--hook-opts", "baselines:false",
                         "--verdict-opts", "static_evals:10", "static_limit:30",
                         "--out", str(tmp_path / "ev")])
    rep = rec["analysis"]["pair_reproduction"]
    assert rep["exact"] and {"fp_acc", "dptq_acc", "drop", "distinct_plans"} <= set(rep["keys"])
    assert rep["measured"]["n"] == 359  # the whole digits test split
    # the verdict's baselines ran on the pair's own network, on the held-out split
    assert rec["split"] == "test" and set(rec["verdict"]["baselines"]) >= {"greedy", "best_static"}


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    """A (barely) trained PPO agent of the joint variant, with its run.json."""
    return train.main(["--env", "deploygym/DynamicPTQJoint-v0", "--env-kwargs", *TINY_ENV,
                       "-n", "64", "-f", str(tmp_path_factory.mktemp("joint")), "--n-envs", "2",
                       "--eval-freq", "0", "--save-freq", "0", "--no-progress-bar", "-v", "0",
                       "--hyperparams", "n_steps:32", "batch_size:32", "n_epochs:1"])


def test_agent_is_evaluated_on_its_runs_variant_with_the_analysis(joint_run, tmp_path):
    """No --env: the id and options come from run.json; the whole-split analysis builds the
    joint env too (it used to build the sequential one and fail on the observation shape)."""
    rec = evaluate.main(["--agent", str(joint_run), "--episodes", "3", "--render-every", "0",
                         "--no-progress", "--baselines", "none", "--analysis", "on",
                         "--hook-opts", "limit:30", "baselines:false", "--out", str(tmp_path)])
    assert rec["env"] == "deploygym/DynamicPTQJoint-v0" and rec["algo"] == "ppo"
    assert rec["env_kwargs"]["epochs"] == 8 and rec["split"] == "test"
    assert rec["device"] == "cpu" and rec["env_kwargs"]["device"] == "cpu"
    assert rec["analysis"]["ptq_analysis"]["policy"]["n"] == 30
    assert rec["tensorboard"].endswith("ppo_DynamicPTQJoint-v0_seed0_eval1000000")


def test_agent_run_options_are_refused_unless_overridden(joint_run, tmp_path, capsys):
    common = ["--agent", str(joint_run), "--episodes", "2", "--render-every", "0",
              "--no-progress", "--baselines", "none"]
    for bad in (["--env-kwargs", "budget_bits:5"], ["--env", "deploygym/DynamicPTQRobustJoint-v0"],
                ["--algo", "a2c"]):
        with pytest.raises(SystemExit) as e:
            run_cli(evaluate.main, [*common, *bad, "--out", str(tmp_path / "no")])
        assert e.value.code == 2
        assert "contradicts the run's run.json" in capsys.readouterr().err
    rec = evaluate.main([*common, "--env-kwargs", "budget_bits:5", "--override",
                         "--out", str(tmp_path / "yes")])
    assert rec["run_overrides"]["env_kwargs"]["now"]["budget_bits"] == 5
    assert rec["summary"]["mean_bits"]["min"] >= 5 - 1e-9  # the overridden budget holds
    # evaluation-only options are not run options: no --override needed
    rec = evaluate.main([*common, "--env-kwargs", "split:val", "render_mode:null",
                         "--out", str(tmp_path / "val")])
    assert rec["split"] == "val" and rec["run_overrides"] == {}
