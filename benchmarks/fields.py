"""Sparse field reconstruction benchmark (issue 7): solver, Voronoi inputs, Voronoi-CNNs.

Measures, in one run:

* LBM solver speed (MLUPS, eager and ``torch.compile``, and their ratio) and the Strouhal
  number of the full cached cylinder-wake run;
* Voronoi input speed: gather with a precomputed nearest-sensor map vs
  ``scipy.interpolate.griddata(method='nearest')`` per snapshot (same batch, same run);
* relative L2 error of the faithful vs improved Voronoi-CNN inputs on unseen sensor layouts,
  time-ordered split, several seeds: cylinder (8/16 sensors), COADS SST (10/30/100) and
  the 1980–90 monthly navy zonal wind (10/30/100), next to the training-mean-field baseline;
  training images/s of both variants.

Both variants use the same training protocol (``fields.train``, ``target='anomaly'``: the
network predicts the deviation from the training-mean field from a zero-initialised output
layer, and early stopping includes the untrained network), so only the inputs differ.

    python benchmarks/fields.py --scale smoke     # minutes: 1 seed, tiny nets
    python benchmarks/fields.py                   # default: 3 seeds, reduced nets/grids
    python benchmarks/fields.py --scale paper     # paper networks (width 48, 7×7), full grids

Training runs are kept in ``runs/fields_bench_<scale>/<dataset>-<inputs>-s<seed>``; a run
whose ``metrics.json`` was written for the same config is reused, a killed one resumes.
Results: ``<results-dir>/fields.json`` (``fields_<scale>.json`` unless default) and a PNG.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

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

SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": [0], "solver_steps": (50, 100),
              "budget": {"width": 4, "depth": 3, "kernel": 3, "batch_size": 4, "epochs": 1,
                         "steps_per_epoch": 3, "patience": 2, "train_layouts": 8,
                         "eval_layouts": 2, "max_eval": 4},
              "datasets": {"cylinder": {"sensors": (8, 16), "stride": 10, "coarsen": 4},
                           "coads-sst": {"sensors": (10, 30, 100), "coarsen": 3},
                           "navy-uwnd": {"sensors": (10, 30, 100), "coarsen": 3}}},
    # 2 CPU cores: width-16 7×[5×5] nets on 4×/3×-coarsened grids, a fixed step budget
    # (2 000 updates × 16 = 32 000 training images per run); lr 3e-3
    # (1e-3 barely left the mean field); no early stop (the first epochs are often worse than
    # the mean field), best-on-val kept. The cylinder error was still falling at the end.
    "default": {"seeds": [0, 1, 2], "solver_steps": (300, 1000),
                "budget": {"width": 16, "depth": 7, "kernel": 5, "batch_size": 16, "epochs": 40,
                           "steps_per_epoch": 50, "patience": 40, "lr": 3e-3,
                           "train_layouts": 64, "eval_layouts": 5, "max_eval": 16},
                "datasets": {"cylinder": {"sensors": (8, 16), "stride": 3, "coarsen": 4},
                             "coads-sst": {"sensors": (10, 30, 100), "coarsen": 3},
                             "navy-uwnd": {"sensors": (10, 30, 100), "coarsen": 3}}},
    # The papers' networks and grids; Adam 1e-3, early stopping (needs a GPU or hours).
    "paper": {"seeds": [0, 1, 2, 3, 4], "solver_steps": (1000, 5000),
              "budget": {"width": 48, "depth": 7, "kernel": 7, "batch_size": 16, "epochs": 100,
                         "steps_per_epoch": 0, "patience": 10, "train_layouts": 256,
                         "eval_layouts": 5, "max_eval": 128},
              "datasets": {"cylinder": {"sensors": (8, 16)},
                           "coads-sst": {"sensors": (10, 30, 100)},
                           "navy-uwnd": {"sensors": (10, 30, 100)}}},
}
# Paper P3 (arXiv:2408.12531) reports its gains qualitatively in its abstract and per-dataset
# tables that are not available offline here; no numbers are transcribed.
PAPER = {"source": "arXiv:2408.12531 (improved inputs) on arXiv:2101.00554 (Voronoi-CNN)",
         "claim": "distance transform + [-1, 1] scaling + separate land mask lower the error "
                  "most on cyclical data (cylinder wake, NOAA SST); mixed on channel flow",
         "numbers": None}


def solver_figures(steps: tuple[int, int]) -> dict[str, Any]:
    cfg = CylinderConfig()
    eager = measure_mlups(cfg, steps=steps[0])
    compiled = measure_mlups(cfg, steps=steps[1], compile=True)
    data = load_cylinder(cfg)
    return {"grid": [cfg.ny, cfg.nx], "diameter": cfg.diameter, "reynolds": cfg.reynolds,
            "u_in": cfg.u_in, "tau": cfg.tau, "collision": cfg.collision,
            "mlups_eager": eager, "mlups_compiled": compiled,
            "compiled_over_eager": compiled / eager,
            "strouhal_full_run": float(data.attrs["strouhal"]),
            "strouhal_in_range_0.15_0.19": 0.15 <= float(data.attrs["strouhal"]) <= 0.19,
            "mlups_full_run_incl_compile_when_cached": float(data.attrs["solver_mlups"]),
            "snapshots": len(data), "sample_every": cfg.sample_every}


def voronoi_figures() -> dict[str, Any]:
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


def _config_json(cfg: FieldTrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))


_VOLATILE = ("progress", "resume", "threads", "device", "run_dir")


def run_one(cfg: FieldTrainConfig) -> dict[str, Any]:
    """Train (or reuse a finished run of exactly this config) and return its metrics."""
    done = Path(cfg.run_dir) / "metrics.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if {k: v for k, v in saved["config"].items() if k not in _VOLATILE} == {
                k: v for k, v in _config_json(cfg).items() if k not in _VOLATILE}:
            return saved["metrics"]
    last = Path(cfg.run_dir) / "last.pt"
    if last.exists():  # resume a killed run of this config; discard one of another config
        old = torch.load(last, map_location="cpu", weights_only=False)["config"]
        same = {k: v for k, v in json.loads(json.dumps(old)).items() if k not in _VOLATILE} == {
            k: v for k, v in _config_json(cfg).items() if k not in _VOLATILE}
        if not same:
            shutil.rmtree(cfg.run_dir)
    cfg.resume = last.exists()
    return train(cfg)["metrics"]


def reconstruction(scale: dict[str, Any], seeds: list[int], datasets: list[str] | None,
                   runs: Path, device: str, progress: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for ds, opts in scale["datasets"].items():
        if datasets and ds not in datasets:
            continue
        for inputs in ("faithful", "improved"):
            per_seed = []
            for seed in seeds:
                cfg = FieldTrainConfig(dataset=ds, inputs=inputs, seed=seed, target="anomaly",
                                       run_dir=str(runs / f"{ds}-{inputs}-s{seed}"),
                                       progress=progress, device=device,
                                       **(scale["budget"] | opts))
                m = run_one(cfg)
                per_seed.append(m)
                print(f"  {ds} {inputs} seed {seed}: " + ", ".join(
                    f"K={k} {v['rel_l2']:.4f}" for k, v in m["test"].items())
                    + f" (mean field {m['mean_field_rel_l2']:.4f}, best epoch "
                      f"{m.get('best_epoch')})", flush=True)
            results.setdefault(ds, {})[inputs] = {
                "test": {k: {"rel_l2": [r["test"][k]["rel_l2"] for r in per_seed],
                             "rmse": [r["test"][k]["rmse"] for r in per_seed]}
                         for k in per_seed[0]["test"]},
                "best_epoch": [r.get("best_epoch") for r in per_seed],
                "train_images_per_s": statistics.mean(r["train_images_per_s"] for r in per_seed),
                "mean_field_rel_l2": per_seed[0]["mean_field_rel_l2"],
                "n_snapshots": per_seed[0]["n_snapshots"],
                "parameters": per_seed[0]["parameters"]}
    return results


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def make_table(results: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for ds, by in results.items():
        for k in by["faithful"]["test"]:
            fm, fs = _mean_std(by["faithful"]["test"][k]["rel_l2"])
            im, is_ = _mean_std(by["improved"]["test"][k]["rel_l2"])
            paired = [i / f for i, f in zip(by["improved"]["test"][k]["rel_l2"],
                                            by["faithful"]["test"][k]["rel_l2"], strict=True)]
            rows.append({"dataset": ds, "sensors": int(k), "faithful_rel_l2": fm,
                         "faithful_std": fs, "improved_rel_l2": im, "improved_std": is_,
                         "improved_over_faithful": im / fm,
                         "improved_wins_seeds": sum(p < 1 for p in paired),
                         "mean_field_rel_l2": by["faithful"]["mean_field_rel_l2"],
                         "faithful_over_mean_field": fm / by["faithful"]["mean_field_rel_l2"],
                         "improved_over_mean_field": im / by["faithful"]["mean_field_rel_l2"],
                         "seeds": list(seeds)})
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['dataset']}\nK={r['sensors']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4), constrained_layout=True)
    for off, key, name in ((-0.27, "faithful", "faithful"), (0.0, "improved", "improved")):
        ax.bar(x + off, [r[f"{key}_rel_l2"] for r in rows], 0.27,
               yerr=[r[f"{key}_std"] for r in rows], label=name)
    ax.bar(x + 0.27, [r["mean_field_rel_l2"] for r in rows], 0.27, label="training mean field",
           color="0.7")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("relative L2 error (test, unseen layouts)")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(out: dict[str, Any]) -> None:
    s = out["solver"]
    print(f"\nLBM {s['grid'][1]}×{s['grid'][0]}, Re={s['reynolds']:.0f}: St = "
          f"{s['strouhal_full_run']:.4f}; MLUPS eager {s['mlups_eager']:.1f}, compiled "
          f"{s['mlups_compiled']:.1f} (×{s['compiled_over_eager']:.1f})")
    for name, v in out["voronoi"].items():
        print(f"Voronoi {name}: gather ×{v['ratio']:.0f} faster than griddata "
              f"(×{v['ratio_with_build']:.0f} including the map build)")
    print(f"\n{'dataset':<10} {'K':>4} {'faithful':>17} {'improved':>17} {'impr/faith':>10} "
          f"{'mean field':>10} {'wins':>5}")
    for r in out["table"]:
        print(f"{r['dataset']:<10} {r['sensors']:>4} {r['faithful_rel_l2']:>9.4f} ± "
              f"{r['faithful_std']:.4f} {r['improved_rel_l2']:>9.4f} ± {r['improved_std']:.4f} "
              f"{r['improved_over_faithful']:>10.3f} {r['mean_field_rel_l2']:>10.4f} "
              f"{r['improved_wins_seeds']:>2}/{len(r['seeds'])}")
    for ds, by in out["reconstruction"].items():
        print(f"{ds}: train images/s faithful {by['faithful']['train_images_per_s']:.1f}, "
              f"improved {by['improved']['train_images_per_s']:.1f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="default")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the scale's")
    p.add_argument("--datasets", nargs="+", default=None, choices=list(SCALES["default"][
        "datasets"]))
    p.add_argument("--runs", default=None, help="training runs folder "
                                                "(default runs/fields_bench_<scale>)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    seeds = args.seeds or scale["seeds"]
    runs = Path(args.runs or ROOT / "runs" / f"fields_bench_{args.scale}")
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = "fields" if args.scale == "default" else f"fields_{args.scale}"
    rec = reconstruction(scale, seeds, args.datasets, runs, args.device, not args.no_progress)
    table = make_table(rec, seeds)
    out = {**provenance(seeds[0]), "seeds": seeds, "scale": args.scale,
           "budget": scale["budget"], "per_dataset": scale["datasets"],
           "split": "time-ordered 0.7/0.15/0.15",
           "layouts": "test layouts drawn from a seed stream disjoint from training",
           "protocol": "target='anomaly' for both variants; early stopping on validation "
                       "relative L2 including the untrained (mean-field) network",
           "table": table, "paper": PAPER, "reconstruction": rec,
           "solver": solver_figures(scale["solver_steps"]), "voronoi": voronoi_figures(),
           "timing_note": "2 CPU cores shared with other jobs: speeds measured under "
                          "contention; ratios are from the same run"}
    plot(table, results_dir / f"{stem}.png")
    atomic_write_json(out, results_dir / f"{stem}.json")
    print_table(out)
    print(f"\nwrote {results_dir / (stem + '.json')}")
    return out


if __name__ == "__main__":
    main()
