"""P5 against training budget: revisited − standard BN at 3, 10 and 30 epochs, with its ablation.

The plan (``--scale default``, Fashion-MNIST, ResNet-8 at width 8 so that 30 epochs fit 2 cores):

* **ladder**: standard and revisited BN at 3, 10 and 30 epochs, seeds 0–4, paired by seed;
* **headline**: seeds 5–14 added at the longest rung, so that it has the paper's 15 paired
  seeds and a one-sided paired t-test (H1: revisited > standard);
* **ablation**: revisited BN with one of its four changes undone — γ₀ = 1 (``gamma1``), γ at
  the full lr (``fastgamma``), weight decay on BN parameters and biases (``decay``), dataset
  mean/std instead of the online input BN (``datanorm``) — seeds 0–4 at ``ablation_epochs``,
  paired with that rung's standard and revisited runs.

Every trial is one training (``--epochs E --variant V --seeds S``) whose small result file is
written atomically to ``--trials-dir`` (default ``benchmarks/results/bn_init_budget/``, committed)
as ``e<E>-<V>-s<S>.json``; finished trials are skipped after checking their configuration, and a
killed training resumes from its checkpoint under ``--runs``. The summary
(``bn_init_budget.json`` and ``.png`` in ``--results-dir``) is re-derived from the trial files
alone, so trials can run on several machines and several sessions:

    python benchmarks/bn_init_budget.py --stage ladder --workers 2    # ~1.5 h on 2 cores
    python benchmarks/bn_init_budget.py --stage headline --workers 2  # ~1.5 h on 2 cores
    python benchmarks/bn_init_budget.py --summarise                   # from the trial files
    python -m agents.sweep sweeps/bn_init_budget.yaml                 # the same trials, as a sweep
    python benchmarks/bn_init_budget.py --scale paper --stage plan    # the paper's protocol
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

from benchmarks.figures import bn_init_budget as bn_init_budget_figure  # noqa: E402
from models import stats  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.train import TrainConfig  # noqa: E402

# Each variant's TrainConfig fields; the ablation variants undo one change of ``revisited``.
VARIANTS: dict[str, dict[str, Any]] = {
    "standard": {"bn": "standard", "input_norm": "dataset"},
    "revisited": {"bn": "revisited", "input_norm": "bn"},
    "gamma1": {"bn": "revisited", "input_norm": "bn", "gamma_init": 1.0},
    "fastgamma": {"bn": "revisited", "input_norm": "bn", "bn_lr_div": 1.0},
    "decay": {"bn": "revisited", "input_norm": "bn", "bn_no_decay": False},
    "datanorm": {"bn": "revisited", "input_norm": "dataset"},
}
ABLATION = ("gamma1", "fastgamma", "decay", "datanorm")
UNDOES = {"gamma1": "γ₀ = 0.1 (back to 1)", "fastgamma": "γ at lr/100 (back to lr)",
          "decay": "no decay on BN/bias (decay back on)",
          "datanorm": "online input BN (back to dataset mean/std)"}
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"train": {"dataset": "digits", "arch": "cnn", "width": 4, "batch_size": 64,
                        "lr": 0.05, "weight_decay": 5e-4},
              "ladder": (2, 6), "ladder_seeds": (0, 1), "headline_seeds": (0, 1, 2),
              "ablation_epochs": 2, "ablation_seeds": (0, 1)},
    "default": {"train": {"dataset": "fashion-mnist", "arch": "resnet8", "width": 8,
                          "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4},
                "ladder": (3, 10, 30), "ladder_seeds": tuple(range(5)),
                "headline_seeds": tuple(range(15)), "ablation_epochs": 10,
                "ablation_seeds": tuple(range(5))},
    # arXiv:2110.13989's protocol (CIFAR-10 ResNet, 180 epochs, 15 seeds): needs a GPU and the
    # CIFAR-10 files (--data-root, or --download with internet).
    "paper": {"train": {"dataset": "cifar10", "arch": "resnet20", "width": 16,
                        "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4},
              "ladder": (30, 90, 180), "ladder_seeds": tuple(range(5)),
              "headline_seeds": tuple(range(15)), "ablation_epochs": 180,
              "ablation_seeds": tuple(range(5))},
}
STAGES = ("ladder", "ablation", "headline")
PAPER = {"arxiv": "2110.13989", "claim": "revisited BN (c_γ = 0.1, γ at lr/100, no decay on "
         "BN/bias, online input BN) beats γ₀ = 1 in test accuracy",
         "protocol": "15 paired seeds, one-sided paired t-test, p ≤ 0.05", "alpha": 0.05}


# ------------------------------------------------------------------------------ plan
def plan(scale: dict[str, Any], stages: tuple[str, ...] = STAGES) -> list[tuple[int, str, int]]:
    """Every trial (epochs, variant, seed) of ``stages``, without repeats, cheapest first."""
    out: list[tuple[int, str, int]] = []
    longest = max(scale["ladder"])
    if "ladder" in stages:
        out += [(e, v, s) for e in scale["ladder"] for s in scale["ladder_seeds"]
                for v in ("standard", "revisited")]
    if "ablation" in stages:
        e = scale["ablation_epochs"]
        out += [(e, v, s) for s in scale["ablation_seeds"]
                for v in ("standard", "revisited", *ABLATION)]
    if "headline" in stages:
        out += [(longest, v, s) for s in scale["headline_seeds"]
                for v in ("standard", "revisited")]
    return sorted(dict.fromkeys(out), key=lambda t: (t[0], t[2], t[1]))


def trial_name(epochs: int, variant: str, seed: int) -> str:
    return f"e{epochs}-{variant}-s{seed}"


def trial_config(scale: dict[str, Any], epochs: int, variant: str, seed: int, runs: Path,
                 device: str, progress: bool, data_root: str | None) -> TrainConfig:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")
    run_dir = runs / trial_name(epochs, variant, seed)
    return TrainConfig(**scale["train"], **VARIANTS[variant], epochs=epochs, seed=seed,
                       run_dir=str(run_dir), resume=(run_dir / "last.pt").exists(),
                       device=device, progress=progress, data_root=data_root)


# ------------------------------------------------------------------------------ trials
def run_trial(cfg: TrainConfig, epochs: int, variant: str, seed: int, trials_dir: Path,
              threads: int = 1) -> dict[str, Any]:
    """Train one trial (or reuse its finished file) and write ``<trials_dir>/<name>.json``."""

    from models.datasets import load_dataset
    from models.device import intra_op_threads
    from models.train import train

    path = trials_dir / f"{trial_name(epochs, variant, seed)}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["config"] != _key(cfg):
            raise ValueError(f"{path} holds a trial of another configuration; move it away or "
                             f"pass another --trials-dir")
        return saved
    data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download)
    with intra_op_threads(threads):
        metrics = train(cfg, data)["metrics"]
    keep = ("test_acc", "best_val_acc", "best_epoch", "train_time_s", "gamma_mean",
            "gamma_abs_drift", "num_parameters")
    rec = {"trial": trial_name(epochs, variant, seed), "epochs": epochs, "variant": variant,
           "seed": seed, **{k: metrics[k] for k in keep if k in metrics}, "config": _key(cfg),
           **provenance(seed)}
    atomic_write_json(rec, path)
    return rec


def _key(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(cfg.result_key()))


def _run_trial_job(args: tuple) -> dict[str, Any]:
    return run_trial(*args)


def run_trials(cfgs: list[tuple[TrainConfig, int, str, int]], trials_dir: Path, workers: int
               ) -> None:
    todo = [(c, e, v, s, trials_dir) for c, e, v, s in cfgs]
    if workers <= 1:
        for job in todo:
            _report(_run_trial_job(job))
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for rec in pool.map(_run_trial_job, todo):
            _report(rec)


def _report(rec: dict[str, Any]) -> None:
    print(f"  {rec['trial']}: test acc {rec['test_acc']:.4f} (γ mean {rec['gamma_mean']:.3f}, "
          f"{rec['train_time_s']:.0f} s)", flush=True)


# ------------------------------------------------------------------------------ summary
def load_trials(trials_dir: Path, names: list[str] | None = None
                ) -> dict[tuple[int, str, int], float]:
    """Test accuracy of every finished trial file (or of the ``names`` ones), keyed
    (epochs, variant, seed)."""
    out = {}
    paths = ([trials_dir / f"{n}.json" for n in names] if names is not None
             else sorted(trials_dir.glob("e*-s*.json")))
    for p in paths:
        rec = json.loads(p.read_text())
        out[(rec["epochs"], rec["variant"], rec["seed"])] = rec["test_acc"]
    return out


def paired(acc: dict[tuple[int, str, int], float], epochs: int, a: str, b: str,
           seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """``a − b`` at ``epochs`` over the seeds both have: mean, 95% CI half-width, p-values."""
    common = sorted(s for (e, v, s) in acc if e == epochs and v == a
                    and (e, b, s) in acc and (seeds is None or s in seeds))
    xa = [acc[(epochs, a, s)] for s in common]
    xb = [acc[(epochs, b, s)] for s in common]
    r = stats.paired(xa, xb)
    return {"n_seeds": r.n, "seeds": common, "diff_mean": r.diff_mean,
            "ci95": r.diff_half_width if r.n >= 2 else None,
            "p_one_sided": r.p_greater, "p_two_sided": r.p_two_sided, "wins": r.wins,
            "mean_a": stats.mean_ci(xa).mean if xa else None,
            "mean_b": stats.mean_ci(xb).mean if xb else None}


def summarise(acc: dict[tuple[int, str, int], float], scale: dict[str, Any]) -> dict[str, Any]:
    """The ``ladder`` / ``ablation`` / ``headline`` keys, from trial accuracies alone."""
    ladder = {}
    for e in scale["ladder"]:
        cell = paired(acc, e, "revisited", "standard")
        ladder[str(e)] = {**cell, "standard": cell.pop("mean_b"), "revisited": cell.pop("mean_a")}
    e_ab = scale["ablation_epochs"]
    seeds = tuple(scale["ablation_seeds"])
    ablation: dict[str, Any] = {"epochs": e_ab, "seeds": list(seeds),
                                "revisited_minus_standard": _strip(paired(
                                    acc, e_ab, "revisited", "standard", seeds)),
                                "variants": {}}
    for v in ABLATION:
        vs_rev = paired(acc, e_ab, v, "revisited", seeds)
        vs_std = paired(acc, e_ab, v, "standard", seeds)
        ablation["variants"][v] = {
            "undoes": UNDOES[v], "test_acc": vs_rev["mean_a"],
            "minus_revisited": _strip(vs_rev), "minus_standard": _strip(vs_std)}
    longest = max(scale["ladder"])
    head = paired(acc, longest, "revisited", "standard", tuple(scale["headline_seeds"]))
    need = len(scale["headline_seeds"])
    headline = {"epochs": longest, **_strip(head), "n_seeds_planned": need,
                "complete": head["n_seeds"] == need, "verdict": _verdict(head, longest, need)}
    return {"ladder": ladder, "ablation": ablation, "headline": headline}


def table(acc: dict[tuple[int, str, int], float]) -> list[dict[str, Any]]:
    """One row per (epochs, variant): test accuracy mean and sample std over its seeds."""
    groups: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for (e, v, s), a in acc.items():
        groups.setdefault((e, v), []).append((s, a))
    rows = []
    for (e, v), cell in sorted(groups.items(), key=lambda kv: (kv[0][0], list(VARIANTS).index(
            kv[0][1]))):
        ci = stats.mean_ci([a for _, a in sorted(cell)])
        rows.append({"epochs": e, "variant": v, "n_seeds": ci.n,
                     "test_acc_mean": ci.mean, "test_acc_std": ci.std,
                     "seeds": sorted(s for s, _ in cell)})
    return rows


def _strip(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k not in ("mean_a", "mean_b")}


def _verdict(head: dict[str, Any], epochs: int, need: int) -> str:
    n, d, p = head["n_seeds"], head["diff_mean"], head["p_one_sided"]
    if n < need:
        return f"incomplete: {n}/{need} paired seeds at {epochs} epochs"
    points = f"{100 * d:+.2f} ± {100 * head['ci95']:.2f} points"
    if p is not None and p <= PAPER["alpha"] and d > 0:
        return f"reproduced at {epochs} epochs: {points}, p = {p:.3g}, {n} paired seeds"
    return f"not reproduced up to {epochs} epochs: {points}, p = {p if p is None else f'{p:.3g}'}"


def write_summary(scale_name: str, trials_dir: Path, results_dir: Path,
                  command: str | None) -> dict[str, Any]:
    scale = SCALES[scale_name]
    acc = load_trials(trials_dir)
    stem = "bn_init_budget" if scale_name == "default" else f"bn_init_budget_{scale_name}"
    summary = summarise(acc, scale)
    missing = [trial_name(*t) for t in plan(scale) if t not in acc]
    record = {"benchmark": "bn_init_budget", "scale": scale_name, **summary,
              "table": table(acc), "seeds": list(scale["headline_seeds"]),
              "trials_dir": _rel(trials_dir), "n_trials": len(acc),
              "trials": sorted(trial_name(*t) for t in acc), "missing_trials": missing,
              "budget": {k: list(v) if isinstance(v, tuple) else v for k, v in scale.items()},
              "variants": VARIANTS, "paper": PAPER, **provenance(None, command)}
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, results_dir / f"{stem}.json")
    bn_init_budget_figure.plot(summary, results_dir / f"{stem}.png")
    print_summary(record)
    print(f"wrote {results_dir / (stem + '.json')} and .png ({len(missing)} planned trials missing)")
    return record


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def print_summary(rec: dict[str, Any]) -> None:
    print(f"\n{'epochs':>6} {'standard':>9} {'revisited':>9} {'diff (pts)':>16} {'n':>3} "
          f"{'p (1-sided)':>11}")
    for e, c in rec["ladder"].items():
        if c["diff_mean"] is None:
            print(f"{e:>6} {'—':>9} {'—':>9} {'—':>16} {0:>3}")
            continue
        p = "—" if c["p_one_sided"] is None else f"{c['p_one_sided']:.3g}"
        print(f"{e:>6} {100 * c['standard']:>9.2f} {100 * c['revisited']:>9.2f} "
              f"{100 * c['diff_mean']:>+8.2f} ± {100 * (c['ci95'] or 0):<5.2f} "
              f"{c['n_seeds']:>3} {p:>11}")
    ab = rec["ablation"]
    print(f"ablation at {ab['epochs']} epochs (variant − revisited, points):")
    for v, cell in ab["variants"].items():
        d = cell["minus_revisited"]
        if d["diff_mean"] is not None:
            print(f"  {v:<10} undoes {cell['undoes']:<42} {100 * d['diff_mean']:+.2f} ± "
                  f"{100 * (d['ci95'] or 0):.2f} (n={d['n_seeds']}, p two-sided "
                  f"{d['p_two_sided'] if d['p_two_sided'] is None else round(d['p_two_sided'], 4)})")
    print(f"headline: {rec['headline']['verdict']}")


# ------------------------------------------------------------------------------ CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=tuple(SCALES), default="default")
    p.add_argument("--stage", choices=(*STAGES, "all", "plan"), default="all",
                   help="trials to run (plan: list them and stop)")
    p.add_argument("--epochs", type=int, default=None, help="one trial: its epochs")
    p.add_argument("--variant", choices=tuple(VARIANTS), default=None, help="one trial: its BN")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="only these seeds (with --epochs/--variant: one trial per seed)")
    p.add_argument("--summarise", action="store_true", help="only re-derive the summary")
    p.add_argument("--workers", type=int, default=1, help="parallel trainings (1 thread each)")
    p.add_argument("--trials-dir", default=None,
                   help="trial result files (default <results-dir>/bn_init_budget[_SCALE])")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--runs", default=None, help="training folders (default runs/bn_init_budget"
                                                "[-SCALE])")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


def chosen_trials(p: argparse.ArgumentParser, args: argparse.Namespace
                  ) -> list[tuple[int, str, int]]:
    """One trial per ``--seeds`` with ``--epochs`` and ``--variant``, else the stages' plan."""
    if args.epochs is not None or args.variant is not None:
        if args.epochs is None or args.variant is None or not args.seeds:
            p.error("one trial needs --epochs, --variant and --seeds together")
        return [(args.epochs, args.variant, s) for s in args.seeds]
    stages = STAGES if args.stage in ("all", "plan") else (args.stage,)
    return [t for t in plan(SCALES[args.scale], stages) if not args.seeds or t[2] in args.seeds]


