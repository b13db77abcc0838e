"""Pickle-free agents: every torch state of an SB3 model in ``policy.pt`` (loaded with
``torch.load(weights_only=True)``) and what is needed to rebuild it in ``policy.json``.

An SB3 ``.zip`` stores its data section with cloudpickle, so loading one from elsewhere can run
code; this format cannot. :func:`save_policy` writes the same torch states SB3 itself saves
(``model._get_torch_save_params()``: the policy, its optimizers, e.g. SAC's entropy
coefficient); :func:`load_policy` rebuilds the algorithm around an env with the same spaces and
loads them. A ``.zip`` is still accepted, but only when the caller says it trusts the file.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from models.cache import file_digest
from models.io import atomic_torch_save, atomic_write_json
from models.readers import bad_file, check_digest, load_weights, read_json, read_torch

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC,
                                         "td3": TD3, "maskable_ppo": MaskablePPO}
POLICY_FILE, META_FILE = "policy.pt", "policy.json"
META_KEYS = ("algo", "policy_kwargs", "num_timesteps", "observation_space", "action_space",
             "sha256")
ZIP_WARNING = ("an SB3 .zip unpickles its data section and can run code: pass --trust-zip only "
               "for files you made or trust, or give the run folder (policy.json) instead")


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a space, enough to check that an env matches a saved agent."""
    out: dict[str, Any] = {"type": type(space).__name__, "shape": list(space.shape or ())}
    if isinstance(space, gym.spaces.Discrete):
        out["n"] = int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        out["nvec"] = [int(v) for v in space.nvec]
    return out


# The arguments a policy.json may give a class, with the package it must come from (exactly,
# or a dot-bounded submodule) and the base class it must subclass.
_CLASS_ARGS = {"activation_fn": ("torch.nn", torch.nn.Module),
               "optimizer_class": ("torch.optim", torch.optim.Optimizer)}
# Constructor arguments of the SB3 policies that a policy.json may set.
POLICY_KWARGS = frozenset({
    "activation_fn", "clip_mean", "full_std", "log_std_init", "n_critics", "net_arch",
    "normalize_images", "optimizer_class", "optimizer_kwargs", "ortho_init",
    "share_features_extractor", "squash_output", "use_expln", "use_sde"})


