"""P3 on honest ground: Voronoi-CNNs against gappy POD, the input ablation, solver and speed.

One run measures:

* **reconstruction** (relative L2 on the test block of a time-ordered split, area-weighted on
  lat/lon grids), for every seed and sensor count K, of
  - gappy POD (Tikhonov, rank and λ chosen on the validation block) on the *same* layouts
    as the networks, and QR-pivoted layouts (PySensors) scored by gappy POD;
  - Voronoi-CNNs trained to convergence (early stopping on validation, reduce-on-plateau lr),
    under two protocols: ``fixed`` (Fukami's: one layout per K for training and test, one
    network per K) and ``layout_general`` (random training layouts, unseen test layouts);
* the **P3 ablation**: faithful, + distance transform, + [−1, 1] scaling, + land-mask channel,
  all three; paired over seeds, on the cylinder wake and on land/sea data (ocean-only winds);
* **winds**: monthly navy winds 1980–90 (both components), anomalies from the training
  months' climatology, area-weighted error. COADS SST runs as a small example only (a
  12-month climatology split 8/2/2: no claim);
* **solver validation**: drag, lift amplitude and St at two grid resolutions against published
  Re = 100 values (blockage stated);
* **speed**: the gather against the best SciPy path (vectorised ``griddata``, ``cKDTree``),
  with and without building the layout's map.

    python benchmarks/fields.py --scale smoke --sets coads-sst   # a minute
    python benchmarks/fields.py                                  # default: 3 seeds
    python benchmarks/fields.py --scale paper                    # paper nets (needs a GPU)

Training runs live in ``runs/fields_bench_<scale>/<set>/<dataset>-<protocol>-<variant>[-k<K>]-s<seed>``;
a finished run with the same config is reused and a killed one resumes, so the benchmark can
be stopped and restarted. ``--workers`` runs trainings in parallel processes (one thread each).
Results: ``benchmarks/results/fields.json`` (``fields_<scale>.json`` off default) and PNGs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import fields as fields_figure  # noqa: E402
from benchmarks.parts.fields_runs import job_configs, run_jobs  # noqa: E402
from benchmarks.parts.voronoi_speed import speed_ratio  # noqa: E402
from fields.classical.placement import qr_placement  # noqa: E402
from fields.classical.pod import POD, cell_weights, evaluate_gappy, select_gappy_pod  # noqa: E402
from fields.flow.lbm import LBMConfig  # noqa: E402
from fields.flow.solver_check import validate  # noqa: E402
from fields.load import load_field  # noqa: E402
from fields.train import (  # noqa: E402
    FieldTrainConfig,
    make_layouts,
    prepare,
    protocol_layouts,
    seed_rng,
)
from fields.voronoi import SensorGrid  # noqa: E402
from models import stats  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

ABLATION = ("faithful", "distance", "scaled", "land", "improved")
HEADLINE = ("faithful", "improved")
# deploygym's position channels: not part of P3's claim, so not in the default sets (2 h budget)
OURS = ("improved_xy",)
# 2 CPU cores: width-16 7×[5×5] Voronoi-CNNs on coarsened grids, early stopping.
DEFAULT_NET = {"width": 16, "depth": 7, "kernel": 5, "batch_size": 16, "epochs": 40,
               "steps_per_epoch": 50, "patience": 10, "lr_patience": 3, "lr": 3e-3,
               "warmup_steps": 100, "train_layouts": 128, "eval_layouts": 5, "max_eval": 32}
SETS_DEFAULT: dict[str, dict[str, Any]] = {
    "cylinder": {"datasets": ["cylinder"], "data": {"stride": 3, "coarsen": 4},
                 "sensors": (8, 16),
                 "protocols": {"fixed": HEADLINE, "layout_general": ABLATION},
                 # the wake keeps improving long after 2000 updates: up to 8000, patience 750
                 "net": {"epochs": 160, "patience": 15, "lr_patience": 4}},
    "winds": {"datasets": ["navy-uwnd", "navy-vwnd"],
              "data": {"coarsen": 3, "climatology": 12}, "sensors": (10, 30),
              "protocols": {"layout_general": HEADLINE}},
    "ocean-winds": {"datasets": ["navy-uwnd-ocean"], "data": {"coarsen": 3, "climatology": 12},
                    "sensors": (10, 30), "protocols": {"layout_general": ABLATION}},
    "coads-sst": {"datasets": ["coads-sst"], "data": {"coarsen": 3, "split": (8 / 12, 2 / 12,
                                                                              2 / 12)},
                  "sensors": (10, 30), "protocols": {"layout_general": HEADLINE},
                  "note": "12-snapshot monthly climatology split 8/2/2: an example, no claim"},
}
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": [0], "workers": 1,
              "net": {"width": 4, "depth": 3, "kernel": 3, "batch_size": 4, "epochs": 2,
                      "steps_per_epoch": 3, "patience": 2, "lr_patience": 0, "lr": 3e-3,
                      "warmup_steps": 2, "train_layouts": 8, "eval_layouts": 2, "max_eval": 4},
              "sets": SETS_DEFAULT | {"cylinder": SETS_DEFAULT["cylinder"] | {
                  "data": {"stride": 10, "coarsen": 4}, "net": {}}},
              "solver": {"base": {"nx": 128, "ny": 72, "diameter": 8.0, "center_x": 32.0},
                         "factors": (1,), "compile": False, "warmup_periods": 8, "periods": 4},
              "gappy_val_layouts": 2},
    "default": {"seeds": [0, 1, 2], "workers": 2, "net": DEFAULT_NET, "sets": SETS_DEFAULT,
                "solver": {"base": None, "factors": (1, 2), "compile": True},
                "gappy_val_layouts": 5},
    "paper": {"seeds": [0, 1, 2, 3, 4], "workers": 1,
              "net": {"width": 48, "depth": 7, "kernel": 7, "batch_size": 16, "epochs": 200,
                      "steps_per_epoch": 0, "patience": 20, "lr_patience": 5, "lr": 1e-3,
                      "warmup_steps": 100, "train_layouts": 512, "eval_layouts": 10,
                      "max_eval": 128},
              "sets": {k: v | {"net": {}, "data": {kk: vv for kk, vv in v["data"].items()
                                                   if kk not in ("coarsen", "stride")}}
                       for k, v in SETS_DEFAULT.items()},
              "solver": {"base": None, "factors": (1, 2), "compile": True},
              "gappy_val_layouts": 10},
}


# ------------------------------------------------------------------------------ gappy POD
def gappy_figures(cfg: FieldTrainConfig, n_val_layouts: int) -> dict[str, Any]:
    """Gappy POD on the network's test layouts (rank, λ chosen on validation per K), and
    QR-pivoted layouts scored by gappy POD."""
    data, tr, va, te = prepare(cfg)
    grid = SensorGrid.from_field(data)
    valid = grid.valid_np
    weight = cell_weights(data) if data.spherical else None
    pod = POD(tr, valid)
    _, _, test_layouts = protocol_layouts(cfg, grid)
    out: dict[str, Any] = {}
    for k, lays in test_layouts.items():
        if cfg.layouts == "fixed":
            val_lays = [lay.sensors for lay in lays]
        else:
            val_lays = [lay.sensors for lay in make_layouts(grid, (k,), n_val_layouts,
                                                            seed_rng(cfg, "val", 1, k))]
        choice = select_gappy_pod(pod, va, val_lays, valid, weight)
        qr = qr_placement(pod, valid, k)
        qr_choice = select_gappy_pod(pod, va, [qr], valid, weight)
        out[str(k)] = {
            "gappy_pod": evaluate_gappy(pod, te, [lay.sensors for lay in lays], choice.rank,
                                        choice.lam, valid, weight),
            "rank": choice.rank, "lam": choice.lam, "val_rel_l2": choice.val_rel_l2,
            "qr_gappy_pod": evaluate_gappy(pod, te, [qr], qr_choice.rank, qr_choice.lam,
                                           valid, weight),
            "qr_rank": qr_choice.rank, "qr_lam": qr_choice.lam}
    return out


# ------------------------------------------------------------------------------ statistics
def collect(jobs: list[tuple[tuple[str, ...], FieldTrainConfig]],
            nets: dict[tuple[str, ...], dict[str, Any]], gappy: dict[tuple[str, ...], Any]
            ) -> dict[str, Any]:
    """Per (set, dataset, protocol, K): per-seed errors of every method."""
    per: dict[tuple[str, str, str, str], dict[str, dict[int, float]]] = {}
    extra: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}
    for key, _ in jobs:
        name, ds, protocol, variant, _, seed = key
        for k, m in nets[key]["test"].items():
            cell = per.setdefault((name, ds, protocol, f"K{k}"), {})
            cell.setdefault(variant, {})[seed] = m["rel_l2"]
            ex = extra.setdefault((name, ds, protocol, f"K{k}"), {})
            for field_ in ("updates", "train_time_s", "best_epoch"):
                ex.setdefault(f"{variant}_{field_}", []).append(nets[key].get(field_))
    for (name, ds, protocol, seed, _), g in gappy.items():
        for k, v in g.items():
            cell = per.setdefault((name, ds, protocol, f"K{k}"), {})
            cell.setdefault("gappy_pod", {})[seed] = v["gappy_pod"]
            cell.setdefault("qr_gappy_pod", {})[seed] = v["qr_gappy_pod"]
            ex = extra.setdefault((name, ds, protocol, f"K{k}"), {})
            ex.setdefault("gappy_pod_rank", []).append(v["rank"])
            ex.setdefault("gappy_pod_lam", []).append(v["lam"])
    rows = []
    for (name, ds, protocol, k), methods in per.items():
        row: dict[str, Any] = {"set": name, "dataset": ds, "protocol": protocol, "K": k,
                               **cell_statistics(methods)}
        row.update({kk: v for kk, v in extra[(name, ds, protocol, k)].items()})
        rows.append(row)
    return {"rows": rows}


def cell_statistics(methods: dict[str, dict[int, float]]) -> dict[str, Any]:
    """One row's statistics from each method's per-seed errors: mean, 95% CI half-width and
    per-seed values of each, paired two-sided p-values against faithful and gappy POD."""
    seeds = sorted(methods.get("faithful", methods["gappy_pod"]))
    row: dict[str, Any] = {"seeds": seeds}
    for meth, by_seed in methods.items():
        vals = [by_seed[s] for s in seeds if s in by_seed]
        row[meth] = stats.mean_ci(vals).mean
        row[f"{meth}_ci95"] = stats.t_half_width(vals, undefined=0.0)
        row[f"{meth}_per_seed"] = vals
    for meth in methods:
        if meth in ("faithful", "gappy_pod", "qr_gappy_pod"):
            continue
        a = [methods[meth][s] for s in seeds]
        row[f"p_{meth}_vs_faithful"] = stats.paired_p(a, [methods["faithful"][s] for s in seeds])
        row[f"{meth}_over_faithful"] = row[meth] / row["faithful"]
    for meth in ("improved", "faithful", *OURS):
        if meth in methods:
            row[f"p_{meth}_vs_gappy_pod"] = stats.paired_p(
                [methods[meth][s] for s in seeds], [methods["gappy_pod"][s] for s in seeds])
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary keys: cylinder / winds → protocol → K → method → mean relative L2."""
    out: dict[str, Any] = {}
    methods = ("gappy_pod", "qr_gappy_pod", "faithful", "improved", *OURS)
    for r in rows:
        if r["set"] == "cylinder":
            cell = out.setdefault("cylinder", {}).setdefault(r["protocol"], {}).setdefault(
                r["K"], {})
            cell.update({m: r[m] for m in methods if m in r})
        elif r["set"] == "winds":  # the mean over both components
            cell = out.setdefault("winds", {}).setdefault(r["protocol"], {}).setdefault(
                r["K"], {})
            for m in methods:
                if m in r:
                    cell.setdefault(f"_{m}", []).append(r[m])
                    cell[m] = float(np.mean(cell[f"_{m}"]))
            comp = out.setdefault("winds_components", {}).setdefault(r["dataset"], {})
            comp.setdefault(r["protocol"], {})[r["K"]] = {m: r[m] for m in methods if m in r}
    for prot in out.get("winds", {}).values():
        for cell in prot.values():
            for key in [k for k in cell if k.startswith("_")]:
                del cell[key]
    return out


