"""What one ``agents.train`` call trains with: its flags reconciled with the run it continues.

A new run takes its options from the command line (``--algo`` defaults to ``ppo``, ``--env``
to DynamicPTQ). A continued run (``-i``) takes the env id, its kwargs, the algorithm, the
vec-env kind, the number of envs and the hyperparameters from the run folder's ``run.json``
(:mod:`agents.run_record`); a flag that contradicts them is refused unless ``--override``.
:func:`resume_command` is the command that continues a run with the same options.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.env_device import place_env
from agents.policy_io import is_zip, policy_meta
from agents.run_record import read_run, reconcile
from agents.vec import default_vec_env
from agents.zoo_hyperparams import load_hyperparams, parse_kv, split_hyperparams
from models.cli import read_yaml

DEFAULT_ENV = "deploygym/DynamicPTQ-v0"
DEFAULT_ALGO = "ppo"


@dataclass
class TrainOptions:
    """The resolved options of one training call."""

    algo: str
    env: str
    env_kwargs: dict[str, Any]
    """as the user gave them (recorded in run.json; no device added)"""
    vec_env: str
    n_envs: int
    n_timesteps: int
    hyperparams: dict[str, Any]
    algo_kwargs: dict[str, Any]
    policy: str
    device: str
    """the resolved device of the agent and the env's networks"""
    env_make_kwargs: dict[str, Any]
    """the kwargs the env is built with (``device`` added where the env takes one)"""
    run: dict[str, Any] | None = None
    """the ``run.json`` being continued, if any"""
    overrides: dict[str, Any] = field(default_factory=dict)


def _saved_algo(trained_agent: str) -> str | None:
    if is_zip(trained_agent) or not (Path(trained_agent) / "policy.json").exists():
        return None
    return policy_meta(trained_agent)[1].get("algo")


def resolve_options(args: Any) -> TrainOptions:
    """The options of ``args`` (a :class:`agents.train.TrainArgs`), with a continued run's
    ``run.json`` as the source of truth; :class:`agents.run_record.RunMismatchError` (exit 2)
    for a contradicting flag without ``--override``."""
    given_kwargs = (None if args.env_kwargs is None
                    else parse_kv(args.env_kwargs, "--env-kwargs"))
    cli_hp = parse_kv(args.hyperparams, "--hyperparams")
    run = read_run(args.trained_agent) if args.trained_agent else None
    if run is not None:
        opts, overrides = reconcile(run, {"env": args.env, "env_kwargs": given_kwargs,
                                          "algo": args.algo, "vec_env": args.vec_env},
                                    args.override)
        opts["algo"] = opts["algo"] or DEFAULT_ALGO
    else:
        overrides = {}
        opts = {"env": args.env or DEFAULT_ENV, "env_kwargs": dict(given_kwargs or {}),
                "vec_env": args.vec_env,
                "algo": args.algo or (args.trained_agent and _saved_algo(args.trained_agent))
                or DEFAULT_ALGO}
    same_agent = run is not None and not {"algo", "env"} & set(overrides)
    if same_agent and not args.conf_file and isinstance(run.get("hyperparams"), dict):
        hp = {**run["hyperparams"], **cli_hp}  # the run's own, e.g. n_steps, batch_size
    else:
        hp = load_hyperparams(opts["algo"], opts["env"], args.conf_file, cli_hp)
    run_cfg, algo_kwargs = split_hyperparams(hp)
    n_timesteps = int(args.n_timesteps if args.n_timesteps is not None
                      else run_cfg.get("n_timesteps", 10_000))
    n_envs = int(args.n_envs if args.n_envs is not None else
                 (run or {}).get("n_envs") or run_cfg.get("n_envs", 1))
    for name, value in (("-n/--n-timesteps", n_timesteps), ("--n-envs", n_envs),
                        ("--eval-episodes", args.eval_episodes)):
        if value < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value}")
    if not args.max_loss > 0:
        raise ValueError(f"--max-loss must be > 0, got {args.max_loss}")
    vec_env = opts["vec_env"] or run_cfg.get("vec_env") or default_vec_env(opts["env"])
    device, make_kwargs = place_env(opts["env"], opts["env_kwargs"], args.device)
    return TrainOptions(algo=opts["algo"], env=opts["env"], env_kwargs=opts["env_kwargs"],
                        vec_env=vec_env, n_envs=n_envs, n_timesteps=n_timesteps,
                        hyperparams=hp, algo_kwargs=algo_kwargs,
                        policy=run_cfg.get("policy", "MlpPolicy"), device=device,
                        env_make_kwargs=make_kwargs, run=run, overrides=overrides)


def _as_json(obj: Any) -> Any:
    """``obj`` as ``run.json`` holds it (tuples as lists, classes as text)."""
    return json.loads(json.dumps(obj, default=str))


def _changed(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    before = before or {}
    return {k: v for k, v in _as_json(now).items() if k not in before or before[k] != v}


def kv_text(key: str, value: Any) -> str:
    """``key:value`` that :func:`models.cli.parse_kv` reads back as ``value``."""
    if not isinstance(value, str):
        return f"{key}:{json.dumps(value, default=str)}"
    try:
        plain = read_yaml(value) == value
    except yaml.YAMLError:
        plain = False
    return f"{key}:{value if plain else json.dumps(value)}"  # quoted: e.g. "true" as text


# Flags that do not change what is trained (left out of the resume command).
_COSMETIC = ("progress_bar", "verbose", "command", "trained_agent", "log_folder", "trust_zip",
             "n_timesteps", "override", "algo", "env", "env_kwargs", "vec_env", "n_envs",
             "hyperparams", "conf_file")


def resume_command(args: Any, opts: TrainOptions, folder: Path, remaining: int) -> str:
    """The command that continues the run in ``folder`` with ``opts``: ``-i`` (which restores
    the env, its kwargs, the algorithm, the vec-env kind, the number of envs and the
    hyperparameters from ``run.json``), the remaining steps, the flags of this call that
    ``run.json`` does not hold (seed, evaluation, checkpoints, device, ...) when they differ
    from their defaults, and whatever this call changed against ``run.json``."""
    from agents.train import TrainArgs  # the flag defaults

    defaults = TrainArgs()
    argv = ["python", "-m", "agents.train", "-i", str(folder), "-n", str(max(int(remaining), 1))]
    for name in (f for f in vars(defaults) if f not in _COSMETIC):
        value = getattr(args, name)
        if value != getattr(defaults, name):
            argv += [f"--{name.replace('_', '-')}", str(value)]
    base = read_run(folder) or {}
    changed = _changed(opts.env_kwargs, base.get("env_kwargs"))
    for key in ("algo", "env", "vec_env"):
        if base.get(key) != getattr(opts, key):
            argv += [f"--{key.replace('_', '-')}", str(getattr(opts, key))]
    if changed:
        argv += ["--env-kwargs", *(kv_text(k, v) for k, v in changed.items())]
    if any(base.get(k) != getattr(opts, k) for k in ("algo", "env", "vec_env")) or changed:
        argv.append("--override")
    if base.get("n_envs") != opts.n_envs:
        argv += ["--n-envs", str(opts.n_envs)]
    hp_changed = _changed(opts.hyperparams, base.get("hyperparams"))
    if hp_changed:
        argv += ["--hyperparams", *(kv_text(k, v) for k, v in hp_changed.items())]
    return shlex.join(argv)
