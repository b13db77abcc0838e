"""Which transfer set can a student be distilled from? (P2 / P4 on Fashion-MNIST)

Teacher: the model-cache Fashion-MNIST CNN (width 16, ~73k parameters). Student: a smaller
CNN (width 12, ~41k parameters; width 8 at the smoke scale). For each source (target, digits,
photos, opengl, leaves, fractals, noise) a fixed pool of images is drawn once (65 536 at the
default scale; class-balanced through the teacher for every source except the target data, as
P2 filters its surrogate sets; the target pool is the whole 54 000-image training split) and
cached with its teacher logits. Every run makes the same number of student updates:

* ``full``: heavy augmentation (RandAugment 4×14, elastic, invert, pad-crop, flip) + mixup +
  bold-driver boundary samples of a quarter of the pool (the P2/P4 recipe); 3 seeds for target
  and OpenGL, the first seed for the other sources;
* ``nomix``: the same without mixup, 3 seeds for every source;
* ``plain``: the pool as it is (no augmentation, mixup or attack), one seed;
* ``aug``: heavy augmentation + mixup without the attack, OpenGL only, one seed.

Also: the relative entropy of the teacher's predicted classes on each raw source, the
teacher's accuracy, and — measured in the same run — shader images/s at 28×28 and 32×32 and KD
throughput on on-the-fly OpenGL (rendered in a background thread) vs in-memory real data.

    python benchmarks/kd_sources.py --threads 2       # default scale in one process (hours;
                                                      # use --shard, below)
    python benchmarks/kd_sources.py                   # 1 torch thread: slower table, but the
                                                      # render thread keeps a core of its own
    python benchmarks/kd_sources.py --scale smoke     # a few minutes

The OpenGL-vs-real KD throughput is measured with the run's ``--threads``: at 2 threads on 2
cores the background render thread competes with torch for the cores.

Finished runs are reused from ``runs/kd_sources/<scale>/`` (their ``metrics.json`` records the
config), and pools and boundary samples are cached on disk, so a killed benchmark continues
where it stopped. ``--shard I/N`` trains only every N-th run (from the I-th) and writes no
table; N single-threaded shards in parallel use N cores better than one multi-threaded run
(the heavy augmentation is single-threaded), and a final run without ``--shard`` collects::

    python benchmarks/kd_sources.py --shard 0/2 & python benchmarks/kd_sources.py --shard 1/2; wait
    python benchmarks/kd_sources.py --threads 2       # reuses all runs: table, speed, PNGs

Does the OpenGL gap close with more updates? ``--long-steps N`` trains the target (plain, every
seed; nomix, first seed) and OpenGL (nomix, every seed) at N updates and writes
``kd_sources_long<N>.json`` (``--shard`` works here too)::

    python benchmarks/kd_sources.py --long-steps 10000  # 7 runs
    python benchmarks/kd_sources.py --long-steps 10000 --seeds 0   # 3 of them
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.zoo_hyperparams import parse_kv  # noqa: E402
from distill.guided import source_relative_entropy  # noqa: E402
from distill.logits import (  # noqa: E402
    cached_boundary_pool,
    cached_teacher_logits,
    teacher_fingerprint,
)
from distill.pool import Pool  # noqa: E402
from distill.sources import get_source  # noqa: E402
from distill.sources.base import torch_threads  # noqa: E402
from distill.train import DistillConfig, distill  # noqa: E402
from models.datasets import load_dataset  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.zoo import get_trained  # noqa: E402

SOURCES = ("target", "digits", "photos", "opengl", "leaves", "fractals", "noise")
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 40, "batch": 64, "pool": 512, "student_width": 8, "seeds": [0],
              "eval_subset": 1000,
              "speed_steps": 20, "attack_iter": 10, "entropy_n": 512, "shader_batch": 512},
    "default": {"steps": 3000, "batch": 64, "pool": 65536, "student_width": 12,
                "seeds": [0, 1, 2], "eval_subset": None,
                "speed_steps": 60, "attack_iter": 20, "entropy_n": 2048, "shader_batch": 2048},
    "paper": {"steps": 20000, "batch": 256, "pool": 131072, "student_width": 16,
              "seeds": [0, 1, 2, 3, 4],
              "eval_subset": None, "speed_steps": 300, "attack_iter": 60, "entropy_n": 10000,
              "shader_batch": 4096},
}
RECIPES = {"full": {"augment": "heavy", "mixup": 1.0, "attack": True},
           "nomix": {"augment": "heavy", "mixup": 0.0, "attack": True},
           "aug": {"augment": "heavy", "mixup": 1.0, "attack": False},
           "plain": {"augment": "none", "mixup": 0.0, "attack": False}}
ATTACK_RECIPES = ("full", "nomix")  # OpenGL + augmentation + attack, with and without mixup
# P2 (arXiv:2411.12817), CIFAR-10 ResNet-50 → ResNet-18 student accuracy, for the ordering.
PAPER = {"setting": "CIFAR-10, ResNet-50 teacher → ResNet-18 student, P2 Table",
         "student_acc": {"target": 95.98, "ood_real": 94.69, "opengl": 94.02, "leaves": 92.08,
                         "noise": 69.24, "opengl_without_aug_mixup": 31.84},
         "opengl_relative_entropy": 0.94}


def build_pools(sc: dict, teacher, data, progress: bool,
                names: tuple[str, ...] = SOURCES) -> dict[str, dict[str, Pool]]:
    """Per source and recipe: the plain pool, or the pool plus its boundary samples."""
    i, key = data.info, teacher_fingerprint(teacher)
    pools: dict[str, dict[str, Pool]] = {}
    for name in names:
        t0 = time.perf_counter()
        # the target source is the training split: a larger draw would only repeat it
        n = min(sc["pool"], len(data.train)) if name == "target" else sc["pool"]
        images, logits = cached_teacher_logits(
            teacher, key, name, n, 0, image_size=i.image_size, channels=i.in_channels,
            balanced=name != "target", num_classes=i.num_classes, max_draw_factor=4,
            source_kwargs={"dataset": "fashion-mnist"}, progress=progress)
        base = Pool(images, logits)
        adv, adv_logits = cached_boundary_pool(teacher, key, images[: len(images) // 4],
                                               seed=0, max_iter=sc["attack_iter"])
        attacked = base.extend(adv, adv_logits)
        pools[name] = {r: attacked if opts["attack"] else base for r, opts in RECIPES.items()}
        print(f"pool {name}: {len(base)} images (+{len(attacked) - len(base)} "
              f"boundary samples) in {time.perf_counter() - t0:.0f} s", flush=True)
    return pools


def load_json_if_any(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_one(sc: dict, source: str, recipe: str, seed: int, pool: Pool, teacher, data,
            run_root: Path, progress: bool) -> dict:
    cfg = DistillConfig(dataset="fashion-mnist", student="cnn", student_width=sc["student_width"],
                        source=source, pool=len(pool), steps=sc["steps"], batch_size=sc["batch"], seed=seed,
                        optimizer="adam", lr=0.01, temperature=4.0,
                        eval_subset=sc["eval_subset"], eval_every=sc["steps"], attack_iter=sc["attack_iter"],
                        progress=progress, run_dir=str(run_root / f"{source}-{recipe}-s{seed}"),
                        **RECIPES[recipe])
    prev = load_json_if_any(Path(cfg.run_dir) / "metrics.json")
    if prev and prev.get("config", {}).get("steps") == cfg.steps and \
            {k: prev["config"].get(k) for k in cfg.result_key()} == cfg.result_key():
        return prev["metrics"]
    for stale in Path(cfg.run_dir).glob("*"):  # an unfinished run: start it again
        if stale.is_file():
            stale.unlink()
    return distill(cfg, data=data, teacher=teacher, pool=pool)["metrics"]


def speed(sc: dict, teacher, data, target_pool: Pool, run_root: Path) -> dict:
    """Shader images/s and KD throughput, on-the-fly OpenGL vs in-memory real data."""
    out: dict[str, Any] = {"shader_images_per_s": {}}
    for size, ch in ((28, 1), (28, 3), (32, 1), (32, 3)):
        src = get_source("opengl", image_size=size, channels=ch)
        src.sample(64, 0)
        rates = []
        for r in range(3):
            t = time.perf_counter()
            src.sample(sc["shader_batch"], 1000 + r)
            rates.append(sc["shader_batch"] / (time.perf_counter() - t))
        out["shader_images_per_s"][f"{size}x{size}x{ch}"] = statistics.median(rates)
    kd = {"real_in_memory": [], "opengl_on_the_fly": []}
    for rep in range(2):  # interleaved, so load changes hit both alike
        for kind in kd:
            cfg = DistillConfig(source="target" if kind == "real_in_memory" else "opengl",
                                pool=len(target_pool) if kind == "real_in_memory" else 0,
                                steps=sc["speed_steps"], batch_size=sc["batch"], seed=rep,
                                optimizer="adam", lr=0.01, eval_every=sc["speed_steps"],
                                augment="heavy", mixup=1.0, eval_subset=500, progress=False,
                                prefetch=4, run_dir=str(run_root / f"speed-{kind}-r{rep}-{time.time_ns()}"))
            m = distill(cfg, data=data, teacher=teacher,
                        pool=target_pool if kind == "real_in_memory" else None)["metrics"]
            kd[kind].append(m["images_per_s"])
    out["kd_images_per_s"] = {k: statistics.median(v) for k, v in kd.items()}
    out["kd_images_per_s_repeats"] = kd
    out["opengl_vs_real_throughput"] = (out["kd_images_per_s"]["opengl_on_the_fly"]
                                        / out["kd_images_per_s"]["real_in_memory"])
    out["shader_28x28x1_vs_kd_consumption"] = (out["shader_images_per_s"]["28x28x1"]
                                               / out["kd_images_per_s"]["real_in_memory"])
    return out


def summarize(results: dict, entropy: dict | None, seeds: list[int]) -> list[dict]:
    """Per (source, recipe): mean ± std over the seeds, and the ratio to the best target row."""
    rows = []
    tgt = max(statistics.mean(a["test_acc"] for a in v) for (s, _), v in results.items() if s == "target")
    for (source, recipe), accs in results.items():
        mean = statistics.mean(a["test_acc"] for a in accs)
        rows.append({"source": source, "recipe": recipe, "seeds": seeds[:len(accs)],
                     "test_acc_mean": mean,
                     "test_acc_std": statistics.stdev([a["test_acc"] for a in accs]) if len(accs) > 1 else None,
                     "test_acc": [a["test_acc"] for a in accs],
                     "agreement_mean": statistics.mean(a["test_agreement"] for a in accs),
                     "relative_entropy": entropy[source] if entropy else None,
                     "vs_best_target": mean / tgt})
    return rows


def ordering_checks(rows: list[dict]) -> dict:
    """P2's ordering under each augmented + attacked recipe, and OpenGL vs the best target row."""
    tgt_best = max(r["test_acc_mean"] for r in rows if r["source"] == "target")
    out: dict[str, Any] = {"ood_real": "max(digits, photos)"}
    for recipe in ATTACK_RECIPES:
        acc = {r["source"]: r["test_acc_mean"] for r in rows if r["recipe"] == recipe}
        if set(acc) != set(SOURCES):
            continue
        ood = max(acc["digits"], acc["photos"])
        pairs = [("target ≥ OOD real", acc["target"] >= ood), ("OOD real ≥ opengl", ood >= acc["opengl"]),
                 ("opengl > leaves", acc["opengl"] > acc["leaves"]),
                 ("leaves > noise", acc["leaves"] > acc["noise"])]
        out[recipe] = {"acc": acc, "p2_ordering": {k: bool(v) for k, v in pairs},
                       "p2_ordering_holds": all(v for _, v in pairs),
                       "opengl_vs_best_target": acc["opengl"] / tgt_best,
                       "opengl_vs_target_same_recipe": acc["opengl"] / acc["target"],
                       "noise_vs_best_target": acc["noise"] / tgt_best}
    best = max((r for r in rows if r["source"] == "opengl" and r["recipe"] in ATTACK_RECIPES),
               key=lambda r: r["test_acc_mean"])
    out["opengl_best_attack_recipe"] = best["recipe"]
    out["opengl_best_vs_best_target"] = best["test_acc_mean"] / tgt_best
    out["opengl_reaches_90pct_of_target"] = best["test_acc_mean"] / tgt_best >= 0.9
    return out


