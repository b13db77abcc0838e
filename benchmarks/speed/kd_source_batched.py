"""Batched DistillSource students: N episodes trained as one grouped network vs N one by one.

Both sides run the same seeds and actions in the same process, interleaved (so machine load
hits both alike); the result is the speed-up in student updates per second at N episodes, for
the env's default student and for the benchmark-size student (~40k parameters). The batched
episodes equal the one-by-one ones to float tolerance (tested in
``tests/envs/test_distill_source_env.py``).

    python benchmarks/speed/kd_source_batched.py --scale smoke
    python benchmarks/speed/kd_source_batched.py            # N = 8, writes kd_source_batched.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from envs.distill_source.env import DistillSourceEnv  # noqa: E402
from envs.distill_source.vector import BatchedDistillSource  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

STUDENTS = {"default (width 8, depth 1)": {"student_width": 8, "student_depth": 1},
            "benchmark-size (width 12, depth 2)": {"student_width": 12, "student_depth": 2}}
SCALES = {"smoke": {"n": 2, "phases": 2, "updates_per_phase": 4, "repeats": 1,
                    "env": {"pool_size": 256, "probe_size": 64, "eval_size": 200}},
          "default": {"n": 8, "phases": 3, "updates_per_phase": 20, "repeats": 2,
                      "env": {"pool_size": 2048, "probe_size": 256, "eval_size": 500}}}


def episodes(n: int, kw: dict[str, Any], seeds: list[int], actions: list[list[int]]
             ) -> tuple[float, float]:
    """Seconds for n episodes one by one, and for the same n episodes batched."""
    single = DistillSourceEnv(**kw)
    t0 = time.perf_counter()
    for i in range(n):
        single.reset(seed=seeds[i])
        for a in actions:
            single.step(a[i])
    t_seq = time.perf_counter() - t0
    batched = BatchedDistillSource(n, **kw)
    t0 = time.perf_counter()
    batched.reset(seeds[:n])
    for a in actions:
        batched.step(a[:n])
    return t_seq, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=tuple(SCALES), default="default")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    sc = SCALES[args.scale]
    n = sc["n"]
    rng = np.random.default_rng(0)
    seeds = list(range(n))
    load0 = os.getloadavg()
    out: dict[str, Any] = {"n_envs": n, "phases": sc["phases"],
                           "updates_per_phase": sc["updates_per_phase"], "rows": []}
    for name, student in STUDENTS.items():
        kw = {**sc["env"], **student, "phases": sc["phases"],
              "updates_per_phase": sc["updates_per_phase"], "progress": False}
        actions = [list(rng.integers(0, 6, n)) for _ in range(sc["phases"])]
        episodes(min(n, 2), kw, seeds, actions)  # warm-up: pools, caches, kernels
        seq, bat = [], []
        for _ in range(sc["repeats"]):
            s, b = episodes(n, kw, seeds, actions)
            seq.append(s)
            bat.append(b)
        updates = n * sc["phases"] * sc["updates_per_phase"]
        row = {"student": name, **student, "seq_s": min(seq), "batched_s": min(bat),
               "seq_updates_per_s": updates / min(seq), "batched_updates_per_s": updates / min(bat),
               "speedup": min(seq) / min(bat), "target": 3.0}
        out["rows"].append(row)
        print(f"{name}: {n} episodes one by one {row['seq_s']:.1f} s, batched "
              f"{row['batched_s']:.1f} s → ×{row['speedup']:.2f}", flush=True)
    out["batched_speedup"] = {r["student"]: r["speedup"] for r in out["rows"]}
    out["load_average_start_end"] = [load0, os.getloadavg()]
    out["note"] = ("wall-clock seconds include each episode's probes and observations (not "
                   "batched); 2 shared CPU cores, torch 1 thread per env as configured")
    stem = "kd_source_batched" + ("" if args.scale == "default" else f"_{args.scale}")
    out.update(provenance(0))
    atomic_write_json(out, Path(args.results_dir) / f"{stem}.json")
    return out


if __name__ == "__main__":
    main()
