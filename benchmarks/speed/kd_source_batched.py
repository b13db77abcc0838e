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
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.speed.timing import timed  # noqa: E402
from envs.distill_source.env import DistillSourceEnv  # noqa: E402
from envs.distill_source.vector import BatchedDistillSource  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

STUDENTS = {"default (width 8, depth 1)": {"student_width": 8, "student_depth": 1},
            "benchmark-size (width 12, depth 2)": {"student_width": 12, "student_depth": 2}}
SCALES = {"smoke": {"n": 2, "phases": 2, "updates_per_phase": 4, "repeats": 1,
                    "batch_sizes": (8, 64), "reps": 2,
                    "env": {"pool_size": 256, "probe_size": 64, "eval_size": 200}},
          "default": {"n": 8, "phases": 3, "updates_per_phase": 20, "repeats": 2,
                      "batch_sizes": (8, 16, 32, 64, 128), "reps": 30,
                      "env": {"pool_size": 2048, "probe_size": 256, "eval_size": 500}}}

B0 = 64  # the env's batch size, where the training step is compared


def episodes(n: int, kw: dict[str, Any], seeds: list[int], actions: list[list[int]]
             ) -> tuple[float, float]:
    """Seconds for n episodes one by one, and for the same n episodes batched."""
    single = DistillSourceEnv(**kw)

    def one_by_one() -> None:
        for i in range(n):
            single.reset(seed=seeds[i])
            for a in actions:
                single.step(a[i])

    batched = BatchedDistillSource(n, **kw)

    def together() -> None:
        batched.reset(seeds[:n])
        for a in actions:
            batched.step(a[:n])

    return timed(one_by_one)[1], timed(together)[1]


def update_costs(student: dict[str, Any], n: int, batch_sizes: tuple[int, ...], reps: int
                 ) -> dict[str, Any]:
    """The training step alone (forward, KD loss, backward, Adam; no data, no probes).

    * seconds per update of one student at each batch size: the intercept of a line through
      them is the fixed per-update overhead (Python, dispatch), the only part batching can
      save when convolutions are compute-bound; ``bound`` = t(B) / (t(B) − overhead) is the
      speed-up that removing all of it would give;
    * N students one by one vs one grouped network at batch :data:`B0` (``train_speedup``).
    """
    import torch

    from distill.kd import kd_loss
    from models.nets import build_model
    from models.nets.grouped import GroupedNet

    def net() -> Any:
        return build_model("cnn", num_classes=10, in_channels=1, image_size=(28, 28),
                           width=student["student_width"], depth=student["student_depth"])

    def per_update(model: Any, loss_of: Any) -> float:
        """Seconds per update of ``model`` (Adam) after two warm-up updates."""
        opt = torch.optim.Adam(model.parameters(), lr=0.01)

        def update() -> None:
            loss = loss_of(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        timed(update, 2)
        return timed(update, reps)[1]

    g = torch.Generator().manual_seed(0)
    per_b = {}
    for b in batch_sizes:
        x, t = torch.randn(b, 1, 28, 28, generator=g), torch.randn(b, 10, generator=g)
        per_b[b] = per_update(net(), lambda m, x=x, t=t: kd_loss(m(x), t, 4.0))
    slope, overhead = np.polyfit(np.array(batch_sizes, dtype=float),
                                 [per_b[b] for b in batch_sizes], 1)
    x, t = torch.randn(B0, 1, 28, 28, generator=g), torch.randn(B0, 10, generator=g)
    seq = sum(per_update(net(), lambda m: kd_loss(m(x), t, 4.0)) for _ in range(n))
    xs = x.expand(n, *x.shape).contiguous()  # [N, B, ...]: each student its own (equal) batch
    bat = per_update(GroupedNet([net() for _ in range(n)]),
                lambda m: sum(kd_loss(out, t, 4.0) for out in m(xs)))
    return {"seconds_per_update": {str(b): per_b[b] for b in batch_sizes},
            "overhead_s": float(overhead), "seconds_per_image": float(slope),
            "bound": float(per_b[B0] / max(per_b[B0] - overhead, 1e-12)),
            "train_seq_s": seq, "train_batched_s": bat, "train_speedup": seq / bat}


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
               "speedup": min(seq) / min(bat), "target": 3.0,
               "training_step": update_costs(student, n, sc["batch_sizes"], sc["reps"])}
        ts = row["training_step"]
        print(f"  training step alone: ×{ts['train_speedup']:.2f} grouped; overhead "
              f"{ts['overhead_s'] * 1e3:.2f} ms of {ts['seconds_per_update'][str(B0)] * 1e3:.2f} ms "
              f"per update at batch {B0} → bound ×{ts['bound']:.2f}", flush=True)
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
