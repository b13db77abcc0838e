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

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC,
                                         "td3": TD3, "maskable_ppo": MaskablePPO}
POLICY_FILE, META_FILE = "policy.pt", "policy.json"
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


_CLASS_MODULES = ("torch.nn", "torch.optim")  # classes a policy.json may name


def _policy_kwargs_json(kw: dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` as JSON; classes (activation, optimizer) become ``{"class": path}``."""
    def enc(v: Any) -> Any:
        if isinstance(v, type):
            return {"class": f"{v.__module__}.{v.__qualname__}"}
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        return v
    return json.loads(json.dumps(enc(kw)))


def _policy_kwargs_from_json(kw: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_policy_kwargs_json`, importing only torch.nn / torch.optim
    classes (a JSON file must not choose what code runs)."""
    def dec(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"class"}:
            module, _, name = v["class"].rpartition(".")
            if not module.startswith(_CLASS_MODULES):
                raise ValueError(f"{META_FILE} names the class {v['class']!r}; only torch.nn "
                                 f"and torch.optim classes are allowed")
            return getattr(importlib.import_module(module), name)
        if isinstance(v, dict):
            return {k: dec(x) for k, x in v.items()}
        return v
    return dec(kw)


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
    return folder, json.loads(meta_path.read_text())


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
    if meta.get("algo") not in ALGOS:
        raise ValueError(f"{folder / META_FILE}: unknown algo {meta.get('algo')!r}")
    if file_digest(folder / POLICY_FILE) != meta["sha256"]:
        raise ValueError(f"{folder / POLICY_FILE} does not match the sha256 in {META_FILE}; "
                         f"the file is corrupt or was replaced")
    for key in ("observation_space", "action_space"):
        have = describe_space(getattr(env, key))
        if have != meta[key]:
            raise ValueError(f"the env's {key} {have} differs from the saved agent's "
                             f"{meta[key]}; use the env id and --env-kwargs it was trained with")
    kwargs = dict(algo_kwargs or {})
    kwargs.pop("policy_kwargs", None)  # the saved weights fix the architecture
    model = ALGOS[meta["algo"]]("MlpPolicy", env, device=device,
                                policy_kwargs=_policy_kwargs_from_json(meta["policy_kwargs"]),
                                **kwargs)
    state = torch.load(folder / POLICY_FILE, map_location=model.device, weights_only=True)
    for name, sd in state["state_dicts"].items():
        _attr(model, name).load_state_dict(sd)
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
