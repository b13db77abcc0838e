"""One command per paper's table: ``python -m agents.reproduce NAME``.

NAME is one of ``bn-init`` (P5), ``ptq-pairs`` (P1), ``kd-sources`` (P2/P4), ``kd-policy``
(the DistillSource agent), ``fields`` (P3) or ``sensor-placement``. The benchmark runs at
``--scale smoke|default|paper`` and a self-contained report folder is written (default
``reports/<NAME>-<scale>/``): ``report.md`` with our table beside the paper's published
numbers, PNG figures, the raw JSON, the exact commands and the versions.

    python -m agents.reproduce bn-init --scale smoke               # minutes on 2 cores
    python -m agents.reproduce bn-init                              # the committed result
    python -m agents.reproduce bn-init --scale paper --engine ray --address auto   # cluster

With ``--engine ray``, a benchmark that takes ``--seeds`` and keeps per-run folders
(``--runs``) is split into one Ray Tune trial per seed (through :mod:`agents.sweep`, so
trials are retried from their checkpoints); a last local pass over all seeds only finds the
finished runs and writes the summary. Other benchmarks run as a single Ray trial.
At smoke scale, the registry may trim the script's smoke budget further (``smoke_args``, so
that the test suite can build every report); ``--untrimmed`` runs the script's own smoke.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agents.reproduce.registry import REGISTRY, Reproduction, get
from agents.reproduce.report import write_report
from models.device import resolve_device
from models.io import command_line

SCALES = ("smoke", "default", "paper")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(REGISTRY))
    p.add_argument("--scale", choices=SCALES, default="default")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (--engine ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="--engine ray")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="--engine ray")
    p.add_argument("--out", default=None, help="report folder (default reports/<name>-<scale>)")
    p.add_argument("--runs-root", default="runs/reproduce",
                   help="where benchmarks keep their per-run folders (resumable)")
    p.add_argument("--untrimmed", action="store_true",
                   help="at smoke scale, run the script's own smoke budget")
    p.add_argument("--quiet", action="store_true", help="do not echo the benchmark's output")
    p.add_argument("--device", default="cpu",
                   help="cpu (default: the committed results were made on CPU), cuda, cuda:N or "
                        "auto (CUDA when present); passed to benchmarks that take --device")
    args = p.parse_args(argv)
    args.command = (command_line() if argv is None else
                    shlex.join(["python", "-m", "agents.reproduce", *argv]))
    return args


def _flags(entry: Reproduction) -> set[str]:
    """The contract-adjacent flags the script has: its runs folder, --seeds, --no-progress."""
    text = entry.path.read_text()

    def has(flag: str) -> bool:  # declared by the script's own parser, not merely mentioned
        return re.search(r"add_argument\(\s*[\"']" + re.escape(flag) + r"[\"']", text) is not None

    found = {f for f in ("--seeds", "--no-progress", "--device") if has(f)}
    return found | ({"--runs"} if has(entry.runs_flag) else set())


def _argv_pairs(tokens: tuple[str, ...]) -> dict[str, Any]:
    """``("--width", "8", "--x", "1", "2")`` → ``{"--width": "8", "--x": ["1", "2"]}``."""
    out: dict[str, Any] = {}
    key = None
    for tok in tokens:
        if tok.startswith("--"):
            key, out[tok] = tok, True
        elif key is not None:
            prev = out[key]
            out[key] = tok if prev is True else ([*prev, tok] if isinstance(prev, list)
                                                 else [prev, tok])
    return out


def scale_seeds(entry: Reproduction, scale: str) -> list[int] | None:
    """The seeds of ``scale`` read from the script's ``SCALES`` table (None if it has none)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{entry.script}", entry.path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    cfg = getattr(mod, "SCALES", {}).get(scale, {})
    seeds = cfg.get("seeds", cfg.get("headline_seeds"))  # the headline's, if the script has one
    if isinstance(seeds, int):
        return list(range(seeds))
    return list(seeds) if seeds else None


def _run_logged(argv: list[str], log: Path, quiet: bool) -> int:
    with open(log, "ab") as f:
        f.write(f"\n$ {shlex.join(argv)}\n".encode())
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            if not quiet:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
        return proc.wait()


def _shown(argv: list[str]) -> str:
    """The command as a person would type it: ``python``, paths relative to the cwd."""
    def rel(a: str) -> str:
        try:
            return str(Path(a).relative_to(Path.cwd())) if a.startswith("/") else a
        except ValueError:
            return a
    return shlex.join(["python", *map(rel, argv[1:])])


