"""How a sweep drives each target: its command line, how it resumes, where its metrics are.

* ``models.train``, ``fields.train``, ``distill.train``: ``--run-dir TRIAL --seed S``; resume
  with ``--resume`` once ``TRIAL/last.pt`` exists; final metrics from ``TRIAL/metrics.json``.
* ``agents.train``: ``-f TRIAL/agents --seed S``; resume with ``-i`` on the newest
  ``checkpoints/model_<steps>_steps.zip`` and ``-n`` set to the steps still to do; final
  metrics from ``run.json`` and the evaluation log.
* ``benchmark:NAME``: ``benchmarks/NAME.py --results-dir TRIAL/results`` (and ``--runs
  TRIAL/runs`` when the script keeps per-run folders and no ``runs`` option is given, so a
  retry skips finished inner runs; ``seed_flag: none`` passes no seed);
  metrics from the JSON it writes (numeric scalars and the ``table`` rows).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.readers import read_json

ROOT = Path(__file__).resolve().parents[2]
PROVENANCE_KEYS = {"versions", "machine", "command", "seed", "seeds", "paper", "provenance",
                   "config", "history", "budget"}


def option_flags(options: dict[str, Any]) -> list[str]:
    """``{"train-subset": 300, "augment": False, "env-kwargs": {"a": 1}}`` → CLI flags.

    A dotted key sets one entry of a ``key:value`` flag: ``{"hyperparams.learning_rate": 1e-3}``
    → ``--hyperparams learning_rate:0.001`` (merged with a ``hyperparams`` mapping, if any).
    """
    merged: dict[str, Any] = {}
    for key, value in options.items():
        head, dot, sub = key.partition(".")
        if dot and not key.startswith("-"):
            base = merged.get(head)
            merged[head] = {**(base if isinstance(base, dict) else {}), sub: value}
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**value, **merged[key]}
        else:
            merged[key] = value
    out: list[str] = []
    for key, value in merged.items():
        flag = key if key.startswith("-") else "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            out.append(flag)
        elif value is False:
            if not flag.startswith("--no-"):
                out.append("--no-" + flag[2:])
        elif isinstance(value, dict):
            out += [flag, *(f"{k}:{json.dumps(v) if isinstance(v, list | dict) else v}"
                            for k, v in value.items())]
        elif isinstance(value, list | tuple):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def flatten_numbers(obj: Any, prefix: str = "", depth: int = 4) -> dict[str, float]:
    """Numeric leaves of nested dicts as ``a/b/c`` keys (lists and provenance skipped)."""
    out: dict[str, float] = {}
    if isinstance(obj, bool):
        return {prefix: float(obj)} if prefix else {}
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return {prefix: float(obj)} if prefix else {}
    if isinstance(obj, dict) and depth > 0:
        for k, v in obj.items():
            if k in PROVENANCE_KEYS:
                continue
            out.update(flatten_numbers(v, f"{prefix}/{k}" if prefix else str(k), depth - 1))
    return out


@dataclass(frozen=True)
class Target:
    """Base: a trainer run as ``python -m MODULE`` with a run folder flag."""

    name: str

    def command(self, options: dict[str, Any], seed: int, run_dir: Path,
                seed_flag: str | None) -> list[str]:
        """The argv (after the interpreter) of a fresh or resumed attempt."""
        flag = seed_flag or "--seed"
        return ["-m", self.name, *option_flags(options), flag, str(seed),
                "--run-dir", str(run_dir), "--no-progress", *self.resume_flags(run_dir)]

    def resume_flags(self, run_dir: Path) -> list[str]:
        return ["--resume"] if (run_dir / "last.pt").exists() else []

    def metrics(self, run_dir: Path) -> dict[str, float]:
        path = run_dir / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: the trial exited without writing metrics")
        return flatten_numbers(read_json(path, "run the trial again", keys=("metrics",),
                                         kind="metrics record")["metrics"])

    def tensorboard_dir(self, run_dir: Path) -> Path:
        return run_dir


@dataclass(frozen=True)
class AgentTarget(Target):
    """``python -m agents.train``: SB3 run folders, checkpoints every ``--save-freq`` steps."""

    def _folders(self, run_dir: Path) -> list[Path]:
        found = [p.parent for p in (run_dir / "agents").glob("*/*/run.json")]
        return sorted(found, key=lambda p: int(p.name.rsplit("_", 1)[1]))

    def command(self, options: dict[str, Any], seed: int, run_dir: Path,
                seed_flag: str | None) -> list[str]:
        opts = dict(options)
        resume = self._latest_checkpoint(run_dir)
        if resume is not None:
            ckpt, done = resume
            total = self._total_steps(opts, ckpt.parent.parent)
            for k in ("n", "n-timesteps", "n_timesteps", "-n"):
                opts.pop(k, None)
            opts["-i"] = str(ckpt)
            opts["--n-timesteps"] = max(total - done, 1)
        return ["-m", self.name, *option_flags(opts), seed_flag or "--seed", str(seed),
                "-f", str(run_dir / "agents"), "--no-progress-bar"]

    def _latest_checkpoint(self, run_dir: Path) -> tuple[Path, int] | None:
        best: tuple[Path, int] | None = None
        for folder in self._folders(run_dir):
            for p in (folder / "checkpoints").glob("model_*_steps.zip"):
                m = re.fullmatch(r"model_(\d+)_steps\.zip", p.name)
                if m and (best is None or int(m.group(1)) > best[1]):
                    best = (p, int(m.group(1)))
        return best

    @staticmethod
    def _total_steps(opts: dict[str, Any], folder: Path) -> int:
        for k in ("n", "n-timesteps", "n_timesteps", "-n"):
            if k in opts:
                return int(opts[k])
        return int(json.loads((folder / "run.json").read_text())["n_timesteps"])

    def metrics(self, run_dir: Path) -> dict[str, float]:
        folders = [f for f in self._folders(run_dir)
                   if "result" in json.loads((f / "run.json").read_text())]
        if not folders:
            raise FileNotFoundError(f"no finished agents.train run under {run_dir / 'agents'}")
        folder = folders[-1]
        out = flatten_numbers(json.loads((folder / "run.json").read_text())["result"])
        evals = folder / "eval" / "evaluations.npz"
        if evals.exists():
            data = np.load(evals)
            means = data["results"].mean(axis=1)
            out["eval_mean_reward_last"] = float(means[-1])
            out["eval_mean_reward_best"] = float(means.max())
        return out

    def tensorboard_dir(self, run_dir: Path) -> Path:
        folders = self._folders(run_dir)
        return folders[-1] / "tb" if folders else run_dir


@dataclass(frozen=True)
class BenchmarkTarget(Target):
    """``python benchmarks/NAME.py`` following the benchmark contract."""

    @property
    def script(self) -> Path:
        return ROOT / "benchmarks" / f"{self.name.split(':', 1)[1]}.py"

    def command(self, options: dict[str, Any], seed: int, run_dir: Path,
                seed_flag: str | None) -> list[str]:
        if not self.script.exists():
            raise FileNotFoundError(f"{self.script} does not exist; list benchmarks/*.py for the "
                                    f"available names")
        has_runs = re.search(r"add_argument\(\s*[\"']--runs[\"']", self.script.read_text()) is not None
        given = {"runs", "--runs"} & set(options)
        extra = ["--runs", str(run_dir / "runs")] if has_runs and not given else []
        seed_args = [] if seed_flag == "none" else [seed_flag or "--seeds", str(seed)]
        return [str(self.script), *option_flags(options), *seed_args,
                "--results-dir", str(run_dir / "results"), *extra]

    def metrics(self, run_dir: Path) -> dict[str, float]:
        files = sorted((run_dir / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise FileNotFoundError(f"{run_dir / 'results'} holds no result JSON")
        rec = read_json(files[-1], "run the trial again", kind="benchmark result")
        out = flatten_numbers(rec)
        for i, row in enumerate(rec.get("table") or []):
            label = next((str(v) for v in row.values() if isinstance(v, str)), str(i))
            out.update(flatten_numbers(row, f"table/{label}"))
        return out


def get_target(name: str) -> Target:
    if name == "agents.train":
        return AgentTarget(name)
    if name.startswith("benchmark:"):
        return BenchmarkTarget(name)
    return Target(name)


def python_argv(argv: list[str]) -> list[str]:
    """The full argv run for a trial: this interpreter, then the target's argv."""
    return [sys.executable, *argv]
