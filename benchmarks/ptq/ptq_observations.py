"""Per-input attackers that can see the input: DynamicPTQ's observation options on P1's pairs.

For every committed hard combo (``benchmarks/results/pairs/hard-default/<combo>``) and each of
its three networks (standard, detrimental pair's, robust pair's), a fresh detrimental attacker
is trained with each observation option under the hard protocol's attack (same budget, bit
choices and PPO budget as the committed ``stats`` attackers: ``ptq_pairs.py`` default scale):

* ``stats`` — the committed attacker (FP statistics only; not retrained);
* ``probe`` — plus how this input reacts to each layer alone at 4 bits;
* ``image`` — plus the normalised input, read by :class:`agents.pairs.extractors.InputCNN`;
* ``query`` — plus how this input reacts to ``L`` whole plans within the budget;
* ``query_rule`` — no learning: each input gets the query plan that breaks it, if any
  (:class:`envs.ptq.baselines.QueryArgmaxAgent`);
* ``query_cover`` / ``query_cover_rule`` — the same two with the ``L`` query plans chosen on
  validation instead of drawn from the budget: the greedy cover of the oracle's candidates
  (:func:`benchmarks.ptq.ptq_oracle.cover_plans`, labels of validation inputs only); on test
  the attacker sees no label, only how the input reacts to those plans;
  ``query_cover3_rule``: the rule with a cover of ``3L`` plans (three times the probe's
  forwards); ``query_all_rule``: the rule on all of the oracle's candidate plans (~300
  forwards per input), the most a label-free attacker can see of that candidate set;
* ``query_cover_menu`` / ``query_all_menu`` — PPO attackers that pick one of those query
  plans per input (``action_mode="menu"``: a K-way choice the rule makes by hand) instead
  of a bit-width per layer;
* ``greedy`` — no learning: per input, lower the layers where quantizing alone raises the
  KL most (:class:`envs.ptq.baselines.GreedySensitivityPolicy`), a rule with probe-like
  information at every bit-width.

Each is read once on the whole test split: ``drop``, ``distinct_plans`` and ``dynamic_gain`` =
drop − the committed best static plan's drop (same budget; searched on validation, the
policies' plans competing). ``ptq_oracle.json``'s ``oracle_gain`` is the headroom they are
measured against (``gain_share`` = dynamic_gain / oracle_gain).

    python benchmarks/ptq/ptq_observations.py --combos cnn-a-s0 cnn-a-s1 cnn-a-s2
    python benchmarks/ptq/ptq_observations.py --collect-only

Per run: ``benchmarks/results/ptq_observations/<combo>-<network>-<observation>.json`` (atomic;
resumable); summary ``summary[arch][w][observation][network]`` in ``ptq_observations.json``,
merged into ``ptq_pairs_hard.json`` (``dynamic_gain_by_observation``).
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
from benchmarks.ptq.ptq_oracle import FOLDERS  # noqa: E402
from benchmarks.ptq_pairs import HARD_SCALES  # noqa: E402
from benchmarks.ptq_pairs_hard import pair_argv  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.stats import mean_ci, paired_p  # noqa: E402

RESULTS = ROOT / "benchmarks/results"
OUT = RESULTS / "ptq_observations"
RUNS = ROOT / "runs/pairs/bench/observations"
OBSERVATIONS = ("stats", "probe", "image", "query", "greedy", "query_rule", "query_cover",
                "query_cover_rule", "query_cover3_rule", "query_all_rule", "query_cover_menu",
                "query_all_menu")
QUERY_SETS = {"query_rule": None, "query_cover_rule": 1, "query_cover3_rule": 3,
              "query_all_rule": 0}  # rule -> query plans: budget's L, cover per_layer x L, all
RULES = ("greedy", *QUERY_SETS)  # no learning: one row each
# PPO attackers on validation-chosen query plans -> (cover_file's per_layer, menu action)
QUERY_ATTACKERS = {"query_cover": (1, False), "query_cover_menu": (1, True),
                   "query_all_menu": (0, True)}
CONFIDENT = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)  # query_rule's grid (on validation)
NETWORKS = ("standard", "detrimental", "robust")


def label(observation: str, scale: int) -> str:
    """The row name of an attacker: ``probe``, or ``probe_x25`` with 25× the PPO steps."""
    return observation if scale == 1 else f"{observation}_x{scale}"


def attacker(combo: str, network: str, observation: str, scale: int = 1) -> Path:
    """The folder of the fresh attacker on ``network`` of ``combo`` with ``observation`` and
    ``scale`` × the protocol's PPO steps (trained now unless finished: agents.pairs reuses or
    resumes it)."""
    if observation == "stats" and scale == 1:
        return PAIRS / combo / f"attack-{network}"
    from agents.pairs.trainer import main as pairs_main
    from benchmarks.ptq_pairs_hard import finished_metrics

    arch, w, s = combo.split("-")
    root = RUNS / combo
    argv = pair_argv(f"attack-{network}", arch, w, int(s[1:]), HARD_SCALES["default"], root)
    # the committed networks, the standard one included: the model cache's seed-s network on
    # another machine need not be the one the committed pairs and attackers were made from
    argv[argv.index("--attack") + 1] = str(PAIRS / combo / ("attack-standard"
                                                            if network == "standard" else network))
    folder = root / f"attack-{network}-{label(observation, scale)}"
    argv[argv.index("--out") + 1] = str(folder)
    steps = argv.index("--policy-steps") + 1
    argv[steps] = str(int(argv[steps]) * scale)
    if observation in QUERY_ATTACKERS:
        per_layer, menu = QUERY_ATTACKERS[observation]
        argv += ["--observation", "query", "--query-plans",
                 str(cover_file(combo, network, per_layer)), *(["--menu"] if menu else [])]
    else:
        argv += ["--observation", observation]
    if finished_metrics(argv, folder) is None:
        pairs_main(argv)
    return folder


def cover_file(combo: str, network: str, per_layer: int = 1) -> Path:
    """The validation-chosen query plans (``per_layer`` × L of them) of ``network`` of
    ``combo``, as a JSON file; ``per_layer = 0``: all of the oracle's candidate plans."""
    from benchmarks.ptq.ptq_oracle import N_PLANS, candidates, cover_plans

    name = "all" if per_layer == 0 else f"cover{'' if per_layer == 1 else per_layer}"
    path = RUNS / combo / f"query-{name}-{network}.json"
    if not path.exists():
        plans = (candidates(combo, network, N_PLANS)[-1] if per_layer == 0
                 else cover_plans(combo, network, per_layer * len(_layers(combo))))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(plans.tolist(), path)
    return path


