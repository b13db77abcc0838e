"""Where a DistillSource step spends its time, and how fast it is.

For each configuration it runs seeded episodes and reports steps/s and the share of each step
spent on **data** (batch sampling from the cached pools, augmentation, mixup), **teacher**
(forward on augmented/mixed images; 0 with cached logits), **student update** (KD loss,
backward, Adam) and **evaluation** (probe, per-source statistics, final test slice). The
ratio reported is *update share* = the student updates' share of the step: 1.0 would mean the
env adds nothing to plain distillation on in-memory data.

A reference measured in the same run: plain :class:`distill.loop.KDTrainer` steps on an
in-memory batch with precomputed logits (no env around them), giving
``env updates/s ÷ plain updates/s``.

    python -m benchmarks.speed.kd_source_speed --scale smoke
    python -m benchmarks.speed.kd_source_speed                    # the committed result
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the ids)
from models.io import atomic_write_json, command_line, machine_description, provenance

CONFIGS = {
    "DistillSource-v0 (cached logits)": ("deploygym/DistillSource-v0", {}),
    "DistillSourceDataFree-v0": ("deploygym/DistillSourceDataFree-v0", {}),
    "DistillSourceAugment-v0 (heavy aug + mixup + attack)": (
        "deploygym/DistillSourceAugment-v0", {}),
}
SCALES = {"smoke": {"episodes": 1, "env": {"phases": 4}},
          "default": {"episodes": 3, "env": {}},
          "paper": {"episodes": 10, "env": {}}}
PARTS = ("time_data", "time_teacher", "time_update", "time_eval")


def augment_action(env: gym.Env, k: int) -> Any:
    """Heaviest setting of the Augment variant (heavy augmentation, attack on), cycling sources."""
    space = env.action_space
    if isinstance(space, gym.spaces.MultiDiscrete):
        return np.array([k % space.nvec[0], *(n - 1 for n in space.nvec[1:])])
    return k % space.n


def measure(env_id: str, env_kw: dict[str, Any], episodes: int) -> dict[str, Any]:
    env = gym.make(env_id, record_timings=True, **env_kw)
    sums = dict.fromkeys(PARTS, 0.0)
    steps, wall = 0, 0.0
    for ep in range(episodes):
        env.reset(seed=ep)
        done, k = False, 0
        while not done:
            t0 = time.perf_counter()
            _, _, term, trunc, info = env.step(augment_action(env, k))
            wall += time.perf_counter() - t0
            for p in PARTS:
                sums[p] += info[p]
            done, k, steps = term or trunc, k + 1, steps + 1
    cfg = env.unwrapped.cfg
    other = max(wall - sum(sums.values()), 0.0)
    return {"steps": steps, "steps_per_s": steps / wall, "ms_per_step": 1000 * wall / steps,
            **{f"share_{p[5:]}": sums[p] / wall for p in PARTS}, "share_other": other / wall,
            "updates_per_s": steps * cfg.updates_per_phase / wall,
            "updates_per_phase": cfg.updates_per_phase, "batch_size": cfg.batch_size}


def plain_updates_per_s(env_kw: dict[str, Any], n: int = 100) -> float:
    """Reference: KDTrainer steps on one in-memory batch with given logits, no env."""
    from distill.loop import KDTrainer
    from envs.distill_source.phase import build_student

    env = gym.make("deploygym/DistillSource-v0", **env_kw).unwrapped
    res, cfg = env.res, env.cfg
    pool = res.pools[0]
    student = build_student(cfg, res, 0)
    trainer = KDTrainer(res.teacher, student, torch.optim.Adam(student.parameters(), cfg.lr),
                        temperature=cfg.temperature)
    x, t = pool.images[:cfg.batch_size], pool.logits[:cfg.batch_size]
    for _ in range(5):
        trainer.step(x, t)
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step(x, t)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="default")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY:VALUE", default=[])
    args = p.parse_args(argv)
    command = (shlex.join(["python", "-m", "benchmarks.speed.kd_source_speed", *argv])
               if argv is not None else command_line())
    from agents.zoo_hyperparams import parse_kv

    torch.set_num_threads(1)
    scale = SCALES[args.scale]
    env_kw = {**scale["env"], "progress": False, **parse_kv(args.env_kwargs, "--env-kwargs")}
    plain = plain_updates_per_s(env_kw)
    table = []
    for name, (env_id, extra) in CONFIGS.items():
        r = measure(env_id, {**env_kw, **extra}, scale["episodes"])
        r = {"config": name, "env_id": env_id, **r, "plain_updates_per_s": plain,
             "updates_ratio_vs_plain": r["updates_per_s"] / plain}
        table.append(r)
    print(f"{'config':52s} {'steps/s':>8s} {'ms/step':>8s} {'data':>6s} {'teacher':>8s} "
          f"{'update':>7s} {'eval':>6s} {'other':>6s} {'upd/s ÷ plain':>14s}")
    for r in table:
        print(f"{r['config']:52s} {r['steps_per_s']:8.2f} {r['ms_per_step']:8.0f} "
              f"{r['share_data']:6.1%} {r['share_teacher']:8.1%} {r['share_update']:7.1%} "
              f"{r['share_eval']:6.1%} {r['share_other']:6.1%} {r['updates_ratio_vs_plain']:14.2f}")
    print(f"reference: plain KDTrainer.step on an in-memory batch: {plain:.1f} updates/s")
    out = Path(args.results_dir)
    result = {"benchmark": "kd_source_speed", "scale": args.scale, "command": command,
              "seeds": list(range(scale["episodes"])), "env_kwargs": env_kw, "table": table,
              "machine": machine_description(), "torch_threads": 1,
              "note": "2-core machine, the env at 1 thread; machine.load_avg shows what else ran "
                      "(ratios to the plain reference are from the same process)",
              **{k: v for k, v in provenance(0, command).items() if k != "machine"}}
    atomic_write_json(result, out / "kd_source_speed.json")
    return result


if __name__ == "__main__":
    main()