def save_pngs(pools, rows, teacher_acc, results_dir: Path, sc: dict, data) -> list[str]:
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    from distill.augment import get_policy

    files = []
    fig, axes = plt.subplots(2, len(SOURCES), figsize=(2.2 * len(SOURCES), 4.8))
    pol, gen = get_policy("heavy", data.info.image_size), torch.Generator().manual_seed(0)
    for j, name in enumerate(SOURCES):
        x = pools[name]["plain"].images[:36]
        for r, imgs in enumerate((x, pol(x.clone(), gen))):
            g = make_grid(imgs, nrow=6, padding=1, pad_value=1.0)[0]
            axes[r, j].imshow(g.numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r, j].set_axis_off()
        axes[0, j].set_title(name)
    axes[1, 0].text(-0.1, 0.5, "heavy aug", transform=axes[1, 0].transAxes, rotation=90,
                    va="center", ha="right")
    fig.tight_layout()
    p = results_dir / "kd_sources_samples.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p.name)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    bars = ("plain", "aug", *ATTACK_RECIPES)
    w = 0.8 / len(bars)
    for k, recipe in enumerate(bars):
        xs, ys, es = [], [], []
        for j, name in enumerate(SOURCES):
            r = next((r for r in rows if r["source"] == name and r["recipe"] == recipe), None)
            if r:
                xs.append(j + (k - (len(bars) - 1) / 2) * w)
                ys.append(r["test_acc_mean"])
                es.append(r["test_acc_std"] or 0)
        ax.bar(xs, ys, w, yerr=es, label=recipe)
    ax.axhline(teacher_acc, color="k", ls="--", lw=1, label="teacher")
    ax.set_xticks(range(len(SOURCES)), SOURCES)
    ax.set_ylabel("student test accuracy")
    ax.set_title(f"Fashion-MNIST KD, {sc['steps']} updates × {sc['batch']}")
    ax.legend(fontsize=8, ncol=len(bars) + 1)
    fig.tight_layout()
    p = results_dir / "kd_sources_accuracy.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p.name)
    return files


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=tuple(SCALES), default="default")
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on the shared 2-core machine)")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--teacher-kw", nargs="*", metavar="KEY:VALUE", default=[],
                    help="options for the teacher's models.zoo.get_trained (e.g. width:8 "
                         "epochs:1 for a cheap smoke teacher); default: the model-cache CNN")
    ap.add_argument("--shard", default=None, metavar="I/N",
                    help="train only runs I, I+N, I+2N, ... of the plan and stop (no table)")
    ap.add_argument("--long-steps", type=int, default=None,
                    help="instead of the table: target (plain, every seed; nomix, first seed) and "
                         "opengl (nomix, every seed) at this many updates; writes "
                         "kd_sources_long<N>.json (does the gap close with more updates?); "
                         "works with --shard")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="student seeds instead of the scale's (e.g. --seeds 0 for a quick look)")
    args = ap.parse_args(argv)
    args.sc = {**SCALES[args.scale], **({"seeds": list(dict.fromkeys(args.seeds))}
                                        if args.seeds else {})}
    args.teacher_kw = parse_kv(args.teacher_kw, "--teacher-kw")
    args.shard = _parse_shard(args.shard)
    with torch_threads(args.threads):
        return _long(args) if args.long_steps else _main(args)


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