def _layers(combo: str) -> list[str]:
    """The quantized layers of ``combo``'s network (from its committed attacker's plans)."""
    matrix = json.loads((PAIRS / combo / "matrix.json").read_text())["matrix"]
    return list(matrix["standard"]["best_static"]["plan"])


def evaluate(combo: str, network: str, observation: str, scale: int = 1) -> dict[str, Any]:
    """The attack's row on the whole test split, with its dynamic gain."""
    from agents.pairs.artifact import load_pair
    from agents.pairs.matrix import policy_row
    from envs.ptq.baselines import BaselineAgent, GreedySensitivityPolicy, QueryArgmaxAgent
    from envs.ptq.core import PTQCore
    from envs.ptq.rollout import env_parts, headline, split_rollout
    from models.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    net = load_pair(PAIRS / combo / FOLDERS[network], data=data).net
    matrix = json.loads((PAIRS / combo / "matrix.json").read_text())["matrix"][network]
    attack_env = load_pair(PAIRS / combo / "attack-standard", data=data).env_kwargs
    if observation == "greedy":
        cfg, res = env_parts(attack_env, net, data)
        row = headline(split_rollout(cfg, res, None, "test", make_agent=lambda env: BaselineAgent(
            GreedySensitivityPolicy("most"), env)))
    elif observation in QUERY_SETS:
        per_layer = QUERY_SETS[observation]
        cover = ({"query_plans": json.loads(cover_file(combo, network, per_layer).read_text())}
                 if per_layer is not None else {})
        cfg, res = env_parts({**attack_env, "observation": "query", **cover}, net, data)
        plans = PTQCore(cfg, res, 1).extras.plans

        def val_drop(c: float) -> float:
            agent = QueryArgmaxAgent(plans, cfg.bit_choices, c)
            return headline(split_rollout(cfg, res, agent, "val", 2000))["drop"]
        confident = max(CONFIDENT, key=val_drop)  # chosen on validation
        row = {**headline(split_rollout(cfg, res, QueryArgmaxAgent(
            plans, cfg.bit_choices, confident), "test")), "confident": confident,
               "query_forwards": len(plans)}
    else:
        row = policy_row(load_pair(attacker(combo, network, observation, scale), data=data),
                         net, data)
    static = matrix["best_static"]["drop"]
    return {**row, "best_static_drop": static, "dynamic_gain": row["drop"] - static}