def _policy_kwargs_json(kw: dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` as JSON; classes (activation, optimizer) become ``{"class": path}``."""
    def enc(v: Any) -> Any:
        if isinstance(v, type):
            return {"class": f"{v.__module__}.{v.__qualname__}"}
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        return v
    return json.loads(json.dumps(enc(kw)))


def _allowed_class(key: str, dotted: Any, source: Path) -> type:
    """The class ``dotted`` names for the argument ``key``, if it is allowed there (see
    :data:`_CLASS_ARGS`: ``torch.nn_evil`` is not ``torch.nn``, a module is not a class)."""
    allowed = ", ".join(f"{k}: a {pkg} class" for k, (pkg, _) in _CLASS_ARGS.items())
    refuse = bad_file(source, f"names {dotted!r} for {key}; only {allowed} may be named",
                      "re-create the agent")
    if key not in _CLASS_ARGS or not isinstance(dotted, str):
        raise refuse
    package, base = _CLASS_ARGS[key]
    module, _, name = dotted.rpartition(".")
    if not (module == package or module.startswith(package + ".")) \
            or not name.isidentifier() or name.startswith("_"):
        raise refuse
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise refuse from None
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise refuse
    return obj


def _policy_kwargs_from_json(kw: Any, source: Path = Path(META_FILE)) -> dict[str, Any]:
    """The inverse of :func:`_policy_kwargs_json`: known policy arguments only, classes only
    where :data:`_CLASS_ARGS` allows them (a JSON file must not choose what code runs)."""
    if not isinstance(kw, dict):
        raise bad_file(source, "policy_kwargs is not a mapping", "re-create the agent")
    unknown = sorted(set(kw) - POLICY_KWARGS)
    if unknown:
        raise bad_file(source, f"sets unknown policy arguments {unknown}; known: "
                               f"{sorted(POLICY_KWARGS)}", "re-create the agent")

    def dec(key: str, v: Any) -> Any:
        if isinstance(v, dict) and "class" in v:
            if set(v) != {"class"}:
                raise bad_file(source, f"has a malformed class entry {v!r}", "re-create the agent")
            return _allowed_class(key, v["class"], source)
        if isinstance(v, dict):
            return {k: dec(k, x) for k, x in v.items()}
        if isinstance(v, list):
            return [dec(key, x) for x in v]
        return v
    return {k: dec(k, v) for k, v in kw.items()}


def _attr(model: BaseAlgorithm, dotted: str) -> Any:
    obj = model
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def save_policy(model: BaseAlgorithm, algo: str, folder: str | Path) -> Path:
    """Write ``folder/policy.pt`` and ``folder/policy.json`` (atomically); returns the JSON."""
    folder = Path(folder)
    state_dicts, torch_vars = model._get_torch_save_params()
    states = {name: _attr(model, name).state_dict() for name in state_dicts}
    tensors = {name: _attr(model, name) for name in torch_vars}
    atomic_torch_save({"state_dicts": states, "tensors": tensors}, folder / POLICY_FILE)
    meta = {"format": 1, "algo": algo, "policy": type(model.policy).__name__,
            "policy_kwargs": _policy_kwargs_json(model.policy_kwargs),
            "num_timesteps": int(model.num_timesteps),
            "observation_space": describe_space(model.observation_space),
            "action_space": describe_space(model.action_space),
            "sha256": file_digest(folder / POLICY_FILE)}
    atomic_write_json(meta, folder / META_FILE)
    return folder / META_FILE


def policy_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(folder, policy.json)`` of a run folder, a checkpoint folder or a ``policy.json``."""
    p = Path(path)
    folder = p.parent if p.name == META_FILE else p
    meta_path = folder / META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{path}: no {META_FILE} (a folder written by agents.train, or "
                                f"its {META_FILE})")
    return folder, read_json(meta_path, "re-create the agent (or train it again)",
                             keys=META_KEYS, kind="saved agent record")


def load_policy(path: str | Path, env: Any, device: str = "auto",
                algo_kwargs: dict[str, Any] | None = None) -> BaseAlgorithm:
    """Rebuild the saved agent around ``env`` (whose spaces must match) and load its states.

    Args:
        path: a folder with ``policy.json`` / ``policy.pt``, or the ``policy.json``.
        env: a Gymnasium env or SB3 VecEnv with the spaces the agent was trained on.
        algo_kwargs: hyperparameters for continued training (``None``: SB3 defaults, enough
            for evaluation).
    """
    folder, meta = policy_meta(path)
    fix = "re-create the agent (or train it again)"
    if meta.get("algo") not in ALGOS:
        raise bad_file(folder / META_FILE, f"unknown algo {meta.get('algo')!r}; known: "
                                           f"{sorted(ALGOS)}", fix)
    check_digest(folder / POLICY_FILE, meta["sha256"], folder / META_FILE, fix)
    for key in ("observation_space", "action_space"):
        have = describe_space(getattr(env, key))
        if have != meta[key]:
            raise ValueError(f"the env's {key} {have} differs from the saved agent's "
                             f"{meta[key]}; use the env id and --env-kwargs it was trained with")
    kwargs = dict(algo_kwargs or {})
    kwargs.pop("policy_kwargs", None)  # the saved weights fix the architecture
    policy_kwargs = _policy_kwargs_from_json(meta["policy_kwargs"], folder / META_FILE)
    model = ALGOS[meta["algo"]]("MlpPolicy", env, device=device, policy_kwargs=policy_kwargs,
                                **kwargs)
    state = read_torch(folder / POLICY_FILE, fix, keys=("state_dicts", "tensors"),
                       kind="saved agent", map_location=model.device)
    own_states, own_tensors = model._get_torch_save_params()
    unknown = sorted(set(state["state_dicts"]) - set(own_states)
                     | set(state["tensors"]) - set(own_tensors))
    if unknown:
        raise bad_file(folder / POLICY_FILE, f"holds states {unknown} that a {meta['algo']} "
                                             f"agent does not have", fix)
    for name, sd in state["state_dicts"].items():
        load_weights(_attr(model, name), sd, folder / POLICY_FILE, fix)
    for name, tensor in state["tensors"].items():
        with torch.no_grad():
            _attr(model, name).copy_(tensor)
    model.num_timesteps = int(meta["num_timesteps"])
    return model


def run_folder_of(path: str | Path) -> Path:
    """The run folder an agent file or folder belongs to (``best/``, ``checkpoints/latest/``,
    ``model.zip``, ``policy.json`` → the folder of ``run.json``)."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    while folder.name in ("checkpoints", "latest", "best") and folder != folder.parent:
        folder = folder.parent
    return folder


def is_zip(path: str | Path) -> bool:
    return str(path).endswith(".zip")


def check_trusted(path: str | Path, trust_zip: bool) -> None:
    """``ValueError`` for a ``.zip`` unless ``trust_zip``; ``FileNotFoundError`` if absent."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if is_zip(path) and not trust_zip:
        raise ValueError(f"{path}: {ZIP_WARNING}")
