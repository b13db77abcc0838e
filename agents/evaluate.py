"""Evaluate a saved agent (or a random policy, or a pair) on any deploygym env, and say who won.

    python -m agents.evaluate --agent runs/agents/ppo/DynamicPTQ-v0_1 --episodes 200
    python -m agents.evaluate --env deploygym/DynamicPTQ-v0 --random --episodes 200
    python -m agents.evaluate --pair runs/pairs/detrimental-fashion-mnist-cnn-s0

**What is evaluated.** ``--agent`` takes the env id, its keyword arguments and the algorithm
from the run folder's ``run.json`` (:mod:`agents.run_record`); an ``--env``,
``--env-kwargs`` value or ``--algo`` that differs from the run's is refused (exit 2) unless
``--override``. Evaluation-only options are not run options and may always be given:
``split``, ``render_mode``, ``progress``, ``cache_dir``, ``device`` (:data:`EVAL_ONLY`).
``--device`` (``auto``/``cpu``/``cuda``/``cuda:N``) places the agent and the env's networks
together (:func:`agents.train_options.place_env`). Every env is built with its id's registered variant options
(:func:`envs.registry.env_options`).

**Split.** Episodes are drawn from the family's held-out split (``test`` for DynamicPTQ and
SensorPlacement) unless ``--env-kwargs split:...`` says otherwise; the split is printed.

**Verdict.** N seeded episodes (episode i: seed + i) of the agent, then every baseline of
the env's family (:mod:`agents.analysis.baselines`) on the same episodes, compared on the
family's headline metric with a paired t-test (:mod:`agents.verdict`): a table of mean,
95% CI, gap, p-value and "beats" / "does not beat" / "not significant", printed at the end
and written to ``summary.json`` under ``verdict``. ``--baselines auto`` runs them except for
families whose episodes are expensive (DistillSource trains a student per episode: pass
``--baselines all``, optionally ``--baseline-episodes K`` to pair on the first K episodes).

**Outputs** (``--out``, default ``runs/eval/<env>-<agent>``): ``summary.json`` (numeric
``info`` keys as mean/std/min/max; categorical keys such as ``label`` or ``index`` as counts;
the verdict; command, seed, versions), PNGs, and a TensorBoard run named
``<algo>_<env>_seed<train seed>_eval<seed>`` (see :mod:`agents.analysis.report`).

Env-specific analyses registered in :mod:`agents.analysis.hooks` (DynamicPTQ: whole-split
drop, per-class drop, per-layer bits, worst failures, baselines, vulnerability) run for
``--pair`` or ``--analysis on``; ``--hook-opts limit:2000`` passes options to them.

**Your own network and data** (DynamicPTQ ids): ``--net package.module:builder`` (or
``path/to/file.py:builder``), ``--weights FILE`` and ``--data PATH`` (see
:mod:`models.nets.user`) give the env, the baselines and the analyses that network and
data; a pair or run made on them needs them again (nothing in a folder runs code)::

    python -m agents.evaluate --pair runs/pairs/attack-standard-my_images-build-s0 \\
        --net mynets.py:build --weights mynet.pt --data my_images/
    python -m agents.evaluate --env deploygym/DynamicPTQ-v0 --random --net mynets.py:build \\
        --weights mynet.pt --data my_images/ --analysis on
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import gymnasium as gym

import envs  # registers the ids
from agents.analysis.baselines import CATEGORICAL, GENERIC, Family
from agents.analysis.hooks import HookContext, run_hooks
from agents.analysis.report import run_name, summarise, write_plots, write_tensorboard
from agents.episodes import RandomAgent, rollout
from agents.policy_io import ALGOS, check_trusted, is_zip, load_policy, run_folder_of
from agents.run_record import read_run, reconcile
from agents.train_options import place_env
from agents.verdict import family_for, format_table, judge
from agents.zoo_hyperparams import parse_kv
from envs.registry import accepts_option, env_options, family_of
from models.cli import run_cli
from models.device import DEVICE_CHOICES, resolve_device
from models.io import atomic_write_json, command_line, provenance
from models.nets.user import own_parts

#: env options that say how to evaluate, not what the agent was trained on: they may differ
#: from the run's ``run.json`` without ``--override``. The run's own ``device`` is ignored:
#: the device is this machine's (``--device``, or ``--env-kwargs device:`` if equal).
EVAL_ONLY = ("split", "render_mode", "progress", "cache_dir", "device")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None,
                   help="env id (default: the run's for --agent, the pair's for --pair)")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY:VALUE")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", help="a run folder of agents.train (or its best/, "
                     "checkpoints/latest/ or policy.json); a .zip needs --trust-zip")
    who.add_argument("--random", action="store_true", help="a uniformly random (masked) policy")
    who.add_argument("--pair", help="a network–policy pair folder from python -m agents.pairs")
    p.add_argument("--algo", default=None, choices=sorted(ALGOS),
                   help="the algorithm of a .zip without run.json (default ppo)")
    p.add_argument("--override", action="store_true",
                   help="let --env/--env-kwargs/--algo differ from the run's run.json")
    p.add_argument("--trust-zip", action="store_true",
                   help="allow --agent to be an SB3 .zip (its data section is unpickled and can "
                        "run code)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=1_000_000, help="episode i is seeded seed + i")
    p.add_argument("--render-every", type=int, default=10, help="log a frame every K episodes (0: off)")
    p.add_argument("--out", default=None, help="output folder (default runs/eval/<env>-<agent>)")
    p.add_argument("--device", default="auto", help=f"one of {DEVICE_CHOICES} or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--baselines", choices=("auto", "all", "none"), default="auto",
                   help="run the family's baselines for the verdict (auto: unless expensive)")
    p.add_argument("--baseline-episodes", type=int, default=None,
                   help="pair the verdict on the first K episodes only (default: all)")
    p.add_argument("--verdict-opts", nargs="*", metavar="KEY:VALUE",
                   help="baseline options, e.g. static_evals:200 static_limit:500 static:false")
    p.add_argument("--hook-opts", nargs="*", metavar="KEY:VALUE", help="options for analysis hooks")
    p.add_argument("--analysis", choices=("auto", "on", "off"), default="auto",
                   help="env-specific analyses over a whole split (auto: on for --pair)")
    p.add_argument("--net", default=None, help="your own classifier: package.module:builder or "
                   "path/to/file.py:builder (DynamicPTQ ids)")
    p.add_argument("--weights", default=None, help="state dict of --net (.safetensors, or a "
                   "torch.save'd dict of tensors; never a pickled module)")
    p.add_argument("--data", default=None, help="your own data: an ImageFolder folder or a "
                   ".npz/.pt of x, y (val/test: given, or a seeded stratified 10%% each)")
    args = p.parse_args(argv)
    if args.env is None and args.random:
        p.error("--env is required with --random")
    args.command = (shlex.join(["python", "-m", "agents.evaluate", *argv]) if argv is not None
                    else command_line())
    return args


def reproduction(committed: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Whether a pair's committed test row equals the one measured now (every shared key)."""
    keys = sorted(set(committed) & set(measured))
    differs = [k for k in keys if committed[k] != measured[k]]
    return {"exact": bool(keys) and not differs, "keys": keys, "differs": differs,
            "committed": committed, "measured": measured}