def summarise(combos: list[str]) -> dict[str, Any]:
    """``summary[arch][w][observation][network]``: drop, dynamic gain, distinct plans (mean,
    95% CI, per seed), the oracle's gain, and the paired test against ``stats``."""
    oracle = json.loads((RESULTS / "ptq_oracle.json").read_text())["summary"] \
        if (RESULTS / "ptq_oracle.json").exists() else {}
    rows: dict[tuple, dict[str, dict]] = {}
    for combo in combos:
        arch, w, _ = combo.split("-")
        for f in sorted(OUT.glob(f"{combo}-*.json")):
            network, observation = f.stem[len(combo) + 1:].split("-")
            rows.setdefault((arch, w, observation, network), {})[combo] = \
                json.loads(f.read_text())["row"]
    out: dict[str, Any] = {}
    for (arch, w, observation, network), by_combo in sorted(rows.items()):
        cell: dict[str, Any] = {"seeds": sorted(by_combo)}
        for k in ("drop", "dynamic_gain", "distinct_plans"):
            vals = np.array([by_combo[c][k] for c in cell["seeds"]], dtype=float)
            ci = mean_ci(vals)
            cell[k] = ci.mean
            cell.setdefault("ci95", {})[k] = ci.half_width_or_none
            cell.setdefault("per_seed", {})[k] = vals.tolist()
        scale = observation.rpartition("_x")[2] if "_x" in observation else ""
        base = rows.get((arch, w, f"stats_x{scale}" if scale else "stats", network), {})
        common = [c for c in cell["seeds"] if c in base]
        if not observation.startswith("stats") and len(common) > 1:
            cell["p_gain_vs_stats"] = paired_p([by_combo[c]["dynamic_gain"] for c in common],
                                               [base[c]["dynamic_gain"] for c in common],
                                               "greater")
        og = oracle.get(arch, {}).get(w, {}).get(network, {}).get("oracle_gain")
        if og:
            cell["oracle_gain"] = og
            cell["gain_share"] = cell["dynamic_gain"] / og
        out.setdefault(arch, {}).setdefault(w, {}).setdefault(observation, {})[network] = cell
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--combos", nargs="*", default=committed_combos())
    p.add_argument("--networks", nargs="*", choices=NETWORKS, default=list(NETWORKS))
    p.add_argument("--observations", nargs="*", choices=OBSERVATIONS, default=list(OBSERVATIONS))
    p.add_argument("--steps-scale", type=int, default=1,
                   help="train the attackers with this many times the protocol's PPO steps "
                        "(stats retrained too; rows named <observation>_x<scale>)")
    p.add_argument("--collect-only", action="store_true")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for combo in args.combos if not args.collect_only else []:
        for network in args.networks:
            for observation in args.observations:
                if observation in RULES and args.steps_scale != 1:
                    continue  # not trained: one row
                name = label(observation, args.steps_scale)
                path = OUT / f"{combo}-{network}-{name}.json"
                if path.exists():
                    continue
                t0 = time.perf_counter()
                row = evaluate(combo, network, observation, args.steps_scale)
                atomic_write_json({"combo": combo, "network": network,
                                   "observation": name, "steps_scale": args.steps_scale,
                                   "row": row,
                                   "seconds": time.perf_counter() - t0,
                                   **provenance(int(combo.rsplit("-s", 1)[1]))}, path)
                print(f"{combo} {network} {name}: drop {row['drop']:.2f}, dynamic gain "
                      f"{row['dynamic_gain']:.2f}, plans {row['distinct_plans']}", flush=True)
    record = {"summary": summarise(committed_combos()),
              "protocol": {"attack": "ptq_pairs.py --protocol hard default scale (rounds x "
                                     "policy_steps PPO steps), --observation <name>",
                           "test": "whole split", "static": "committed matrix.json best_static"},
              **provenance(None)}
    atomic_write_json(record, RESULTS / "ptq_observations.json")
    merge_extras(RESULTS / "ptq_pairs_hard.json")
    return record


if __name__ == "__main__":
    main()