def reproduce(args: argparse.Namespace) -> Path:
    """Run the benchmark of ``args.name`` and write its report; returns the report folder."""
    entry = get(args.name)
    device = args.device = resolve_device(args.device)
    if not entry.path.exists():
        raise FileNotFoundError(f"{entry.path.relative_to(entry.path.parents[1])} is not in this "
                                f"checkout; '{entry.name}' needs it (a full clone of the repository has it)")
    flags = _flags(entry)
    if device != "cpu" and "--device" not in flags:
        raise ValueError(f"{entry.path.name} runs on the CPU only (it has no --device); "
                         f"reproduce {entry.name} with --device cpu")
    out = Path(args.out or Path("reports") / f"{entry.name}-{args.scale}")
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    trimmed = args.scale == "smoke" and not args.untrimmed and bool(entry.smoke_args)
    extra = list(entry.smoke_args) if trimmed else []
    runs = Path(args.runs_root) / f"{entry.name}-{args.scale}{'-trimmed' if trimmed else ''}"
    base = [sys.executable, str(entry.path), "--scale", args.scale, *extra,
            *([entry.runs_flag, str(runs)] if "--runs" in flags else []),
            *(["--no-progress"] if "--no-progress" in flags else []),
            *(["--device", device] if device != "cpu" else [])]
    commands: list[str] = []
    seeds: list[int] | None = None
    t0 = time.perf_counter()
    note = ("Smoke budget trimmed further by the reproduce registry "
            f"({' '.join(entry.smoke_args)}) so the test suite can build it." if trimmed else "")
    if args.engine == "ray":
        seeds = None
        if {"--runs", "--seeds"} <= flags:
            given = _argv_pairs(tuple(extra)).get("--seeds")
            seeds = ([int(x) for x in ([given] if isinstance(given, str) else given)]
                     if given else scale_seeds(entry, args.scale))
        commands.append(_ray_sweep(entry, args, out, runs, extra, seeds))
        if seeds is None:  # one Ray trial ran the whole benchmark: take its results
            for f in (out / "sweep" / "trials").glob("*/results/*"):
                shutil.copy2(f, results / f.name)
            note += " Ran as one Ray Tune trial."
        else:
            note += f" Seeds {seeds} ran as separate Ray Tune trials; the summary pass reused them."
    if args.engine == "local" or seeds is not None:
        argv = [*base, "--results-dir", str(results)]
        commands.append(_shown(argv))
        rc = _run_logged(argv, out / "log.txt", args.quiet)
        if rc != 0:
            raise RuntimeError(f"{_shown(argv)} exited with code {rc}; see {out / 'log.txt'}")
    files = [results / entry.result_name(args.scale)]
    if not files[0].exists():
        files = sorted(results.glob("*.json"), key=lambda p: p.stat().st_mtime)[-1:]
    if not files:
        raise FileNotFoundError(f"the benchmark wrote no JSON into {results}")
    rec = json.loads(files[0].read_text())
    report = write_report(out, entry, rec, args.scale, args.engine,
                          [f"# {args.command}", *commands], time.perf_counter() - t0, note)
    print(f"report: {report}")
    return out


def _ray_sweep(entry: Reproduction, args: argparse.Namespace, out: Path, runs: Path,
               extra: list[str], seeds: list[int] | None) -> str:
    """Run the benchmark through ``agents.sweep`` on Ray; returns the command shown."""
    import yaml

    from agents.sweep.run import main as sweep_main

    options: dict[str, Any] = {"scale": args.scale, **_argv_pairs(tuple(extra))}
    if seeds is not None:
        options.pop("--seeds", None)  # one trial per seed instead
    if seeds is not None:
        options[entry.runs_flag] = str(runs.resolve())
    if args.device != "cpu":
        options["--device"] = args.device
    cfg = {"name": f"reproduce-{entry.name}-{args.scale}", "target": f"benchmark:{entry.script}",
           "options": options, "seeds": seeds or [0], "seed_flag": None if seeds else "none",
           "resources": {"cpus": args.cpus_per_trial, "gpus": args.gpus_per_trial},
           "retries": 2}
    path = out / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    argv = [str(path), "--engine", "ray", "--out", str(out / "sweep"), "--no-progress"]
    if (out / "sweep" / "sweep.json").exists():
        argv.append("--resume")
    if args.address:
        argv += ["--address", args.address]
    summary = sweep_main(argv)
    if summary.get("failed"):
        raise RuntimeError(f"Ray trials failed: {summary['failed']}; see {out / 'sweep'}")
    return shlex.join(["python", "-m", "agents.sweep", *argv])


def main(argv: list[str] | None = None) -> Path:
    return reproduce(parse_args(argv))
