"""Interoperability: rl-baselines3-zoo's own trainer and SB3's SubprocVecEnv."""

import json
import os
import subprocess
import sys
from pathlib import Path

from agents.train import main

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]


def test_rl_zoo3_train_runs_on_dynamic_ptq_with_our_hyperparameter_file(tmp_path):
    conf = Path(__file__).resolve().parents[2] / "agents" / "hyperparams" / "ppo.yml"
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env",
           "deploygym/DynamicPTQ-v0", "--gym-packages", "envs", "-conf", str(conf),
           "-n", "256", "-f", str(tmp_path),
           "--seed", "0", "--env-kwargs", "dataset:'digits'", "width:4", "epochs:8",
           "progress:False", "-params", "n_steps:128", "batch_size:64", "n_epochs:1",
           "--eval-freq", "-1", "--no-optim-plots"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "ppo").glob("deploygym-DynamicPTQ-v0_*"))
    assert len(runs) == 1, list(tmp_path.rglob("*"))
    assert (runs[0] / "deploygym-DynamicPTQ-v0.zip").exists()


def test_training_with_subproc_vec_env(tmp_path):
    folder = main(["--algo", "ppo", "--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV,
                   "-n", "64", "--seed", "0", "-f", str(tmp_path), "--n-envs", "2",
                   "--vec-env", "subproc", "--eval-freq", "0", "--save-freq", "0",
                   "--no-progress-bar", "-v", "0", "--hyperparams", "n_steps:32",
                   "batch_size:32", "n_epochs:1"])
    rec = json.loads((folder / "run.json").read_text())
    assert rec["vec_env"] == "subproc" and rec["result"]["num_timesteps"] == 64
    assert (folder / "model.zip").exists()