def _long(args) -> dict:
    """Target (plain, every seed; nomix, first seed) and OpenGL (nomix, every seed) at more updates."""
    sc = {**args.sc, "steps": int(args.long_steps)}
    t_start, seeds = time.perf_counter(), sc["seeds"]
    run_root = ROOT / "runs" / "kd_sources" / f"{args.scale}-long{sc['steps']}"
    data = load_dataset("fashion-mnist")
    teacher = get_trained("fashion-mnist", "cnn", progress=args.progress, **args.teacher_kw)
    pools = build_pools(sc, teacher, data, args.progress, ("target", "opengl"))
    plan = [(src, recipe, s) for s in seeds for src, recipe in (("target", "plain"), ("opengl", "nomix"))]
    plan.append(("target", "nomix", seeds[0]))
    shard, n_shards = args.shard
    runs = []
    for n, (source, recipe, seed) in enumerate(plan):
        if n % n_shards != shard:
            continue
        t0 = time.perf_counter()
        m = run_one(sc, source, recipe, seed, pools[source][recipe], teacher, data, run_root,
                    args.progress)
        runs.append({"source": source, "recipe": recipe, "seed": seed, "steps": sc["steps"],
                     "test_acc": m["test_acc"], "agreement": m["test_agreement"]})
        print(f"[{n + 1}/{len(plan)}] {source:8s} {recipe:5s} seed {seed} {sc['steps']} updates: "
              f"test acc {m['test_acc']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if n_shards > 1:
        print(f"shard {shard}/{n_shards} done; run without --shard to write the table")
        return {"shard": f"{shard}/{n_shards}", "runs": runs}
    results: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        results.setdefault((r["source"], r["recipe"]), []).append(
            {"test_acc": r["test_acc"], "test_agreement": r["agreement"]})
    rows = summarize(results, None, seeds)
    for r in rows:
        std = f"± {r['test_acc_std']:.4f}" if r["test_acc_std"] is not None else ""
        print(f"{r['source']:8s} {r['recipe']:5s} {r['test_acc_mean']:.4f} {std:9s} "
              f"/best target {r['vs_best_target']:.3f}")
    out = {"benchmark": "kd_sources", "scale": args.scale, "variant": f"long{sc['steps']}",
           "table": rows, "runs": runs,
           "budget": {k: sc[k] for k in ("steps", "batch", "pool", "attack_iter", "student_width")},
           "teacher_acc": float(teacher.meta["test_acc"]), "paper": PAPER,
           "opengl_vs_best_target": next(r["vs_best_target"] for r in rows
                                         if r["source"] == "opengl"),
           "wall_time_s": time.perf_counter() - t_start, "seeds": seeds, **provenance(seeds[0])}
    atomic_write_json(out, Path(args.results_dir) / f"kd_sources_long{sc['steps']}.json")
    return out


def _main(args) -> dict:
    sc, t_start = args.sc, time.perf_counter()
    results_dir, run_root = Path(args.results_dir), ROOT / "runs" / "kd_sources" / args.scale
    results_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset("fashion-mnist")
    teacher = get_trained("fashion-mnist", "cnn", progress=args.progress, **args.teacher_kw)
    teacher_acc = float(teacher.meta["test_acc"])
    i = data.info
    entropy = {n: source_relative_entropy(teacher, get_source(n, image_size=i.image_size,
                                                              channels=i.in_channels,
                                                              dataset="fashion-mnist"),
                                          i.num_classes, n=sc["entropy_n"], seed=123)
               for n in SOURCES}
    print("relative entropy:", {k: round(v, 3) for k, v in entropy.items()}, flush=True)
    pools = build_pools(sc, teacher, data, args.progress)
    # every source with both attack recipes on the first seed; the other seeds: the best
    # recipe (nomix) for every source, the P2/P4 recipe (full) for target and OpenGL
    plan = [(s, r, seed) for seed in sc["seeds"] for r in ATTACK_RECIPES for s in SOURCES
            if seed == sc["seeds"][0] or r == "nomix" or s in ("target", "opengl")]
    plan += [(s, "plain", sc["seeds"][0]) for s in SOURCES] + [("opengl", "aug", sc["seeds"][0])]
    results: dict[tuple[str, str], list[dict]] = {}
    shard, n_shards = args.shard
    for n, (source, recipe, seed) in enumerate(plan):
        if n % n_shards != shard:
            continue
        t0 = time.perf_counter()
        m = run_one(sc, source, recipe, seed, pools[source][recipe], teacher, data, run_root,
                    args.progress)
        results.setdefault((source, recipe), []).append(m)
        print(f"[{n + 1}/{len(plan)}] {source:8s} {recipe:5s} seed {seed}: test acc "
              f"{m['test_acc']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if n_shards > 1:
        print(f"shard {shard}/{n_shards} done; run without --shard to write the table")
        return {"shard": f"{shard}/{n_shards}", "runs": {f"{s}-{r}": [m["test_acc"] for m in v]
                                              for (s, r), v in results.items()}}
    order = {(s, r): results[(s, r)] for r in RECIPES for s in SOURCES if (s, r) in results}
    rows = summarize(order, entropy, sc["seeds"])
    checks = ordering_checks(rows)
    spd = speed(sc, teacher, data, pools["target"]["plain"], run_root)
    files = save_pngs(pools, rows, teacher_acc, results_dir, sc, data)

    print(f"\nteacher test accuracy {teacher_acc:.4f}; student cnn width {sc['student_width']}; "
          f"{sc['steps']} updates × batch {sc['batch']}; pool {sc['pool']} per source")
    print(f"{'source':9s} {'recipe':6s} {'seeds':>7s} {'acc mean':>9s} {'± std':>7s} "
          f"{'agree':>6s} {'rel.ent':>7s} {'/target':>8s}")
    for r in rows:
        std = f"{r['test_acc_std']:.4f}" if r["test_acc_std"] is not None else "-"
        print(f"{r['source']:9s} {r['recipe']:6s} {len(r['seeds']):7d} {r['test_acc_mean']:9.4f} "
              f"{std:>7s} {r['agreement_mean']:6.3f} {r['relative_entropy']:7.3f} "
              f"{r['vs_best_target']:8.3f}")
    print("checks:", checks)
    print("speed:", {k: v for k, v in spd.items() if k != "kd_images_per_s_repeats"})
    out = {"benchmark": "kd_sources", "scale": args.scale, "table": rows, "checks": checks,
           "teacher": {"arch": "cnn", "width": teacher.meta["config"]["width"], "test_acc": teacher_acc,
                       "num_parameters": teacher.num_parameters()},
           "student": {"arch": "cnn", "width": sc["student_width"],
                       "num_parameters": next(iter(results.values()))[0]["num_parameters"]},
           "budget": {k: sc[k] for k in ("steps", "batch", "pool", "attack_iter", "student_width")},
           "relative_entropy": entropy, "speed": spd, "paper": PAPER, "pngs": files,
           "notes": "pools drawn once with seed 0 and shared by all student seeds; seeds vary "
                    "student init, data order, augmentation and mixup. Timings: see machine.load_avg.",
           "wall_time_s": time.perf_counter() - t_start, "seeds": sc["seeds"],
           **provenance(sc["seeds"][0])}
    atomic_write_json(out, Path(args.results_dir) / ("kd_sources.json" if args.scale == "default"
                                                     else f"kd_sources_{args.scale}.json"))
    return out


if __name__ == "__main__":
    main()
