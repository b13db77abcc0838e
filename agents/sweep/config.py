"""Sweep files: a grid and/or random search over a trainer's or benchmark's options, plus seeds.

A sweep file is YAML::

    name: bn-digits                 # sweep folder: runs/sweeps/<name> (or --out)
    target: models.train            # agents.train | models.train | distill.train | fields.train
                                    # | benchmark:NAME (benchmarks/NAME.py)
    options: {dataset: digits, epochs: 2}       # fixed options of every trial (flag names)
    grid: {bn: [standard, revisited]}           # cartesian product → conditions
    # or a list of blocks, each a product with its own seeds (default: the top-level seeds):
    # grid: [{epochs: [3, 30], bn: [standard, revisited]}, {epochs: [30], seeds: [5, 6]}]
    random:                                     # optional: N draws, crossed with the grid
      samples: 4
      seed: 0
      params:
        lr: {loguniform: [0.001, 0.1]}          # also uniform, randint [lo, hi), choice
        width: {choice: [4, 8]}
    seeds: [0, 1, 2]                # or N for 0..N-1; trials of one seed are paired
    metrics: [test_acc]             # summarised in the table (default: every numeric metric)
    baseline: {bn: standard}        # paired tests of each condition against this one
    resources: {cpus: 1, gpus: 0}   # per trial; gpus may be a fraction (0.5 → two per GPU)
    max_concurrent: 2               # local engine: default = CPUs of the machine / cpus
    retries: 2                      # a failed trial is re-run from its last checkpoint

Option values become flags: ``train-subset: 300`` → ``--train-subset 300``; ``true`` →
``--flag``, ``false`` → ``--no-flag``; a list → several values; a mapping → ``key:value``
pairs (``env-kwargs: {dataset: digits}`` → ``--env-kwargs dataset:digits``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.readers import read_yaml_file

TRAINERS = ("agents.train", "models.train", "distill.train", "fields.train")
KNOWN_KEYS = {"name", "target", "options", "grid", "random", "seeds", "metrics", "baseline",
              "resources", "max_concurrent", "retries", "seed_flag", "description"}
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
BENCHMARK_NAME = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*")  # benchmarks/<NAME>.py


class SweepConfigError(ValueError):
    """A sweep file is malformed; the message names the key and the fix."""


@dataclass(frozen=True)
class Trial:
    """One run: a condition (its options) and a seed."""

    trial_id: str
    condition: str  # human-readable condition label, e.g. "bn=revisited"
    params: dict[str, Any]  # the swept options of the condition
    seed: int
    options: dict[str, Any]  # every option of the run (fixed + swept), without the seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        return cls(**d)


@dataclass
class SweepConfig:
    """A parsed, validated sweep file."""

    name: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] | list[dict[str, Any]] = field(default_factory=dict)
    random: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    metrics: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    max_concurrent: int | None = None
    retries: int = 2
    seed_flag: str | None = None
    description: str = ""

    def trials(self) -> list[Trial]:
        """Every (condition, seed) pair, in a deterministic order (conditions, then seeds)."""
        out, seen = [], set()
        for params, seeds in self._blocks():
            label = condition_label(params)
            opts = {**self.options, **params}
            for seed in seeds:
                key = json.dumps({"target": self.target, "options": opts, "seed": seed},
                                 sort_keys=True, default=str)
                digest = hashlib.sha256(key.encode()).hexdigest()[:8]
                trial = Trial(f"{_slug(label)}-s{seed}-{digest}", label, params, seed, opts)
                if trial.trial_id not in seen:  # blocks may overlap
                    seen.add(trial.trial_id)
                    out.append(trial)
        return out

    def conditions(self) -> list[dict[str, Any]]:
        """The distinct option sets of the grid (blocks in order) crossed with random draws."""
        out: list[dict[str, Any]] = []
        for cond, _ in self._blocks():
            if cond not in out:
                out.append(cond)
        return out

    def _blocks(self) -> list[tuple[dict[str, Any], list[int]]]:
        """(condition, seeds) for each condition of each grid block, in order."""
        blocks = self.grid if isinstance(self.grid, list) else [self.grid]
        draws = self._random_draws() or [{}]
        out: list[tuple[dict[str, Any], list[int]]] = []
        for block in blocks:
            seeds = list(block.get("seeds", self.seeds))
            axes = {k: v for k, v in block.items() if k != "seeds"}
            keys = list(axes)
            for vals in itertools.product(*(axes[k] for k in keys)):
                for r in draws:
                    cond = {**dict(zip(keys, vals, strict=True)), **r}
                    if (cond, seeds) not in out:  # a random search may draw a point twice
                        out.append((cond, seeds))
        return out

    def _random_draws(self) -> list[dict[str, Any]]:
        if not self.random:
            return []
        rng = np.random.default_rng(int(self.random.get("seed", 0)))
        params = self.random["params"]
        draws = []
        for _ in range(int(self.random["samples"])):
            draw = {}
            for k in sorted(params):
                (kind, arg), = params[k].items()
                if kind == "uniform":
                    draw[k] = float(rng.uniform(*arg))
                elif kind == "loguniform":
                    draw[k] = float(math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1]))))
                elif kind == "randint":
                    draw[k] = int(rng.integers(*arg))
                else:
                    draw[k] = arg[int(rng.integers(len(arg)))]
                if isinstance(draw[k], float):
                    draw[k] = float(f"{draw[k]:.4g}")
            draws.append(draw)
        return draws

    def fingerprint(self) -> str:
        """Hash of the trial list: a resumed sweep must expand to the same trials."""
        ids = [t.trial_id for t in self.trials()]
        return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def condition_label(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={_short(v)}" for k, v in params.items()) or "default"


def _short(v: Any) -> str:
    return ":".join(map(str, v)) if isinstance(v, list | tuple) else str(v)


def _slug(label: str) -> str:
    s = "".join(c if c.isalnum() or c in "=.-" else "_" for c in label)
    return s[:60]


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise SweepConfigError(msg)


def parse_config(raw: dict[str, Any], source: str = "sweep file") -> SweepConfig:
    """Validate a sweep mapping (as loaded from YAML) and return a :class:`SweepConfig`."""
    _require(isinstance(raw, dict), f"{source}: expected a YAML mapping at the top level")
    unknown = set(raw) - KNOWN_KEYS
    _require(not unknown, f"{source}: unknown key(s) {sorted(unknown)}; allowed: "
                          f"{sorted(KNOWN_KEYS)}")
    target = raw.get("target")
    _require(isinstance(target, str) and (target in TRAINERS or target.startswith("benchmark:")),
             f"{source}: 'target' must be one of {TRAINERS} or 'benchmark:NAME', got {target!r}")
    _require(target in TRAINERS or BENCHMARK_NAME.fullmatch(target.split(":", 1)[1]) is not None,
             f"{source}: 'target: {target}' must name a script under benchmarks/ "
             f"(benchmark:NAME or benchmark:DIR/NAME, letters, digits and _ only)")
    name = raw.get("name") or Path(source).stem
    name = str(name) if isinstance(name, int | float) and not isinstance(name, bool) else name
    _require(isinstance(name, str) and name.strip() == name and bool(name)
             and not name.startswith(".") and not set(name) & {"/", "\\", "\0"},
             f"{source}: 'name: {name}' must be a plain folder name (no '/', not starting with "
             f"'.'): the sweep's folder under runs/sweeps/")
    options = raw.get("options") or {}
    grid = raw.get("grid") or {}
    _require(isinstance(options, dict), f"{source}: 'options' must be a mapping of flag: value")
    blocks = grid if isinstance(grid, list) else [grid]
    _require(bool(blocks) and all(
        isinstance(b, dict) and all(isinstance(v, list) and v for v in b.values())
        for b in blocks),
        f"{source}: 'grid' must map each option to a non-empty list of values, "
        f"e.g. grid: {{lr: [0.01, 0.1]}}, or be a list of such mappings")
    for b in blocks:
        if "seeds" in b:
            _require(all(isinstance(s, int) for s in b["seeds"])
                     and len(set(b["seeds"])) == len(b["seeds"]),
                     f"{source}: a grid block's 'seeds' must be a list of distinct integers")
    rnd = raw.get("random") or {}
    if rnd:
        _require(isinstance(rnd.get("samples"), int) and rnd["samples"] > 0,
                 f"{source}: random.samples must be a positive integer")
        params = rnd.get("params")
        _require(isinstance(params, dict) and params,
                 f"{source}: random.params must map options to a distribution")
        for k, spec in params.items():
            _require(isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS,
                     f"{source}: random.params.{k} must be one of {DISTRIBUTIONS}, "
                     f"e.g. {{loguniform: [0.001, 0.1]}}; got {spec!r}")
            (kind, arg), = spec.items()
            _require(isinstance(arg, list) and (len(arg) == 2 or kind == "choice") and arg,
                     f"{source}: random.params.{k}.{kind} needs [low, high] (choice: a list)")
        overlap = set(params) & {k for b in blocks for k in b}
        _require(not overlap, f"{source}: {sorted(overlap)} both in grid and random.params")
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    _require(isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)
             and len(set(seeds)) == len(seeds),
             f"{source}: 'seeds' must be a positive integer or a list of distinct integers")
    swept = {k for b in blocks for k in b if k != "seeds"} | set((rnd or {}).get("params", {}))
    _require("seed" not in swept and "seed" not in options,
             f"{source}: put seeds under 'seeds:', not under options/grid")
    res = raw.get("resources") or {}
    _require(isinstance(res, dict) and set(res) <= {"cpus", "gpus"},
             f"{source}: 'resources' takes cpus and gpus, e.g. {{cpus: 1, gpus: 0.5}}")
    cpus, gpus = float(res.get("cpus", 1)), float(res.get("gpus", 0))
    _require(cpus > 0 and gpus >= 0, f"{source}: resources need cpus > 0 and gpus ≥ 0")
    _require(gpus <= 1 or gpus == int(gpus), f"{source}: gpus above 1 must be a whole number")
    baseline = raw.get("baseline")
    if baseline is not None:
        _require(isinstance(baseline, dict) and set(baseline) <= swept,
                 f"{source}: 'baseline' must name values of swept options {sorted(swept)}")
    metrics = raw.get("metrics") or []
    _require(isinstance(metrics, list), f"{source}: 'metrics' must be a list of metric names")
    mc = raw.get("max_concurrent")
    _require(mc is None or (isinstance(mc, int) and mc > 0),
             f"{source}: max_concurrent must be a positive integer")
    retries = raw.get("retries", 2)
    _require(isinstance(retries, int) and retries >= 0, f"{source}: retries must be ≥ 0")
    return SweepConfig(name=str(name), target=target, options=dict(options),
                       grid=[dict(b) for b in grid] if isinstance(grid, list) else dict(grid),
                       random=dict(rnd), seeds=list(seeds), metrics=list(metrics),
                       baseline=baseline, cpus=cpus, gpus=gpus, max_concurrent=mc,
                       retries=retries, seed_flag=raw.get("seed_flag"),
                       description=str(raw.get("description", "")))


def read_config(path: str | Path) -> Any:
    """The mapping in a sweep YAML file, not yet validated (see :func:`parse_config`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"sweep file {path} not found; see sweeps/*.yaml for examples")
    return read_yaml_file(path)


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file."""
    return parse_config(read_config(path), str(path))
