"""P1 on hard ground (``python benchmarks/ptq_pairs.py --protocol hard``).

Protocol: bit choices 4..8 for every quantized layer, the input image included; detrimental
budget mean bits ≥ 5; robust budget MAC-weighted bits ≤ 5. For each architecture, weight
setting (``a``: float weights; ``w8a``: 8-bit per-channel symmetric weights) and seed ``s``
(each seed its own standard network, trained with seed ``s``), it runs or reuses, with the
same PPO budget for every policy:

* the detrimental pair and the robust pair (``python -m agents.pairs --mode ...``);
* a fresh detrimental attacker against each of the three frozen networks: the standard
  network, the detrimental pair's, the robust pair's (``--attack``);

and measures every network under every attack (:mod:`agents.pairs.matrix`): its own policy,
the fresh attacker, the best static plan (searched on validation, stated budget), uniform 4
and 5, random plans under the budget, plus calibrated static PTQ (A4, A8, W8A8). The pair
folders are published under ``benchmarks/results/pairs/hard/`` (small, safe to load:
``agents.pairs.load_pair``; ``python -m agents.evaluate --pair FOLDER`` reproduces a row).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.figures import ptq_pairs_hard as ptq_pairs_hard_figure
from benchmarks.parts.ptq_hard_extras import merge_extras
from models.io import atomic_write_json, atomic_write_text
from models.stats import paired_p, pm, std, t_half_width

NETS = ("standard", "detrimental", "robust")
KINDS = ("detrimental", "robust", "attack-standard", "attack-detrimental", "attack-robust")
# Bump when agents.pairs.matrix changes what it measures: cached and published matrices of an
# older version are recomputed (version 1: upgraded, see upgrade_combo) from the unchanged pair
# folders. 2: policy plans compete in the static search.
MATRIX_VERSION = 2
WEIGHTS = {"a": [], "w8a": ["--weight-bits", "8"]}
TARGETS = {"det_pair_drop": 40.0, "det_pair_fp_gap": 1.0, "standard_attacked_drop": 5.0,
           "robust_attacked_drop": 2.0, "search_min": {"cnn": 20.0, "resnet8": 30.0}}


def pair_argv(kind: str, arch: str, wset: str, seed: int, s: dict[str, Any], root: Path
              ) -> list[str]:
    """The ``agents.pairs`` command of one search: ``detrimental``, ``robust`` or
    ``attack-<net>``."""
    argv = ["--arch", arch, "--seed", str(seed), "--rounds", str(s["rounds"]),
            "--policy-steps", str(s["policy_steps"]), "--net-steps", str(s["net_steps"]),
            "--out", str(root / kind), "--no-progress", *WEIGHTS[wset], *s.get("pair_flags", []),
            *(["--model-kw", *s["model_kw"]] if s.get("model_kw") else [])]
    if kind.startswith("attack-"):
        target = kind.removeprefix("attack-")
        return [*argv, "--mode", "detrimental",
                "--attack", "standard" if target == "standard" else str(root / target)]
    return [*argv, "--mode", kind]


def finished_metrics(argv: list[str], folder: Path) -> dict[str, Any] | None:
    """The metrics of a finished search in ``folder`` made with ``argv``'s options, else
    ``None``."""
    from agents.pairs.trainer import config_diff, pair_config, parse_args

    rec = folder / "pair.json"
    if not rec.exists():
        return None
    d = json.loads(rec.read_text())
    if d["metrics"].get("test") and not config_diff(d["config"], pair_config(parse_args(argv))):
        return d["metrics"]
    return None


def run_search(argv: list[str], out: Path, collect_only: bool) -> dict[str, Any] | None:
    """A finished search with the same options is reused; otherwise it runs (or resumes)."""
    from agents.pairs.trainer import main

    done = finished_metrics(argv, out)
    if done is not None or collect_only:
        return done
    return main(argv)


def _combo_parts(root: Path) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The data, the five pairs of a combo, the attack env options and the three networks."""
    from agents.pairs.artifact import load_pair
    from models.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    pairs = {k: load_pair(root / k, data=data) for k in KINDS}
    nets = {"standard": pairs["attack-standard"].net, "detrimental": pairs["detrimental"].net,
            "robust": pairs["robust"].net}
    return data, pairs, pairs["attack-standard"].env_kwargs, nets


