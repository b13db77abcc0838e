"""Which transfer set can a student be distilled from? (P2 / P4 on Fashion-MNIST, honest protocol)

Teacher: the model-cache Fashion-MNIST CNN (width 16, ~73k parameters). Student: a CNN of
width 12 (~41k parameters). Sources: target (the 54k training split), digits, photos (real
out-of-domain), opengl, leaves, fractals (synthetic) and noise. Every surrogate pool is drawn
once (seed 0), class-balanced through the teacher, and its balance is *measured* on the kept
images (teacher top-class relative entropy, share of slots filled by the fallback).

Stages (``--stage``), each a list of runs that ``--shard I/N`` can split over processes:

1. ``select``: every source × recipe (:data:`RECIPES`: plain; heavy augmentation with and
   without mixup, each + 0, 25% or 50% boundary samples) at the short budget, student seed 0,
   judged on the **validation** split only. Also the second table (short budget, validation).
2. ``final``: per source, the recipe with the best validation accuracy, at the long budget
   (≥ 10 000 updates) over 5 student seeds (init and data order); the **test** split is read
   once per run, at its end. Plus the boundary-share ablation on OpenGL ({0, 25, 50}%, with and
   without mixup, 5 seeds)
   and the data-free baselines on the same teacher and student: DeepInversion (a pool of
   inverted images, trained with OpenGL's selected recipe) and DAFL (a generator trained with
   the student), 5 seeds each, their compute stated.
3. ``collect`` (default ``all`` runs everything): the table, paired tests of P2's ordering,
   OpenGL against the target-data student (per-seed ratio with its CI) and against the
   data-free baselines, ``kd_sources.json`` and the PNGs.

    python benchmarks/kd_sources.py --stage select --shard 0/2 &
    python benchmarks/kd_sources.py --stage select --shard 1/2; wait
    python benchmarks/kd_sources.py --stage final --shard 0/2 &
    python benchmarks/kd_sources.py --stage final --shard 1/2; wait
    python benchmarks/kd_sources.py --stage collect
    python benchmarks/kd_sources.py --scale smoke              # everything, a few minutes

Finished runs are reused from ``runs/kd_sources/<scale>/`` after checking their configuration
(and the pool they were trained on); pools, boundary samples and DeepInversion images are
cached on disk, so a killed stage continues where it stopped.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.zoo_hyperparams import parse_kv  # noqa: E402
from benchmarks.figures import kd_sources as kd_sources_figure  # noqa: E402
from benchmarks.parts.kd_sources_pools import Pools  # noqa: E402
from benchmarks.parts.kd_sources_runs import (  # noqa: E402
    RECIPES,
    finished_run,
    run_dafl,
    run_dir,
    run_kd,
)
from benchmarks.speed.timing import timed  # noqa: E402
from models.datasets import load_dataset  # noqa: E402
from models.device import intra_op_threads  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.stats import mean_ci, paired_by_seed  # noqa: E402
from models.zoo import get_trained  # noqa: E402

SOURCES = ("target", "digits", "photos", "opengl", "leaves", "fractals", "noise")
SURROGATE = tuple(s for s in SOURCES if s != "target")
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"select_steps": 30, "steps": 60, "batch": 32, "pool": 512, "student_width": 8,
              "seeds": [0, 1], "eval_subset": 500, "attack_iter": 10, "max_draw_factor": 4,
              "di_pool": 64, "di_iterations": 20, "dafl_width": 8,
              "sources": ("target", "opengl", "noise")},
    "default": {"select_steps": 3000, "steps": 10000, "batch": 64, "pool": 32768,
                "student_width": 12, "seeds": [0, 1, 2, 3, 4], "eval_subset": None,
                "attack_iter": 20, "max_draw_factor": 16, "di_pool": 8192, "di_iterations": 200,
                "dafl_width": 32, "sources": SOURCES},
    "paper": {"select_steps": 5000, "steps": 20000, "batch": 256, "pool": 131072,
              "student_width": 16, "seeds": [0, 1, 2, 3, 4], "eval_subset": None,
              "attack_iter": 60, "max_draw_factor": 20, "di_pool": 50000, "di_iterations": 2000,
              "dafl_width": 64, "sources": SOURCES},
}
# OpenGL's boundary-share ablation {0, 25, 50}%, with P2's mixup and without; the first recipe
# of each group is its share-0 reference
ABLATIONS = {"mixup": ("aug", "attack25", "attack50"),
             "no_mixup": ("aug_nomix", "attack25_nomix", "attack50_nomix")}
# P2 (arXiv:2411.12817), CIFAR-10 ResNet-50 → ResNet-18 student accuracy, for the ordering.
PAPER = {"setting": "CIFAR-10, ResNet-50 teacher → ResNet-18 student, P2 Table",
         "student_acc": {"target": 95.98, "ood_real": 94.69, "opengl": 94.02, "leaves": 92.08,
                         "noise": 69.24, "opengl_without_aug_mixup": 31.84},
         "opengl_relative_entropy": 0.94,
         "p4_cifar10_resnet34_to_18": {"DAFL": 92.22, "DeepInversion": 93.26}}
TARGETS = {"opengl_vs_target": 0.95, "moonshot": 0.98, "relative_entropy": 0.98}


# ------------------------------------------------------------------------------ plans
def select_plan(sc: dict) -> list[tuple[str, str]]:
    return [(s, r) for s in sc["sources"] for r in RECIPES]


def selected(sc: dict, select: dict[tuple[str, str], dict]) -> dict[str, str]:
    """Per source, the recipe with the best validation accuracy at the short budget."""
    out = {}
    for s in sc["sources"]:
        cands = {r: select[(s, r)]["val_acc"] for r in RECIPES if (s, r) in select}
        if len(cands) < len(RECIPES):
            raise RuntimeError(f"selection for {s} is incomplete ({sorted(cands)}); run "
                               f"--stage select first")
        out[s] = max(cands, key=cands.get)
    return out


def final_plan(sc: dict, choice: dict[str, str]) -> list[tuple[str, str, str, int]]:
    """(kind, source, recipe, seed): the headline, OpenGL's share ablation, the baselines."""
    plan = [("final", s, choice[s], seed) for s in sc["sources"] for seed in sc["seeds"]]
    if "opengl" in sc["sources"]:
        plan += [("final", "opengl", r, seed) for group in ABLATIONS.values() for r in group
                 for seed in sc["seeds"] if r != choice["opengl"]]
        plan += [("final", "deepinversion", choice["opengl"], seed) for seed in sc["seeds"]]
    plan += [("dafl", "dafl", "generator", seed) for seed in sc["seeds"]]
    return plan


