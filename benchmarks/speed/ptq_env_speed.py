"""Speed of the DynamicPTQ env against the forward passes it is built on, like for like.

For each action mode and N episodes (default N ∈ {1, 16, 256}) on the default network
(``get_trained("fashion-mnist", "cnn")``), one run times, interleaved, the cost of **one
episode of each of N examples**:

* ``fp`` — the float network's forward of the N examples (the physical floor);
* ``qforward`` — the quantized forward doing the work one episode needs, nothing else:
  joint/continuous: one forward under a random plan; sequential: one forward under a
  random plan with the per-layer input statistics the observations are made of;
* ``env`` — :class:`agents.vec.PTQVecEnv` stepping N episodes to their end (one step in
  joint/continuous mode, one per layer in sequential mode) including the auto-reset that
  starts the next ones, actions drawn beforehand;
* ``dummy`` — SB3's ``DummyVecEnv`` over N single envs, the same actions.

The FP cache of the split is warmed first. Each block of measurements is repeated until the
spread (max − min) / median of every timer is ≤ ``--spread`` or ``--max-repeats`` is
reached; medians are kept. The load average is recorded before and after. Ratios at the
largest N are the summary, each with its target and a pass/fail:

* ``qforward_over_fp`` ≤ 1.3 (moonshot 1.1), in joint mode (a plain quantized forward);
* ``env_over_qforward`` ≤ 1.1 in every mode;
* ``sequential_over_joint`` (env time per episode) ≤ 1.5 (moonshot 1.0);
* ``dummy_over_env``: reported, no target.

``--resnet18`` also times torchvision's ``resnet18`` (stem adapted to the data's channels,
seeded random weights: speed does not depend on them) handed to the env as a plain module
(``net=``, wrapped by :func:`models.nets.as_deploy_net`), joint mode at the largest N, with
the same timers and the same ``qforward_over_fp`` target (summary key ``resnet18``).

Then accuracy of the same network under uniform bits (2..8, FP) over the whole test split.

    python benchmarks/speed/ptq_env_speed.py                   # default network
    python benchmarks/speed/ptq_env_speed.py --quick           # digits, tiny CNN (seconds)
    python benchmarks/speed/ptq_env_speed.py --fused off       # the eager fallback
    python benchmarks/speed/ptq_env_speed.py --ns 256 --modes joint --resnet18 \\
        --no-error-table --out benchmarks/results/ptq_env_speed_resnet18.json

Writes ``benchmarks/results/ptq_env_speed.json`` (or ``..._quick.json``).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from agents.vec import PTQVecEnv  # noqa: E402
from benchmarks.speed.timing import timed  # noqa: E402
from envs.ptq.env import DynamicPTQEnv  # noqa: E402
from models.io import atomic_write_json, command_line, provenance  # noqa: E402
from models.quant import FP_BITS, evaluate_plan  # noqa: E402

TARGETS = {"qforward_over_fp": 1.3, "env_over_qforward": 1.1, "sequential_over_joint": 1.5}
MOONSHOTS = {"qforward_over_fp": 1.1, "sequential_over_joint": 1.0}


def _episode_actions(venv: PTQVecEnv, seed: int) -> list[np.ndarray]:
    """The actions of one episode of every sub-env (one per step)."""
    space = venv.action_space
    space.seed(seed)
    steps = venv.core.L if venv.core.mode == "sequential" else 1
    return [np.stack([space.sample() for _ in range(venv.num_envs)]) for _ in range(steps)]


def _run_episode(env: Any, actions: list[np.ndarray]) -> Callable[[], None]:
    """One episode of every sub-env per call. The env is seeded and reset once here; after an
    episode's last step the VecEnv auto-resets every sub-env (as in training), so each call
    pays for one episode including its reset, and nothing for re-seeding."""
    env.seed(0)
    env.reset()

    def go() -> None:
        for a in actions:
            env.step(a)
    return go


def _reps(fn: Callable[[], None], min_s: float) -> int:
    """Calls per sample so that one sample lasts about ``min_s`` seconds."""
    return max(1, int(np.ceil(min_s / max(timed(fn)[1], 1e-6))))


def interleaved(timers: dict[str, Callable[[], None]], spread: float, max_repeats: int,
                min_sample_s: float) -> tuple[dict, dict, dict, int]:
    """Warm every timer up, then sample them in turn until each one's spread is within
    ``spread`` (at least 3, at most ``max_repeats`` samples): median seconds per call, spreads,
    calls per sample and the number of samples."""
    for fn in timers.values():  # warm-up (allocator, caches, lazy compilation)
        fn()
    reps = {k: _reps(fn, min_sample_s) for k, fn in timers.items()}
    times: dict[str, list[float]] = {k: [] for k in timers}
    while True:
        for k, fn in timers.items():
            times[k].append(timed(fn, reps[k])[1])
        med = {k: statistics.median(v) for k, v in times.items()}
        spreads = {k: (max(v) - min(v)) / med[k] for k, v in times.items()}
        n = len(next(iter(times.values())))
        if n >= 3 and (max(spreads.values()) <= spread or n >= max_repeats):
            return med, spreads, reps, n


def measure(kw: dict[str, Any], mode: str, n: int, spread: float, max_repeats: int,
            with_dummy: bool, min_sample_s: float = 0.2) -> dict[str, Any]:
    """Median seconds per episode-batch of every timer, and their ratios."""
    venv = PTQVecEnv(n, action_mode=mode, **kw)
    core, res = venv.core, venv.res
    acts = _episode_actions(venv, seed=n)
    rng = np.random.default_rng(n)
    split = core.split[0]
    x = res.split(split).images[torch.as_tensor(rng.integers(len(res.labels(split)), size=n))]
    x = x.to(res.device)
    plan = torch.as_tensor(rng.choice(core.bits, size=(n, core.L)))
    stats = mode == "sequential"
    net, qnet = res.net.eval(), res.qnet

    def fp() -> None:
        with torch.no_grad():
            net(x)

    def qf() -> None:
        with torch.no_grad():
            qnet(x, plan, return_stats=stats)

    timers: dict[str, Callable[[], None]] = {"fp": fp, "qforward": qf,
                                             "env": _run_episode(venv, acts)}
    if with_dummy:
        dummy = DummyVecEnv([lambda: DynamicPTQEnv(action_mode=mode, **kw) for _ in range(n)])
        timers["dummy"] = _run_episode(dummy, acts)
    med, spreads, reps, repeats = interleaved(timers, spread, max_repeats, min_sample_s)
    row = {"mode": mode, "n_envs": n, "steps_per_episode": len(acts),
           "repeats": repeats, "calls_per_sample": reps, "seconds": med, "spread": spreads,
           "qforward_over_fp": med["qforward"] / med["fp"],
           "env_over_qforward": med["env"] / med["qforward"],
           "env_over_fp": med["env"] / med["fp"],
           "env_steps_per_s": n * len(acts) / med["env"]}
    if with_dummy:
        row["dummy_over_env"] = med["dummy"] / med["env"]
        dummy.close()
    venv.close()
    del timers, venv
    gc.collect()  # the next N starts without this one's envs and buffers
    print(f"  {mode:10s} N={n:<4d} fp {1e3 * med['fp']:8.2f} ms  qforward "
          f"{row['qforward_over_fp']:.2f}× fp  env {row['env_over_qforward']:.2f}× qforward"
          + (f"  dummy {row['dummy_over_env']:.1f}× env" if with_dummy else "")
          + f"  ({row['repeats']} repeats, spread ≤ {max(spreads.values()):.2f})", flush=True)
    return row


def observation_speed(kw: dict[str, Any], n: int, spread: float, max_repeats: int,
                      min_sample_s: float = 0.2) -> dict[str, Any]:
    """Joint-mode episode time of each observation option at ``n`` envs, interleaved, as a
    ratio to ``stats``. The probe and query features are computed once per example and
    cached, so they are timed warm (cache filled, as in training, where the env draws from a
    fixed subset again and again); the probe's one-time cost per example (the query's is the
    same: ``L`` plans) is reported with the cold ratio."""
    venvs = {o: PTQVecEnv(n, action_mode="joint", observation=o, **kw)
             for o in ("stats", "probe", "query", "image")}
    res = venvs["probe"].res
    _, fill = timed(lambda: res.probe("test", np.arange(len(res.data.test)),
                                      venvs["probe"].core.extras.plans))
    res.probe("test", np.arange(len(res.data.test)), venvs["query"].core.extras.plans)
    acts = _episode_actions(venvs["stats"], seed=n)
    timers = {o: _run_episode(v, acts) for o, v in venvs.items()}
    med, spreads, _, repeats = interleaved(timers, spread, max_repeats, min_sample_s)
    per_example = fill / len(res.data.test)
    row = {"n_envs": n, "seconds": med, "spread": spreads, "repeats": repeats,
           "probe_fill_s_per_example": per_example,
           "probe_over_stats": med["probe"] / med["stats"],
           "probe_cold_over_stats": (med["probe"] + n * per_example) / med["stats"],
           "query_over_stats": med["query"] / med["stats"],
           "image_over_stats": med["image"] / med["stats"], "target": 2.0}
    print(f"  observations N={n}: probe {row['probe_over_stats']:.2f}× stats (cold "
          f"{row['probe_cold_over_stats']:.2f}×), query {row['query_over_stats']:.2f}×, image "
          f"{row['image_over_stats']:.2f}× stats",
          flush=True)
    for v in venvs.values():
        v.close()
    return row


def summarise(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Ratios at ``n`` episodes with pass/fail against :data:`TARGETS`."""
    at = {r["mode"]: r for r in rows if r["n_envs"] == n}
    out: dict[str, Any] = {"n_envs": n}
    if "joint" in at:
        v = at["joint"]["qforward_over_fp"]
        out["qforward_over_fp"] = {"value": v, "target": TARGETS["qforward_over_fp"],
                                   "passed": v <= TARGETS["qforward_over_fp"],
                                   "moonshot_passed": v <= MOONSHOTS["qforward_over_fp"]}
    if "sequential" in at:
        out["qforward_with_stats_over_fp"] = at["sequential"]["qforward_over_fp"]
    out["env_over_qforward"] = {m: {"value": r["env_over_qforward"],
                                    "target": TARGETS["env_over_qforward"],
                                    "passed": r["env_over_qforward"] <= TARGETS["env_over_qforward"]}
                                for m, r in at.items()}
    if "sequential" in at and "joint" in at:
        v = at["sequential"]["seconds"]["env"] / at["joint"]["seconds"]["env"]
        out["sequential_over_joint"] = {"value": v, "target": TARGETS["sequential_over_joint"],
                                        "passed": v <= TARGETS["sequential_over_joint"],
                                        "moonshot_passed": v <= MOONSHOTS["sequential_over_joint"]}
    out["dummy_over_env"] = {m: r.get("dummy_over_env") for m, r in at.items()}
    checks = [out["qforward_over_fp"]["passed"]] if "qforward_over_fp" in out else []
    checks += [d["passed"] for d in out["env_over_qforward"].values()]
    checks += [out["sequential_over_joint"]["passed"]] if "sequential_over_joint" in out else []
    out["all_passed"] = bool(checks) and all(checks)
    return out


