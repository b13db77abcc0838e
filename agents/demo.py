"""``make demo``: the suite's main job on the default data, in a few minutes on 2 cores.

1. builds (or loads from the cache) the default Fashion-MNIST network;
2. trains PPO on ``deploygym/DynamicPTQ-v0`` to find *detrimental* per-input bit-widths
   (mean ≥ 4 bits) with the batched vector env;
3. evaluates the learned policy on the whole test split next to the baselines (uniform
   bits, random under the budget, greedy sensitivity) with the vulnerability analysis, and
   prints the headline table and the ``tensorboard --logdir`` command.

    python -m agents.demo [-n 20000] [--episodes 100] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents import evaluate, train

ENV = "deploygym/DynamicPTQ-v0"


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(prog="python -m agents.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--n-timesteps", type=int, default=20_000)
    p.add_argument("--episodes", type=int, default=100, help="rendered/logged test episodes")
    p.add_argument("--greedy-limit", type=int, default=1000,
                   help="test inputs for the (costly) greedy baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--log-folder", default="runs/demo")
    p.add_argument("--device", default="cpu")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY:VALUE",
                   help="other env options, e.g. dataset:digits width:4 (default network if none)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()

    env_kwargs = [f"device:{args.device}", *(args.env_kwargs or [])]
    folder = train.main(["--env", ENV, "-n", str(args.n_timesteps), "--seed", str(args.seed),
                         "-f", args.log_folder, "--eval-freq", "0", "--save-freq", "5000",
                         "--device", args.device, "--env-kwargs", *env_kwargs])
    t_train = time.perf_counter() - t0
    record = evaluate.main(["--env", ENV, "--agent", str(folder / "model.zip"), "--episodes",
                            str(args.episodes), "--render-every", "20", "--device", args.device,
                            "--out", str(Path(args.log_folder) / "eval"), "--no-progress",
                            "--env-kwargs", "split:test", *env_kwargs,
                            "--analysis", "on", "--hook-opts", "split:test", f"greedy_limit:{args.greedy_limit}"])
    analysis = record["analysis"]["ptq_analysis"]
    rows = {"learned PPO policy": analysis["policy"], **analysis["baselines"]}
    net = " ".join(args.env_kwargs or []) or "default Fashion-MNIST CNN"
    print(f"\n== deploygym demo: detrimental dynamic-PTQ policy, network: {net}; whole test "
          f"split, agent seed {args.seed} ==\n")
    print(f"{'policy':22s} {'FP acc %':>9s} {'DPTQ acc %':>11s} {'drop':>7s} {'mean bits':>10s} {'n':>6s}")
    for name, h in rows.items():
        print(f"{name:22s} {h['fp_acc']:9.2f} {h['dptq_acc']:11.2f} {h['drop']:7.2f} "
              f"{h['mean_bits']:10.2f} {h['n']:6d}")
    vul = analysis["vulnerability"]
    print(f"\nmost exposed layers {vul['most_exposed_layers']}, classes {vul['most_exposed_classes']}\n"
          f"time: network (trained on first use) + agent {t_train:.0f} s, total "
          f"{time.perf_counter() - t0:.0f} s\n\ntensorboard --logdir {args.log_folder}")
    return rows


if __name__ == "__main__":
    main()