# ------------------------------------------------------------------------------ summary
def _acc_cell(accs: dict[int, float]) -> dict[str, Any]:
    vals = [100 * accs[s] for s in sorted(accs)]
    ci = mean_ci(vals)
    return {"mean": ci.mean, "std": ci.std, "ci95": None if ci.n < 2 else ci.half_width,
            "n_seeds": ci.n, "seeds": sorted(accs), "per_seed": vals}


def _ratio(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Per-seed accuracy ratio a / b (paired by seed) with its 95% CI against the target."""
    ratios = [a[s] / b[s] for s in sorted(set(a) & set(b))]
    ci = mean_ci(ratios)
    m, lo, hi = ci.mean, ci.low, ci.high
    t = TARGETS["opengl_vs_target"]
    return {"ratio_mean": m, "ci95_low": lo, "ci95_high": hi, "n_seeds": len(ratios), "target": t,
            "met": bool(m >= t), "met_with_ci": bool(lo >= t) if not math.isnan(lo) else False,
            "moonshot_met": bool(m >= TARGETS["moonshot"])}


def summarise(sc: dict, choice: dict[str, str], finals: dict[tuple, dict],
              select: dict[tuple[str, str], dict], reports: dict[str, Any]) -> dict[str, Any]:
    acc: dict[tuple[str, str], dict[int, float]] = {}
    for (_, source, recipe, seed), m in finals.items():
        acc.setdefault((source, recipe), {})[seed] = m["test_acc"]
    summary: dict[str, Any] = {}
    for s in sc["sources"]:
        bal = reports.get(s, {}).get("balance", {})
        for r in RECIPES:
            if (s, r) in acc:
                summary.setdefault(s, {})[r] = {
                    **_acc_cell(acc[(s, r)]), "selected_on_validation": r == choice[s],
                    "pool_relative_entropy": bal.get("relative_entropy"),
                    "fallback_fraction": bal.get("fallback_fraction"),
                    "pool_size": bal.get("n")}
    head = {s: acc[(s, choice[s])] for s in sc["sources"]}
    ordering = []
    pairs = [("target", "digits"), ("target", "photos"), ("digits", "opengl"),
             ("photos", "opengl"), ("opengl", "leaves"), ("leaves", "noise"),
             ("opengl", "fractals")]
    for a, b in pairs:
        if a in head and b in head:
            p = paired_by_seed(head[a], head[b])
            ordering.append({"claim": f"{a} ≥ {b}", **{k: v for k, v in p.items()}})
    out: dict[str, Any] = {"summary": summary, "ordering": ordering, "selected": choice}
    if "opengl" in head and "target" in head:
        out["opengl_vs_target"] = _ratio(head["opengl"], head["target"])
        # P2's claim names augmentation + attack: every OpenGL recipe run at the long budget
        out["opengl_recipes_vs_target"] = {r: _ratio(acc[("opengl", r)], head["target"])
                                           for r in RECIPES if ("opengl", r) in acc}
        ab = {r: _acc_cell(acc[("opengl", r)]) for group in ABLATIONS.values() for r in group
              if ("opengl", r) in acc}
        vs = {r: paired_by_seed(acc[("opengl", r)], acc[("opengl", group[0])])
              for group in ABLATIONS.values() for r in group[1:]
              if ("opengl", r) in acc and ("opengl", group[0]) in acc}
        out["boundary_ablation"] = {"share": {r: RECIPES[r]["share"] for r in ab},
                                    "groups": ABLATIONS, "opengl": ab, "vs_no_attack": vs,
                                    "reports": reports.get("opengl", {})}
    base: dict[str, Any] = {}
    di = acc.get(("deepinversion", choice.get("opengl", "")))
    dafl = acc.get(("dafl", "generator"))
    for name, vals, extra in (("deepinversion", di, reports.get("deepinversion", {})),
                              ("generator", dafl, {})):
        if not vals:
            continue
        cell = _acc_cell(vals)
        compute = ([finals[k]["compute_s"] for k in finals if k[1] == "dafl"] if name == "generator"
                   else [extra.get("balance", {}).get("compute_s")])
        base[name] = {"mean": cell["mean"], "std": cell["std"], "ci95": cell["ci95"],
                      "n_seeds": cell["n_seeds"], "per_seed": cell["per_seed"],
                      "method": "DAFL (generator trained with the student)" if name == "generator"
                      else "DeepInversion pool + OpenGL's selected recipe",
                      "compute_s": statistics.fmean(c for c in compute if c is not None)
                      if any(c is not None for c in compute) else None,
                      "opengl_minus_this": (paired_by_seed(head["opengl"], vals) if "opengl" in head
                                            else None),
                      "opengl_std_lower": (_acc_cell(head["opengl"])["std"] < cell["std"])
                      if "opengl" in head else None}
    out["baselines"] = base
    out["short_table"] = [{"source": s, "recipe": r, "steps": sc["select_steps"], "seed": 0,
                           "val_acc": 100 * m["val_acc"]} for (s, r), m in select.items()]
    out["table"] = [{"source": s, "recipe": choice[s], "test_acc_mean": summary[s][choice[s]]["mean"] / 100,
                     "test_acc_std": summary[s][choice[s]]["std"] / 100,
                     "n_seeds": summary[s][choice[s]]["n_seeds"]} for s in sc["sources"]]
    return out


# ------------------------------------------------------------------------------ stages
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=tuple(SCALES), default="default")
    ap.add_argument("--stage", choices=("select", "final", "collect", "all"), default="all")
    ap.add_argument("--shard", default=None, metavar="I/N",
                    help="run only runs I, I+N, ... of the stage's plan (no table)")
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--runs", default=None, help="run folders (default runs/kd_sources/<scale>)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--teacher-kw", nargs="*", metavar="KEY:VALUE", default=[],
                    help="options for the teacher's models.zoo.get_trained (e.g. width:8 "
                         "epochs:1 for a cheap smoke teacher); default: the model-cache CNN")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="student seeds")
    return ap


@dataclass
class Setup:
    """What every stage uses: the budget, this shard, the runs folder, teacher and pools."""

    sc: dict[str, Any]
    stage: str
    shard: int
    n_shards: int
    root: Path
    data: Any
    teacher: Any
    pools: Pools

    def mine(self, n: int, stages: tuple[str, ...]) -> bool:
        """Whether this process runs item ``n`` of a plan in one of ``stages``."""
        return self.stage in stages and n % self.n_shards == self.shard


def run_select(st: Setup) -> dict[tuple[str, str], dict]:
    """Every source × recipe at the short budget (validation accuracy), or the finished
    ones when only collecting."""
    select: dict[tuple[str, str], dict] = {}
    plan = select_plan(st.sc)
    for n, (s, r) in enumerate(plan):
        if st.mine(n, ("select", "all")):
            select[(s, r)] = _run_and_report(partial(run_kd, st.sc, st.pools, s, r, st.sc["select_steps"],
                                            0, st.root, "select"),
                                    f"select {s} {r}", n, len(plan), "val_acc")
        elif st.stage in ("final", "collect"):
            m = finished_run(run_dir(st.root, "select", s, r, st.sc["select_steps"], 0), {})
            if m is not None:
                select[(s, r)] = m
    return select


def run_final(st: Setup, choice: dict[str, str]) -> dict[tuple, dict]:
    """The final plan at the long budget (test accuracy); collecting needs every run done."""
    finals: dict[tuple, dict] = {}
    plan = final_plan(st.sc, choice)
    for n, (kind, s, r, seed) in enumerate(plan):
        job = (partial(run_dafl, st.sc, st.teacher, st.data, st.sc["steps"], seed, st.root)
               if kind == "dafl"
               else partial(run_kd, st.sc, st.pools, s, r, st.sc["steps"], seed, st.root, "final"))
        if st.mine(n, ("final", "all")):
            finals[(kind, s, r, seed)] = _run_and_report(job, f"final {s} {r} seed {seed}", n, len(plan),
                                                "test_acc")
        elif st.stage == "collect":
            d = run_dir(st.root, "final", s, r, st.sc["steps"], seed)
            m = finished_run(d, {})
            if m is None:
                raise RuntimeError(f"{d} has not finished; run --stage final first")
            finals[(kind, s, r, seed)] = m
    return finals


def collect(st: Setup, choice: dict[str, str], finals: dict[tuple, dict],
            select: dict[tuple[str, str], dict]) -> dict[str, Any]:
    """Measure each pool's balance (pools come from the cache) and summarise."""
    for s in (*st.sc["sources"], "deepinversion"):
        if s != "deepinversion" or any(k[1] == s for k in finals):
            st.pools.balance(s)
    return summarise(st.sc, choice, finals, select, st.pools.reports)


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    sc = {**SCALES[args.scale], **({"seeds": list(dict.fromkeys(args.seeds))} if args.seeds else {})}
    shard, n_shards = _parse_shard(args.shard)
    with intra_op_threads(args.threads):
        t_start = time.perf_counter()
        data = load_dataset("fashion-mnist")
        teacher = get_trained("fashion-mnist", "cnn", progress=args.progress,
                              **parse_kv(args.teacher_kw, "--teacher-kw"))
        st = Setup(sc, args.stage, shard, n_shards,
                   Path(args.runs or ROOT / "runs" / "kd_sources" / args.scale), data, teacher,
                   Pools(sc, teacher, data, args.progress))
        select = run_select(st)
        if args.stage == "select":
            return ({"shard": args.shard, "runs": len(select)} if n_shards > 1
                    else {"selected": selected(sc, select)})
        choice = selected(sc, select)
        print("selected on validation:", choice, flush=True)
        finals = run_final(st, choice)
        if n_shards > 1:
            return {"shard": args.shard, "runs": len(finals)}
        out = collect(st, choice, finals, select)
    return write(out, sc, args, teacher, t_start)


def _run_and_report(job, what: str, n: int, total: int, key: str) -> dict:
    """``job()``, reported with its ``key`` and its wall-clock time."""
    m, seconds = timed(job)
    print(f"[{n + 1}/{total}] {what}: {key} {m[key]:.4f} ({seconds:.0f} s)", flush=True)
    return m


def _parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must look like I/N (e.g. 0/2), got {text!r}") from None
    if not 0 <= i < n:
        raise SystemExit(f"--shard I/N needs 0 ≤ I < N, got {text!r}")
    return i, n


def write(out: dict, sc: dict, args, teacher, t_start: float) -> dict:
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = "kd_sources" if args.scale == "default" else f"kd_sources_{args.scale}"
    rec = {"benchmark": "kd_sources", "scale": args.scale, **out,
           "teacher": {"arch": "cnn", "test_acc": float(teacher.meta["test_acc"]),
                       "num_parameters": teacher.num_parameters()},
           "budget": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sc.items()},
           "recipes": RECIPES, "paper": PAPER, "targets": TARGETS,
           "protocol": "pools drawn once (seed 0); recipes chosen on the validation split at the "
                       "short budget (seed 0); final runs: 5 student seeds (init, data order, "
                       "augmentation), test split read once per run; accuracies in %",
           "wall_time_s": time.perf_counter() - t_start, "seeds": sc["seeds"],
           **provenance(sc["seeds"][0])}
    kd_sources_figure.plot(out, SOURCES, results_dir / f"{stem}_accuracy.png")
    atomic_write_json(rec, results_dir / f"{stem}.json")
    print(f"\n{'source':14s} {'recipe':10s} {'test acc %':>16s} {'n':>2s} {'rel.ent':>7s} "
          f"{'fallback':>8s}")
    for s, cells in out["summary"].items():
        for r, c in cells.items():
            mark = "*" if c["selected_on_validation"] else " "
            print(f"{s:14s} {r:9s}{mark} {c['mean']:8.2f} ± {c['ci95'] or 0:5.2f} "
                  f"{c['n_seeds']:>2d} {c['pool_relative_entropy'] or 0:7.3f} "
                  f"{c['fallback_fraction'] or 0:8.1%}")
    for name, b in out["baselines"].items():
        print(f"{name:14s} {'':10s} {b['mean']:8.2f} ± {b['std']:.2f} (std), compute "
              f"{b['compute_s'] or 0:.0f} s")
    if "opengl_vs_target" in out:
        o = out["opengl_vs_target"]
        print(f"OpenGL / target: {o['ratio_mean']:.3f} [{o['ci95_low']:.3f}, {o['ci95_high']:.3f}]"
              f" (target ≥ {o['target']}: {'met' if o['met'] else 'not met'})")
        for r, o in out.get("opengl_recipes_vs_target", {}).items():
            print(f"  OpenGL {r:9s} / target: {o['ratio_mean']:.3f} "
                  f"[{o['ci95_low']:.3f}, {o['ci95_high']:.3f}]")
    for row in out["ordering"]:
        print(f"  {row['claim']:22s} diff {row.get('diff_mean', float('nan')) * 100:+.2f} pts, "
              f"p(greater) {row.get('p_greater', float('nan')):.3g}")
    print(f"wrote {results_dir / (stem + '.json')}")
    return rec


if __name__ == "__main__":
    from models.cli import run_cli

    run_cli(main)