def write_trial_result(trials: list[tuple[int, str, int]], trials_dir: Path, results_dir: Path,
                       command: str | None) -> dict[str, Any]:
    """A sweep trial's result file: its metrics are read from the newest JSON in
    ``results_dir``."""
    recs = [json.loads((trials_dir / f"{trial_name(*t)}.json").read_text()) for t in trials]
    out = {"table": [{"trial": r["trial"], **{k: r[k] for k in ("test_acc", "gamma_mean")}}
                     for r in recs], "test_acc": stats.mean_ci([r["test_acc"] for r in recs]).mean,
           **provenance(trials[0][2], command)}
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, results_dir / "bn_init_budget_trial.json")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    sfx = "" if args.scale == "default" else f"_{args.scale}"
    # next to the summary: a run with another --results-dir (tests, agents.reproduce) keeps its
    # trial files out of the committed folder
    trials_dir = Path(args.trials_dir or Path(args.results_dir) / f"bn_init_budget{sfx}")
    runs = Path(args.runs or ROOT / "runs" / f"bn_init_budget{sfx.replace('_', '-')}")
    results_dir, command = Path(args.results_dir), _command(argv)
    if args.summarise:
        return write_summary(args.scale, trials_dir, results_dir, command)
    trials = chosen_trials(p, args)
    if args.stage == "plan":
        print(f"{len(trials)} trials, {sum(e for e, _, _ in trials)} training epochs:")
        print("\n".join(trial_name(*t) for t in trials))
        return {"trials": [trial_name(*t) for t in trials]}
    trials_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfgs = [(trial_config(SCALES[args.scale], e, v, s, runs, args.device, not args.no_progress,
                          args.data_root), e, v, s) for e, v, s in trials]
    print(f"{len(cfgs)} trials, {args.workers} worker(s); trial files in {trials_dir}",
          flush=True)
    run_trials(cfgs, trials_dir, args.workers)
    if args.epochs is not None:  # a sweep trial
        return write_trial_result(trials, trials_dir, results_dir, command)
    print(f"trials done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return write_summary(args.scale, trials_dir, results_dir, command)


def _command(argv: list[str] | None) -> str | None:
    if argv is None:
        return None
    import shlex

    return shlex.join(["python", "benchmarks/bn_init_budget.py", *argv])


if __name__ == "__main__":
    from models.cli import run_cli

    run_cli(main)
