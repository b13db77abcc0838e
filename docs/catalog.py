"""The environment families and their registered ids, read from the Gymnasium registry.

Every id of :data:`envs.ALL_IDS` gets a one-line action / observation / reward summary from
its family's describer below; an id whose family has no describer raises ``KeyError``, so the
docs build (and the README check) fail until the new id is documented.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any

import gymnasium as gym

import envs

# family name -> (config dataclass holding the options of an env taking **kwargs, or None)
CONFIGS = {"DynamicPTQ": "envs.ptq.config:PTQConfig",
           "DistillSource": "envs.distill_source.config:DistillSourceConfig",
           "SensorPlacement": None}
PAPERS = {"DynamicPTQ": "P1 (arXiv:2510.02457)",
          "DistillSource": "P2 (arXiv:2411.12817) and P4 (arXiv:2310.13782)",
          "SensorPlacement": "P3 (arXiv:2408.12531) on Voronoi-CNN (arXiv:2101.00554)"}


@dataclass(frozen=True)
class Family:
    """One environment class and the ids registered for it."""

    name: str
    entry_point: str
    ids: tuple[str, ...]

    @property
    def env_class(self) -> type:
        module, cls = self.entry_point.split(":")
        return getattr(importlib.import_module(module), cls)

    @property
    def slug(self) -> str:
        return self.name.lower()


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def families() -> list[Family]:
    """The families in registry order (one per entry point)."""
    by_entry: dict[str, list[str]] = {}
    for env_id in envs.ALL_IDS:
        by_entry.setdefault(gym.spec(env_id).entry_point, []).append(env_id)
    return [Family(ep.split(":")[1].removesuffix("Env"), ep, tuple(ids))
            for ep, ids in by_entry.items()]


def defaults(family: Family) -> dict[str, Any]:
    """The class's default options (its config dataclass or its ``__init__`` signature)."""
    ref = CONFIGS.get(family.name)
    if ref:
        cfg = _load(ref)
        assert is_dataclass(cfg)
        return {f.name: f.default for f in fields(cfg) if f.default is not MISSING}
    sig = inspect.signature(family.env_class.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty}


def options(env_id: str) -> dict[str, Any]:
    """The options the id sets (its registered kwargs)."""
    return dict(gym.spec(env_id).kwargs)


def _ptq(o: dict[str, Any]) -> tuple[str, str, str]:
    n = len(o["bit_choices"])
    bits = f"{min(o['bit_choices'])}..{max(o['bit_choices'])}"
    action = {"sequential": f"`Discrete({n})`: bits ({bits}) of the next layer, one layer a step",
              "joint": f"`MultiDiscrete([{n}]·L)`: bits of every layer in one step",
              "continuous": "`Box(-1, 1, (L,))`: every layer's bits, binned"}[o["action_mode"]]
    obs = ("`Box(4+L+5)`: this layer's activation stats, budget, FP confidence"
           if o["action_mode"] == "sequential" else
           "`Box(3L+2)`: FP activation stats per layer, FP confidence")
    if o["reward"] == "robust":
        reward = (f"Q correct − FP correct − bit cost; MAC-weighted bits ≤ {o['budget_bits']:g}")
    else:
        shaping = " + KL and p(y) drop shaping" if o["dense"] else " (sparse)"
        reward = f"1 if FP right and quantized wrong{shaping}; mean bits ≥ {o['budget_bits']:g}"
    return action, obs, reward


def _distill(o: dict[str, Any]) -> tuple[str, str, str]:
    s = len(o["sources"])
    extra = int(o["control_augment"]) + int(o["control_attack"])
    if o["action_mode"] == "mixture":
        action = f"`Box(-1, 1, ({s + extra},))`: mixture weights over {s} transfer sets"
    elif extra:
        dims = [str(s)] + ["3"] * o["control_augment"] + ["2"] * o["control_attack"]
        action = f"`MultiDiscrete([{', '.join(dims)}])`: source, augmentation, attack"
    else:
        action = f"`Discrete({s})`: transfer set of the next phase"
    obs = (f"`Box(4+C+{5 * s}{'+2' if extra else ''})`: probe agreement per class, "
           "per-source stats")
    if o["probe"] == "sources":
        reward = "gain in class-balanced agreement on a held-out source mix (data-free)"
    else:
        reward = "gain in agreement with the teacher on target images"
    if o.get("mixup_alpha"):
        reward += "; mixup on"
    return action, obs, reward


def _sensors(o: dict[str, Any]) -> tuple[str, str, str]:
    field = {"cylinder": "cylinder wake", "coads-sst": "COADS SST",
             "navy-uwnd": "navy zonal wind"}.get(o["dataset"], o["dataset"])
    action = f"`Discrete(H·W)`: cell of the next of {o['n_sensors']} sensors, {field}"
    obs = "`Box(0, 1, (2·H·W+1,))`: sensor map, error map"
    scorer = "gappy POD" if o["estimator"] == "gappy_pod" else "Voronoi-CNN"
    reward = f"drop of {scorer}'s relative L2 error / mean-field error"
    return action, obs, reward


DESCRIBERS = {"DynamicPTQ": _ptq, "DistillSource": _distill, "SensorPlacement": _sensors}


def id_row(family: Family, env_id: str) -> tuple[str, str, str]:
    """Action, observation and reward of ``env_id`` in one line each."""
    if family.name not in DESCRIBERS:
        raise KeyError(f"no docs describer for the {family.name} family ({env_id}): add one "
                       f"to docs/catalog.py")
    return DESCRIBERS[family.name]({**defaults(family), **options(env_id)})


def id_table(link_prefix: str | None = None) -> str:
    """The Markdown table of every registered id (the README's and the index's)."""
    lines = ["| id | action | observation | reward |", "|---|---|---|---|"]
    for fam in families():
        for env_id in fam.ids:
            name = f"`{env_id}`"
            if link_prefix is not None:
                name = f"[{name}]({link_prefix}{fam.slug}.md)"
            lines.append(f"| {name} | " + " | ".join(id_row(fam, env_id)) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(id_table(), end="")
