"""P1's per-input headroom: what choosing a plan per input could add over one static plan.

For every committed hard combo (``benchmarks/results/pairs/hard-default/<arch>-<w>-s<seed>``)
and each of its networks (the standard one, the detrimental pair's, the robust pair's) this
scores a stated candidate set of plans under the detrimental attack budget on every
validation and test example (:mod:`envs.ptq.oracle`): ``candidate_plans`` draws them from the
budget alone (seeded), the best static plan is chosen on validation, and the test split is
read once for the static drop and the oracle's drop (an input fails when any candidate makes
it wrong). ``oracle_gain`` = oracle drop − best static drop. Two per-input attackers learned
on the same validation outcomes show how much of that headroom an observation carries
(:func:`envs.ptq.oracle.learned_selector`: a logistic regression per candidate predicting
failure, each test input given its most likely plan): ``selector_stats`` sees the ``stats``
observation, ``selector_probe`` the ``probe`` one, ``selector_query`` the ``query`` one on the
``3L`` plans of the validation cover below; ``selector_*_gain`` = its drop − the best
static drop. ``query_<k>`` is an attacker that runs ``k`` candidate plans per input (chosen
greedily on validation) and keeps one that fails it (:func:`envs.ptq.oracle.query_attack`);
``query_L_gain`` uses as many forwards per input as the probe (``L``). The robust pair also
gets the
robust-side question under its own budget (``robust_side``): accuracy and bits the cheapest
correct candidate per input wins over the most accurate static candidate.

    python benchmarks/ptq/ptq_oracle.py                             # every combo, all networks
    python benchmarks/ptq/ptq_oracle.py --combos cnn-a-s0 --networks standard --plans 300

Each (combo, network) goes to ``benchmarks/results/ptq_oracle/<combo>-<network>.json`` as it
finishes (atomic; a killed run resumes); the summary ``summary[arch][w][network]`` goes to
``benchmarks/results/ptq_oracle.json`` and is merged into ``ptq_pairs_hard.json``
(``oracle_gain``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.parts.ptq_hard_extras import HARD_PAIRS as PAIRS  # noqa: E402
from benchmarks.parts.ptq_hard_extras import committed_combos, merge_extras  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.stats import mean_ci  # noqa: E402

RESULTS = ROOT / "benchmarks/results"
OUT = RESULTS / "ptq_oracle"
CACHE = ROOT / "runs/ptq_oracle"
# the committed folder holding each network of a combo
FOLDERS = {"standard": "attack-standard", "detrimental": "detrimental", "robust": "robust"}
NETWORKS = ("standard", "detrimental", "robust", "robust_side")
N_PLANS = 300  # candidate plans per network
DETRIMENTAL_KEYS = ("oracle_gain", "static_drop", "oracle_drop", "selector_stats_gain",
                    "selector_probe_gain", "selector_query_gain", "query_L_gain")
KEYS = {"standard": DETRIMENTAL_KEYS, "detrimental": DETRIMENTAL_KEYS, "robust": DETRIMENTAL_KEYS,
        "robust_side": ("oracle_acc_gain", "oracle_bits_saved", "static_acc", "oracle_acc",
                        "static_cost_bits", "oracle_cost_bits")}


def observations(env_kwargs: dict[str, Any], net: Any, data: Any, split: str, n: int,
                 **option: Any) -> np.ndarray:
    """The ``probe`` observations ``[n, 3L + 2 + 3L]`` (or those of ``option``, e.g.
    ``observation="query", query_plans=...``) of the first ``n`` examples of ``split`` (the
    first ``3L + 2`` columns are the ``stats`` observation)."""
    from envs.ptq.core import PTQCore
    from envs.ptq.rollout import env_parts

    cfg, res = env_parts({**env_kwargs, "observation": "probe", **option}, net, data)
    core = PTQCore(cfg, res, n)
    ids = np.arange(n)
    obs, _ = core.reset(ids, [np.random.default_rng(0)] * n,
                        [{"split": split, "index": int(i)} for i in ids])
    return obs


def outcomes(res: Any, plans: np.ndarray, key: str, val_limit: int | None
             ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Validation and test outcomes of ``plans`` (cached in ``runs/ptq_oracle/<key>.npz``)."""
    from envs.ptq.oracle import plan_outcomes

    cache = CACHE / f"{key}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if np.array_equal(z["plans"], plans) and int(z["val_limit"]) == (val_limit or -1):
            return (z["q_val"], z["fp_val"]), (z["q_test"], z["fp_test"])
    val, test = plan_outcomes(res, plans, "val", val_limit), plan_outcomes(res, plans, "test")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, plans=plans, val_limit=val_limit or -1, q_val=val[0], fp_val=val[1], q_test=test[0],
                        fp_test=test[1])
    tmp.replace(cache)
    return val, test


