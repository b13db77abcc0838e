"""The options of the DynamicPTQ environments, checked once, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.options import check_choice, split_options
from models.quant import FP_BITS, QUANT_BITS, VALID_BITS, check_zero_point

ACTION_MODES = ("sequential", "joint", "continuous", "menu")
OBSERVATIONS = ("stats", "image", "probe", "query")
REWARDS = ("detrimental", "robust")
SPLITS = ("train", "val", "test")
BUDGET_COSTS = ("mean", "macs")
DEFAULT_BITS = QUANT_BITS  # 2..8


@dataclass
class PTQConfig:
    """Every option of :class:`envs.ptq.DynamicPTQEnv` (see its docstring for meanings)."""

    dataset: str = "fashion-mnist"
    arch: str = "cnn"
    split: str = "train"
    action_mode: str = "sequential"
    reward: str = "detrimental"
    observation: str = "stats"         # what the agent sees beyond the FP statistics
    # observation="query": how many plans per input (0: L), or the plans [K, L] themselves
    query_plans: int | tuple[tuple[int, ...], ...] = 0
    dense: bool = True
    bit_choices: tuple[int, ...] = DEFAULT_BITS
    budget_bits: float = 4.0
    budget_cost: str | None = None      # None: "mean" for detrimental, "macs" for robust
    kl_weight: float = 0.25
    drop_weight: float = 0.25
    kl_clip: float = 5.0
    bits_weight: float = 0.1
    per_channel: bool = False
    weight_bits: int | None = None
    zero_point: str = "integer"        # the activation grid convention (models.quant.fake)
    fused_quant: bool | None = None    # None: fused when a C++ compiler is available
    prefix_reuse: bool = True
    device: str = "cpu"
    cache_dir: str | None = None
    progress: bool = True
    render_mode: str | None = None
    model_cfg: dict[str, Any] = field(default_factory=dict)

    @property
    def budget_kind(self) -> str:
        """``'min'``: weighted mean bits ≥ budget (detrimental); ``'max'``: ≤ budget (robust)."""
        return "min" if self.reward == "detrimental" else "max"


def make_config(kwargs: dict[str, Any], *, has_net: bool) -> PTQConfig:
    """Split ``kwargs`` into environment options and model-config options, and check them.

    Unknown names raise ``TypeError`` listing the valid ones; contradictory values raise
    ``ValueError`` saying which options disagree.
    """
    env_kw, model_kw = split_options(kwargs, PTQConfig, env="DynamicPTQ", nested="model_cfg",
                                     role="network", object_arg="net", has_object=has_net)
    cfg = PTQConfig(**env_kw, model_cfg=model_kw)
    check_choice("split", cfg.split, SPLITS)
    check_choice("action_mode", cfg.action_mode, ACTION_MODES)
    check_choice("reward", cfg.reward, REWARDS)
    check_choice("observation", cfg.observation, OBSERVATIONS)
    cfg.query_plans = _query_plans(cfg.query_plans)
    if cfg.action_mode == "menu" and cfg.observation != "query":
        raise ValueError("action_mode='menu' picks one of the query plans per input: it needs "
                         f"observation='query' (query_plans= sets the menu), got "
                         f"observation={cfg.observation!r}")
    check_choice("render_mode", cfg.render_mode, (None, "rgb_array"))
    if cfg.budget_cost is None:
        cfg.budget_cost = "mean" if cfg.reward == "detrimental" else "macs"
    check_choice("budget_cost", cfg.budget_cost, BUDGET_COSTS)
    try:
        bits = tuple(sorted({int(b) for b in cfg.bit_choices}))
    except (TypeError, ValueError) as e:
        raise TypeError(f"bit_choices must be a sequence of ints, got {cfg.bit_choices!r}") from e
    if len(bits) < 2 or any(b not in VALID_BITS for b in bits) or len(bits) != len(cfg.bit_choices):
        raise ValueError(f"bit_choices must be ≥ 2 distinct values from {QUANT_BITS} or "
                         f"{FP_BITS} (full precision), got {cfg.bit_choices!r}")
    cfg.bit_choices = bits
    cfg.budget_bits = float(cfg.budget_bits)
    if not bits[0] <= cfg.budget_bits <= bits[-1]:
        kind = ("minimum mean bits, reward='detrimental'" if cfg.budget_kind == "min"
                else "maximum mean bits, reward='robust'")
        raise ValueError(f"budget_bits={cfg.budget_bits} ({kind}) must lie between the smallest "
                         f"and largest bit choice, {bits[0]}..{bits[-1]}")
    for name in ("kl_weight", "drop_weight", "bits_weight"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be ≥ 0, got {getattr(cfg, name)}")
    if cfg.kl_clip <= 0:
        raise ValueError(f"kl_clip must be > 0, got {cfg.kl_clip}")
    if cfg.weight_bits is not None and cfg.weight_bits not in QUANT_BITS:
        raise ValueError(f"weight_bits must be None or one of {QUANT_BITS}, got {cfg.weight_bits}")
    check_zero_point(cfg.zero_point)
    return cfg


def _query_plans(value: Any) -> int | tuple[tuple[int, ...], ...]:
    """``query_plans`` as an int ≥ 0 or a non-empty tuple of equal-length int rows."""
    if isinstance(value, str) and value.strip().isdigit():  # from a command line
        return int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)

    def exact(b: Any) -> int:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer, float)) or b != int(b):
            raise ValueError(b)
        return int(b)

    try:
        rows = tuple(tuple(exact(b) for b in row) for row in value)
    except (TypeError, ValueError):
        rows = ()
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError("query_plans must be an int ≥ 0 (0: one per layer) or a list of plans "
                         f"of equal length (bit-widths per layer), got {value!r}")
    return rows
