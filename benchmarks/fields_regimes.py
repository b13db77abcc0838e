"""Where does a learned reconstruction beat gappy POD? Noise, sensor failures, chaos, few sensors.

The map: relative L2 on the test block (time-ordered split with a gap between blocks), 3 seeds,
mean ± 95% CI and the paired p-value against gappy POD, for

* gappy POD (rank and λ chosen on validation for every condition) on the protocol's layouts,
* QR-pivoted layouts + gappy POD,
* the shallow decoder (fixed layouts only: it needs the same K inputs in the same order),
* Voronoi-CNNs, faithful and improved inputs (one network per cell trained with the
  conditions' noise and sensor failures as augmentation; best epoch on validation),

over field (kolmogorov: chaotic 2-D Kolmogorov flow at Re = 40; cylinder: Re = 100 wake; navy
winds: monthly anomalies) × K (4, 8, 16, 32) × condition (sensor noise 0, 1, 5, 10 % of the
field std; 5 % noise with a quarter of the sensors failed) × layout (fixed: one layout per K
and seed, the same for training and test; unseen: layout-general networks tested on new
layouts). Plus the P3 input ablation on the Kolmogorov flow and the solver validation.

    python benchmarks/fields_regimes.py --scale smoke --fields kolmogorov   # minutes
    python benchmarks/fields_regimes.py                                     # default (12 core-h)
    python benchmarks/fields_regimes.py --summarize     # rebuild the JSON/figure from run files
    python benchmarks/fields_regimes.py --scale long   # CNNs that hit the epoch cap, 4x the cap

Every run is one file under ``benchmarks/results/fields_regimes/<field>/``; re-running the
command skips finished runs, so it can be stopped and restarted at any time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import fields_regimes as figure  # noqa: E402
from benchmarks.parts.fields_regimes_runs import (  # noqa: E402
    prepared,
    run_job,
    run_path,
    spec_for,
)
from fields.regimes.evaluate import energy_modes  # noqa: E402
from fields.regimes.noise import DEFAULT_CONDITIONS, Condition  # noqa: E402
from models import stats  # noqa: E402
from models.io import atomic_write_json, atomic_write_text, provenance  # noqa: E402

FIELDS = ("kolmogorov", "cylinder", "navy-uwnd")
HEADLINE = ("cnn-faithful", "cnn-improved")
ABLATION = ("cnn-distance", "cnn-scaled", "cnn-land")
NET = {"width": 16, "depth": 7, "kernel": 5, "batch_size": 16, "epochs": 60,
       "steps_per_epoch": 50, "patience": 10, "lr_patience": 3, "lr": 3e-3, "warmup_steps": 100}
SCALES: dict[str, dict[str, Any]] = {
    "default": {"seeds": [0, 1, 2], "ks": [4, 8, 16, 32], "workers": 2,
                "conditions": [c.key for c in DEFAULT_CONDITIONS], "n_val": 64, "n_test": 128,
                "cnn_val": 32, "pool": 32, "val_layouts": 1, "test_layouts": 3, "net": NET,
                "shallow": {"hidden": [128, 128], "epochs": 40, "steps_per_epoch": 50,
                            "patience": 8}},
    "smoke": {"seeds": [0, 1], "ks": [4, 8], "workers": 1,
              "conditions": ["0", "0.05", "0.05+drop0.25"], "n_val": 8, "n_test": 8,
              "cnn_val": 4, "pool": 4, "val_layouts": 1, "test_layouts": 1,
              "net": NET | {"width": 4, "depth": 2, "kernel": 3, "epochs": 2,
                            "steps_per_epoch": 3, "warmup_steps": 2},
              "shallow": {"hidden": [8], "epochs": 2, "steps_per_epoch": 3, "patience": 2}},
}
# convergence check: every default-scale CNN that reached the cap of 60 epochs before its
# patience ran out, run again with a 240-epoch cap and the same patience
SCALES["long"] = SCALES["default"] | {"net": NET | {"epochs": 240}, "rerun_capped": "fields_regimes"}


def jobs(scale: dict[str, Any], fields: list[str]) -> list[dict[str, Any]]:
    """Every run, the cells most likely to answer first: the chaotic field at K ≤ 16 on fixed
    layouts, then its unseen layouts and K = 32, then the cylinder, the ablation, the winds."""
    ks, seeds = scale["ks"], scale["seeds"]
    out: list[dict[str, Any]] = []

    def add(field: str, layout: str, kk: list[int], methods: tuple[str, ...]) -> None:
        for k in kk:
            for m in methods:
                for s in seeds:
                    job = {"field": field, "layout": layout, "k": k, "method": m, "seed": s}
                    if job not in out:
                        out.append(job)

    small = [k for k in ks if k <= 16]
    for field in fields:
        cheap_fixed = ("gappy", "shallow")
        if field == "kolmogorov":
            add(field, "fixed", small, cheap_fixed)
            add(field, "fixed", small, HEADLINE)
            add(field, "unseen", ks, ("gappy",))
            add(field, "unseen", [0], HEADLINE)
        add(field, "fixed", ks, cheap_fixed)
        add(field, "unseen", ks, ("gappy",))
        add(field, "fixed", ks, HEADLINE)
        add(field, "unseen", [0], HEADLINE)
        if field == "kolmogorov":
            add(field, "unseen", [0], ABLATION)
    return out


def capped(root: Path, todo: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The jobs of ``todo`` whose run under ``root`` is a CNN that reached its epoch cap,
    those whose best epoch was the last one first (then by epochs since the best)."""
    def since_best(path: Path) -> int | None:
        info = json.loads(path.read_text()).get("training", {}) if path.exists() else {}
        if "best_epoch" not in info or info["stopped_early"]:
            return None
        return info["epochs_run"] - info["best_epoch"]
    gaps = [(since_best(run_path(root, j)), i, j) for i, j in enumerate(todo)]
    return [j for gap, _, j in sorted(g for g in gaps if g[0] is not None)]