def resolve_options(args: argparse.Namespace, given: dict[str, Any]) -> dict[str, Any]:
    """Env id, env kwargs (run options + evaluation-only ones), algo, the run record and the
    recorded overrides, from ``run.json`` (``--agent``), the pair (``--pair``) or the
    command line."""
    eval_only = {k: given.pop(k) for k in EVAL_ONLY if k in given}
    run, overrides = (read_run(args.agent) if args.agent else None), {}
    if run is not None:
        opts, overrides = reconcile(run, {"env": args.env, "env_kwargs": given or None,
                                          "algo": args.algo}, args.override)
        env_id, algo = opts["env"], opts["algo"] or "ppo"
        run_kw = {k: v for k, v in opts["env_kwargs"].items() if k not in (*EVAL_ONLY, "device")}
    elif args.agent:
        if args.env is None:
            raise ValueError(f"{args.agent} has no run.json (not a run folder of agents.train): "
                             f"pass --env (and --env-kwargs) it was trained with")
        env_id, algo, run_kw = args.env, args.algo or "ppo", given
    elif args.pair:
        from agents.pairs.artifact import load_pair

        args.loaded_pair = load_pair(args.pair, args.device, args.own.data, args.own.module)
        env_id, algo = args.env or "deploygym/DynamicPTQ-v0", "pair"
        run_kw = {k: v for k, v in args.loaded_pair.env_kwargs.items() if k != "device"}
        run_kw.update(given)
    else:
        env_id, algo, run_kw = args.env, "random", given
    envs.check_id(env_id)
    check_own(args, env_id, run)
    return {"env": env_id, "run_kwargs": run_kw, "eval_only": eval_only, "algo": algo,
            "run": run, "overrides": overrides}