def ablation_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each P3 component against faithful, paired over seeds, where the ablation ran."""
    table = []
    for r in rows:
        if not all(v in r for v in ABLATION):
            continue
        for v in ABLATION:
            table.append({"dataset": r["dataset"], "protocol": r["protocol"], "K": r["K"],
                          "variant": v, "rel_l2": r[v], "ci95": r[f"{v}_ci95"],
                          "over_faithful": r[v] / r["faithful"],
                          "p_vs_faithful": r.get(f"p_{v}_vs_faithful"),
                          "gappy_pod": r["gappy_pod"], "seeds": r["seeds"]})
    return table


# ------------------------------------------------------------------------------ speed
def speed_figures(with_cylinder: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out = {}
    if with_cylinder:
        cyl = load_field("cylinder", progress=False)
        grid = SensorGrid.from_field(cyl)
        out["cylinder_112x192_16_sensors_batch256"] = speed_ratio(grid, cyl.values[:256],
                                                                  grid.random_layout(16, rng))
    winds = load_field("navy-uwnd", progress=False)
    grid = SensorGrid.from_field(winds)
    out["navy_winds_73x144_sphere_30_sensors_batch132"] = speed_ratio(
        grid, winds.values, grid.random_layout(30, rng))
    return out


def sensor_placement_summary(results_dir: Path) -> dict[str, Any] | None:
    """The SensorPlacement comparison (``benchmarks/sensor_placement.py``, run separately) in
    the summary's shape: field → K → method → test relative L2 by gappy POD."""
    path = results_dir / "sensor_placement.json"
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    out: dict[str, Any] = {"source": path.name, "command": rec.get("command"),
                           "seeds": rec.get("seeds"), "ppo_steps": rec.get("ppo_steps")}
    for field, cells in rec.get("summary", {}).items():
        out[field] = {k: {m: cell[m]["rel_l2"] for m in ("ppo", "qr", "det_greedy", "greedy",
                                                         "annealing", "random") if m in cell}
                      | {"estimator": "gappy POD (rank, λ chosen on validation)"}
                      for k, cell in cells.items()}
    return out