def candidates(combo: str, network: str, n_plans: int) -> tuple[Any, ...]:
    """``network`` of ``combo`` (``"standard"``, ``"detrimental"``, ``"robust"``) under the
    committed attack's env options: ``(attack_env, net, data, res, plans)`` with the
    ``n_plans`` candidate plans the oracle picks from."""
    from agents.pairs.artifact import load_pair
    from envs.ptq.budget import Budget
    from envs.ptq.oracle import candidate_plans
    from envs.ptq.rollout import env_parts
    from models.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    net = load_pair(PAIRS / combo / FOLDERS[network], data=data).net
    attack_env = load_pair(PAIRS / combo / "attack-standard", data=data).env_kwargs
    cfg, res = env_parts(attack_env, net, data)
    plans = candidate_plans(Budget(cfg, res.qnet.layer_macs()), res.qnet.n_layers, n_plans,
                            int(combo.rsplit("-s", 1)[1]))
    return attack_env, net, data, res, plans


def scored_candidates(combo: str, network: str, n_plans: int, val_limit: int | None
                      ) -> tuple[Any, ...]:
    """:func:`candidates` and their validation and test outcomes:
    ``(attack_env, net, data, res, plans, val, test)``."""
    attack_env, net, data, res, plans = candidates(combo, network, n_plans)
    val, test = outcomes(res, plans, f"{combo}-{network}", val_limit)
    return attack_env, net, data, res, plans, val, test


def cover_plans(combo: str, network: str, k: int, n_plans: int = N_PLANS,
                val_limit: int | None = 2000) -> np.ndarray:
    """The ``k`` candidate plans ``[k', L]`` (``k' ≤ k``) that fail the most validation inputs
    of ``network`` of ``combo`` together (:func:`envs.ptq.oracle.query_attack`'s greedy
    cover, on the same candidates and validation outcomes as :func:`run_one`)."""
    from envs.ptq.oracle import query_attack

    *_, plans, val, test = scored_candidates(combo, network, n_plans, val_limit)
    return plans[query_attack(val, test, k)["plans"]]


def run_one(combo: str, network: str, n_plans: int, val_limit: int | None) -> dict[str, Any]:
    """The headroom of one network of ``combo`` (see the module docstring)."""
    from agents.pairs.artifact import load_pair
    from envs.ptq.budget import Budget
    from envs.ptq.oracle import (
        learned_selector,
        oracle_from,
        query_attack,
        robust_candidates,
        robust_oracle,
    )
    from envs.ptq.rollout import env_parts
    from models.datasets import load_dataset

    if network == "robust_side":
        seed, data = int(combo.rsplit("-s", 1)[1]), load_dataset("fashion-mnist")
        pair = load_pair(PAIRS / combo / "robust", data=data)
        cfg, res = env_parts(pair.env_kwargs, pair.net, data)
        budget = Budget(cfg, res.qnet.layer_macs())
        plans = robust_candidates(budget, res.qnet.n_layers, n_plans, seed)
        return robust_oracle(res, plans, budget, val_limit=val_limit)
    attack_env, net, data, res, plans, val, test = scored_candidates(combo, network, n_plans,
                                                                     val_limit)
    out = oracle_from(plans, val, test)
    for k in sorted({3, res.qnet.n_layers, 3 * res.qnet.n_layers}):
        q = query_attack(val, test, k)
        out[f"query_{k}"] = {**q, "dynamic_gain": q["drop"] - out["static_drop"]}
    out["query_L_gain"] = out[f"query_{res.qnet.n_layers}"]["dynamic_gain"]
    x_val = observations(attack_env, net, data, "val", val[0].shape[1])
    x_test = observations(attack_env, net, data, "test", test[0].shape[1])
    n_stats = 3 * res.qnet.n_layers + 2
    # the query observation on the 3L-plan validation cover (what query_cover3_rule sees)
    cover = {"observation": "query",
             "query_plans": plans[out[f"query_{3 * res.qnet.n_layers}"]["plans"]].tolist()}
    xq_val = observations(attack_env, net, data, "val", val[0].shape[1], **cover)
    xq_test = observations(attack_env, net, data, "test", test[0].shape[1], **cover)
    for name, xv, xt in (("stats", x_val[:, :n_stats], x_test[:, :n_stats]),
                         ("probe", x_val, x_test), ("query", xq_val, xq_test)):
        sel = learned_selector(val, test, xv, xt)
        out[f"selector_{name}"] = sel
        out[f"selector_{name}_gain"] = sel["drop"] - out["static_drop"]
    return out