def resnet18_row(kw: dict[str, Any], env: DynamicPTQEnv, n: int, spread: float,
                 max_repeats: int) -> dict[str, Any]:
    """:func:`measure` of torchvision's resnet18 given as ``net=`` (joint mode, N = ``n``)."""
    import torchvision
    from torch import nn

    torch.manual_seed(0)
    module = torchvision.models.resnet18(num_classes=env.res.data.info.num_classes)
    module.conv1 = nn.Conv2d(env.res.data.info.in_channels, 64, 7, 2, 3, bias=False)
    own = {k: kw[k] for k in ("dataset", "device", "split", "fused_quant")}
    print("torchvision resnet18 (net=, plain module):")
    row = measure({**own, "net": module.to(kw["device"])}, "joint", n, spread, max_repeats,
                  with_dummy=False)
    v = row["qforward_over_fp"]
    target = TARGETS["qforward_over_fp"]
    print(f"resnet18 qforward_over_fp: {v:.2f} (target ≤ {target}: "
          f"{'passed' if v <= target else 'FAILED'})")
    return {**row, "network": "torchvision resnet18",
            "summary": {"value": v, "target": target, "passed": v <= target}}


def error_table(kw: dict, per_channel: bool) -> list[dict]:
    env = DynamicPTQEnv(per_channel=per_channel, **kw)
    test = env.res.data.test
    rows = []
    for bits in (*range(2, 9), FP_BITS):
        m = evaluate_plan(env.res.qnet, test.images, test.labels, bits, batch_size=500)
        rows.append({"bits": "FP" if bits == FP_BITS else bits, "per_channel": per_channel, **m})
    return rows