# ------------------------------------------------------------------------------ output
def print_tables(out: dict[str, Any]) -> None:
    cols = ("gappy_pod", "qr_gappy_pod", *ABLATION, *OURS)
    print(f"\n{'dataset':<16} {'protocol':<14} {'K':<4} " + " ".join(f"{c:>15}" for c in cols))
    for r in out["rows"]:
        cells = [f"{r[c]:.4f}±{r[c + '_ci95']:.4f}" if c in r else "" for c in cols]
        print(f"{r['dataset']:<16} {r['protocol']:<14} {r['K']:<4} "
              + " ".join(f"{c:>15}" for c in cells))
    for name, run in out.get("solver", {}).get("runs", {}).items():
        print(f"LBM {name} {run['grid'][1]}×{run['grid'][0]} D={run['diameter']:.0f} "
              f"(blockage {run['blockage']:.3f}): C_D {run['drag']:.3f}, C_L amplitude "
              f"{run['lift_amplitude']:.3f}, St {run['strouhal']:.4f}")
    for name, v in out.get("speed", {}).items():
        print(f"Voronoi {name}: gather ×{v['ratio']:.1f} vs best SciPy "
              f"(×{v['ratio_with_build']:.2f} with the map build; "
              f"×{v['ratio_vs_griddata_per_snapshot']:.0f} vs griddata per snapshot)")


