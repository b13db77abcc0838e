"""Per-env hyperparameters in rl-baselines3-zoo's YAML format, and ``key:value`` CLI overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from models.cli import parse_kv, read_yaml  # noqa: F401  (re-exported: key:value overrides)
from models.readers import read_yaml_file

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"
# Keys of a zoo entry that are not constructor arguments of the algorithm.
RUN_KEYS = ("n_timesteps", "policy", "n_envs", "vec_env")
# Zoo keys agents.train does not implement: refused with the reason instead of dropped.
UNSUPPORTED_KEYS = {
    "normalize": "observations are already scaled features and rewards are bounded; "
                 "VecNormalize statistics would also need a pickle-free format",
    "frame_stack": "observations are not frames (the DynamicPTQ sequential observation already "
                   "carries the bits chosen so far)",
    "env_wrapper": "arbitrary wrapper imports from a YAML file are not executed; wrap the env "
                   "in code (gymnasium.make + wrappers) instead",
    "callback": "callbacks from a YAML file are not executed",
}
# Algorithm arguments that may be zoo schedules ("lin_3e-4" = linear decay from 3e-4 to 0).
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
ACTIVATIONS = {"nn.ReLU": nn.ReLU, "nn.Tanh": nn.Tanh, "nn.ELU": nn.ELU, "nn.GELU": nn.GELU}


def load_hyperparams(algo: str, env_id: str, path: str | Path | None = None,
                     overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The zoo entry for ``env_id`` (else ``default``) from ``<algo>.yml``, then ``overrides``."""
    file = Path(path) if path else HYPERPARAMS_DIR / f"{algo}.yml"
    if not file.exists():
        raise FileNotFoundError(f"no hyperparameter file {file}; write one in rl-zoo format")
    table = read_yaml_file(file) or {}
    if not isinstance(table, dict):
        raise ValueError(f"{file}: expected a mapping of env id (or 'default') to "
                         f"hyperparameters; correct the file")
    if env_id in table:
        hp = dict(table[env_id])
    elif "default" in table:
        hp = dict(table["default"])
    else:
        raise KeyError(f"{file} has no entry for {env_id!r} and no 'default' entry")
    hp.update(overrides or {})
    pk = hp.get("policy_kwargs")
    if isinstance(pk, str):
        raise ValueError("policy_kwargs must be a YAML mapping here (e.g. {net_arch: [64, 64]}), "
                         "not a Python expression string")
    if isinstance(pk, dict) and isinstance(pk.get("activation_fn"), str):
        name = pk["activation_fn"]
        if name not in ACTIVATIONS:
            raise ValueError(f"activation_fn {name!r} unknown; choose one of {sorted(ACTIVATIONS)}")
        pk = {**pk, "activation_fn": ACTIVATIONS[name]}
        hp["policy_kwargs"] = pk
    return hp


def linear_schedule(initial: float) -> Callable[[float], float]:
    """SB3 schedule decaying linearly from ``initial`` (progress 1) to 0 (progress 0)."""
    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial
    return schedule


def _schedule(key: str, value: Any) -> Any:
    """A zoo ``lin_<float>`` string as a linear schedule; other values unchanged."""
    if not (isinstance(value, str) and value.startswith("lin_")):
        return value
    try:
        return linear_schedule(float(value.removeprefix("lin_")))
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not a zoo schedule; write lin_<number>, "
                         f"e.g. lin_3e-4") from None


def split_hyperparams(hp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(run settings, algorithm kwargs)``; zoo schedules become callables; zoo keys that are
    not implemented raise ``ValueError`` naming the key and why."""
    bad = sorted(set(hp) & set(UNSUPPORTED_KEYS))
    if bad:
        raise ValueError("unsupported hyperparameter " + "; ".join(
            f"{k!r}: {UNSUPPORTED_KEYS[k]}" for k in bad) + ". Remove it from the YAML entry.")
    run = {k: hp[k] for k in RUN_KEYS if k in hp}
    algo = {k: _schedule(k, v) if k in SCHEDULE_KEYS else v
            for k, v in hp.items() if k not in RUN_KEYS}
    return run, algo
