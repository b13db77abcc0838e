"""What one ``agents.train`` call trains with: its flags reconciled with the run it continues.

A new run takes its options from the command line (``--algo`` defaults to ``ppo``, ``--env``
to DynamicPTQ). A continued run (``-i``) takes the env id, its kwargs, the algorithm, the
vec-env kind, the number of envs and the hyperparameters from the run folder's ``run.json``
(:mod:`agents.run_record`); a flag that contradicts them is refused unless ``--override``.
:func:`resume_command` is the command that continues a run with the same options.

One ``--device`` for the whole run: :func:`place_env` resolves it once
(:func:`models.device.resolve_device`: CUDA without CUDA is an error, never a silent CPU
run) and passes ``device=`` to every env whose class takes it, so the env's classifier,
teacher or reconstructor sits with the agent; a different ``device`` in the env kwargs is
refused with both values named.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import shlex
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

import envs
from agents.policy_io import is_zip, policy_meta
from agents.run_record import read_run, reconcile
from agents.vec import default_vec_env
from agents.zoo_hyperparams import load_hyperparams, parse_kv, split_hyperparams
from models.cli import read_yaml
from models.device import DeviceError, resolve_device

DEFAULT_ENV = "deploygym/DynamicPTQ-v0"
DEFAULT_ALGO = "ppo"


def _entry_class(env_id: str) -> Any:
    entry = envs.check_id(env_id).entry_point
    if callable(entry):
        return entry
    module, _, name = str(entry).partition(":")
    return getattr(importlib.import_module(module), name)


def accepts_device(env_id: str) -> bool:
    """Whether ``env_id``'s class takes a ``device`` keyword: as a parameter of its own, or,
    for a class that takes ``**kwargs`` and checks them with its module's ``make_config``, as
    a field of the config dataclass that function returns (DynamicPTQ, DistillSource)."""
    cls = _entry_class(env_id)
    params = inspect.signature(cls).parameters
    if "device" in params:
        return True
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return False
    make_config = getattr(importlib.import_module(cls.__module__), "make_config", None)
    if make_config is None:
        return False
    config = typing.get_type_hints(make_config).get("return")
    return dataclasses.is_dataclass(config) and "device" in {f.name for f in
                                                             dataclasses.fields(config)}


def same_device(a: str, b: str) -> bool:
    """``cuda`` and ``cuda:<current>`` are the same device; otherwise compare as written."""
    da, db = torch.device(a), torch.device(b)
    if da.type != db.type:
        return False
    if da.type != "cuda" or da.index == db.index:
        return da.index == db.index
    current = torch.cuda.current_device()
    return (da.index if da.index is not None else current) == (
        db.index if db.index is not None else current)


def place_env(env_id: str, env_kwargs: dict[str, Any], device: str | None = "auto"
              ) -> tuple[str, dict[str, Any]]:
    """``(device, env_kwargs)``: the resolved device of the run and the env kwargs that put
    the env's networks on it (``device=`` added when the env takes one).

    ``device`` ``auto`` (or ``None``) follows a ``device`` already in ``env_kwargs``; an explicit
    device that differs from it raises ``ValueError`` naming both. Unknown or absent devices
    raise :class:`models.device.DeviceError` (a ``ValueError``).
    """
    flag = "auto" if device is None else str(device)
    given = env_kwargs.get("device")
    if given is not None:
        in_kwargs = resolve_device(str(given))
        if flag.strip().lower() != "auto" and not same_device(resolve_device(flag), in_kwargs):
            raise DeviceError(f"--device {flag} contradicts --env-kwargs device:{given}; the "
                              f"agent and the env's networks run on one device: drop one of "
                              f"them or make them equal")
        resolved = in_kwargs
    else:
        resolved = resolve_device(flag)
    if not accepts_device(env_id):
        return resolved, dict(env_kwargs)
    return resolved, {**env_kwargs, "device": resolved}


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
    own: dict[str, Any] = field(default_factory=dict)
    """``--net``/``--weights``/``--data`` with their sha256 (:func:`models.nets.user.own_parts`)"""


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
    own = own_env_parts(args, opts["env"], vec_env, run, device)
    make_kwargs.update({k: getattr(own, "module" if k == "net" else k)
                        for k in ("net", "data") if k in own.record})
    return TrainOptions(algo=opts["algo"], env=opts["env"], env_kwargs=opts["env_kwargs"],
                        vec_env=vec_env, n_envs=n_envs, n_timesteps=n_timesteps,
                        hyperparams=hp, algo_kwargs=algo_kwargs,
                        policy=run_cfg.get("policy", "MlpPolicy"), device=device,
                        env_make_kwargs=make_kwargs, run=run, overrides=overrides,
                        own=own.record)


def own_env_parts(args: Any, env_id: str, vec_env: str, run: dict[str, Any] | None,
                  device: str) -> Any:
    """``--net``/``--weights``/``--data`` read (:func:`models.nets.user.own_parts`): for
    DynamicPTQ ids, with the batched or dummy vec env (the objects cannot be sent to
    subprocesses); a run trained on them must be given them again."""
    from envs.registry import family_of
    from models.nets.user import own_parts

    own = own_parts(getattr(args, "net", None), getattr(args, "weights", None),
                    getattr(args, "data", None), device)
    missing = sorted(k for k in ("net", "data") if (run or {}).get("own", {}).get(k)
                     and k not in own.record)
    if missing:
        raise ValueError(f"the run was trained on your own {' and '.join(missing)}: pass "
                         f"{' '.join('--' + k for k in missing)} again")
    if own.record and family_of(env_id) != "DynamicPTQ":
        raise ValueError(f"--net, --weights and --data are for DynamicPTQ ids, not {env_id}")
    if own.record and vec_env == "subproc":
        raise ValueError("--net/--data run in this process: use --vec-env batched or dummy")
    return own


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