def check_own(args: argparse.Namespace, env_id: str, run: dict[str, Any] | None) -> None:
    """``--net``/``--data`` only for DynamicPTQ ids; a run trained on a user's network or data
    is evaluated on them again (they are given, not silently replaced by the named ones)."""
    if args.own.record and family_of(env_id) != "DynamicPTQ":
        raise ValueError(f"--net, --weights and --data are for DynamicPTQ ids, not {env_id}")
    needed = sorted(k for k in ("net", "data") if (run or {}).get("own", {}).get(k)
                    and getattr(args, k) is None)
    if needed:
        raise ValueError(f"{args.agent} was trained on your own "
                         f"{' and '.join(needed)} ({', '.join(run['own'][k] for k in needed)}): "
                         f"pass {' '.join('--' + k for k in needed)} again")


def eval_kwargs(env_id: str, family: Family | None, o: dict[str, Any], device: str,
                render: bool) -> dict[str, Any]:
    """The env kwargs of this evaluation: the run's, then the held-out split (unless given),
    the device (when the env takes one) and the render mode."""
    kw = {**o["run_kwargs"], **o["eval_only"]}
    if "split" not in o["eval_only"] and family and family.heldout_split and \
            accepts_option(env_id, "split"):
        kw["split"] = family.heldout_split
    kw.setdefault("render_mode", "rgb_array" if render else None)
    return place_env(env_id, kw, device)[1]


def load_agent(args: argparse.Namespace, env: gym.Env, algo: str, device: str) -> tuple[Any, str]:
    """The evaluated agent and a short name for it."""
    if args.pair:
        return args.loaded_pair.policy, f"pair-{Path(args.pair).name}"
    if args.random:
        return RandomAgent(env, args.seed), "random"
    agent = (ALGOS[algo].load(args.agent, device=device) if is_zip(args.agent)
             else load_policy(args.agent, env, device))
    return agent, run_folder_of(args.agent).name


def run_verdict(args: argparse.Namespace, env: gym.Env, family: Family | None,
                scalars: dict[str, list[float]], split: str) -> dict[str, Any]:
    """The verdict: the agent's headline metric, and its baselines unless they are skipped
    (``--baselines none``, an expensive family under ``auto``, or no family)."""
    skip = None
    if family is None:
        skip = "this env has no baseline definitions (agents.analysis.baselines.register_family)"
    elif args.baselines == "none":
        skip = "--baselines none"
    elif args.baselines == "auto" and family.expensive:
        skip = (f"{family.name} baselines replay whole episodes per baseline (expensive); pass "
                f"--baselines all, and --baseline-episodes K to pair on the first K episodes")
    opts = parse_kv(args.verdict_opts, "--verdict-opts")
    return judge(env, family or GENERIC, scalars, args.seed, split=split,
                 episodes=args.baseline_episodes, options=opts, progress=not args.no_progress,
                 skip=skip)