def combo_matrix(seed: int, root: Path, static: dict[str, int]) -> dict[str, Any]:
    """The matrix of one (arch, weight setting, seed) in ``root``: three networks × every
    attack."""
    from agents.pairs.matrix import network_matrix

    data, pairs, attack_env, nets = _combo_parts(root)
    out = {}
    for name, net in nets.items():
        out[name] = network_matrix(net, data, attack_env, own=pairs.get(name),
                                   attacker=pairs[f"attack-{name}"], seed=seed,
                                   static_evals=static["evals"], static_limit=static["limit"])
        out[name]["search_min"] = (pairs[name].metrics["wall_s"] / 60 if name in pairs else None)
    return out


def upgrade_combo(root: Path, old: dict[str, Any]) -> dict[str, Any]:
    """A version-1 matrix (before policy plans competed in the static search) brought to
    :data:`MATRIX_VERSION` without re-running the unchanged search
    (:func:`agents.pairs.matrix.add_policy_candidates`)."""
    from agents.pairs.matrix import add_policy_candidates

    data, pairs, attack_env, nets = _combo_parts(root)
    return {name: add_policy_candidates(old[name], net, data, attack_env, own=pairs.get(name),
                                        attacker=pairs[f"attack-{name}"])
            for name, net in nets.items()}


