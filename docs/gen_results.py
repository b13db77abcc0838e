"""Markdown tables of the committed results, read from ``benchmarks/results/*.json`` at build
time. Each results page includes its tables from ``docs/_generated/tables/<name>.md``; the
numbers come from the JSON only, formatted, never typed by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.stats import pm

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; cells are written as given (format them first)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def p_fmt(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


# ---------------------------------------------------------------------------------------- P1
def ptq_pairs_hard() -> str:
    d = load("ptq_pairs_hard")
    main, extra = [], []
    for arch, by_w in d["summary"].items():
        for w, r in by_w.items():
            ci = r["ci95"]
            main.append([arch, w, ",".join(map(str, r["seeds"])),
                         pm(r["det_pair_drop"], ci["det_pair_drop"]),
                         pm(r["det_pair_fp_gap"], ci["det_pair_fp_gap"]),
                         pm(r["standard_attacked_drop"], ci["standard_attacked_drop"]),
                         pm(r["robust_attacked_drop"], ci["robust_attacked_drop"]),
                         p_fmt(r["p_det_pair_vs_standard_attacked"])])
            extra.append([arch, w, pm(r["det_pair_attacked_drop"], ci["det_pair_attacked_drop"]),
                          pm(r["det_pair_best_static_drop"], ci["det_pair_best_static_drop"]),
                          pm(r["standard_best_static_drop"], ci["standard_best_static_drop"]),
                          pm(r["robust_pair_own_drop"], ci["robust_pair_own_drop"]),
                          pm(r["dynamic_gain"], ci["dynamic_gain"]),
                          pm(r["distinct_plans"], ci["distinct_plans"])])
    return (table(["network", "weights", "seeds", "detrimental pair: drop, own policy",
                   "its FP − standard FP", "standard net: drop, fresh attacker",
                   "robust pair: drop, fresh attacker", "p (pair vs standard attacked)"], main)
            + "\n" + table(["network", "weights", "detrimental pair: fresh attacker",
                            "detrimental pair: best static plan", "standard: best static plan",
                            "robust pair: own policy", "dynamic gain (det. pair)",
                            "distinct plans (det. pair)"], extra))


def ptq_conventions() -> str:
    d = load("ptq_conventions")
    rows = []
    for zp, by_arch in d["summary"].items():
        for arch, by_w in by_arch.items():
            for w, r in by_w.items():
                ci = r["ci95"]
                rows.append([zp, arch, w, ",".join(c.rsplit("-s", 1)[1] for c in r["seeds"]),
                             pm(r["det_pair_drop"], ci["det_pair_drop"]),
                             pm(r["det_pair_fp_gap"], ci["det_pair_fp_gap"]),
                             pm(r["standard_attacked_drop"], ci["standard_attacked_drop"]),
                             pm(r["robust_attacked_drop"], ci["robust_attacked_drop"]),
                             pm(r["det_pair_uniform4_drop"], ci["det_pair_uniform4_drop"]),
                             "yes" if r["strong_pair_exists"] else "no"])
    return table(["zero point", "network", "weights", "seeds", "det. pair: own policy",
                  "its FP − standard FP", "standard: fresh attacker",
                  "robust: fresh attacker", "det. pair: uniform 4",
                  "≥ 40-point pair, FP within 1"], rows)


def ptq_pairs_easy() -> str:
    d = load("ptq_pairs")
    names = {"standard": "standard net + detrimental policy", "detrimental": "detrimental pair",
             "robust": "robust pair"}
    rows = [[r["arch"], names.get(r["mode"], r["mode"]), pm(r["fp_acc"], r["fp_acc_std"]),
             pm(r["dptq_acc"], r["dptq_acc_std"]), pm(r["drop"], r["drop_std"]),
             f"{r['mean_bits']:.2f}", f"{r['cost_bits']:.2f}", f"{r['wall_s'] / 60:.1f}"]
            for r in d["table"]]
    return table(["network", "pair", "FP acc %", "DPTQ acc %", "drop (points)", "mean bits",
                  "cost bits", "search (min)"], rows)


# ---------------------------------------------------------------------------------------- P5
def bn_init_budget() -> str:
    d = load("bn_init_budget")
    ladder = [[ep, f"{r['standard'] * 100:.2f}", f"{r['revisited'] * 100:.2f}",
               pm(r["diff_mean"], r["ci95"], scale=100), r["n_seeds"],
               f"{r['wins']}/{r['n_seeds']}", p_fmt(r["p_one_sided"])]
              for ep, r in d["ladder"].items()]
    abl = [[name, v["undoes"], f"{v['test_acc'] * 100:.2f}",
            pm(v["minus_revisited"]["diff_mean"], v["minus_revisited"]["ci95"], scale=100),
            p_fmt(v["minus_revisited"]["p_two_sided"])]
           for name, v in d["ablation"]["variants"].items()]
    return (table(["epochs", "standard BN %", "revisited BN %", "revisited − standard (points)",
                   "paired seeds", "revisited wins", "one-sided p"], ladder) + "\n"
            + f"Ablation at {d['ablation']['epochs']} epochs (revisited with one change undone,"
              f" seeds {','.join(map(str, d['ablation']['seeds']))}):\n\n"
            + table(["variant", "undoes", "test acc %", "change vs revisited (points)",
                     "two-sided p"], abl))


def bn_init() -> str:
    d = load("bn_init")
    rows = [[r["condition"], r["n"], pm(r["test_acc_mean"], r["test_acc_std"], scale=100)]
            for r in d["table"]]
    return table(["condition", "seeds", "test accuracy % (mean ± std)"], rows)


# ------------------------------------------------------------------------------------- P2/P4
def kd_sources() -> str:
    d = load("kd_sources")
    rows = []
    for src, recipe in d["selected"].items():
        r = d["summary"][src][recipe]
        rows.append([src, recipe, pm(r["mean"], r["ci95"]),
                     f"{r.get('pool_relative_entropy', float('nan')):.3f}",
                     f"{r.get('fallback_fraction', 0) * 100:.1f} %"])
    for b in d["baselines"].values():
        rows.append([b["method"], "–", pm(b["mean"], b["ci95"]), "–", "–"])
    order = [[o["claim"], pm(o["diff_mean"], None, scale=100),
              f"[{o['diff_ci95_low'] * 100:.2f}, {o['diff_ci95_high'] * 100:.2f}]",
              f"{o['wins']}/{o['n_pairs']}", p_fmt(o["p_two_sided"])] for o in d["ordering"]]
    r = d["opengl_vs_target"]
    return (table(["transfer set", "recipe (chosen on validation)", "student test acc %",
                   "pool relative entropy", "fallback slots"], rows) + "\n"
            + f"OpenGL / target student: {r['ratio_mean']:.3f} "
              f"[{r['ci95_low']:.3f}, {r['ci95_high']:.3f}] (target {r['target']}).\n\n"
            + table(["P2 ordering (paired by seed)", "difference (points)", "95% CI", "wins",
                     "two-sided p"], order))


def kd_source_policy() -> str:
    d = load("kd_source_policy")
    out = []
    for setting, pols in d["summary"].items():
        if not isinstance(pols, dict) or setting == "batched_speedup":
            continue
        rows = [[pol, pm(v["mean"], v["ci95"], scale=100),
                 pm(v.get("diff_vs_best_fixed"), None, scale=100),
                 p_fmt(v.get("p_vs_best_fixed")), pm(v.get("diff_vs_blackbox"), None, scale=100),
                 p_fmt(v.get("p_vs_blackbox"))] for pol, v in pols.items()]
        out.append(f"**{setting}** ({next(iter(pols.values()))['n_eval_seeds']} paired "
                   "evaluation seeds):\n\n" + table(
                       ["policy", "test acc %", "vs best fixed", "one-sided p (better)",
                        "vs black box", "one-sided p (better)"], rows))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- P3
def fields() -> str:
    d = load("fields")
    cols = ("gappy_pod", "qr_gappy_pod", "faithful", "improved")
    rows = [[r["dataset"], r["protocol"], r["K"],
             *[pm(r.get(c), r.get(f"{c}_ci95"), 3) for c in cols],
             p_fmt(r.get("p_improved_vs_gappy_pod"))] for r in d["rows"]]
    abl = [[a["dataset"], a["protocol"], a["K"], a["variant"], pm(a["rel_l2"], a["ci95"], 3),
            f"{a['over_faithful']:.2f}", p_fmt(a["p_vs_faithful"])] for a in d["ablation"]
           if a["variant"] != "faithful"]
    return (table(["field", "protocol", "sensors", "gappy POD", "QR + gappy POD",
                   "Voronoi-CNN faithful", "improved", "p improved vs gappy POD"], rows)
            + "\nP3 ablation (layout-general, paired over seeds):\n\n"
            + table(["field", "protocol", "sensors", "variant", "rel. L2", "/ faithful",
                     "two-sided p vs faithful"], abl))


def sensor_placement() -> str:
    d = load("sensor_placement")
    rows = [[r["dataset"], r["sensors"], r["method"], pm(r["rel_l2"], r["ci95"], 4), r["n"],
             r["ci_over"], p_fmt(r["p_ppo_less"]), p_fmt(r.get("p_ppo_sampled_less"))]
            for r in d["table"]]
    steps = ", ".join(f"seed {s}: {n:,}" for s, n in d.get("ppo_steps", {}).items())
    return (table(["field", "K", "method", "test rel. L2 (mean ± 95% CI)", "n", "CI over",
                   "p (PPO lower, paired over test windows)", "p (PPO best-of-n lower)"],
                  rows)
            + f"\nPPO steps reached: {steps}.\n")


# -------------------------------------------------------------------------------- benchmarks
def ptq_env_speed() -> str:
    d = load("ptq_env_speed")
    rows = [[s["mode"], s["n_envs"], f"{s['qforward_over_fp']:.2f}",
             f"{s['env_over_qforward']:.2f}", f"{s['env_over_fp']:.2f}",
             f"{s['dummy_over_env']:.1f}"] for s in d["speed"]]
    acc: dict[str, list[str]] = {}
    for r in d["uniform_bits_accuracy"]:
        acc.setdefault("per channel" if r["per_channel"] else "per tensor", []).append(
            f"{r['q_acc'] * 100:.2f}")
    bits = [str(r["bits"]) for r in d["uniform_bits_accuracy"] if not r["per_channel"]]
    return (table(["mode", "N", "quantized forward / FP forward", "env / quantized forward",
                   "env / FP forward", "DummyVecEnv / env"], rows)
            + "\nTest accuracy % of the default network under uniform bits:\n\n"
            + table(["ranges", *bits], [[k, *v] for k, v in acc.items()]))


def kd_source_plateau() -> str:
    d = load("kd_source_plateau")
    rows = [[r["student"], r["augment"], r["source"], f"{r['final_accuracy'] * 100:.1f}",
             f"{r['plateau_updates']:.0f}", f"{r['rise_last_quarter'] * 100:+.1f}"]
            for r in d["rows"]]
    return table(["student", "augmentation", "source", "accuracy % at the end",
                  "plateau (updates)", "rise in the last quarter (points)"], rows)


def distill_speed() -> str:
    s = load("kd_source_speed")
    rows = [[r["config"], f"{r['steps_per_s']:.2f}", f"{r['share_update'] * 100:.0f} %",
             f"{r['updates_ratio_vs_plain']:.2f}"] for r in s["table"]]
    b = load("kd_source_batched")
    brows = [[r["student"], f"{r['speedup']:.2f}", r["target"],
              f"{r['training_step']['bound']:.2f}"] for r in b["rows"]]
    g = load("kd_sources_render")
    grows = [[f"{r['size']}×{r['channels']}", r["batch"], f"{r['sample_images_per_s']:.0f}",
              f"{r['batched_vs_one_per_call']:.2f}"] for r in g["opengl"]]
    return (table(["configuration", "env steps/s", "share in student updates",
                   "updates/s vs a plain KD loop"], rows)
            + f"\nBatched students (N = {b['n_envs']}):\n\n"
            + table(["student", "batched / one by one", "target", "bound"], brows)
            + "\nOpenGL shader renders:\n\n"
            + table(["size", "batch", "images/s", "batched / one per call"], grows))


def sweep_overhead() -> str:
    d = load("sweep_overhead")
    rows = [[r["engine"], f"{r['trial_s_direct']:.1f}", f"{r['trial_s_in_sweep']:.1f}",
             f"{r['overhead_pct_vs_direct_run']:.1f} %", f"{r['target_pct']} %"]
            for r in d["table"] if "trial_s_direct" in r]
    res = [[r["engine"], r["trials_lost"], r["finished_trials_rerun"]] for r in d["resume"]]
    return (table(["engine", "trial run directly (s)", "trial in a sweep (s)",
                   "overhead vs direct", "target"], rows)
            + "\nDriver killed mid-sweep, then `--resume`:\n\n"
            + table(["engine", "trials lost", "finished trials re-run"], res))


def fault_injection() -> str:
    d = load("fault_injection")
    s = d["summary"]
    per_class = [[cls, f"{c['handled']} / {c['total']}"] for cls, c in s["classes"].items()]
    out = [f"{s['handled']} / {s['total']} cases handled.\n\n"
           + table(["class", "handled"], per_class)]
    for cls in s["classes"]:
        rows = [[f"`{c['name']}`", c["expected"].replace("|", "/"),
                 "yes" if c["handled"] else "**no**"] for c in d["cases"] if c["class"] == cls]
        out.append(f"\n**{cls[0].upper()}{cls[1:]}**\n\n"
                   + table(["case", "expected", "handled"], rows))
    return "".join(out)


TABLES: dict[str, Callable[[], str]] = {
    "ptq_pairs_hard": ptq_pairs_hard, "ptq_pairs_easy": ptq_pairs_easy,
    "ptq_conventions": ptq_conventions,
    "bn_init_budget": bn_init_budget, "bn_init": bn_init, "kd_sources": kd_sources,
    "kd_source_policy": kd_source_policy, "fields": fields,
    "sensor_placement": sensor_placement, "ptq_env_speed": ptq_env_speed,
    "kd_source_plateau": kd_source_plateau, "distill_speed": distill_speed,
    "sweep_overhead": sweep_overhead, "fault_injection": fault_injection,
}


def write_tables(out_dir: Path) -> list[Path]:
    """Write every table to ``out_dir/<name>.md`` (unchanged files are not touched)."""
    from docs import gen_results_p1

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fn in {**TABLES, **gen_results_p1.TABLES}.items():
        path = out_dir / f"{name}.md"
        text = fn()
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    return paths