def summarise(combos: list[str], networks: list[str]) -> dict[str, Any]:
    """``summary[arch][w][network]``: mean, 95% CI and per-seed values of the headline keys."""
    out: dict[str, Any] = {}
    for network in networks:
        groups: dict[tuple[str, str], list[tuple[str, dict]]] = {}
        for combo in combos:
            f = OUT / f"{combo}-{network}.json"
            if f.exists():
                arch, w, _ = combo.split("-")
                groups.setdefault((arch, w), []).append((combo, json.loads(f.read_text())))
        for (arch, w), items in groups.items():
            cell: dict[str, Any] = {"seeds": [c for c, _ in items],
                                    "n_plans": items[0][1]["result"]["n_plans"]}
            for k in KEYS[network]:
                vals = np.array([r["result"][k] for _, r in items])
                ci = mean_ci(vals)
                cell[k] = ci.mean
                cell.setdefault("ci95", {})[k] = ci.half_width_or_none
                cell.setdefault("per_seed", {})[k] = vals.tolist()
            out.setdefault(arch, {}).setdefault(w, {})[network] = cell
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--combos", nargs="*", default=committed_combos())
    p.add_argument("--networks", nargs="*", choices=NETWORKS, default=list(NETWORKS))
    p.add_argument("--plans", type=int, default=N_PLANS, help="candidate plans per network")
    p.add_argument("--val-limit", type=int, default=2000,
                   help="validation examples that choose the best static plan")
    p.add_argument("--collect-only", action="store_true")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for network in args.networks if not args.collect_only else []:
        for combo in args.combos:
            path = OUT / f"{combo}-{network}.json"
            if path.exists() and (network == "robust_side" or "selector_query_gain" in
                                  json.loads(path.read_text())["result"]):
                continue  # (older files are brought up to date from the cached outcomes)
            t0 = time.perf_counter()
            r = run_one(combo, network, args.plans, args.val_limit)
            atomic_write_json({"combo": combo, "network": network, "result": r,
                               "plans": args.plans, "val_limit": args.val_limit,
                               "seconds": time.perf_counter() - t0,
                               **provenance(int(combo.rsplit("-s", 1)[1]))}, path)
            print(f"{combo} {network}: " + ", ".join(
                f"{k} {r[k]:.2f}" for k in KEYS[network]), flush=True)
    record = {"summary": summarise(committed_combos(), list(NETWORKS)),
              "protocol": {"plans": args.plans, "val_limit": args.val_limit, "test": "whole split",
                           "candidates": "envs.ptq.oracle.candidate_plans / robust_candidates "
                                         "(from the budget alone, seed = combo seed)"},
              **provenance(None)}
    atomic_write_json(record, RESULTS / "ptq_oracle.json")
    if (RESULTS / "ptq_observations.json").exists():  # its gain shares divide by oracle_gain
        from benchmarks.ptq.ptq_observations import main as observations_main
        observations_main(["--collect-only"])  # (merges into ptq_pairs_hard.json)
    else:
        merge_extras(RESULTS / "ptq_pairs_hard.json")
    return record


if __name__ == "__main__":
    main()
