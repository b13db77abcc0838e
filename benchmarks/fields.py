"""Sparse field reconstruction benchmark (issue 7): solver, Voronoi inputs, Voronoi-CNNs.

Measures, in one run:

* LBM solver speed (MLUPS, eager and ``torch.compile``, and their ratio) and the Strouhal
  number of the full cached cylinder-wake run;
* Voronoi input speed: gather with a precomputed nearest-sensor map vs
  ``scipy.interpolate.griddata(method='nearest')`` per snapshot (same batch, same run);
* relative L2 error of the faithful vs improved Voronoi-CNN inputs on unseen sensor layouts,
  time-ordered split, several seeds: cylinder (8/16 sensors), COADS SST (10/30/100) and
  the 1980–90 monthly navy zonal wind (10/30/100).

    python benchmarks/fields.py            # 3 seeds, reduced-width nets (see BUDGET)
    python benchmarks/fields.py --quick    # 1 seed, tiny budget (smoke run)
    python benchmarks/fields.py --datasets cylinder --epochs 40 --patience 10 --tag long

Each training run is kept in ``runs/fields_bench/<dataset>-<inputs>-s<seed>``; a killed
benchmark skips finished runs. Results: ``benchmarks/results/fields.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fields.cylinder import CylinderConfig, load_cylinder  # noqa: E402
from fields.lbm import measure_mlups  # noqa: E402
from fields.netcdf import load_ferret  # noqa: E402
from fields.reference import speed_ratio  # noqa: E402
from fields.train import FieldTrainConfig, train  # noqa: E402
from fields.voronoi import SensorGrid  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

# Paper networks are width 48; on 2 shared CPU cores we train width 16 under a fixed budget.
BUDGET = {"width": 16, "depth": 7, "batch_size": 4, "epochs": 10, "steps_per_epoch": 15,
          "patience": 4, "train_layouts": 64, "eval_layouts": 5, "max_eval": 24}
DATASETS = {  # per-dataset overrides of BUDGET
    "cylinder": {"sensors": (8, 16), "stride": 3, "coarsen": 2},  # 56×96 grid
    "coads-sst": {"sensors": (10, 30, 100)},  # 90×180, 12 monthly snapshots
    "navy-uwnd": {"sensors": (10, 30, 100)},  # 73×144, 132 months 1980–90
}
QUICK = {"epochs": 2, "steps_per_epoch": 3, "eval_layouts": 2, "max_eval": 8, "width": 8}


def solver_figures(quick: bool) -> dict:
    cfg = CylinderConfig()
    eager = measure_mlups(cfg, steps=100 if quick else 400)
    compiled = measure_mlups(cfg, steps=200 if quick else 1000, compile=True)
    data = load_cylinder(cfg)
    return {"grid": [cfg.ny, cfg.nx], "diameter": cfg.diameter, "reynolds": cfg.reynolds,
            "u_in": cfg.u_in, "tau": cfg.tau, "collision": cfg.collision,
            "mlups_eager": eager, "mlups_compiled": compiled,
            "compiled_over_eager": compiled / eager,
            "strouhal_full_run": float(data.attrs["strouhal"]),
            "mlups_full_run": float(data.attrs["solver_mlups"]),
            "snapshots": len(data), "sample_every": cfg.sample_every}


def voronoi_figures() -> dict:
    rng = np.random.default_rng(0)
    out = {}
    cyl = load_cylinder()
    grid = SensorGrid.from_field(cyl)
    out["cylinder_16_sensors_batch256"] = speed_ratio(grid, cyl.values[:256],
                                                      grid.random_layout(16, rng))
    sst = load_ferret("coads-sst")
    grid = SensorGrid.from_field(sst)
    out["coads_sst_30_sensors_batch12"] = speed_ratio(grid, sst.values,
                                                      grid.random_layout(30, rng))
    return out


def reconstruction(args: argparse.Namespace) -> dict:
    overrides = {k: getattr(args, k) for k in ("width", "epochs", "steps_per_epoch",
                                               "batch_size", "patience")
                 if getattr(args, k) is not None}
    budget = BUDGET | (QUICK if args.quick else {}) | overrides
    results: dict = {}
    for ds, opts in DATASETS.items():
        if args.datasets and ds not in args.datasets:
            continue
        for inputs in ("faithful", "improved"):
            runs = []
            for seed in args.seeds:
                run_dir = Path(args.runs) / f"{ds}-{inputs}-s{seed}"
                done = run_dir / "metrics.json"
                if done.exists() and not args.quick:
                    runs.append(json.loads(done.read_text())["metrics"])
                    continue
                kw = budget | opts | (QUICK if args.quick else {}) | overrides
                cfg = FieldTrainConfig(dataset=ds, inputs=inputs, seed=seed, run_dir=str(run_dir),
                                       progress=not args.no_progress, device=args.device,
                                       resume=(run_dir / "last.pt").exists(), **kw)
                runs.append(train(cfg)["metrics"])
                print(f"  {ds} {inputs} seed {seed}: " + ", ".join(
                    f"K={k} {m['rel_l2']:.4f}" for k, m in runs[-1]["test"].items()), flush=True)
            results.setdefault(ds, {})[inputs] = {
                k: {"rel_l2": [r["test"][k]["rel_l2"] for r in runs],
                    "rmse": [r["test"][k]["rmse"] for r in runs]}
                for k in runs[0]["test"]} | {
                "train_images_per_s": statistics.mean(r["train_images_per_s"] for r in runs),
                "mean_field_rel_l2": runs[0]["mean_field_rel_l2"]}
    for by_inputs in results.values():
        for k in by_inputs["faithful"]:
            if k in ("train_images_per_s", "mean_field_rel_l2"):
                continue
            f = statistics.mean(by_inputs["faithful"][k]["rel_l2"])
            i = statistics.mean(by_inputs["improved"][k]["rel_l2"])
            by_inputs.setdefault("improved_over_faithful", {})[k] = i / f
    return {"budget": budget, "per_dataset": DATASETS, "seeds": list(args.seeds), "split": "time-ordered 0.7/0.15/0.15",
            "layouts": "test layouts drawn from a seed stream disjoint from training",
            "results": results}


def print_table(out: dict) -> None:
    s = out["solver"]
    print(f"\nLBM {s['grid'][1]}×{s['grid'][0]}, Re={s['reynolds']:.0f}: St = "
          f"{s['strouhal_full_run']:.4f}; MLUPS eager {s['mlups_eager']:.1f}, compiled "
          f"{s['mlups_compiled']:.1f} (×{s['compiled_over_eager']:.1f})")
    for name, v in out["voronoi"].items():
        print(f"Voronoi {name}: gather ×{v['ratio']:.0f} faster than griddata "
              f"(×{v['ratio_with_build']:.0f} including the map build)")
    rec = out["reconstruction"]
    print(f"\n{'dataset':<10} {'K':>4} {'faithful':>18} {'improved':>18} {'ratio':>7}")
    for ds, by in rec["results"].items():
        for k, ratio in by["improved_over_faithful"].items():
            f, i = by["faithful"][k]["rel_l2"], by["improved"][k]["rel_l2"]
            sf = statistics.stdev(f) if len(f) > 1 else 0.0
            si = statistics.stdev(i) if len(i) > 1 else 0.0
            print(f"{ds:<10} {k:>4} {statistics.mean(f):>10.4f} ± {sf:.4f} "
                  f"{statistics.mean(i):>10.4f} ± {si:.4f} {ratio:>7.3f}")
        print(f"{'':<10} train images/s: faithful {by['faithful']['train_images_per_s']:.1f}, "
              f"improved {by['improved']['train_images_per_s']:.1f}; training-mean field "
              f"(no sensors) rel L2 {by['faithful']['mean_field_rel_l2']:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--datasets", nargs="+", default=None, choices=list(DATASETS))
    p.add_argument("--runs", default=str(ROOT / "runs" / "fields_bench"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    for flag in ("width", "epochs", "steps-per-epoch", "batch-size", "patience"):
        p.add_argument(f"--{flag}", type=int, default=None, help="override the training budget")
    p.add_argument("--tag", default="", help="suffix for the runs folder and the result file")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fields.json"))
    args = p.parse_args()
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    tag = "_quick" * args.quick + (f"_{args.tag}" if args.tag else "")
    if tag:
        args.runs = args.runs + tag
        args.out = args.out.replace(".json", f"{tag}.json")
    out = {**provenance(), "solver": solver_figures(args.quick), "voronoi": voronoi_figures(),
           "reconstruction": reconstruction(args)}
    atomic_write_json(out, args.out)
    print_table(out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