# ------------------------------------------------------------------------------ stages
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="default")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the scale's")
    p.add_argument("--sets", nargs="+", default=None, choices=list(SETS_DEFAULT),
                   help="subset of the reconstruction sets (default: all)")
    p.add_argument("--workers", type=int, default=None, help="parallel trainings (1 thread "
                                                             "each); default: the scale's")
    p.add_argument("--no-solver", action="store_true", help="skip the solver validation")
    p.add_argument("--no-speed", action="store_true", help="skip the speed comparison")
    p.add_argument("--runs", default=None, help="runs folder (default runs/fields_bench_<scale>)")
    p.add_argument("--device", default="cpu")
    return p


def run_reconstruction(args: argparse.Namespace, scale: dict[str, Any], sets: list[str],
                       seeds: list[int]) -> list[dict[str, Any]]:
    """Every network training and gappy POD baseline: the rows of per-seed errors."""
    if any("cylinder" in scale["sets"][s]["datasets"] for s in sets):
        load_field("cylinder")  # simulate once here, before workers start
    runs = Path(args.runs or ROOT / "runs" / f"fields_bench_{args.scale}")
    jobs = job_configs(scale, sets, seeds, runs, args.device)
    print(f"{len(jobs)} trainings, {args.workers or scale['workers']} worker(s)", flush=True)
    nets = run_jobs(jobs, args.workers or scale["workers"])
    gappy = {}
    for key, cfg in jobs:
        name, ds, protocol, variant, ks, seed = key
        if variant == "faithful":
            gappy[(name, ds, protocol, seed, ks)] = gappy_figures(cfg, scale["gappy_val_layouts"])
    return collect(jobs, nets, gappy)["rows"]


