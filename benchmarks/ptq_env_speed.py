"""Speed of the batched DynamicPTQ vector env, and the quantization error table.

Measured in one run, on the default network (``get_trained("fashion-mnist", "cnn")``):

* steps/s of :class:`agents.vec.PTQVecEnv` (one batched forward per step) for N episodes;
* steps/s of SB3's ``DummyVecEnv`` over N single :class:`envs.ptq.DynamicPTQEnv`;
* steps/s of a raw batched quantized forward of the same inputs (the floor: one
  ``DynamicQuantizer`` forward of N examples under random plans, nothing else).

A "step" is one decision of one episode, so N episodes stepping once make N steps. Timings
are interleaved (batched, dummy, raw, batched, ...) and the median of the repeats is kept, so
the ratios compare like with like on a shared machine. The FP cache of the split is warmed
first (its one-off fill time is reported separately).

Then accuracy of the same network under uniform bits (2..8, FP) over the whole test split.

    python benchmarks/ptq_env_speed.py                   # default network
    python benchmarks/ptq_env_speed.py --quick           # digits, tiny CNN (seconds)

Writes ``benchmarks/results/ptq_env_speed.json`` (or ``..._quick.json``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from agents.vec import PTQVecEnv  # noqa: E402
from envs.ptq.env import DynamicPTQEnv  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402
from models.quant import FP_BITS, evaluate_plan  # noqa: E402


def _actions(env: PTQVecEnv, steps: int, seed: int) -> list[np.ndarray]:
    space = env.action_space
    space.seed(seed)
    return [np.stack([space.sample() for _ in range(env.num_envs)]) for _ in range(steps)]


def _time_env(env, actions: list[np.ndarray]) -> float:
    env.seed(0)
    env.reset()
    t = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - t


def _time_raw(venv: PTQVecEnv, steps: int, seed: int) -> float:
    core, res = venv.core, venv.res
    rng = np.random.default_rng(seed)
    x = res.split(core.split[0]).images[torch.as_tensor(core.idx)].to(res.device)
    plans = [rng.choice(core.bits, size=(venv.num_envs, core.L)) for _ in range(steps)]
    t = time.perf_counter()
    with torch.no_grad():
        for p in plans:
            res.qnet(x, p)
    return time.perf_counter() - t


def speed(kw: dict, ns: list[int], mode: str, repeats: int) -> list[dict]:
    rows = []
    for n in ns:
        episodes = max(2, 64 // n) if mode == "sequential" else max(8, 512 // n)
        batched = PTQVecEnv(n, action_mode=mode, **kw)
        dummy = DummyVecEnv([lambda: DynamicPTQEnv(action_mode=mode, **kw) for _ in range(n)])
        steps = episodes * (batched.core.L if mode == "sequential" else 1)
        acts = _actions(batched, steps, seed=n)
        times: dict[str, list[float]] = {"batched": [], "dummy": [], "raw": []}
        _time_env(batched, acts[:2])  # warm-up
        for r in range(repeats):
            times["batched"].append(_time_env(batched, acts))
            times["dummy"].append(_time_env(dummy, acts))
            times["raw"].append(_time_raw(batched, steps, seed=r))
        med = {k: statistics.median(v) for k, v in times.items()}
        sps = {k: n * steps / v for k, v in med.items()}
        rows.append({"mode": mode, "fused_quant": kw.get("fused_quant", False), "n_envs": n, "steps_timed": n * steps, "repeats": repeats,
                     "batched_steps_per_s": sps["batched"], "dummy_steps_per_s": sps["dummy"],
                     "raw_forward_steps_per_s": sps["raw"],
                     "batched_over_raw_time": med["batched"] / med["raw"],
                     "speedup_vs_dummy": med["dummy"] / med["batched"]})
        r = rows[-1]
        print(f"  {mode:10s} {'fused' if kw.get('fused_quant') else 'eager'} N={n:<4d} batched {r['batched_steps_per_s']:9.0f}/s  dummy "
              f"{r['dummy_steps_per_s']:8.0f}/s  raw {r['raw_forward_steps_per_s']:9.0f}/s  "
              f"batched/raw {r['batched_over_raw_time']:.2f}×  vs dummy "
              f"{r['speedup_vs_dummy']:.1f}×", flush=True)
    return rows


def error_table(kw: dict, per_channel: bool) -> list[dict]:
    env = DynamicPTQEnv(per_channel=per_channel, **kw)
    test = env.res.data.test
    rows = []
    for bits in (*range(2, 9), FP_BITS):
        m = evaluate_plan(env.res.qnet, test.images, test.labels, bits, batch_size=500)
        rows.append({"bits": "FP" if bits == FP_BITS else bits, "per_channel": per_channel, **m})
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--ns", type=int, nargs="+", default=[1, 16, 256])
    p.add_argument("--modes", nargs="+", default=["sequential", "joint"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fused", choices=("eager", "fused", "both"), default="both",
                   help="quantization arithmetic: eager PyTorch ops and/or torch.compile-fused")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="digits, width-4 CNN, fewer repeats")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    kw = {"dataset": args.dataset, "arch": args.arch, "device": args.device, "split": "test"}
    if args.quick:
        kw.update(dataset="digits", width=4, epochs=8)
        args.repeats = min(args.repeats, 2)
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"ptq_env_speed{'_quick' if args.quick else ''}.json")

    env = DynamicPTQEnv(**kw)  # trains or loads the network
    t = time.perf_counter()
    cache = env.res.cache("test")
    cache.get(np.arange(len(env.res.data.test)))
    fill = time.perf_counter() - t
    print(f"network {kw['dataset']}/{args.arch}: {env.n_layers} quantizable layers, "
          f"test_acc {env.res.net.meta.get('test_acc', float('nan')):.4f}; "
          f"FP cache of {len(env.res.data.test)} test images filled in {fill:.2f} s")
    print("speed (steps/s; one step = one decision of one episode):")
    variants = {"eager": [False], "fused": [True], "both": [False, True]}[args.fused]
    rows = [r for fused in variants for mode in args.modes
            for r in speed({**kw, "fused_quant": fused}, args.ns, mode, args.repeats)]
    print("bits → test accuracy under uniform activation bits (per-tensor, per-example ranges):")
    table = error_table(kw, False) + error_table(kw, True)
    for r in table:
        print(f"  bits {r['bits']!s:>2}  per_channel={r['per_channel']!s:5}  "
              f"FP {r['fp_acc']:.4f}  Q {r['q_acc']:.4f}  drop {100 * r['drop']:6.2f} pts  "
              f"KL {r['kl']:.4f}")
    result = {**provenance(seed=0), "load_average": os.getloadavg(),
              "network": {"dataset": kw["dataset"], "arch": args.arch,
                          "config": env.res.net.meta.get("config"),
                          "test_acc": env.res.net.meta.get("test_acc"),
                          "n_layers": env.n_layers},
              "targets": {"batched_over_raw_time_max": 1.3, "speedup_vs_dummy_min_at_256": 20},
              "fp_cache_fill_s": fill, "speed": rows, "uniform_bits_accuracy": table}
    atomic_write_json(result, out)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
