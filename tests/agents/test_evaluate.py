import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import evaluate, train

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]


def test_random_policy_evaluation_is_seeded_and_logged(tmp_path):
    argv = ["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV, "--random",
            "--episodes", "6", "--render-every", "3", "--no-progress"]
    a = evaluate.main([*argv, "--out", str(tmp_path / "a")])
    b = evaluate.main([*argv, "--out", str(tmp_path / "b")])
    assert a["summary"] == b["summary"]
    for key in ("fp_correct", "q_correct", "mean_bits", "kl", "return"):
        assert a["summary"][key]["n"] == 6
    assert a["summary"]["mean_bits"]["mean"] >= 4.0 - 1e-6  # the env's default budget holds
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert saved["seed"] == 1_000_000 and "agents.evaluate" in saved["command"]
    assert (tmp_path / "a" / "mean_bits.png").exists() and (tmp_path / "a" / "bits.png").exists()
    acc = EventAccumulator(str(tmp_path / "a" / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert len(acc.Scalars("episode/q_correct")) == 6
    assert "hist/bits" in acc.Tags()["histograms"]
    assert len(acc.Images("frames/final")) == 2
    # render_mode given as an env kwarg replaces the default instead of clashing with it
    c = evaluate.main([*argv, "--env-kwargs", *TINY_ENV, "render_mode:null", "--out",
                       str(tmp_path / "c")])
    assert c["summary"] == a["summary"]
    acc = EventAccumulator(str(tmp_path / "c" / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert not acc.Tags()["images"]


def test_saved_agent_evaluation(tmp_path):
    folder = train.main(["--env-kwargs", *TINY_ENV, "-n", "64", "-f", str(tmp_path),
                         "--n-envs", "2", "--vec-env", "dummy", "--eval-freq", "0",
                         "--save-freq", "0", "--no-progress-bar", "-v", "0",
                         "--hyperparams", "n_steps:32", "batch_size:32", "n_epochs:1"])
    common = ["--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV, "--episodes", "4",
              "--render-every", "0", "--no-progress"]
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
                         "--out", str(tmp_path / "ev")])
    rep = rec["analysis"]["pair_reproduction"]
    assert rep["exact"] and {"fp_acc", "dptq_acc", "drop", "distinct_plans"} <= set(rep["keys"])
    assert rep["measured"]["n"] == 359  # the whole digits test split