def _print_summary(summary: dict[str, Any]) -> None:
    width = max(len(k) for k in summary)
    for k, s in summary.items():
        if s.get("categorical"):
            top = sorted(s["counts"].items(), key=lambda kv: -kv[1])[:3]
            print(f"{k:{width}s}  categorical: {s['distinct']} distinct over {s['n']} "
                  f"episodes; most common {', '.join(f'{v} ({c}×)' for v, c in top)}")
        else:
            print(f"{k:{width}s}  {s['mean']:10.4f} ± {s['std']:.4f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    for name, v in (("--episodes", args.episodes), ("--baseline-episodes", args.baseline_episodes)):
        if v is not None and v < 1:
            raise ValueError(f"{name} must be ≥ 1, got {v}")
    given = parse_kv(args.env_kwargs, "--env-kwargs")
    flag = args.device
    # one device for the agent and the env (--device auto follows --env-kwargs device:)
    args.device = resolve_device(given["device"] if flag == "auto" and "device" in given
                                 else flag)
    hook_opts: dict[str, Any] = parse_kv(args.hook_opts, "--hook-opts")
    if args.agent:  # before the env builds its network
        check_trusted(args.agent, args.trust_zip)
    args.own = own_parts(args.net, args.weights, args.data, args.device)
    o = resolve_options(args, given)
    env_id, family = o["env"], family_for(o["env"])
    env_kwargs = eval_kwargs(env_id, family, o, args.device, bool(args.render_every))
    make_kw: dict[str, Any] = {}
    if args.pair:
        make_kw["net"] = hook_opts["net"] = args.loaded_pair.net
        if args.own.data is not None:
            make_kw["data"] = hook_opts["data"] = args.loaded_pair.data
    else:
        for key, obj in (("net", args.own.module), ("data", args.own.data)):
            if obj is not None:
                make_kw[key] = hook_opts[key] = obj
    env = gym.make(env_id, **env_options(env_id, env_kwargs), **make_kw)
    split = str(env_kwargs.get("split") or getattr(env.unwrapped, "split", None)
                or (family.split_note if family else "") or "n/a")
    print(f"evaluating on {env_id}, split {split}, device {args.device}")
    agent, who = load_agent(args, env, o["algo"], args.device)
    out = Path(args.out or Path("runs/eval") / f"{env_id.split('/')[-1]}-{who}")
    out.mkdir(parents=True, exist_ok=True)
    result = rollout(env, agent, args.episodes, args.seed, args.render_every,
                     not args.no_progress)
    summary = summarise(result["scalars"], family.categorical if family else CATEGORICAL)
    verdict = run_verdict(args, env, family, result["scalars"], split)
    env.close()
    train_seed = (o["run"] or {}).get("seed")
    logdir = out / run_name(o["algo"], env_id, train_seed, args.seed)
    hparams = {"env": env_id, "agent": args.pair or args.agent or "random", "algo": o["algo"],
               "episodes": args.episodes, "eval_seed": args.seed, "split": split,
               **({"train_seed": train_seed} if train_seed is not None else {}),
               **{f"env/{k}": v for k, v in o["run_kwargs"].items()}}
    write_tensorboard(logdir, result, summary, hparams, verdict)
    plots = write_plots(out, result, summary, verdict)
    analysis = _analysis(args, env_id, env_kwargs, agent, out, logdir, hook_opts)
    record = {"env": env_id, "env_kwargs": env_kwargs, "agent": args.pair or args.agent or "random",
              "algo": o["algo"], "run_overrides": o["overrides"], "split": split,
              "device": args.device, "episodes": args.episodes, "summary": summary,
              "verdict": verdict, "plots": plots, "analysis": analysis, "own": args.own.record,
              "tensorboard": str(logdir), **provenance(args.seed, args.command)}
    atomic_write_json(record, out / "summary.json")
    _print_summary(summary)
    print("\n" + format_table(verdict))
    print(f"\nwrote {out / 'summary.json'}\ntensorboard --logdir {out}")
    return record


def _analysis(args: argparse.Namespace, env_id: str, env_kwargs: dict[str, Any], agent: Any,
              out: Path, logdir: Path, hook_opts: dict[str, Any]) -> dict[str, Any]:
    """The env's analysis hooks (``--analysis``), and a pair's reproduction check."""
    if not (args.analysis == "on" or (args.analysis == "auto" and args.pair)):
        return {}
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    try:
        analysis = run_hooks(HookContext(env_id, env_kwargs, agent, out, writer, args.seed,
                                         args.device, hook_opts, not args.no_progress))
    finally:
        writer.close()
    if args.pair and "ptq_analysis" in analysis:
        r = analysis["pair_reproduction"] = reproduction(
            args.loaded_pair.metrics.get("test", {}), analysis["ptq_analysis"]["policy"])
        print(f"pair {args.pair}: committed test row "
              f"{'reproduced exactly' if r['exact'] else 'NOT reproduced'}"
              + ("" if r["exact"] else f" (differs in {r['differs']})"))
    return analysis


if __name__ == "__main__":
    run_cli(main, prog="python -m agents.evaluate")
