"""How long must a DistillSource student train before fixed-source students plateau?

For each student size (the env's former default plain CNN, ~6k parameters; the benchmark-size
one, ~41k, now the env's default; and a wide-shallow one, ~24k) and augmentation level it trains a student on every fixed
source of the env (``DistillSource-v0``, pinned Fashion-MNIST teacher) for ``--updates``
updates, reading the
target accuracy on the env's evaluation slice every ``--every`` updates
(``eval_every_phase``), over ``--seeds``. Per curve it reports the plateau: the first update
count whose accuracy is within ``--tolerance`` (1 point) of the curve's best, averaged over
seeds. The env's default episode length should be at least the slowest fixed source's plateau
(or the shortfall stated: ``still_rising`` lists the curves that climb in their last quarter).

The curves go to ``benchmarks/results/kd_source_plateau.json`` and ``.png`` (atomic; a killed
run resumes from the finished curves in ``benchmarks/results/kd_source_plateau/``).

    python benchmarks/kd_source_plateau.py --scale smoke
    python benchmarks/kd_source_plateau.py --workers 2        # ≈ 1 h on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import stats  # noqa: E402
from models.io import atomic_write_json, command_line, provenance  # noqa: E402

STUDENTS = {"tiny": {"student_width": 8, "student_depth": 1},  # the env's former default
            "benchmark-size": {"student_width": 12, "student_depth": 2},
            # one conv per stage but twice the default's width: ~24k parameters at ~40% of the
            # benchmark-size student's multiply-adds (no second conv at full resolution)
            "wide-shallow": {"student_width": 16, "student_depth": 1}}
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"updates": 40, "every": 20, "seeds": [0], "augment": ["standard"],
              "students": ["tiny"],
              "env": {"pool_size": 256, "eval_size": 200, "attack_images": 16,
                      "sources": ("opengl", "leaves", "noise")}},
    # the benchmark-size student costs ~3x per update: one seed shows whether it is needed
    "default": {"updates": 3000, "every": 250, "seeds": [0, 1, 2],
                "seeds_by_student": {"benchmark-size": [0], "wide-shallow": [0]},
                "augment": ["none", "standard", "heavy"], "students": list(STUDENTS),
                "env": {"eval_size": 2000}},
}


def curve(student: str, augment: str, source: str, seed: int, updates: int, every: int,
          env_kw: dict[str, Any]) -> dict[str, Any]:
    """Target accuracy every ``every`` updates of one student distilled from one source (on
    one intra-op thread; the caller's thread count is restored after)."""
    from models.device import intra_op_threads

    with intra_op_threads(1):
        return _curve(student, augment, source, seed, updates, every, env_kw)


def _curve(student: str, augment: str, source: str, seed: int, updates: int, every: int,
           env_kw: dict[str, Any]) -> dict[str, Any]:
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    env = gym.make("deploygym/DistillSource-v0", **STUDENTS[student], augment=augment,
                   phases=updates // every, updates_per_phase=every, eval_every_phase=True,
                   progress=False, **env_kw)
    names = list(env.unwrapped.cfg.sources)
    obs, info = env.reset(seed=seed)
    t0, acc, done = time.perf_counter(), [], False
    while not done:
        obs, r, term, trunc, info = env.step(names.index(source))
        acc.append(float(info["target_accuracy"]))
        done = term or trunc
    env.close()
    return {"student": student, "augment": augment, "source": source, "seed": seed,
            "updates": [every * (i + 1) for i in range(len(acc))], "accuracy": acc,
            "seconds": time.perf_counter() - t0}


def plateau(acc: list[float], updates: list[int], tolerance: float) -> int:
    """The first update count within ``tolerance`` of the curve's best accuracy."""
    best = max(acc)
    return next(u for a, u in zip(acc, updates, strict=True) if a >= best - tolerance)


def summarise(curves: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Per (student, augment, source): mean curve, final accuracy and plateau over seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in curves:
        groups.setdefault((c["student"], c["augment"], c["source"]), []).append(c)
    rows = []
    for (student, augment, source), cs in sorted(groups.items()):
        acc = np.array([c["accuracy"] for c in cs])
        ups = cs[0]["updates"]
        rows.append({"student": student, "augment": augment, "source": source,
                     "seeds": [c["seed"] for c in cs], "updates": ups,
                     "mean_accuracy": acc.mean(0).round(4).tolist(),
                     "final_accuracy": float(acc[:, -1].mean()),
                     "final_std": stats.std(acc[:, -1]),
                     "plateau_updates": float(np.mean([plateau(c["accuracy"], ups, tolerance)
                                                       for c in cs])),
                     # > tolerance: the curve still climbs in its last quarter (no plateau yet)
                     "rise_last_quarter": float(acc[:, -1].mean()
                                                - acc[:, (3 * len(ups)) // 4 - 1].mean()),
                     "seconds_per_curve": float(np.mean([c["seconds"] for c in cs]))})
    slowest: dict[str, float] = {}
    still_rising: dict[str, list[str]] = {}
    for r in rows:
        key = f"{r['student']}/{r['augment']}"
        slowest[key] = max(slowest.get(key, 0.0), r["plateau_updates"])
        rising = still_rising.setdefault(key, [])
        if r["rise_last_quarter"] > tolerance:
            rising.append(r["source"])
    return {"rows": rows, "slowest_plateau_updates": slowest, "still_rising": still_rising}


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = sorted({r["student"] for r in summary["rows"]})
    augments = [a for a in ("none", "standard", "heavy") if any(r["augment"] == a
                                                               for r in summary["rows"])]
    fig, axes = plt.subplots(len(students), len(augments), sharex=True, sharey=True,
                             figsize=(3.8 * len(augments), 2.8 * len(students)), squeeze=False)
    for (i, student), (j, augment) in product(enumerate(students), enumerate(augments)):
        ax = axes[i][j]
        for r in summary["rows"]:
            if (r["student"], r["augment"]) == (student, augment):
                ax.plot(r["updates"], r["mean_accuracy"],
                        label=f"{r['source']} (n={len(r['seeds'])})")
        ax.set_title(f"{student} student, augment {augment}", fontsize=9)
        ax.grid(alpha=0.3)
        if i == len(students) - 1:
            ax.set_xlabel("student updates")
        if j == 0:
            ax.set_ylabel("target accuracy")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def _run(job: tuple[Any, ...], out: Path) -> str:
    c = curve(*job)
    atomic_write_json(c, out)
    return f"  {out.stem}: final {c['accuracy'][-1]:.3f} ({c['seconds']:.0f} s)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=tuple(SCALES), default="default")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if args.workers < 1 or not 0 < args.tolerance < 1:
        raise ValueError("--workers must be ≥ 1 and --tolerance in (0, 1)")
    sc = SCALES[args.scale]
    from envs.distill_source.config import make_config

    sources = list(make_config(dict(sc["env"]), has_teacher=False).sources)
    results = Path(args.results_dir)
    tag = "kd_source_plateau" + ("" if args.scale == "default" else f"_{args.scale}")
    folder = results / tag
    folder.mkdir(parents=True, exist_ok=True)
    jobs = {}
    seeds_of = sc.get("seeds_by_student", {})
    for student, augment, source in product(sc["students"], sc["augment"], sources):
        for seed in seeds_of.get(student, sc["seeds"]):
            f = folder / f"{student}-{augment}-{source}-s{seed}.json"
            if not f.exists():
                jobs[f] = (student, augment, source, seed, sc["updates"], sc["every"], sc["env"])
    print(f"{len(jobs)} curves to train ({args.workers} worker(s))", flush=True)
    if args.workers == 1:
        for f, job in jobs.items():
            print(_run(job, f), flush=True)
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            for line in pool.map(_run, jobs.values(), jobs.keys()):
                print(line, flush=True)
    curves = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
    summary = summarise(curves, args.tolerance)
    out = {**summary, "scale": args.scale, "sources": sources, "env": sc["env"],
           "tolerance": args.tolerance, "trial_files": sorted(f.name for f in
                                                              folder.glob("*.json")),
           "seeds": sc["seeds"], "seeds_by_student": sc.get("seeds_by_student", {}),
           "command": command_line(), "provenance": provenance()}
    atomic_write_json(out, results / f"{tag}.json")
    plot(summary, results / f"{tag}.png")
    for r in summary["rows"]:
        print(f"{r['student']:>14} {r['augment']:>8} {r['source']:>8}: final "
              f"{r['final_accuracy']:.3f} ± {r['final_std']:.3f}, plateau at "
              f"{r['plateau_updates']:.0f} updates, last-quarter rise "
              f"{r['rise_last_quarter']:+.3f}")
    return out


if __name__ == "__main__":
    main()
