"""P1's committed hard pairs under every quantizer zero-point convention (evaluation only).

Every combo of ``benchmarks/results/pairs/hard-default/`` (arch × weight setting × seed: the
standard network, the detrimental and the robust pair, and the three fresh attackers) is
evaluated exactly as ``benchmarks/ptq_pairs_hard.py`` evaluates it (:func:`agents.pairs.
matrix.network_matrix`: own policy, fresh attacker, best static plan searched on validation
with the same budget, uniform 4 / 5, random under budget, calibrated static PTQ), but with
the activation grid of convention ``zero_point`` (``integer``: the suite's default and the
one the pairs were trained under; ``float``: each example's exact min..max; ``symmetric``).
The policies are the committed ones; no network or policy is retrained. Pairs *trained*
under the float and symmetric conventions are a separate, longer experiment.

    python benchmarks/ptq_conventions.py                        # every combo, float + symmetric
    python benchmarks/ptq_conventions.py --combos cnn-a-s0 --conventions float
    python benchmarks/ptq_conventions.py --quick     # policy rows and uniform 4 only

Each (combo, convention) is written to ``benchmarks/results/ptq_conventions/<combo>-<zp>.json``
as it finishes (atomically; a killed run resumes where it stopped); the summary, with the
integer rows read from the combos' committed ``matrix.json``, goes to
``benchmarks/results/ptq_conventions.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.parts.ptq_hard_extras import HARD_PAIRS as PAIRS  # noqa: E402
from benchmarks.parts.ptq_hard_extras import committed_combos, merge_extras  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.stats import mean_ci, pm  # noqa: E402

OUT = ROOT / "benchmarks/results/ptq_conventions"
KINDS = ("detrimental", "robust", "attack-standard", "attack-detrimental", "attack-robust")
STATIC = {"evals": 300, "limit": 500}  # as in ptq_pairs_hard (settings.static_search)
KEYS = ("det_pair_drop", "det_pair_fp_gap", "standard_attacked_drop", "robust_attacked_drop",
        "det_pair_attacked_drop", "standard_best_static_drop", "det_pair_best_static_drop",
        "standard_uniform4_drop", "det_pair_uniform4_drop")


def quick_matrix(net: Any, data: Any, attack_env: dict[str, Any], own: Any, attacker: Any
                 ) -> dict[str, Any]:
    """The policy rows and uniform 4 only (no static search, no static PTQ)."""
    from agents.pairs.matrix import policy_row
    from envs.ptq.rollout import env_parts
    from envs.ptq.static_plans import evaluate_static

    _, res = env_parts(attack_env, net, data)
    rows = {"uniform4": evaluate_static(res, [4] * res.qnet.n_layers, "test")}
    for name, pair in (("own_policy", own), ("fresh_attacker", attacker)):
        if pair is not None:
            rows[name] = policy_row(pair, net, data, "test")
    return rows


def convention_matrix(combo: str, zero_point: str, seed: int, quick: bool = False
                      ) -> dict[str, Any]:
    """The three networks of ``combo`` × every attack, under ``zero_point`` (``quick``: the
    policy rows and uniform 4 only)."""
    from agents.pairs.artifact import load_pair
    from agents.pairs.matrix import network_matrix
    from models.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    pairs = {k: load_pair(PAIRS / combo / k, data=data) for k in KINDS}
    pairs = {k: dataclasses.replace(p, env_kwargs={**p.env_kwargs, "zero_point": zero_point})
             for k, p in pairs.items()}
    nets = {"standard": pairs["attack-standard"].net, "detrimental": pairs["detrimental"].net,
            "robust": pairs["robust"].net}
    attack_env = pairs["attack-standard"].env_kwargs
    if quick:
        return {name: quick_matrix(net, data, attack_env, pairs.get(name),
                                   pairs[f"attack-{name}"]) for name, net in nets.items()}
    return {name: network_matrix(net, data, attack_env, own=pairs.get(name),
                                 attacker=pairs[f"attack-{name}"], seed=seed,
                                 static_evals=STATIC["evals"], static_limit=STATIC["limit"])
            for name, net in nets.items()}


def headline(m: dict[str, Any]) -> dict[str, float]:
    """The P1 summary keys of one combo's matrix (points)."""
    d, s, r = m["detrimental"], m["standard"], m["robust"]
    out = {"det_pair_drop": d["own_policy"]["drop"],
           "det_pair_fp_gap": d["own_policy"]["fp_acc"] - s["fresh_attacker"]["fp_acc"],
           "standard_attacked_drop": s["fresh_attacker"]["drop"],
           "robust_attacked_drop": r["fresh_attacker"]["drop"],
           "det_pair_attacked_drop": d["fresh_attacker"]["drop"],
           "standard_uniform4_drop": s["uniform4"]["drop"],
           "det_pair_uniform4_drop": d["uniform4"]["drop"]}
    if "best_static" in s:
        out |= {"standard_best_static_drop": s["best_static"]["drop"],
                "det_pair_best_static_drop": d["best_static"]["drop"]}
    return out