def rerun_changes(base: Path, root: Path, todo: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rerun that has finished: its training under the first cap and the longer one, and
    the test error without noise (mean over K) under each."""
    def facts(path: Path) -> dict[str, Any]:
        rec = json.loads(path.read_text())
        errs = [c["0"] for per_k in rec["test"].values() for c in per_k.values()]
        return {k: rec["training"][k] for k in ("best_epoch", "epochs_run", "stopped_early")} | {
            "test_noise0": sum(errs) / len(errs)}
    out = {}
    for job in todo:
        first, again = run_path(base, job), run_path(root, job)
        if again.exists():
            before, after = facts(first), facts(again)
            change = after["test_noise0"] / before["test_noise0"] - 1
            out[f"{job['field']}/{again.stem}"] = {"cap": before, "long": after,
                                                   "test_change": change}
    return out


def _run(root: str, job: dict[str, Any], spec: dict[str, Any]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    run_job(Path(root), job, spec)
    return job, time.perf_counter() - t0


def run_all(root: Path, scale: dict[str, Any], todo: list[dict[str, Any]], workers: int) -> None:
    """Run the jobs in order (``workers`` processes, one thread each), printing progress."""
    specs = {f: spec_for(scale, f) for f in {j["field"] for j in todo}}
    for f in specs:  # simulate / load each field once before the workers start
        prepared(f, scale["n_val"], scale["n_test"])
    print(f"{len(todo)} runs, {workers} worker(s), files under {root}", flush=True)
    t0 = time.perf_counter()
    if workers <= 1:
        for i, job in enumerate(todo):
            _, s = _run(str(root), job, specs[job["field"]])
            print(f"[{i + 1}/{len(todo)}] {run_path(root, job).name} {s:.0f} s", flush=True)
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_run, str(root), j, specs[j["field"]]) for j in todo]
        for i, fut in enumerate(futs):
            job, s = fut.result()
            print(f"[{i + 1}/{len(todo)}] {job['field']}/{run_path(root, job).name} {s:.0f} s "
                  f"({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)


def collect(root: Path, scale: dict[str, Any], fields: list[str]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per (field, layout, K, condition, method): per-seed errors, and each run's training."""
    cells: dict[tuple[str, str, str, str], dict[str, dict[int, float]]] = {}
    training: dict[str, Any] = {}
    for job in jobs(scale, fields):
        path = run_path(root, job)
        if not path.exists():
            continue
        rec = json.loads(path.read_text())
        if rec["identity"]["spec"] != json.loads(json.dumps(spec_for(scale, job["field"]))):
            continue  # a run of another spec (scale) in the same folder
        layout = job["layout"]
        for k, methods in rec["test"].items():
            for method, by_cond in methods.items():
                for cond, v in by_cond.items():
                    cell = cells.setdefault((job["field"], layout, f"K{k}", cond), {})
                    cell.setdefault(method, {})[job["seed"]] = v
        if "training" in rec:
            training[str(path.relative_to(root))] = _training_note(rec["training"])
    return cells, training


def _training_note(info: dict[str, Any]) -> dict[str, Any]:
    if "best_epoch" in info:  # a CNN
        return {k: info[k] for k in ("best_epoch", "epochs_run", "stopped_early",
                                     "best_val_rel_l2", "updates", "train_time_s")}
    return {c: {k: v[k] for k in ("best_epoch", "epochs_run", "ridge_lam")}
            for c, v in info.items()}  # a shallow decoder per condition


def cell_stats(methods: dict[str, dict[int, float]]) -> dict[str, Any]:
    """Mean, CI, per-seed values and the paired p-value against gappy POD of every method."""
    base = methods.get("gappy_pod", {})
    out: dict[str, Any] = {}
    for m, by_seed in sorted(methods.items()):
        seeds = sorted(by_seed)
        vals = [by_seed[s] for s in seeds]
        ci = stats.mean_ci(vals)
        row = {"mean": ci.mean, "ci95": stats.t_half_width(vals, undefined=0.0),
               "per_seed": vals, "seeds": seeds}
        if m != "gappy_pod" and base:
            shared = [s for s in seeds if s in base]
            row["p_vs_gappy_pod"] = stats.paired_p([by_seed[s] for s in shared],
                                                   [base[s] for s in shared])
            row["over_gappy_pod"] = ci.mean / float(stats.mean_ci([base[s] for s in shared]).mean)
        out[m] = row
    learned = {m: r for m, r in out.items() if m.startswith(("cnn_", "shallow"))
               and m in ("cnn_faithful", "cnn_improved", "shallow_decoder")}
    if learned and base:
        best = min(learned, key=lambda m: learned[m]["mean"])
        p = learned[best].get("p_vs_gappy_pod")
        out["best_learned"] = best
        out["best_learned_beats_gappy_pod"] = bool(
            p is not None and p < 0.05 and learned[best]["mean"] < out["gappy_pod"]["mean"])
    return out


def summarize(cells: dict[tuple[str, ...], dict[str, dict[int, float]]]) -> dict[str, Any]:
    """``summary[field][layout][K][condition][method]``."""
    summary: dict[str, Any] = {}

    def order(key: tuple[str, ...]) -> tuple[Any, ...]:  # K numerically, then noise, failures
        cond = Condition.parse(key[3])
        return key[0], key[1], int(key[2][1:]), cond.drop, cond.noise

    for (field, layout, k, cond), methods in sorted(cells.items(), key=lambda kv: order(kv[0])):
        main = {m: v for m, v in methods.items() if m.replace("cnn_", "cnn-") not in ABLATION}
        summary.setdefault(field, {}).setdefault(layout, {}).setdefault(k, {})[cond] = \
            cell_stats(main)
    return summary


def ablation(cells: dict[tuple[str, ...], dict[str, dict[int, float]]]) -> list[dict[str, Any]]:
    """The P3 input variants against faithful on the Kolmogorov flow (unseen layouts)."""
    rows = []
    for (field, layout, k, cond), methods in sorted(cells.items()):
        if field != "kolmogorov" or layout != "unseen" or "cnn_faithful" not in methods:
            continue
        faithful = methods["cnn_faithful"]
        for m in ("cnn_faithful", *(a.replace("-", "_") for a in ABLATION), "cnn_improved"):
            if m not in methods:
                continue
            shared = sorted(set(methods[m]) & set(faithful))
            vals = [methods[m][s] for s in shared]
            rows.append({"K": k, "condition": cond, "variant": m.removeprefix("cnn_"),
                         "mean": stats.mean_ci(vals).mean if vals else None,
                         "ci95": stats.t_half_width(vals, undefined=0.0),
                         "p_vs_faithful": stats.paired_p(vals, [faithful[s] for s in shared])
                         if m != "cnn_faithful" else None, "seeds": shared})
    return rows

TABLE_METHODS = (("gappy_pod", "gappy POD"), ("qr_gappy_pod", "QR + gappy POD"),
                 ("ridge_linear", "ridge (linear)"), ("shallow_decoder", "shallow decoder"),
                 ("cnn_faithful", "CNN faithful"), ("cnn_improved", "CNN improved"))


def markdown(summary: dict[str, Any]) -> str:
    """One table per field and layout: mean ± CI per method, ``(p)`` against gappy POD, bold
    where a method beats gappy POD with p < 0.05."""
    out = []
    for field, layouts in summary.items():
        for layout, ks in layouts.items():
            present = [(m, n) for m, n in TABLE_METHODS
                       if any(m in cell for conds in ks.values() for cell in conds.values())]
            out.append(f"**{field}, {layout} layout**\n\n| K | noise | seeds | "
                       + " | ".join(n for _, n in present) + " |\n|"
                       + "---|" * (3 + len(present)))
            for k, conds in ks.items():
                for cond, cell in conds.items():
                    vals = []
                    for m, _ in present:
                        r = cell.get(m)
                        if r is None:
                            vals.append("")
                            continue
                        p = r.get("p_vs_gappy_pod")
                        txt = f"{r['mean']:.3f} ± {r['ci95']:.3f}" + (
                            f" (p {p:.2g})" if p is not None else "")
                        better = p is not None and p < 0.05 and r["mean"] < cell["gappy_pod"]["mean"]
                        vals.append(f"**{txt}**" if better else txt)
                    n = min(len(r["per_seed"]) for m, r in cell.items() if isinstance(r, dict))
                    out.append(f"| {k[1:]} | {cond} | {n} | " + " | ".join(vals) + " |")
            out.append("")
    return "\n".join(out)


def field_facts(scale: dict[str, Any], fields: list[str], path: Path, solver: bool
                ) -> dict[str, Any]:
    """POD modes for 90/99 % of the training variance per field and the Kolmogorov solver's
    validation, computed once and kept in ``path``."""
    out: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    energy = out.setdefault("pod_energy_modes", {})
    for f in fields:
        if f not in energy:
            p = prepared(f, scale["n_val"], scale["n_test"])
            energy[f] = {**energy_modes(p.pod.std), "grid": list(p.grid.shape),
                         "n_train": len(p.tr), "sigma": p.sigma}
    if solver and "kolmogorov" in fields and "kolmogorov_solver" not in out:
        from fields.flow.kolmogorov_check import validate

        out["kolmogorov_solver"] = validate()
    atomic_write_json(out, path)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="default")
    p.add_argument("--fields", nargs="+", choices=FIELDS, default=list(FIELDS))
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--summarize", action="store_true", help="only rebuild JSON and figure")
    p.add_argument("--no-solver", action="store_true", help="skip the solver validation")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    stem = "fields_regimes" if args.scale == "default" else f"fields_regimes_{args.scale}"
    results = Path(args.results_dir)
    root = results / stem
    t0 = time.perf_counter()
    todo = jobs(scale, args.fields)
    if scale.get("rerun_capped"):
        todo = capped(results / scale["rerun_capped"], todo)
    if not args.summarize:
        run_all(root, scale, todo, args.workers or scale["workers"])
    cells, training = collect(root, scale, args.fields)
    facts = field_facts(scale, args.fields, root / "field_facts.json", not args.no_solver)
    out = {**provenance(scale["seeds"][0]), "scale": args.scale, "seeds": scale["seeds"],
           "fields": args.fields, "spec": {f: spec_for(scale, f) for f in args.fields},
           "runs_done": sum(run_path(root, j).exists() for j in todo), "runs_total": len(todo), **facts, "summary": summarize(cells),
           "ablation": ablation(cells), "training": training,
           **({"rerun_changes": rerun_changes(results / scale["rerun_capped"], root, todo)}
              if scale.get("rerun_capped") else {}),
           "resume": f"nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python "
                     f"benchmarks/fields_regimes.py --scale {args.scale}",
           "wall_s_this_call": time.perf_counter() - t0}
    figure.plot(out, results / f"{stem}.png")
    atomic_write_json(out, results / f"{stem}.json")
    atomic_write_text(markdown(out["summary"]), results / f"{stem}.md")
    print(f"wrote {results / (stem + '.json')}: {out['runs_done']}/{len(todo)} runs")
    return out


if __name__ == "__main__":
    main()
