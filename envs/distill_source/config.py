"""The options of the DistillSource environments, checked once, with clear errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from envs.options import check_choice, split_options

ACTION_MODES = ("discrete", "mixture")
PROBES = ("target", "sources")
REWARDS = ("agreement", "balanced_agreement", "accuracy")
AUGMENT_LEVELS = ("none", "standard", "heavy")
# The data-free transfer sets of P2/P4 that work for any teacher (no dataset files needed).
DEFAULT_SOURCES = ("digits", "photos", "opengl", "leaves", "fractals", "noise")


@dataclass
class DistillSourceConfig:
    """Every option of :class:`envs.distill_source.env.DistillSourceEnv` (see its docstring)."""

    dataset: str = "fashion-mnist"
    teacher_arch: str = "cnn"
    sources: tuple[str, ...] = DEFAULT_SOURCES
    probe: str = "target"
    reward: str | None = None   # None: "agreement" (target probe), "balanced_agreement" (sources)
    reward_scale: float = 10.0
    compute_cost: float = 0.0   # reward lost per second of image generation (envs.distill_source.costs)
    source_cost_ms: dict[str, float] | None = None  # override the measured ms per image
    action_mode: str = "discrete"
    control_augment: bool = False
    control_attack: bool = False
    augment: str = "heavy"  # P2's synthetic-data policy (see kd_source_plateau.json)
    attack: bool = False
    mixup_alpha: float = 0.0
    phases: int = 10
    updates_per_phase: int = 300
    batch_size: int = 64
    lr: float = 0.01
    temperature: float = 4.0
    student_arch: str = "cnn"
    student_width: int = 12   # the kd_sources student, ~41k parameters
    student_depth: int = 2
    pool_size: int = 4096
    probe_size: int = 512
    stats_size: int = 32
    eval_size: int = 2000
    eval_every_phase: bool = False
    record_timings: bool = False   # wall-clock times in info (not deterministic)
    attack_images: int = 128
    balanced: bool = True
    pool_seed: int = 0
    gain_decay: float = 0.5
    device: str = "cpu"
    threads: int = 1   # a tiny student: 2 threads made an update ~30× slower on a busy 2-core machine
    cache_dir: str | None = None
    progress: bool = True
    render_mode: str | None = None
    teacher_sha256: str | None = "pinned"  # "pinned", None (any teacher) or a weights sha256
    teacher_cfg: dict[str, Any] = field(default_factory=dict)

    @property
    def n_sources(self) -> int:
        return len(self.sources)


def _positive_int(cfg: DistillSourceConfig, name: str, minimum: int = 1) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or v < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {v!r}")
    setattr(cfg, name, int(v))


def _sources(value: Any) -> tuple[str, ...]:
    from distill.sources import list_sources

    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    try:
        names = tuple(str(s) for s in value)
    except TypeError as e:
        raise TypeError(f"sources must be a list of source names, got {value!r}") from e
    valid = list_sources()
    bad = [s for s in names if s not in valid]
    if bad:
        raise ValueError(f"unknown source(s) {bad}; valid names: {', '.join(valid)} "
                         f"(mixtures are the agent's job: list the members separately)")
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"sources must be ≥ 2 distinct names, got {list(names)}")
    return names


def make_config(kwargs: dict[str, Any], *, has_teacher: bool) -> DistillSourceConfig:
    """Split ``kwargs`` into environment options and teacher options, and check them.

    Unknown names raise ``TypeError`` listing the valid ones; bad values raise ``ValueError``
    naming the option and what it accepts.
    """
    env_kw, teacher_kw = split_options(kwargs, DistillSourceConfig, env="DistillSource",
                                       nested="teacher_cfg", role="teacher", object_arg="teacher",
                                       has_object=has_teacher)
    cfg = DistillSourceConfig(**env_kw, teacher_cfg=teacher_kw)
    cfg.sources = _sources(cfg.sources)
    check_choice("probe", cfg.probe, PROBES)
    if cfg.reward is None:
        cfg.reward = "agreement" if cfg.probe == "target" else "balanced_agreement"
    check_choice("reward", cfg.reward, REWARDS)
    check_choice("action_mode", cfg.action_mode, ACTION_MODES)
    check_choice("augment", cfg.augment, AUGMENT_LEVELS)
    check_choice("render_mode", cfg.render_mode, (None, "rgb_array"))
    if cfg.reward == "accuracy" and cfg.probe != "target":
        raise ValueError("reward='accuracy' needs labelled target data: use probe='target', or "
                         "reward='agreement' for the data-free setting (probe='sources')")
    if cfg.probe == "sources" and "target" in cfg.sources:
        raise ValueError("probe='sources' is the data-free setting, but 'target' is among the "
                         "sources; remove it or use probe='target'")
    if isinstance(cfg.threads, bool) or not isinstance(cfg.threads, int) or cfg.threads < 0:
        raise ValueError(f"threads must be an integer ≥ 0 (0: leave torch's setting), got "
                         f"{cfg.threads!r}")
    for name in ("phases", "updates_per_phase", "batch_size", "pool_size", "probe_size",
                 "stats_size", "eval_size", "attack_images", "student_width", "student_depth"):
        _positive_int(cfg, name)
    if cfg.probe_size < cfg.n_sources and cfg.probe == "sources":
        raise ValueError(f"probe_size={cfg.probe_size} must be ≥ the number of sources "
                         f"({cfg.n_sources}) for the data-free probe")
    cfg.stats_size = min(cfg.stats_size, cfg.pool_size)
    for name in ("lr", "temperature", "reward_scale"):
        v = getattr(cfg, name)
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    if not (isinstance(cfg.compute_cost, int | float) and math.isfinite(cfg.compute_cost)
            and cfg.compute_cost >= 0):
        raise ValueError(f"compute_cost must be a finite number ≥ 0 (reward per second of "
                         f"image generation), got {cfg.compute_cost!r}")
    if cfg.source_cost_ms is not None and not isinstance(cfg.source_cost_ms, dict):
        raise TypeError(f"source_cost_ms must be a dict of source name → ms per image, got "
                        f"{cfg.source_cost_ms!r}")
    if not (0 <= cfg.gain_decay < 1):
        raise ValueError(f"gain_decay must be in [0, 1), got {cfg.gain_decay}")
    if not (cfg.mixup_alpha >= 0):
        raise ValueError(f"mixup_alpha must be ≥ 0, got {cfg.mixup_alpha}")
    t = cfg.teacher_sha256
    if not (t is None or t == "pinned" or (isinstance(t, str) and len(t) == 64
                                           and all(c in "0123456789abcdef" for c in t))):
        raise ValueError(f"teacher_sha256 must be 'pinned', None or a 64-digit hex sha256 of the "
                         f"teacher's weights, got {t!r}")
    cfg.sources = tuple(cfg.sources)
    return cfg
