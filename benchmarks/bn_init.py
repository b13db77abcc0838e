"""Reproduce P5 (revisited batch-norm initialization) on Fashion-MNIST with paired seeds.

Two conditions share everything but the BN recipe:

* ``standard``: BN with γ₀ = 1, fixed dataset mean/std input normalisation, weight decay on
  every parameter;
* ``revisited``: γ₀ = c_γ = 0.1, BN scales at lr / 100, no weight decay on BN parameters or
  biases, and an online input BN (γ₀ = 0.058, β frozen) instead of dataset mean/std.

Seed ``s`` of both conditions shares initialisation seed, data order and augmentation, so the
test is a one-sided paired t-test (H1: revisited > standard), as in the paper.

    python benchmarks/bn_init.py                  # default: 10 seeds × 2 conditions, 3 epochs
    python benchmarks/bn_init.py --scale smoke    # 2 seeds, 1 epoch on 20,000 images (--quick)
    python benchmarks/bn_init.py --scale paper    # the paper's 15 paired seeds, ResNet-20, 30 epochs
    python benchmarks/bn_init.py --seeds 3 4      # only these seeds (one sweep trial per seed)

Each run is kept in ``runs/bn_init[-SCALE]/<condition>-s<seed>``; a killed benchmark skips the
runs that finished (after checking they were trained with the same configuration), so seeds run
as separate trials (``python -m agents.sweep sweeps/bn_init_benchmark.yaml``) share one runs
folder and a final run over all seeds only summarises. Results:
``<results-dir>/bn_init.json`` (``bn_init_smoke.json``, ``bn_init_paper.json``) and the PNG.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import stats  # noqa: E402
from models.datasets import load_dataset  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.train import TrainConfig, train  # noqa: E402

SCALES = {  # budget per --scale; explicit flags override it
    "smoke": {"seeds": 2, "arch": "resnet8", "epochs": 1, "train_subset": 20000},
    "default": {"seeds": 10, "arch": "resnet8", "epochs": 3, "train_subset": None},
    "paper": {"seeds": 15, "arch": "resnet20", "epochs": 30, "train_subset": None},
}
# What arXiv:2110.13989 claims and how it tests it (it publishes no Fashion-MNIST numbers).
PAPER = {"arxiv": "2110.13989", "claim": "BN scale initialised to c_γ = 0.1 (γ at lr/100, no "
         "weight decay on BN/bias, online input BN) beats γ₀ = 1 in test accuracy",
         "protocol": "15 paired seeds per condition, one-sided paired t-test, p ≤ 0.05",
         "seeds": 15, "alpha": 0.05, "expected_sign_of_difference": "+",
         "numbers": None}
CONDITIONS = {
    "standard": {"bn": "standard", "input_norm": "dataset"},
    "revisited": {"bn": "revisited", "input_norm": "bn"},
}


def run_one(condition: str, seed: int, args: argparse.Namespace, data) -> dict:
    run_dir = Path(args.runs) / f"{condition}-s{seed}"
    done = run_dir / "metrics.json"
    cfg = TrainConfig(dataset="fashion-mnist", arch=args.arch, width=args.width, epochs=args.epochs,
                      lr=args.lr, batch_size=args.batch_size, weight_decay=args.weight_decay,
                      train_subset=args.train_subset, seed=seed, run_dir=str(run_dir),
                      resume=(run_dir / "last.pt").exists(), device=args.device,
                      progress=not args.no_progress, **CONDITIONS[condition])
    if done.exists():
        old = TrainConfig(**json.loads(done.read_text())["config"]).result_key()
        if old != cfg.result_key():
            raise ValueError(f"{run_dir} holds a run with another configuration; pass another "
                             f"--runs folder or delete {run_dir}")
        return json.loads(done.read_text())["metrics"]
    return train(cfg, data)["metrics"]


def summarise(results: dict[str, list[dict]], seeds: list[int]) -> dict:
    acc = {c: [r["test_acc"] for r in rs] for c, rs in results.items()}
    pair = stats.paired(acc["revisited"], acc["standard"])
    out = {"seeds": seeds, "paired_diff_mean": pair.diff_mean,
           "paired_diff_std": stats.std(np.subtract(acc["revisited"], acc["standard"])),
           "p_value_one_sided": pair.p_greater, "t_statistic": pair.t,
           "revisited_wins": pair.wins, "conditions": {}}
    for c, rs in results.items():
        a = acc[c]
        out["conditions"][c] = {
            "test_acc": a, "mean": stats.mean_ci(a).mean, "std": stats.std(a),
            "gamma_abs_drift_mean": statistics.mean(r["gamma_abs_drift"] for r in rs),
            "gamma_mean": statistics.mean(r["gamma_mean"] for r in rs),
            "train_time_s_mean": statistics.mean(r["train_time_s"] for r in rs)}
    return out


def table_rows(summary: dict) -> list[dict]:
    """The ``table`` of the result file: one row per condition, then the paired comparison."""
    rows = [{"condition": c, "n": len(s["test_acc"]), "test_acc_mean": s["mean"],
             "test_acc_std": s["std"], "gamma_mean": s["gamma_mean"],
             "gamma_abs_drift_mean": s["gamma_abs_drift_mean"]}
            for c, s in summary["conditions"].items()]
    rows.append({"condition": "revisited − standard (paired)", "n": len(summary["seeds"]),
                 "test_acc_mean": summary["paired_diff_mean"],
                 "test_acc_std": summary["paired_diff_std"],
                 "p_value_one_sided": summary["p_value_one_sided"],
                 "revisited_wins": summary["revisited_wins"]})
    return rows


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = summary["conditions"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for s, a, b in zip(summary["seeds"], c["standard"]["test_acc"], c["revisited"]["test_acc"], strict=True):
        ax1.plot([0, 1], [100 * a, 100 * b], "o-", color="tab:green" if b > a else "tab:red", alpha=0.7)
        ax1.annotate(str(s), (1.03, 100 * b), fontsize=7)
    ax1.set_xticks([0, 1], ["standard", "revisited"])
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title(f"paired seeds, p = {summary['p_value_one_sided']:.3g}")
    names = list(c)
    ax2.bar(names, [100 * c[n]["mean"] for n in names], yerr=[100 * c[n]["std"] for n in names],
            color=["tab:gray", "tab:blue"], capsize=6)
    lo = min(min(c[n]["test_acc"]) for n in names) * 100
    ax2.set_ylim(lo - 1.5, None)
    ax2.set_title("mean ± std")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _command(argv: list[str] | None) -> str | None:
    if argv is None:
        return None
    import shlex

    return shlex.join(["python", "benchmarks/bn_init.py", *argv])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=tuple(SCALES), default="default",
                   help="budget: smoke (minutes), default (the committed result), paper")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seed ids to run (default: the scale's 0..N-1)")
    p.add_argument("--arch", default=None)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs", default=None, help="per-run folders (default runs/bn_init[-SCALE])")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--quick", action="store_true", help="alias of --scale smoke")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.scale = "smoke"
    budget = SCALES[args.scale]
    for k in ("arch", "epochs", "train_subset"):
        if getattr(args, k) is None:
            setattr(args, k, budget[k])
    if args.runs is None:
        args.runs = "runs/bn_init" + ("" if args.scale == "default" else f"-{args.scale}")
    suffix = "" if args.scale == "default" else f"_{args.scale}"
    args.out = str(Path(args.results_dir) / f"bn_init{suffix}.json")
    data = load_dataset("fashion-mnist")
    seeds = list(args.seeds) if args.seeds else list(range(budget["seeds"]))
    if len(seeds) < 2:
        print("note: one seed gives no paired test; the summary reports n = 1", flush=True)
    results: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    for seed in seeds:
        for c in CONDITIONS:
            results[c].append(run_one(c, seed, args, data))
            print(f"seed {seed} {c:9s} test_acc {results[c][-1]['test_acc']:.4f}", flush=True)
    summary = summarise(results, seeds)
    out = Path(args.out)
    record = {"benchmark": "bn_init", "scale": args.scale,
              "budget": {k: v for k, v in vars(args).items() if k not in ("out", "no_progress")},
              "table": table_rows(summary), "paper": PAPER, "figures": [out.with_suffix(".png").name],
              **summary, **provenance(None, _command(argv))}
    atomic_write_json(record, out)
    plot(summary, out.with_suffix(".png"))
    print(f"\n{'condition':10s} {'test acc (mean ± std)':>24s} {'|γ−γ₀| mean':>12s} {'γ mean':>8s}")
    for c, s in summary["conditions"].items():
        print(f"{c:10s} {100 * s['mean']:>15.2f} ± {100 * s['std']:.2f} {s['gamma_abs_drift_mean']:>12.4f} "
              f"{s['gamma_mean']:>8.3f}")
    print(f"paired difference {100 * summary['paired_diff_mean']:+.2f} ± "
          f"{100 * summary['paired_diff_std']:.2f} points, revisited better on "
          f"{summary['revisited_wins']}/{len(seeds)} seeds, one-sided paired t-test "
          f"p = {summary['p_value_one_sided']:.4g}\nwrote {out} and {out.with_suffix('.png')}")
    return record


if __name__ == "__main__":
    main()