def stored_matrix(path: Path, key: dict[str, Any]
                  ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(matrix computed under key, version-1 matrix)`` stored at ``path`` (either ``None``);
    version 1 is what was published before matrices carried a key."""
    if not path.exists():
        return None, None
    d = json.loads(path.read_text())
    if "key" in d:
        return (d["matrix"] if d["key"] == key else None), None
    return None, (d if set(NETS) <= set(d) else None)


def publish(root: Path, dest: Path, key: dict[str, Any], matrix: dict[str, Any]) -> None:
    """Copy the small pair folders (pair.json, policy.pt, net.pt) of one combo to ``dest``,
    with its ``matrix.json`` (``key`` and the rows of the three networks, best static plans
    included)."""
    atomic_write_json({"key": key, "matrix": matrix}, dest / "matrix.json")
    for folder in sorted(p for p in root.iterdir() if (p / "pair.json").exists()):
        target = dest / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("pair.json", "policy.pt", "net.pt"):
            if (folder / name).exists():
                shutil.copyfile(folder / name, target / name)


def summarise(per_seed: dict[str, dict[str, dict[int, dict[str, Any]]]]) -> dict[str, Any]:
    """``summary[arch][wset]``: the headline keys (means over seeds) with CIs and paired tests."""
    out: dict[str, Any] = {}
    for arch, by_w in per_seed.items():
        for wset, by_seed in by_w.items():
            ms = [by_seed[k] for k in sorted(by_seed)]
            det = [m["detrimental"] for m in ms]
            vals = {
                "det_pair_drop": [d["own_policy"]["drop"] for d in det],
                "det_pair_fp_gap": [d["own_policy"]["fp_acc"] - m["standard"]["best_static"]["fp_acc"]
                                    for d, m in zip(det, ms, strict=True)],
                "standard_attacked_drop": [m["standard"]["fresh_attacker"]["drop"] for m in ms],
                "robust_attacked_drop": [m["robust"]["fresh_attacker"]["drop"] for m in ms],
                "det_pair_attacked_drop": [d["fresh_attacker"]["drop"] for d in det],
                "dynamic_gain": [d["own_policy"]["dynamic_gain"] for d in det],
                "distinct_plans": [d["own_policy"]["distinct_plans"] for d in det],
                "robust_pair_own_drop": [m["robust"]["own_policy"]["drop"] for m in ms],
                "standard_best_static_drop": [m["standard"]["best_static"]["drop"] for m in ms],
                "det_pair_best_static_drop": [d["best_static"]["drop"] for d in det],
            }
            row: dict[str, Any] = {k: float(np.mean(v)) for k, v in vals.items()}
            row["ci95"] = {k: t_half_width(v, undefined=None) for k, v in vals.items()}  # None: 1 seed
            row["per_seed"] = vals
            row["seeds"] = sorted(by_seed)
            row["p_det_pair_vs_standard_attacked"] = paired_p(
                vals["det_pair_drop"], vals["standard_attacked_drop"], "greater")
            row["p_det_pair_vs_its_best_static"] = paired_p(
                vals["det_pair_drop"], vals["det_pair_best_static_drop"], "greater")
            row["search_min_max"] = max(max(m[n]["search_min"] or 0 for n in ("detrimental", "robust"))
                                        for m in ms)
            row["targets"] = {
                "det_pair_drop_ge_40": row["det_pair_drop"] >= TARGETS["det_pair_drop"],
                "det_pair_fp_within_1": abs(row["det_pair_fp_gap"]) <= TARGETS["det_pair_fp_gap"],
                "standard_attacked_le_5": row["standard_attacked_drop"] <= TARGETS["standard_attacked_drop"],
                "robust_attacked_lt_2": row["robust_attacked_drop"] < TARGETS["robust_attacked_drop"],
                "search_within_budget": row["search_min_max"] <= TARGETS["search_min"].get(arch, 20.0),
            }
            out.setdefault(arch, {})[wset] = row
    return out


def table(per_seed: dict[str, dict[str, dict[int, dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per (arch, weights, network, attack): drop and FP accuracy, mean ± std over
    seeds; ``mode`` names the pair rows that P1's numbers describe (its own policy)."""
    rows = []
    for arch, by_w in per_seed.items():
        for wset, by_seed in by_w.items():
            ms = [by_seed[k] for k in sorted(by_seed)]
            for net in NETS:
                for attack in ("own_policy", "fresh_attacker", "best_static", "uniform5",
                               "random_budget"):
                    vals = [m[net][attack] for m in ms if attack in m[net]]
                    if not vals:
                        continue
                    drop = np.asarray([v["drop"] for v in vals])
                    fp = np.asarray([v["fp_acc"] for v in vals])
                    row = {"arch": arch, "weights": wset, "network": net, "attack": attack,
                           "seeds": sorted(by_seed), "drop": float(drop.mean()),
                           "drop_std": std(drop, ddof=0), "drop_ci95": t_half_width(drop, undefined=0.0),
                           "fp_acc": float(fp.mean()), "dptq_acc": float((fp - drop).mean())}
                    if attack == "own_policy":
                        row["mode"] = net
                    rows.append(row)
    return rows


def run_hard(args: Any, s: dict[str, Any], command: str, results: Path,
             provenance_fn: Any, paper: dict[str, Any]) -> dict[str, Any]:
    """Every search and matrix of the hard protocol; writes ``ptq_pairs_hard[_SCALE].json``."""
    archs, seeds = args.archs or s["archs"], args.seeds if args.seeds is not None else s["seeds"]
    zp = getattr(args, "zero_point", "integer")
    tag = f"hard-{args.scale}" + ("" if zp == "integer" else f"-{zp}")
    wsets = args.weights or list(WEIGHTS)
    per_seed: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    missing, commands = [], {}
    static = {"evals": s["static_evals"], "limit": s["static_limit"]}
    for arch in archs:
        for wset in wsets:
            for seed in seeds:
                combo = f"{arch}-{wset}-s{seed}"
                root = Path(args.runs_dir) / tag / combo
                published = results / "pairs" / tag / combo
                argvs = {kind: pair_argv(kind, arch, wset, seed, s, root) for kind in KINDS}
                for kind, argv in argvs.items():
                    commands[f"{combo}/{kind}"] = "python -m agents.pairs " + " ".join(argv)
                if args.reuse_published and all(finished_metrics(argvs[k], published / k)
                                                 is not None for k in KINDS):
                    src = published  # the committed pairs: no search runs again
                else:
                    src, done = root, True
                    for kind, argv in argvs.items():
                        t0 = time.perf_counter()
                        if run_search(argv, root / kind, args.collect_only) is None:
                            missing.append(f"{combo}/{kind}")
                            done = False
                            break
                        print(f"{combo}/{kind}: {time.perf_counter() - t0:.0f} s", flush=True)
                    if not done:
                        continue
                key = {"commands": {k: v for k, v in commands.items() if k.startswith(f"{combo}/")},
                       "static": static, "matrix_version": MATRIX_VERSION}
                m, old = stored_matrix(src / "matrix.json", key)
                old = old if src == published else None
                if m is None and old is None and args.collect_only:
                    missing.append(f"{combo}/matrix")
                    continue
                if m is None and old is not None:
                    m = upgrade_combo(src, old)
                    atomic_write_json({"key": key, "matrix": m, "upgraded_from_version": 1},
                                      src / "matrix.json")
                elif m is None:
                    m = combo_matrix(seed, src, static)
                    atomic_write_json({"key": key, "matrix": m}, src / "matrix.json")
                per_seed.setdefault(arch, {}).setdefault(wset, {})[seed] = m
                if args.publish and src != published:
                    publish(root, published, key, m)
    summary = summarise(per_seed)
    base = "ptq_pairs_hard" if args.scale == "default" else f"ptq_pairs_hard_{args.scale}"
    name = base if zp == "integer" else f"{base}_{zp}"
    record = {"summary": summary, "table": table(per_seed), "paper": paper,
              "matrix": per_seed, "missing": missing, "commands": commands,
              "protocol": {"bit_choices": [4, 5, 6, 7, 8], "detrimental_budget": "mean bits >= 5",
                           "robust_budget": "MAC-weighted bits <= 5",
                           "attack_budget": "every attacker and pair policy: rounds x policy_steps PPO steps",
                           "static_search": static, "calibration_images": 1024},
              "targets": TARGETS, "scale": args.scale, "settings": s, "zero_point": zp,
              **provenance_fn(seeds[0] if seeds else None, command), "seeds": seeds}
    atomic_write_json(record, results / f"{name}.json")
    atomic_write_text(markdown(summary), results / f"{name}.md")
    if summary:
        ptq_pairs_hard_figure.plot(record, results / f"{name}.png")
    merge_extras(results / f"{base}.json")
    print_table(summary)
    if missing:
        print(f"missing (not run): {missing}")
    print(f"wrote {results / (name + '.json')}")
    return record


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (mean ± 95% CI over seeds, points)."""
    cols = [("det_pair_drop", "detrimental pair: drop (own policy)"),
            ("det_pair_fp_gap", "its FP − standard FP"),
            ("det_pair_attacked_drop", "detrimental pair: fresh attacker"),
            ("det_pair_best_static_drop", "detrimental pair: best static plan"),
            ("standard_attacked_drop", "standard: fresh attacker"),
            ("standard_best_static_drop", "standard: best static plan"),
            ("robust_pair_own_drop", "robust pair: own policy"),
            ("robust_attacked_drop", "robust pair: fresh attacker"),
            ("dynamic_gain", "dynamic gain (det. pair)"),
            ("distinct_plans", "distinct plans (det. pair)")]
    lines = ["| network | weights | seeds | " + " | ".join(c for _, c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for arch, by_w in summary.items():
        for wset, row in by_w.items():
            cells = [pm(row[k], row["ci95"][k]) for k, _ in cols]
            lines.append(f"| {arch} | {wset} | {','.join(map(str, row['seeds']))} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(summary: dict[str, Any]) -> None:
    keys = ("det_pair_drop", "det_pair_fp_gap", "standard_attacked_drop", "robust_attacked_drop",
            "det_pair_attacked_drop", "dynamic_gain", "distinct_plans")
    print(f"{'arch':8s} {'w':4s} " + " ".join(f"{k[:18]:>18s}" for k in keys))
    for arch, by_w in summary.items():
        for wset, row in by_w.items():
            print(f"{arch:8s} {wset:4s} " + " ".join(
                f"{pm(row[k], row['ci95'][k]):>18s}" for k in keys))
