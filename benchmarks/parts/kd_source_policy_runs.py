"""The runs of ``benchmarks/kd_source_policy.py``: evaluation episodes and PPO trainings.

A killed benchmark loses neither: every finished evaluation episode is saved as it arrives
and reused (:func:`run_policy`), a finished ``agents.train`` run with the same env, env
options, seed, step count, number of envs and hyperparameters is reused, and a killed one
continues from its last checkpoint (:func:`train_ppo`). The training cost is read from the
run's TensorBoard times, so a paused or resumed run is charged its updates only.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from models.io import atomic_write_json

SCHEMA = 4  # 4: episodes cached one by one; summary with paired tests
EVAL_SEED_BASE = 100_000  # evaluation episodes never reuse a training seed


FINAL_KEYS = ("final_accuracy", "final_agreement", "schedule", "mean_weights")


def run_policy(make_env, policy, seeds: list[int], executor=None,
               cache: Path | None = None) -> list[dict[str, Any]]:
    """One episode per evaluation seed (env seed ``EVAL_SEED_BASE + s``), in the pool's
    workers when given; the final infos and the weights of every phase. With ``cache`` (a
    folder) every finished episode is saved as it arrives and reused, so a killed benchmark
    loses at most the episodes in flight."""
    from agents.episodes import SavedAgent, run_episodes
    from models.cache import config_hash, file_digest

    key = {"schema": SCHEMA, "env_id": make_env.env_id, "env_kwargs": make_env.kwargs,
           "policy": repr(policy), "eval_seed_base": EVAL_SEED_BASE}
    if isinstance(policy, SavedAgent):
        key["policy_sha256"] = file_digest(Path(policy.folder) / "policy.pt")
    path = cache / f"{config_hash(key)}.json" if cache is not None else None
    done: dict[int, dict[str, Any]] = {}
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == json.loads(json.dumps(key, default=str)):
            done = {e["seed"]: e for e in saved["episodes"]}

    def keep(e: dict[str, Any]) -> None:
        done[e["seed"] - EVAL_SEED_BASE] = {
            "seed": e["seed"] - EVAL_SEED_BASE, "return": e["return"], **e["final"],
            "weights": [[round(float(v), 4) for v in st["weights"]] for st in e["steps"]],
            "seconds": e["seconds"]}
        if path is not None:
            atomic_write_json({"key": key, "episodes": sorted(done.values(),
                                                              key=lambda d: d["seed"])}, path)

    todo = [EVAL_SEED_BASE + s for s in seeds if s not in done]
    if todo:
        run_episodes(make_env, policy, todo, executor, step_keys=("weights",),
                     final_keys=FINAL_KEYS, on_done=keep)
    return [done[s] for s in seeds]


def _matching_ppo_runs(env_id: str, env_kw: dict[str, Any], steps: int, seed: int,
                       folder: Path, hyperparams: list[str], n_envs: int):
    """``agents.train`` runs under ``folder`` started with exactly this env, env options, seed,
    step count, number of envs and hyperparameters, with their ``run.json``."""
    from agents.zoo_hyperparams import load_hyperparams, parse_kv

    want = json.loads(json.dumps(load_hyperparams(
        "ppo", env_id, overrides=parse_kv(hyperparams, "--ppo-hyperparams")), default=str))
    for run in sorted((folder / "ppo").glob(f"{env_id.split('/')[-1]}_*")):
        try:
            rec = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("env") == env_id and rec.get("env_kwargs") == env_kw
                and rec.get("seed") == seed and rec.get("n_timesteps") == steps
                and rec.get("n_envs", 1) == n_envs
                and not rec.get("resumed_from") and rec.get("hyperparams") == want):
            yield run, rec


def finished_ppo_run(env_id: str, env_kw: dict[str, Any], steps: int, seed: int, folder: Path,
                     hyperparams: list[str], n_envs: int = 1) -> Path | None:
    """A finished matching run (so a killed benchmark does not train PPO again)."""
    for run, rec in _matching_ppo_runs(env_id, env_kw, steps, seed, folder, hyperparams, n_envs):
        if (rec.get("result", {}).get("num_timesteps", 0) >= steps
                and (run / "policy.json").exists()):
            return run
    return None


def unfinished_ppo_run(env_id: str, env_kw: dict[str, Any], steps: int, seed: int,
                       folder: Path, hyperparams: list[str],
                       n_envs: int = 1) -> tuple[Path, int] | None:
    """A matching run that was killed after a checkpoint: its ``checkpoints/latest`` folder
    and the steps it had taken (the most advanced such run)."""
    best = None
    for run, rec in _matching_ppo_runs(env_id, env_kw, steps, seed, folder, hyperparams, n_envs):
        meta = run / "checkpoints" / "latest" / "policy.json"
        if "result" in rec or not meta.exists():
            continue
        done = int(json.loads(meta.read_text()).get("num_timesteps", 0))
        if 0 < done < steps and (best is None or done > best[1]):
            best = (meta.parent, done)
    return best


def train_ppo(env_id: str, env_kw: dict[str, Any], steps: int, seed: int, folder: Path,
              hyperparams: list[str], n_envs: int = 1, save_freq: int = 0) -> Path:
    """Train PPO with ``agents.train`` (in-process), or reuse a finished matching run, or
    continue a killed one from its last checkpoint (saved every ``save_freq`` steps)."""
    from agents.train import main as train_main

    done = finished_ppo_run(env_id, env_kw, steps, seed, folder, hyperparams, n_envs)
    if done is not None:
        print(f"  reusing the finished PPO run {done}", flush=True)
        return done
    killed = unfinished_ppo_run(env_id, env_kw, steps, seed, folder, hyperparams, n_envs)
    kv = [f"{k}:{v}" for k, v in env_kw.items()]
    argv = ["--algo", "ppo", "--env", env_id, "-n", str(steps - (killed[1] if killed else 0)),
            "--seed", str(seed), "-f", str(folder), "--eval-freq", "0",
            "--save-freq", str(save_freq), "--no-progress-bar", "-v", "0"] \
        + (["-i", str(killed[0])] if killed else []) \
        + (["--n-envs", str(n_envs), "--vec-env", "subproc"] if n_envs > 1 else []) \
        + (["--env-kwargs", *kv] if kv else []) + \
        (["--hyperparams", *hyperparams] if hyperparams else [])
    print("  $ python -m agents.train " + shlex.join(argv), flush=True)
    return train_main(argv)


def ppo_train_seconds(run: Path) -> dict[str, float]:
    """Wall-clock cost of a PPO training, from the TensorBoard times of its updates: the median
    gap between consecutive updates times their number. A timer around the call would see only
    the last piece of a killed and resumed run, and a paused one would be charged its pause."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    times: dict[int, float] = {}
    for log in sorted((run / "tb").glob("*")):
        acc = EventAccumulator(str(log), size_guidance={"scalars": 0})
        acc.Reload()
        if "time/fps" in acc.Tags()["scalars"]:
            times.update({e.step: e.wall_time for e in acc.Scalars("time/fps")})
    if len(times) < 2:
        return {"updates": len(times), "seconds_per_update": float("nan"),
                "train_seconds": float("nan")}
    steps = sorted(times)
    per_update = float(np.median(np.diff([times[s] for s in steps])))
    return {"updates": len(steps), "seconds_per_update": per_update,
            "train_seconds": per_update * len(steps)}
