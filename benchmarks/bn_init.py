"""Reproduce P5 (revisited batch-norm initialization) on Fashion-MNIST with paired seeds.

Two conditions share everything but the BN recipe:

* ``standard``: BN with γ₀ = 1, fixed dataset mean/std input normalisation, weight decay on
  every parameter;
* ``revisited``: γ₀ = c_γ = 0.1, BN scales at lr / 100, no weight decay on BN parameters or
  biases, and an online input BN (γ₀ = 0.058, β frozen) instead of dataset mean/std.

Seed ``s`` of both conditions shares initialisation seed, data order and augmentation, so the
test is a one-sided paired t-test (H1: revisited > standard), as in the paper.

    python benchmarks/bn_init.py                 # 10 seeds × 2 conditions (~25 min on 2 cores)
    python benchmarks/bn_init.py --quick         # smoke run (~1 min)

Each run is kept in ``runs/bn_init/<condition>-s<seed>``; a killed benchmark skips the runs that
finished. Results: ``benchmarks/results/bn_init.json`` and ``bn_init.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.datasets import load_dataset  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.train import TrainConfig, train  # noqa: E402

CONDITIONS = {
    "standard": {"bn": "standard", "input_norm": "dataset"},
    "revisited": {"bn": "revisited", "input_norm": "bn"},
}


def run_one(condition: str, seed: int, args: argparse.Namespace, data) -> dict:
    run_dir = Path(args.runs) / f"{condition}-s{seed}"
    done = run_dir / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())["metrics"]
    cfg = TrainConfig(dataset="fashion-mnist", arch=args.arch, width=args.width, epochs=args.epochs,
                      lr=args.lr, batch_size=args.batch_size, weight_decay=args.weight_decay,
                      train_subset=args.train_subset, seed=seed, run_dir=str(run_dir),
                      resume=(run_dir / "last.pt").exists(), device=args.device,
                      progress=not args.no_progress, **CONDITIONS[condition])
    return train(cfg, data)["metrics"]


def summarise(results: dict[str, list[dict]], seeds: list[int]) -> dict:
    acc = {c: [r["test_acc"] for r in rs] for c, rs in results.items()}
    diff = [r - s for r, s in zip(acc["revisited"], acc["standard"], strict=True)]
    test = stats.ttest_rel(acc["revisited"], acc["standard"], alternative="greater")
    out = {"seeds": seeds, "paired_diff_mean": statistics.mean(diff),
           "paired_diff_std": statistics.stdev(diff) if len(diff) > 1 else 0.0,
           "p_value_one_sided": float(test.pvalue), "t_statistic": float(test.statistic),
           "revisited_wins": sum(d > 0 for d in diff), "conditions": {}}
    for c, rs in results.items():
        a = acc[c]
        out["conditions"][c] = {
            "test_acc": a, "mean": statistics.mean(a),
            "std": statistics.stdev(a) if len(a) > 1 else 0.0,
            "gamma_abs_drift_mean": statistics.mean(r["gamma_abs_drift"] for r in rs),
            "gamma_mean": statistics.mean(r["gamma_mean"] for r in rs),
            "train_time_s_mean": statistics.mean(r["train_time_s"] for r in rs)}
    return out


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


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--arch", default="resnet8")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs", default="runs/bn_init")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bn_init.json"))
    p.add_argument("--quick", action="store_true", help="2 seeds, 1 epoch on 20,000 images")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.train_subset = 2, 1, args.train_subset or 20000
        args.runs = args.runs + "-quick"
        args.out = args.out.replace(".json", "-quick.json")
    data = load_dataset("fashion-mnist")
    seeds = list(range(args.seeds))
    results: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    for seed in seeds:
        for c in CONDITIONS:
            results[c].append(run_one(c, seed, args, data))
            print(f"seed {seed} {c:9s} test_acc {results[c][-1]['test_acc']:.4f}", flush=True)
    summary = summarise(results, seeds)
    out = Path(args.out)
    record = {"benchmark": "bn_init", "budget": {k: v for k, v in vars(args).items()
                                                 if k not in ("out", "no_progress")},
              **summary, **provenance(None)}
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
