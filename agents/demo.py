"""``make demo``: P1's hard-protocol result from the committed pairs, in a few minutes on 2 cores.

It loads the published network–policy pairs of ``benchmarks/results/pairs/`` (made by
``python benchmarks/ptq_pairs.py --protocol hard``; nothing is trained here) and shows, on
the whole Fashion-MNIST test split and the same inputs for every row, with bits 4..8 on every
layer and mean bits ≥ 5:

* the **standard network** under a fresh detrimental policy, uniform 4-bit activations and
  the best static plan the benchmark's search found: dynamic PTQ with a 4-bit floor barely
  hurts it;
* the **detrimental pair** (the same architecture, trained together with its policy) under
  its own policy, a fresh attacker, uniform 4 and its best static plan: FP accuracy kept,
  quantized accuracy collapsed.

Then ``agents.evaluate --pair`` on the detrimental pair (episodes, frames, histograms,
hparams and the vulnerability analysis in TensorBoard; it also checks that the committed
test row is reproduced exactly), and the ``tensorboard --logdir`` command.

    python -m agents.demo [--pairs benchmarks/results/pairs/hard-default/cnn-a-s0] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from agents import evaluate
from agents.pairs.artifact import load_pair
from agents.pairs.matrix import policy_row
from envs.ptq.budget import Budget
from envs.ptq.rollout import env_parts
from envs.ptq.static_plans import best_static_plan, evaluate_static
from models.cli import run_cli
from models.device import resolve_device
from models.readers import read_json

DEFAULT_PAIRS = "benchmarks/results/pairs/hard-default/cnn-a-s0"


def _static_plans(folder: Path, pairs: dict[str, Any]) -> dict[str, list[int]]:
    """The best static plans of the benchmark (``matrix.json``), or a small search now."""
    path = folder / "matrix.json"
    if path.exists():
        m = read_json(path, "re-run benchmarks/ptq_pairs_hard.py (or delete it)",
                      keys=("matrix",), kind="pair matrix")["matrix"]
        return {k: m[k]["best_static"]["plan"] for k in ("standard", "detrimental")}
    out = {}
    for name, net in (("standard", pairs["attack-standard"].net),
                      ("detrimental", pairs["detrimental"].net)):
        cfg, res = env_parts(pairs["attack-standard"].env_kwargs, net, pairs["detrimental"].data)
        out[name] = best_static_plan(res, Budget(cfg, res.qnet.layer_macs()), limit=300,
                                     max_evals=60).plan
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(prog="python -m agents.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default=DEFAULT_PAIRS,
                   help="a published combo folder (detrimental/, attack-standard/, ...)")
    p.add_argument("--episodes", type=int, default=100, help="rendered/logged test episodes")
    p.add_argument("--greedy-limit", type=int, default=1000,
                   help="test inputs for the (costly) greedy baseline of the analysis")
    p.add_argument("-f", "--log-folder", default="runs/demo")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N or auto (CUDA when present); CUDA without CUDA is an "
                        "error")
    args = p.parse_args(argv)
    args.device = resolve_device(args.device)
    t0 = time.perf_counter()
    folder = Path(args.pairs)
    needed = ("detrimental", "attack-standard")
    if not all((folder / k / "pair.json").exists() for k in needed):
        raise FileNotFoundError(
            f"{folder} lacks the published pairs {needed}; they are committed under "
            f"{DEFAULT_PAIRS} (check out the repository whole), or make them with "
            f"python benchmarks/ptq_pairs.py --protocol hard --archs cnn --seeds 0 --weights a")
    pairs = {k: load_pair(folder / k, args.device)
             for k in ("detrimental", "attack-standard", "attack-detrimental")
             if (folder / k / "pair.json").exists()}
    plans = _static_plans(folder, pairs)
    data = pairs["detrimental"].data
    rows: dict[str, dict[str, Any]] = {}
    for name, net in (("standard", pairs["attack-standard"].net),
                      ("detrimental pair", pairs["detrimental"].net)):
        key = "standard" if name == "standard" else "detrimental"
        _, res = env_parts(pairs["attack-standard"].env_kwargs, net, data)
        if key == "detrimental":
            rows[f"{name}: own policy"] = policy_row(pairs["detrimental"], net, data)
        attacker = pairs.get(f"attack-{key}")
        if attacker is not None:
            rows[f"{name}: fresh attacker"] = policy_row(attacker, net, data)
        rows[f"{name}: uniform 4"] = evaluate_static(res, [4] * res.qnet.n_layers)
        rows[f"{name}: best static plan"] = evaluate_static(res, plans[key])
    record = evaluate.main(["--pair", str(folder / "detrimental"), "--episodes",
                            str(args.episodes), "--render-every", "20", "--device", args.device,
                            "--out", str(Path(args.log_folder) / "eval"), "--no-progress",
                            "--env-kwargs", "split:test", "--hook-opts", "split:test",
                            f"greedy_limit:{args.greedy_limit}"])
    rep = record["analysis"].get("pair_reproduction", {})
    cfg = pairs["detrimental"].config
    print(f"\n== deploygym demo: P1 on hard ground — {cfg['arch']} on {cfg['dataset']}, bits "
          f"{min(cfg['bit_choices'])}..{max(cfg['bit_choices'])} on every layer, detrimental "
          f"budget mean bits ≥ {cfg['budget_bits']:g}, whole test split, seed {cfg['seed']} ==\n")
    print(f"{'network: plan':36s} {'FP acc %':>9s} {'DPTQ acc %':>11s} {'drop':>7s} "
          f"{'mean bits':>10s} {'n':>6s}")
    for name, h in rows.items():
        print(f"{name:36s} {h['fp_acc']:9.2f} {h['dptq_acc']:11.2f} {h['drop']:7.2f} "
              f"{h['mean_bits']:10.2f} {h['n']:6d}")
    vul = record["analysis"]["ptq_analysis"]["vulnerability"]
    print(f"\ncommitted test row of the detrimental pair "
          f"{'reproduced exactly' if rep.get('exact') else 'NOT reproduced: ' + str(rep.get('differs'))}"
          f"\nmost exposed layers {vul['most_exposed_layers']}, classes "
          f"{vul['most_exposed_classes']}\ntime {time.perf_counter() - t0:.0f} s"
          f"\n\ntensorboard --logdir {args.log_folder}")
    return rows


if __name__ == "__main__":
    run_cli(main, prog="python -m agents.demo")
