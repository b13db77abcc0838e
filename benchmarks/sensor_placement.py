"""SensorPlacement benchmark: a grid-seeing MaskablePPO policy against the classical placements,
every layout scored by gappy POD on the test block.

Per field and sensor count K (rank and λ of gappy POD chosen on validation with random layouts,
the same scorer for every method; ``benchmarks/parts/sensor_placement_runs.py``):

* **ppo** — one policy per training seed (:mod:`agents.placement`), trained on training
  snapshots with K drawn from ``k_range`` per episode, then run deterministically with
  observations from the validation block at every K and on a second field (no retraining);
* **qr** (PySensors), **det_greedy** (max-det of the POD rows, its number of modes chosen on
  validation), **greedy** (forward selection on the validation error), **annealing** (from
  the best of those on validation, ``anneal_budget`` evaluations, one run per seed), **random**
  (``n_random`` layouts);
* **oracle_best** — the best test error of any layout above, with its method and evaluations;
  ``oracle_search`` anneals on the test block itself (headroom only, it reads test data).

Statistics (:mod:`models.stats`): mean ± 95% t-interval; PPO's IQM with a stratified-bootstrap
interval over training seeds × test windows (``window`` consecutive snapshots); one-sided
paired t-tests of PPO's window errors (mean over seeds) against each method's.

Stages write their files atomically under ``benchmarks/results/sensor_placement/`` (a rerun
skips what exists; training resumes from its checkpoint under ``--runs-dir``)::

    python benchmarks/sensor_placement.py --scale smoke
    python benchmarks/sensor_placement.py --stage baselines
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/sensor_placement.py --stage train --seeds 0
    python benchmarks/sensor_placement.py --stage evaluate      # whatever checkpoints exist
    python benchmarks/sensor_placement.py --stage summary       # sensor_placement.json + PNG
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.parts.sensor_placement_runs import (  # noqa: E402
    FieldSetup,
    run_baselines,
    run_policy,
    run_sampled,
)
from benchmarks.parts.sensor_placement_stats import METHODS, make_table, summary  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

__all__ = ["METHODS", "main", "make_table", "summary"]

TRAIN_SMOKE = {"dataset": "coads-sst", "k_range": (2, 3), "n_envs": 4, "batch": 2,
               "n_steps": 8, "batch_size": 16, "n_epochs": 1, "chunk_rollouts": 1,
               "channels": 4, "scales": (3,), "eval_k": (2,), "total_steps": 64}
TRAIN_DEFAULT = {"dataset": "cylinder", "k_range": (4, 16), "n_envs": 32, "batch": 8,
                 "n_steps": 64, "batch_size": 512, "n_epochs": 2, "chunk_rollouts": 10,
                 "ent_coef": 0.003,
                 "channels": 16, "scales": (3, 7, 15), "eval_k": (8, 16),
                 "total_steps": 49 * 20480}
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": [0], "cells": {"coads-sst": [2, 3]}, "primary": {"coads-sst": [2]},
              "n_random": 10, "anneal_budget": 130, "samples": 8, "window": 1,
              "train": TRAIN_SMOKE},
    "default": {"seeds": [0, 1, 2], "cells": {"cylinder": [8, 16, 12, 20], "navy-uwnd": [8, 16]},
                "primary": {"cylinder": [8, 16]}, "n_random": 100, "anneal_budget": 20_000,
                "samples": 256, "window": 5, "train": TRAIN_DEFAULT},
}


def _out(args: argparse.Namespace) -> Path:
    name = "sensor_placement" + ("" if args.scale == "default" else f"_{args.scale}")
    return Path(args.results_dir) / name


def stage_baselines(args: argparse.Namespace, scale: dict[str, Any]) -> None:
    for dataset, ks in scale["cells"].items():
        setup = None
        for k in ks:
            path = _out(args) / f"baselines-{dataset}-k{k}.json"
            if path.exists():
                continue
            setup = setup or FieldSetup.load(dataset)
            rec = run_baselines(setup, k, scale["n_random"], scale["anneal_budget"],
                                scale["seeds"])
            atomic_write_json(rec, path)
            print(f"{dataset} K={k}: " + ", ".join(
                f"{m} {sum(sum(lay['test']) / len(lay['test']) for lay in v['layouts']) / len(v['layouts']):.4f}"
                for m, v in rec["methods"].items()), flush=True)


def _train_cfg(scale: dict[str, Any], seed: int, steps: int | None) -> Any:
    from agents.placement.train import PlacementTrainConfig

    kw = dict(scale["train"])
    kw["total_steps"] = steps or kw["total_steps"]
    return PlacementTrainConfig(**kw, seed=seed)


def stage_train(args: argparse.Namespace, scale: dict[str, Any]) -> None:
    from agents.placement.train import train_placement

    for seed in args.seeds or scale["seeds"]:
        run = Path(args.runs_dir) / f"{args.scale}-ppo-s{seed}"
        train_placement(_train_cfg(scale, seed, args.steps), run, progress=True)


def stage_evaluate(args: argparse.Namespace, scale: dict[str, Any]) -> None:
    from models.device import intra_op_threads

    with intra_op_threads(1):  # a small policy and scorer: one thread is fastest
        _evaluate(args, scale)


def _evaluate(args: argparse.Namespace, scale: dict[str, Any]) -> None:
    import torch
    from sb3_contrib import MaskablePPO

    from agents.placement.place import Placer

    setups = {d: FieldSetup.load(d) for d in scale["cells"]}
    placers = {d: Placer(s.blocks, "val") for d, s in setups.items()}
    for seed in args.seeds or scale["seeds"]:
        run = Path(args.runs_dir) / f"{args.scale}-ppo-s{seed}"
        ckpt = run / "ckpt" / "model.zip"
        if not ckpt.exists():
            print(f"seed {seed}: no checkpoint under {run}", flush=True)
            continue
        state = json.loads((run / "ckpt" / "state.json").read_text())
        model = MaskablePPO.load(ckpt, device="cpu")
        rec: dict[str, Any] = {"seed": seed, "num_timesteps": state["num_timesteps"],
                               "curve": state["curve"],
                               "config": json.loads((run / "config.json").read_text()),
                               "cells": {}}
        rec["sampled"] = {}
        for dataset, ks in scale["cells"].items():
            rec["cells"][dataset] = {str(k): run_policy(setups[dataset], model.policy, k,
                                                        placers[dataset]) for k in ks}
            rec["sampled"][dataset] = {str(k): run_sampled(
                setups[dataset], model.policy, k, placers[dataset], scale["samples"], seed)
                for k in ks}
        out = _out(args)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.policy.state_dict(), out / f"ppo-s{seed}.pt.tmp")
        os.replace(out / f"ppo-s{seed}.pt.tmp", out / f"ppo-s{seed}.pt")  # weights only
        atomic_write_json(rec, out / f"ppo-s{seed}.json")
        print(f"seed {seed} at {rec['num_timesteps']} steps: " + ", ".join(
            f"{d} K={k} {sum(c['test']) / len(c['test']):.4f}"
            for d, cs in rec["cells"].items() for k, c in cs.items()), flush=True)


def collect(args: argparse.Namespace, scale: dict[str, Any]) -> dict[str, Any]:
    """The per-run files as the ``results`` of the summary JSON."""
    out = _out(args)
    base = {d: {str(k): json.loads((out / f"baselines-{d}-k{k}.json").read_text())
                for k in ks if (out / f"baselines-{d}-k{k}.json").exists()}
            for d, ks in scale["cells"].items()}
    ppo = {str(s): json.loads((out / f"ppo-s{s}.json").read_text())
           for s in scale["seeds"] if (out / f"ppo-s{s}.json").exists()}
    return {"baselines": base, "ppo": ppo, "window": scale["window"],
            "primary": scale["primary"], "k_range": list(scale["train"]["k_range"])}


def stage_summary(args: argparse.Namespace, scale: dict[str, Any]) -> dict[str, Any]:
    res = collect(args, scale)
    seeds = sorted(int(s) for s in res["ppo"])
    table = make_table(res, seeds)
    speed = Path(args.results_dir) / "sensor_placement_speed.json"
    out = {**provenance(seeds[0] if seeds else 0), "seeds": seeds, "scale": args.scale,
           "budget": {k: v for k, v in scale.items() if k != "seeds"},
           "ppo_steps": {s: r["num_timesteps"] for s, r in res["ppo"].items()},
           "table": table, "summary": summary(res),
           "speed": json.loads(speed.read_text())["speed"] if speed.exists() else None,
           "paper": {"note": "no paper publishes this experiment; it is deploygym's own"},
           "results": res,
           "protocol": "gappy POD (rank, λ chosen on validation with random layouts per K) "
                       "scores every layout on the test block; layouts are chosen from "
                       "training modes (qr, det_greedy), validation errors (greedy, annealing) "
                       "or validation observations (ppo); oracle_search alone reads test data"}
    stem = _out(args).name
    from benchmarks.figures.sensor_placement import draw

    draw(out, Path(args.results_dir) / f"{stem}.png")
    atomic_write_json(out, Path(args.results_dir) / f"{stem}.json")
    print_table(out)
    return out


def print_table(out: dict[str, Any]) -> None:
    print(f"\n{'field':<10} {'K':>3} {'method':<13} {'test rel L2':>20} {'n':>4} "
          f"{'p(ppo<m)':>9}")
    for r in out["table"]:
        p = r.get("p_ppo_less")
        print(f"{r['dataset']:<10} {r['sensors']:>3} {r['method']:<13} {r['rel_l2']:>9.4f} ± "
              f"{r['ci95']:.4f} {r['n']:>4} {'' if p is None else f'{p:.3g}':>9}")
    print(f"PPO steps per seed: {out['ppo_steps']}")
    print("compute per placement (ms): " + "; ".join(
        f"{d} K={k}: " + ", ".join(f"{m} {c[m]['seconds_per_placement'] * 1e3:.3g}"
                                   for m in ("ppo", "qr", "det_greedy", "greedy", "annealing")
                                   if m in c)
        + (f", ppo forward {c['ppo']['policy_forward_seconds_per_placement'] * 1e3:.3g}"
           if "ppo" in c else "")
        for d, cells in out["summary"].items() for k, c in cells.items()))


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="default")
    p.add_argument("--stage", choices=("all", "baselines", "train", "evaluate", "summary"),
                   default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds")
    p.add_argument("--steps", type=int, default=None, help="PPO steps (default: the scale's)")
    p.add_argument("--fields", nargs="+", default=None, help="subset of the scale's fields")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "sensor_placement"))
    args = p.parse_args(argv)
    scale = dict(SCALES[args.scale])
    if args.fields:
        unknown = set(args.fields) - set(scale["cells"])
        if unknown:
            p.error(f"unknown fields {sorted(unknown)}; the scale has {sorted(scale['cells'])}")
        scale["cells"] = {d: k for d, k in scale["cells"].items() if d in args.fields}
    _out(args).mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "baselines"):
        stage_baselines(args, scale)
    if args.stage in ("all", "train"):
        stage_train(args, scale)
    if args.stage in ("all", "evaluate"):
        stage_evaluate(args, scale)
    if args.stage in ("all", "summary"):
        return stage_summary(args, scale)
    return None


if __name__ == "__main__":
    main()
