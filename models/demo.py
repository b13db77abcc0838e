"""``make demo``: build (or load) the default Fashion-MNIST teacher and print its headline numbers.

    python -m models.demo [--device cuda]
"""

from __future__ import annotations

import argparse
import time

from models.zoo import get_trained, model_dir, resolve_config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.demo", description=__doc__)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    net = get_trained(args.dataset, args.arch, device=args.device)
    m = net.meta
    d = model_dir(resolve_config(args.dataset, args.arch))
    print(f"\n== deploygym demo: default {args.dataset} teacher ({args.arch}) ==\n"
          f"test accuracy     {100 * m['test_acc']:.2f}%  (best val {100 * m['best_val_acc']:.2f}%)\n"
          f"parameters        {m['num_parameters']:,}\n"
          f"training time     {m['train_time_s']:.0f} s (this call: {time.perf_counter() - t0:.0f} s)\n"
          f"cached at         {d}\n\n"
          f"tensorboard --logdir {d / 'run'}")


if __name__ == "__main__":
    main()
