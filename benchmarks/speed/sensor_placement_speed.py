"""Placements per second of the batched gappy-POD SensorPlacement env against N single envs.

Both sides place the same sensors (random allowed cells) in N episodes of K sensors on the same
training snapshots, in the same process, interleaved; the batched env
(:class:`envs.sensors.vector.BatchedSensorPlacement`) scores all N layouts in one batched solve
per step, the single envs (:class:`envs.sensors.env.SensorPlacementEnv`, ``estimator=
"gappy_pod"``) reconstruct each episode's snapshots one layout at a time. Also reported: the
batched env's steps through SB3 (``PlacementVecEnv`` + ``VecMonitor``), which MaskablePPO sees.

    python benchmarks/speed/sensor_placement_speed.py --scale smoke
    python benchmarks/speed/sensor_placement_speed.py     # N = 64, writes sensor_placement_speed.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stable_baselines3.common.vec_env import VecMonitor  # noqa: E402

from agents.placement.vec import PlacementVecEnv  # noqa: E402
from benchmarks.speed.timing import timed  # noqa: E402
from envs.sensors.env import SensorPlacementEnv  # noqa: E402
from envs.sensors.vector import BatchedSensorPlacement  # noqa: E402
from fields.pretrained import get_blocks  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

SCALES = {"smoke": {"dataset": "coads-sst", "n": 4, "k": 3, "batch": 2, "repeats": 1},
          "default": {"dataset": "cylinder", "n": 64, "k": 8, "batch": 8, "repeats": 3}}


def measure(dataset: str, n: int, k: int, batch: int, repeats: int) -> dict[str, Any]:
    """Placements/s of the batched env, of N single envs and of the SB3 vec env."""
    blocks = get_blocks(dataset, progress=False)
    core = BatchedSensorPlacement(n, n_sensors=k, split="train", batch=batch, blocks=blocks)
    core.choice(k)  # rank/λ chosen on validation once, outside the timing (both sides share it)
    rng = np.random.default_rng(0)
    valid = np.flatnonzero(core.valid_flat)
    actions = np.stack([rng.choice(valid, size=k, replace=False) for _ in range(n)], 1)
    idx = [np.sort(rng.choice(len(blocks.train), batch, replace=False)) for _ in range(n)]
    singles = [SensorPlacementEnv(pretrained=blocks, n_sensors=k, split="train", batch=batch)
               for _ in range(n)]
    singles[0].gappy_pod_choice()
    for e in singles[1:]:
        e._gappy_choice = singles[0]._gappy_choice  # the same choice, computed once

    def batched() -> None:
        core.reset_ids(np.arange(n), list(range(n)),
                       [{"n_sensors": k, "indices": i} for i in idx])
        for a in actions:
            core.step(a)

    def one_by_one() -> None:
        for i, env in enumerate(singles):
            env.reset(seed=i, options={"indices": idx[i]})
            for a in actions[:, i]:
                env.step(int(a))

    venv = VecMonitor(PlacementVecEnv(n, n_sensors=k, split="train", batch=batch,
                                      blocks=blocks))
    venv.seed(0)
    venv.reset()

    def sb3() -> None:
        for a in actions:
            venv.step(a)

    t_b, t_s, t_v = [], [], []
    for _ in range(repeats):  # interleaved, so load changes hit every side alike
        t_b.append(timed(batched)[1])
        t_s.append(timed(one_by_one)[1])
        t_v.append(timed(sb3)[1])
    placements = n * k
    return {"dataset": dataset, "n_envs": n, "k": k, "snapshots_per_episode": batch,
            "grid": list(blocks.grid.shape), "rank": core.choice(k).rank,
            "lam": core.choice(k).lam, "repeats": repeats,
            "batched_placements_per_s": placements / min(t_b),
            "single_envs_placements_per_s": placements / min(t_s),
            "sb3_vec_env_placements_per_s": placements / min(t_v),
            "batched_over_single": min(t_s) / min(t_b),
            "note": "best of the repeats; the single envs also score a random and a QR layout "
                    "at each episode end (their info), which the batched env does not"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="default")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    res = measure(**SCALES[args.scale])
    out = {**provenance(0), "scale": args.scale, "speed": res,
           "target": "≥ 1,000 placements/s at N = 64 on 2 cores",
           "target_met": bool(res["batched_placements_per_s"] >= 1000)}
    stem = "sensor_placement_speed" + ("" if args.scale == "default" else f"_{args.scale}")
    atomic_write_json(out, Path(args.results_dir) / f"{stem}.json")
    print(f"{res['dataset']} N={res['n_envs']} K={res['k']}: batched "
          f"{res['batched_placements_per_s']:.0f} placements/s, SB3 vec env "
          f"{res['sb3_vec_env_placements_per_s']:.0f}, {res['n_envs']} single envs "
          f"{res['single_envs_placements_per_s']:.0f} (batched {res['batched_over_single']:.1f}×)")
    return out


if __name__ == "__main__":
    main()
