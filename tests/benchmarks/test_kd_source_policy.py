"""The DistillSource benchmark reuses a finished PPO run only when everything matches."""

from __future__ import annotations

import json
from pathlib import Path

from agents.zoo_hyperparams import load_hyperparams
from benchmarks.kd_source_policy import finished_ppo_run

ENV = "deploygym/DistillSourceMixture-v0"


def _fake_run(root: Path, k: int, **changes) -> Path:
    run = root / "ppo" / f"DistillSourceMixture-v0_{k}"
    run.mkdir(parents=True)
    rec = {"env": ENV, "env_kwargs": {"phases": 4}, "seed": 0, "n_timesteps": 80,
           "resumed_from": None, "result": {"num_timesteps": 80},
           "hyperparams": load_hyperparams("ppo", ENV, overrides={"ent_coef": 0.01})}
    rec.update(changes)
    (run / "run.json").write_text(json.dumps(rec))
    (run / "model.zip").write_bytes(b"")
    return run


def test_finished_ppo_run_matches_env_options_seed_steps_and_hyperparams(tmp_path):
    args = (ENV, {"phases": 4}, 80, 0, tmp_path, ["ent_coef:1e-2"])
    assert finished_ppo_run(*args) is None
    _fake_run(tmp_path, 1, seed=1)
    _fake_run(tmp_path, 2, env_kwargs={"phases": 5})
    _fake_run(tmp_path, 3, result={"num_timesteps": 40})  # killed before the end
    _fake_run(tmp_path, 4, hyperparams=load_hyperparams("ppo", ENV))
    _fake_run(tmp_path, 5, resumed_from="x/model.zip")
    assert finished_ppo_run(*args) is None
    good = _fake_run(tmp_path, 6)
    assert finished_ppo_run(*args) == good
    (good / "model.zip").unlink()
    assert finished_ppo_run(*args) is None