def run(combos: list[str], conventions: list[str], quick: bool) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for zp in conventions:
        for combo in combos:
            path = OUT / f"{combo}-{zp}.json"
            if path.exists() and (quick or not json.loads(path.read_text())["quick"]):
                continue
            t0 = time.perf_counter()
            seed = int(combo.rsplit("-s", 1)[1])
            m = convention_matrix(combo, zp, seed, quick)
            atomic_write_json({"combo": combo, "zero_point": zp, "quick": quick, "matrix": m,
                               "headline": headline(m), "static": None if quick else STATIC,
                               "seconds": time.perf_counter() - t0, **provenance(seed)}, path)
            print(f"{combo} {zp}: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                headline(m).items()), flush=True)


def collect(combos: list[str], conventions: list[str]) -> dict[str, dict[str, dict]]:
    """``rows[zp][combo]``: headline keys; integer from the committed ``matrix.json``."""
    rows: dict[str, dict[str, dict]] = {"integer": {}}
    for combo in combos:
        f = PAIRS / combo / "matrix.json"
        if f.exists():
            rows["integer"][combo] = headline(json.loads(f.read_text())["matrix"])
    for zp in conventions:
        rows[zp] = {c: json.loads((OUT / f"{c}-{zp}.json").read_text())["headline"]
                    for c in combos if (OUT / f"{c}-{zp}.json").exists()}
    return rows


def summarise(rows: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """``summary[zp][arch][w]``: mean, 95% CI and per-seed values of each key, and whether a
    ≥ 40-point detrimental pair with FP within 1 point exists under that convention."""
    out: dict[str, Any] = {}
    for zp, by_combo in rows.items():
        groups: dict[tuple[str, str], list[tuple[str, dict]]] = {}
        for combo, h in sorted(by_combo.items()):
            arch, w, _ = combo.split("-")
            groups.setdefault((arch, w), []).append((combo, h))
        for (arch, w), items in groups.items():
            cell = {"n_seeds": len(items), "seeds": [c for c, _ in items]}
            for k in KEYS:
                if any(k not in h for _, h in items):
                    continue
                vals = np.array([h[k] for _, h in items])
                ci = mean_ci(vals)
                cell[k] = ci.mean
                cell.setdefault("ci95", {})[k] = ci.half_width_or_none
                cell.setdefault("per_seed", {})[k] = vals.tolist()
            cell["strong_pair_exists"] = any(h["det_pair_drop"] >= 40 and
                                             abs(h["det_pair_fp_gap"]) <= 1 for _, h in items)
            out.setdefault(zp, {}).setdefault(arch, {})[w] = cell
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--combos", nargs="*", default=committed_combos())
    p.add_argument("--conventions", nargs="*", default=["float", "symmetric"])
    p.add_argument("--collect-only", action="store_true")
    p.add_argument("--quick", action="store_true", help="policy rows and uniform 4 only: no "
                   "static search and no static PTQ (a later full run replaces quick files)")
    args = p.parse_args(argv)
    if not args.collect_only:
        run(args.combos, args.conventions, args.quick)
    rows = collect(committed_combos(), args.conventions)
    record = {"summary": summarise(rows), "rows": rows, "static": STATIC,
              "note": "committed pairs and policies (trained under the integer convention), "
                      "evaluated under each convention; integer rows from matrix.json",
              **provenance(None)}
    atomic_write_json(record, ROOT / "benchmarks/results/ptq_conventions.json")
    merge_extras(ROOT / "benchmarks/results/ptq_pairs_hard.json")
    for zp, by_arch in record["summary"].items():
        for arch, by_w in by_arch.items():
            for w, c in by_w.items():
                print(f"{zp:9s} {arch:7s} {w:4s} n={c['n_seeds']} det_pair_drop "
                      f"{pm(c['det_pair_drop'], c['ci95']['det_pair_drop'])}, standard "
                      f"attacked {c['standard_attacked_drop']:.2f}, robust attacked "
                      f"{c['robust_attacked_drop']:.2f}, strong pair: {c['strong_pair_exists']}")
    return record


if __name__ == "__main__":
    main()
