"""``make demo``: the suite's main job on the default data, in a few minutes on 2 cores.

1. builds (or loads from the cache) the default Fashion-MNIST network;
2. trains PPO on ``deploygym/DynamicPTQ-v0`` to find *detrimental* per-input bit-widths
   (mean ≥ 4 bits) with the batched vector env;
3. evaluates the learned policy on test inputs next to the uniform 4-bit plan, and prints the
   headline numbers and the ``tensorboard --logdir`` command.

    python -m agents.demo [-n 20000] [--episodes 1000] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents import evaluate, train
from models.zoo import get_trained

ENV = "deploygym/DynamicPTQ-v0"


def _mean(summary: dict, key: str) -> float:
    return float(summary[key]["mean"]) if key in summary else float("nan")


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(prog="python -m agents.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--n-timesteps", type=int, default=20_000)
    p.add_argument("--episodes", type=int, default=1000, help="test inputs to evaluate on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--log-folder", default="runs/demo")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    t0 = time.perf_counter()

    net = get_trained("fashion-mnist", "cnn", device=args.device)
    t_net = time.perf_counter() - t0
    folder = train.main(["--env", ENV, "-n", str(args.n_timesteps), "--seed", str(args.seed),
                         "-f", args.log_folder, "--eval-freq", "0", "--save-freq", "5000",
                         "--device", args.device, "--env-kwargs", f"device:{args.device}"])
    t_agent = time.perf_counter() - t0 - t_net
    out = Path(args.log_folder) / "eval"
    common = ["--env", ENV, "--episodes", str(args.episodes), "--render-every", "100",
              "--device", args.device, "--no-progress"]
    learned = evaluate.main([*common, "--agent", str(folder / "model.zip"), "--out",
                             str(out / "learned"), "--env-kwargs", "split:test",
                             f"device:{args.device}"])["summary"]
    uniform = evaluate.main([*common, "--random", "--out", str(out / "uniform4"), "--env-kwargs",
                             "split:test", "bit_choices:[4,5]", "budget_bits:4",
                             f"device:{args.device}"])["summary"]

    fp, q = _mean(learned, "fp_correct"), _mean(learned, "q_correct")
    headline = {"fp_acc": fp, "dptq_acc_learned": q, "drop_points": 100 * (fp - q),
                "mean_bits_learned": _mean(learned, "mean_bits"),
                "dptq_acc_random_4_5_bits": _mean(uniform, "q_correct"),
                "mean_bits_random_4_5": _mean(uniform, "mean_bits")}
    print(f"\n== deploygym demo: detrimental dynamic-PTQ policy on the default Fashion-MNIST "
          f"CNN ({args.episodes} test inputs, seed {args.seed}) ==\n"
          f"network test accuracy (cache)       {100 * net.meta['test_acc']:6.2f}%\n"
          f"FP accuracy on these inputs         {100 * fp:6.2f}%\n"
          f"DPTQ accuracy, learned policy       {100 * q:6.2f}%  "
          f"(drop {headline['drop_points']:.2f} points, mean bits "
          f"{headline['mean_bits_learned']:.2f})\n"
          f"DPTQ accuracy, random 4–5 bit plans {100 * headline['dptq_acc_random_4_5_bits']:6.2f}%"
          f"  (mean bits {headline['mean_bits_random_4_5']:.2f})\n"
          f"time: network {t_net:.0f} s, agent {t_agent:.0f} s, "
          f"total {time.perf_counter() - t0:.0f} s\n\n"
          f"tensorboard --logdir {args.log_folder}")
    return headline


if __name__ == "__main__":
    main()