def record(args: argparse.Namespace, scale: dict[str, Any], sets: list[str], seeds: list[int],
           rows: list[dict[str, Any]], t_start: float) -> dict[str, Any]:
    """The result file's reconstruction part: summary, ablation, rows, table, protocol."""
    return {
        **provenance(seeds[0]), "seeds": seeds, "scale": args.scale, "sets": sets,
        "net": scale["net"], "set_specs": {s: scale["sets"][s] for s in sets},
        "summary": summary(rows), "ablation": ablation_table(rows), "rows": rows,
        "table": [{"dataset": r["dataset"], "protocol": r["protocol"], "sensors": r["K"],
                   "gappy_pod": r["gappy_pod"], "faithful": r.get("faithful"),
                   "improved": r.get("improved"),
                   "improved_over_faithful": r.get("improved_over_faithful")} for r in rows],
        "protocol": {
            "split": "time-ordered train/val/test blocks (0.7/0.15/0.15 unless stated)",
            "selection": "CNN: best epoch on validation (patience, reduce-on-plateau); gappy "
                         "POD: rank × λ grid on validation layouts; test read once",
            "fixed": "one random layout per K and seed, shared by training, validation, test "
                     "and gappy POD; one network per K",
            "layout_general": "networks trained on random layouts mixing the K; test layouts "
                              "from a disjoint seed stream, the same for gappy POD",
            "metric": "relative L2 over valid cells; area-weighted (cos latitude) on lat/lon"},
        "wall_s_reconstruction": time.perf_counter() - t_start,
        "timing_note": "2 CPU cores; trainings ran in parallel worker processes, so per-run "
                       "times are under the load of the other worker"}


def run_checks(args: argparse.Namespace, scale: dict[str, Any], sets: list[str]
               ) -> dict[str, Any]:
    """The solver validation and the gather's speed ratio (unless switched off)."""
    out: dict[str, Any] = {}
    if not args.no_solver:
        s = scale["solver"]
        out["solver"] = validate(LBMConfig(**s["base"]) if s["base"] else None,
                                 tuple(s["factors"]), compile=s["compile"],
                                 **{k: s[k] for k in ("warmup_periods", "periods") if k in s})
    if not args.no_speed:
        out["speed"] = speed_figures(any("cylinder" in scale["sets"][s]["datasets"]
                                         for s in sets))
    return out


def write(out: dict[str, Any], results_dir: Path, stem: str) -> None:
    """``<stem>.png`` and ``<stem>.json``, then the tables on the terminal."""
    fields_figure.plot(out, results_dir / f"{stem}.png")
    atomic_write_json(out, results_dir / f"{stem}.json")
    print_tables(out)
    print(f"\nwrote {results_dir / (stem + '.json')} ({out['wall_s'] / 60:.1f} min)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    seeds = args.seeds or scale["seeds"]
    sets = args.sets or list(scale["sets"])
    unknown = set(sets) - set(scale["sets"])
    if unknown:
        p.error(f"unknown sets {sorted(unknown)}; choose from {list(scale['sets'])}")
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows = run_reconstruction(args, scale, sets, seeds)
    out = {**record(args, scale, sets, seeds, rows, t_start), **run_checks(args, scale, sets)}
    out["wall_s"] = time.perf_counter() - t_start
    out["sensor_placement"] = sensor_placement_summary(results_dir)
    write(out, results_dir, "fields" if args.scale == "default" else f"fields_{args.scale}")
    return out


if __name__ == "__main__":
    main()
