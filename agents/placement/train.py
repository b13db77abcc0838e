"""Resumable MaskablePPO training of the grid placement policy on the batched gappy-POD env.

Training runs in chunks of whole rollouts. After each chunk the run folder gets, atomically,
a checkpoint (``ckpt/``: SB3's ``model.zip`` with the optimizer and the last observations, the
env's episode state and generators, the global torch/numpy/python random states) and a point of
the learning curve: the deterministic policy's gappy-POD error on the **validation** block at
each ``eval_k`` (logged to TensorBoard under ``eval/`` and kept in ``curve.json``). Calling
:func:`train_placement` again with the same configuration continues from the checkpoint, and
the continued run has exactly the parameters of an uninterrupted one.

    python -m agents.placement.train --out runs/placement/s0 --seed 0 --steps 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecMonitor

from agents.placement.place import validation_errors
from agents.placement.policy import GridPolicy
from agents.placement.vec import PlacementVecEnv
from fields.pretrained import FieldBlocks
from models.cli import run_cli
from models.device import intra_op_threads
from models.io import atomic_write_json, provenance


@dataclass
class PlacementTrainConfig:
    """What a placement training run trains with (all but ``total_steps`` must match to
    resume)."""

    dataset: str = "cylinder"
    k_range: tuple[int, int] = (4, 16)
    n_envs: int = 32
    batch: int = 8  # training snapshots per episode
    seed: int = 0
    total_steps: int = 1_000_000
    chunk_rollouts: int = 10  # rollouts between checkpoints / curve points
    n_steps: int = 64
    batch_size: int = 512
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    channels: int = 16
    scales: tuple[int, ...] = (3, 7, 15)
    eval_k: tuple[int, ...] = (8, 16)
    threads: int = 1
    model: dict[str, Any] = field(default_factory=dict)  # data options of get_blocks

    @property
    def chunk(self) -> int:
        return self.chunk_rollouts * self.n_steps * self.n_envs

    def key(self) -> dict[str, Any]:
        return {k: v for k, v in json.loads(json.dumps(asdict(self))).items()
                if k not in ("total_steps", "threads")}


def _env(cfg: PlacementTrainConfig, blocks: FieldBlocks | None) -> VecMonitor:
    venv = PlacementVecEnv(cfg.n_envs, dataset=cfg.dataset, n_sensors=tuple(cfg.k_range),
                           split="train", batch=cfg.batch, blocks=blocks, model=cfg.model)
    venv.seed(cfg.seed)
    return VecMonitor(venv)


def _new_model(cfg: PlacementTrainConfig, env: VecMonitor, tb: Path) -> MaskablePPO:
    set_random_seed(cfg.seed)
    grid = env.venv.core.grid.shape
    kw = {"features_extractor_kwargs": {"grid": grid, "channels": cfg.channels,
                                        "scales": tuple(cfg.scales)}}
    return MaskablePPO(GridPolicy, env, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                       n_epochs=cfg.n_epochs, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
                       gae_lambda=cfg.gae_lambda, ent_coef=cfg.ent_coef, seed=cfg.seed,
                       policy_kwargs=kw, tensorboard_log=str(tb), device="cpu", verbose=0)


def _save(model: MaskablePPO, env: VecMonitor, curve: list[dict[str, Any]], out: Path) -> None:
    """Checkpoint into ``out/ckpt`` (written to a temporary folder, then swapped in)."""
    tmp, ckpt, old = out / "ckpt.tmp", out / "ckpt", out / "ckpt.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.zip")
    core = env.venv.core.get_state()
    np.savez(tmp / "env.npz", **core["arrays"], mon_returns=env.episode_returns,
             mon_lengths=env.episode_lengths)
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - SB3 shuffles with it
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    state = {"num_timesteps": model.num_timesteps, "rngs": core["rngs"], "numpy": np_state,
             "python": random.getstate(), "torch": torch.get_rng_state().tolist(),
             "episode_count": env.episode_count, "curve": curve}
    (tmp / "state.json").write_text(json.dumps(state))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if ckpt.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _load(cfg: PlacementTrainConfig, env: VecMonitor, out: Path
          ) -> tuple[MaskablePPO, list[dict[str, Any]]]:
    ckpt = out / "ckpt" if (out / "ckpt").exists() else out / "ckpt.old"
    model = MaskablePPO.load(ckpt / "model.zip", env=env, device="cpu", force_reset=False,
                             tensorboard_log=str(out / "tb"))
    state = json.loads((ckpt / "state.json").read_text())
    with np.load(ckpt / "env.npz") as z:
        arrays = {k: z[k] for k in z.files}
    env.episode_returns, env.episode_lengths = arrays.pop("mon_returns"), arrays.pop(
        "mon_lengths")
    env.episode_count = state["episode_count"]
    env.venv.core.set_state({"arrays": arrays, "rngs": state["rngs"]})
    np_state = state["numpy"]
    np_state["state"]["key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(np_state)  # noqa: NPY002 - SB3 shuffles minibatches with it
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    return model, state["curve"]


def train_placement(cfg: PlacementTrainConfig, out: str | Path,
                    blocks: FieldBlocks | None = None, progress: bool = False) -> dict[str, Any]:
    """Train (or continue) to ``cfg.total_steps`` on ``cfg.threads`` intra-op threads (the
    caller's count is restored after); returns the run summary (``run.json``)."""
    with intra_op_threads(cfg.threads):
        return _train(cfg, Path(out), blocks, progress)


def _train(cfg: PlacementTrainConfig, out: Path, blocks: FieldBlocks | None,
           progress: bool) -> dict[str, Any]:
    if cfg.total_steps % cfg.chunk:
        raise ValueError(f"total_steps {cfg.total_steps} must be a multiple of the chunk "
                         f"{cfg.chunk} (chunk_rollouts · n_steps · n_envs)")
    cfg_file = out / "config.json"
    env = _env(cfg, blocks)
    if (out / "ckpt").exists() or (out / "ckpt.old").exists():
        saved = json.loads(cfg_file.read_text())
        if saved != cfg.key():
            diff = sorted(k for k in saved if saved.get(k) != cfg.key().get(k))
            raise ValueError(f"{out} holds a run with other options ({diff}); use another "
                             f"folder to start a new run")
        model, curve = _load(cfg, env, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cfg.key(), cfg_file)
        model, curve = _new_model(cfg, env, out / "tb"), []
    core = env.venv.core
    while model.num_timesteps < cfg.total_steps:
        model.learn(cfg.chunk, reset_num_timesteps=False, tb_log_name="PPO",
                    progress_bar=progress)
        point = {"steps": model.num_timesteps,
                 **{f"val_rel_l2_k{k}": e for k, e in validation_errors(
                     model.policy, core.blocks, cfg.eval_k).items()}}
        for key, v in point.items():
            if key != "steps":
                model.logger.record(f"eval/{key}", v)
        model.logger.dump(model.num_timesteps)
        curve.append(point)
        _save(model, env, curve, out)
        if progress:
            print(json.dumps(point), flush=True)
    summary = {"config": asdict(cfg), "num_timesteps": model.num_timesteps, "curve": curve,
               **provenance(cfg.seed)}
    atomic_write_json(summary, out / "run.json")
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m agents.placement.train",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="run folder (a rerun continues it)")
    p.add_argument("--dataset", default="cylinder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=PlacementTrainConfig.total_steps)
    p.add_argument("--k-range", type=int, nargs=2, default=list(PlacementTrainConfig.k_range))
    p.add_argument("--n-envs", type=int, default=PlacementTrainConfig.n_envs)
    args = p.parse_args(argv)
    cfg = PlacementTrainConfig(dataset=args.dataset, seed=args.seed, total_steps=args.steps,
                               k_range=tuple(args.k_range), n_envs=args.n_envs)
    return train_placement(cfg, args.out, progress=True)


if __name__ == "__main__":
    run_cli(main, prog="python -m agents.placement.train")
