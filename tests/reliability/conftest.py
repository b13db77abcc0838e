"""Small real artifacts of every kind the suite reads, made once for the reliability tests: a
pair folder (with its resume checkpoint) and an attacker naming it, a pickle-free agent, a
models.train run, a sweep folder and a trial result."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import pytest
from stable_baselines3 import PPO

from agents.pairs.artifact import save_pair
from agents.pairs.trainer import PairArgs, PairTrainer
from agents.policy_io import save_policy
from agents.sweep.config import parse_config
from agents.sweep.run import prepare
from models.io import atomic_write_json
from models.train import TrainConfig, train

TINY_TRAIN = dict(dataset="digits", arch="cnn", width=4, epochs=1, progress=False)


@dataclass
class Artifacts:
    root: Path
    trainer: PairTrainer  # its out folder is ``pair``; its save() wrote pair.pt there
    pair: Path
    attack: Path  # net_source: ../<pair>
    agent: Path
    run: Path  # a finished models.train run (last.pt, best.pt)
    sweep: Path  # a sweep folder (sweep.json)
    trial: Path  # a trial folder with result.json


def cartpole_agent(folder: Path) -> Path:
    """A pickle-free PPO agent on CartPole (no training) in ``folder``."""
    model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=16, batch_size=16, seed=0,
                device="cpu")
    save_policy(model, "ppo", folder)
    return folder


def make_artifacts(root: Path) -> Artifacts:
    args = PairArgs(dataset="digits", model_kw=["width:4", "epochs:1"], n_envs=2,
                    policy_steps=16, env_subset=64, progress=False, out=str(root / "det"))
    trainer = PairTrainer(args)
    trainer.save()
    record = {**trainer.record(None), "net_source": "../det"}
    save_pair(root / "attack", record, trainer.policy, None)
    agent = cartpole_agent(root / "agent")
    run = root / "run"
    train(TrainConfig(**TINY_TRAIN, run_dir=str(run)))
    raw = {"name": "sw", "target": "models.train", "options": {"dataset": "digits"},
           "grid": {"lr": [0.05]}}
    cfg = parse_config(raw, "sw.yaml")
    prepare(cfg, raw, root / "sweep", False, "local", "python -m agents.sweep sw.yaml")
    trial = root / "sweep" / "trials" / cfg.trials()[0].trial_id
    atomic_write_json({**cfg.trials()[0].to_dict(), "status": "ok",
                       "metrics": {"test_acc": 0.5}}, trial / "result.json")
    return Artifacts(root, trainer, root / "det", root / "attack", agent, run, root / "sweep",
                     trial)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Artifacts:
    return make_artifacts(tmp_path_factory.mktemp("artifacts"))


def sweep_args(config: Path) -> argparse.Namespace:
    """The parsed arguments of ``python -m agents.sweep CONFIG``."""
    from agents.sweep.run import parse_args

    return parse_args([str(config)])
