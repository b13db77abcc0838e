"""Evaluate a saved agent (or a random policy) on any deploygym env: ``python -m agents.evaluate``.

It runs N seeded episodes and writes, for every numeric ``info`` key at episode end:

* TensorBoard scalars per episode (``episode/<key>``) and histograms (``hist/<key>``), the
  actions' histogram, rendered final frames as images, and the run's hparams with the means;
* ``summary.json`` (mean, std, min, max per key, plus command, seed and versions);
* ``<key>.png`` histograms for people who would rather look at a picture.

    python -m agents.evaluate --env deploygym/DynamicPTQ-v0 \\
        --agent runs/agents/ppo/DynamicPTQ-v0_1 --episodes 200
    python -m agents.evaluate --env deploygym/DynamicPTQ-v0 --random --episodes 200
    python -m agents.evaluate --pair runs/pairs/detrimental-fashion-mnist-cnn-s0

Env-specific analyses registered in :mod:`agents.analysis.hooks` (for DynamicPTQ: whole-split
accuracy, drop, per-class drop, per-layer bits, worst failures, baselines, vulnerability;
:mod:`agents.analysis.ptq`) run after the episodes and land in ``summary.json`` under
``"analysis"``, in TensorBoard and as PNGs. They run for ``--pair`` (or ``--analysis on``
for any policy; ``off`` skips them); ``--hook-opts limit:2000`` passes options.
"""

from __future__ import annotations

import argparse
import inspect
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

import envs  # registers the ids
from agents.analysis.hooks import HookContext, run_hooks
from agents.callbacks import numeric_items
from agents.policy_io import ALGOS, check_trusted, is_zip, load_policy, run_folder_of
from agents.zoo_hyperparams import parse_kv
from models.cli import run_cli
from models.io import atomic_write_json, command_line, provenance