def uniform_bits_table(kw: dict) -> list[dict]:
    """Test accuracy under uniform activation bits, per tensor and per channel (printed)."""
    table = error_table(kw, False) + error_table(kw, True)
    print("bits → test accuracy under uniform activation bits (per-example ranges):")
    for r in table:
        print(f"  bits {r['bits']!s:>2}  per_channel={r['per_channel']!s:5}  "
              f"FP {r['fp_acc']:.4f}  Q {r['q_acc']:.4f}  drop {100 * r['drop']:6.2f} pts")
    return table


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--ns", type=int, nargs="+", default=[1, 16, 256])
    p.add_argument("--modes", nargs="+", default=["sequential", "joint", "continuous"],
                   choices=("sequential", "joint", "continuous"))
    p.add_argument("--spread", type=float, default=0.1,
                   help="repeat until (max − min) / median of every timer is at most this")
    p.add_argument("--max-repeats", type=int, default=15)
    p.add_argument("--dummy-max-n", type=int, default=256,
                   help="time DummyVecEnv only up to this N (it is slow)")
    p.add_argument("--fused", choices=("auto", "on", "off"), default="auto",
                   help="quantization arithmetic: torch.compile-fused (needs a C++ compiler), "
                        "eager, or the env's default (auto: fused when a compiler is found)")
    p.add_argument("--no-error-table", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="digits, width-4 CNN, N ≤ 16")
    p.add_argument("--resnet18", action="store_true",
                   help="also time torchvision's resnet18 given as net= (joint, largest N)")
    p.add_argument("--observations", action="store_true", help="time observation options")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fused = {"auto": None, "on": True, "off": False}[args.fused]
    kw = {"dataset": args.dataset, "arch": args.arch, "device": args.device, "split": "test",
          "fused_quant": fused}
    if args.quick:
        kw.update(dataset="digits", width=4, epochs=8)
        args.ns = [n for n in args.ns if n <= 16] or [16]
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               f"ptq_env_speed{'_quick' if args.quick else ''}.json")

    env = DynamicPTQEnv(**kw)  # trains or loads the network
    _, fill = timed(lambda: env.res.cache("test").get(np.arange(len(env.res.data.test))))
    print(f"network {kw['dataset']}/{args.arch}: {env.n_layers} quantizable layers, "
          f"test_acc {env.res.net.meta.get('test_acc', float('nan')):.4f}; FP cache of "
          f"{len(env.res.data.test)} test images filled in {fill:.2f} s; "
          f"{torch.get_num_threads()} torch threads")
    load_before = os.getloadavg()
    print("seconds per episode of N examples, as ratios (one run, interleaved timers):")
    rows = [measure(kw, mode, n, args.spread, args.max_repeats, n <= args.dummy_max_n)
            for n in args.ns for mode in args.modes]
    summary = summarise(rows, max(args.ns))
    if args.observations:
        summary["observations"] = observation_speed(kw, max(args.ns), args.spread,
                                                    args.max_repeats)
    load_after = os.getloadavg()
    if args.resnet18:
        r18 = resnet18_row(kw, env, max(args.ns), args.spread, args.max_repeats)
        rows.append(r18)
        summary["resnet18"] = {"n_envs": max(args.ns), "qforward_over_fp": r18.pop("summary")}
    for k in ("qforward_over_fp", "sequential_over_joint"):
        if k in summary:
            s = summary[k]
            print(f"{k}: {s['value']:.2f} (target ≤ {s['target']}: "
                  f"{'passed' if s['passed'] else 'FAILED'})")
    for m, s in summary["env_over_qforward"].items():
        print(f"env_over_qforward[{m}]: {s['value']:.2f} (target ≤ {s['target']}: "
              f"{'passed' if s['passed'] else 'FAILED'})")
    table = [] if args.no_error_table else uniform_bits_table(kw)
    result = {**provenance(seed=0, command=command_line()),
              "load_average_before": load_before, "load_average_after": load_after,
              "torch_threads": torch.get_num_threads(), "fused_quant": env.res.qnet.fused,
              "network": {"dataset": kw["dataset"], "arch": args.arch,
                          "config": env.res.net.meta.get("config"),
                          "test_acc": env.res.net.meta.get("test_acc"),
                          "n_layers": env.n_layers},
              "targets": TARGETS, "moonshots": MOONSHOTS, "summary": summary,
              "fp_cache_fill_s": fill, "speed": rows, "uniform_bits_accuracy": table}
    atomic_write_json(result, out)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