class RandomAgent:
    """Uniformly random actions, restricted to ``action_masks()`` when the env has them."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        self.env = env
        env.action_space.seed(seed)

    def predict(self, obs: Any, deterministic: bool = True, action_masks: np.ndarray | None = None):
        if action_masks is not None:
            return self.env.action_space.sample(mask=action_masks.astype(np.int8)), None
        return self.env.action_space.sample(), None


def run_episodes(env: gym.Env, agent: Any, episodes: int, seed: int, render_every: int = 0,
                 progress: bool = True) -> dict[str, Any]:
    """Roll out ``episodes`` episodes seeded ``seed + i``; collect the final infos and actions."""
    scalars: dict[str, list[float]] = defaultdict(list)
    arrays: dict[str, list[np.ndarray]] = defaultdict(list)
    actions, frames, returns = [], [], []
    masked = hasattr(env.unwrapped, "action_masks") and (
        "action_masks" in inspect.signature(agent.predict).parameters)
    for ep in tqdm(range(episodes), desc="episodes", disable=not progress):
        obs, _ = env.reset(seed=seed + ep)
        done, ret = False, 0.0
        while not done:
            masks = env.unwrapped.action_masks() if masked else None
            kw = {"action_masks": masks} if masks is not None else {}
            action, _ = agent.predict(obs, deterministic=True, **kw)
            actions.append(np.asarray(action, dtype=np.float64).ravel())
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            done = terminated or truncated
        s, a = numeric_items(info)
        for k, v in {**s, "return": ret}.items():
            scalars[k].append(v)
        for k, v in a.items():
            arrays[k].append(v)
        returns.append(ret)
        if render_every and ep % render_every == 0 and env.render_mode == "rgb_array":
            frames.append((ep, env.render()))
    return {"scalars": scalars, "arrays": arrays, "actions": np.concatenate(actions),
            "frames": frames}


def summarise(scalars: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
                "max": float(np.max(v)), "n": len(v)} for k, v in scalars.items()}


def write_tensorboard(out: Path, result: dict[str, Any], summary: dict, hparams: dict) -> None:
    writer = SummaryWriter(str(out / "tb"))
    for k, vals in result["scalars"].items():
        for i, v in enumerate(vals):
            writer.add_scalar(f"episode/{k}", v, i)
        writer.add_histogram(f"hist/{k}", np.asarray(vals), 0)
    for k, vals in result["arrays"].items():
        writer.add_histogram(f"hist/{k}", np.concatenate(vals), 0)
    writer.add_histogram("hist/actions", result["actions"], 0)
    for ep, frame in result["frames"]:
        writer.add_image("frames/final", torch.as_tensor(frame).permute(2, 0, 1), ep)
    writer.add_hparams({k: v if isinstance(v, int | float | str | bool) else str(v)
                        for k, v in hparams.items()},
                       {f"eval/{k}": s["mean"] for k, s in summary.items()}, run_name=".")
    writer.close()


def write_plots(out: Path, result: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    series = {**{k: np.asarray(v) for k, v in result["scalars"].items()},
              **{k: np.concatenate(v) for k, v in result["arrays"].items()},
              "actions": result["actions"]}
    for k, v in series.items():
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.hist(v, bins=min(30, max(len(np.unique(v)), 2)))
        ax.set_title(f"{k}: mean {v.mean():.3g} (n={len(v)})")
        fig.tight_layout()
        path = out / f"{k.replace('/', '_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path.name)
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None, help="env id (default for --pair: the pair's env)")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY:VALUE")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", help="a run folder of agents.train (or its best/, "
                     "checkpoints/latest/ or policy.json); a .zip needs --trust-zip")
    who.add_argument("--random", action="store_true", help="a uniformly random (masked) policy")
    who.add_argument("--pair", help="a network–policy pair folder from python -m agents.pairs")
    p.add_argument("--algo", default="ppo", choices=sorted(ALGOS),
                   help="the algorithm of a --trust-zip .zip (a policy.json names its own)")
    p.add_argument("--trust-zip", action="store_true",
                   help="allow --agent to be an SB3 .zip (its data section is unpickled and can "
                        "run code)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=1_000_000, help="episode i is seeded seed + i")
    p.add_argument("--render-every", type=int, default=10, help="log a frame every K episodes (0: off)")
    p.add_argument("--out", default=None, help="output folder (default runs/eval/<env>-<agent>)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--hook-opts", nargs="*", metavar="KEY:VALUE", help="options for analysis hooks")
    p.add_argument("--analysis", choices=("auto", "on", "off"), default="auto",
                   help="env-specific analyses over a whole split (auto: on for --pair)")
    args = p.parse_args(argv)
    if args.env is None and not args.pair:
        p.error("--env is required (except with --pair)")
    args.command = (shlex.join(["python", "-m", "agents.evaluate", *argv]) if argv is not None
                    else command_line())
    return args


def reproduction(committed: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Whether a pair's committed test row equals the one measured now (every shared key)."""
    keys = sorted(set(committed) & set(measured))
    differs = [k for k in keys if committed[k] != measured[k]]
    return {"exact": bool(keys) and not differs, "keys": keys, "differs": differs,
            "committed": committed, "measured": measured}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be ≥ 1, got {args.episodes}")
    env_kwargs = parse_kv(args.env_kwargs, "--env-kwargs")
    hook_opts: dict[str, Any] = parse_kv(args.hook_opts, "--hook-opts")
    if args.agent:  # before the env builds its network
        check_trusted(args.agent, args.trust_zip)
    make_kw: dict[str, Any] = {}
    if args.pair:
        from agents.pairs.artifact import load_pair

        pair = load_pair(args.pair, args.device)
        args.env = args.env or "deploygym/DynamicPTQ-v0"
        env_kwargs = {**pair.env_kwargs, **env_kwargs}
        make_kw["net"] = hook_opts["net"] = pair.net
    # an explicit --env-kwargs render_mode:… wins; frames are logged only for rgb_array
    make_kw["render_mode"] = env_kwargs.pop("render_mode",
                                            "rgb_array" if args.render_every else None)
    envs.check_id(args.env)
    env = gym.make(args.env, **env_kwargs, **make_kw)
    if args.pair:
        agent, who = pair.policy, f"pair-{Path(args.pair).name}"
    elif args.random:
        agent, who = RandomAgent(env, args.seed), "random"
    else:
        agent = (ALGOS[args.algo].load(args.agent, device=args.device) if is_zip(args.agent)
                 else load_policy(args.agent, env, args.device))
        who = run_folder_of(args.agent).name
    out = Path(args.out or Path("runs/eval") / f"{args.env.split('/')[-1]}-{who}")
    result = run_episodes(env, agent, args.episodes, args.seed, args.render_every,
                          not args.no_progress)
    env.close()
    summary = summarise(result["scalars"])
    hparams = {"env": args.env, "agent": args.pair or args.agent or "random", "algo": args.algo,
               "episodes": args.episodes, **{f"env/{k}": v for k, v in env_kwargs.items()}}
    write_tensorboard(out, result, summary, hparams)
    plots = write_plots(out, result)
    analysis: dict[str, Any] = {}
    if args.analysis == "on" or (args.analysis == "auto" and args.pair):
        writer = SummaryWriter(str(out / "tb"))
        try:
            analysis = run_hooks(HookContext(args.env, env_kwargs, agent, out, writer, args.seed,
                                             args.device, hook_opts, not args.no_progress))
        finally:
            writer.close()
    if args.pair and "ptq_analysis" in analysis:
        analysis["pair_reproduction"] = reproduction(pair.metrics.get("test", {}),
                                                     analysis["ptq_analysis"]["policy"])
        r = analysis["pair_reproduction"]
        print(f"pair {args.pair}: committed test row {'reproduced exactly' if r['exact'] else 'NOT reproduced'}"
              + ("" if r["exact"] else f" (differs in {r['differs']})"))
    record = {"env": args.env, "env_kwargs": env_kwargs,
              "agent": args.pair or args.agent or "random",
              "episodes": args.episodes, "summary": summary, "plots": plots, "analysis": analysis,
              **provenance(args.seed, args.command)}
    atomic_write_json(record, out / "summary.json")
    width = max(len(k) for k in summary)
    for k, s in summary.items():
        print(f"{k:{width}s}  {s['mean']:10.4f} ± {s['std']:.4f}")
    print(f"wrote {out / 'summary.json'}\ntensorboard --logdir {out / 'tb'}")
    return record


if __name__ == "__main__":
    run_cli(main, prog="python -m agents.evaluate")
