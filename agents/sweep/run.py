"""Run a sweep of trainings or benchmarks: ``python -m agents.sweep CONFIG.yaml``.

A sweep file (see :mod:`agents.sweep.config` and ``sweeps/*.yaml``) names a target
(``agents.train``, ``models.train``, ``distill.train``, ``fields.train`` or
``benchmark:NAME``), a grid and/or random search over its options, and seeds. Each trial gets
its own run folder (with the trainer's TensorBoard logs) under ``<sweep>/trials/``; the final
metrics go to the engine and into one table, ``<sweep>/results.csv`` + ``results.json``
(mean, std, 95% CI per condition; paired tests by seed against the baseline condition).

    python -m agents.sweep sweeps/bn_init_digits.yaml                 # local process pool
    python -m agents.sweep sweeps/bn_init_digits.yaml --engine ray    # Ray Tune, local instance
    python -m agents.sweep sweeps/bn_init_digits.yaml --engine ray --address ray://head:10001
    python -m agents.sweep sweeps/bn_init_digits.yaml --resume        # after a killed driver

A failed trial is retried from its last checkpoint (``retries``). ``--resume`` skips every
trial whose ``result.json`` exists and continues the others from their checkpoints.
TensorBoard: ``tensorboard --logdir <sweep>`` shows every trial's curves, and the HParams tab
(``<sweep>/tb``) one entry per finished trial with its options and final metrics.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from agents.sweep.config import SweepConfig, Trial, parse_config, read_config
from agents.sweep.results import build_table, format_table, write_table
from agents.sweep.trial import attempts, load_result, trial_dir
from models.io import atomic_write_json, command_line, output_lock, provenance
from models.readers import DELETE, read_json

ENGINES = ("local", "ray")
SWEEP_FIX = "start the sweep again with another --out (or delete the folder)"


class TrialsFailedError(RuntimeError):
    """Some trials failed after every retry (exit 1); the results of the others are written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="sweep YAML file, or the folder of a sweep to resume")
    p.add_argument("--engine", choices=ENGINES, default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    p.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<name>)")
    p.add_argument("--resume", action="store_true", help="continue a killed sweep")
    p.add_argument("--max-concurrent", type=int, default=None, help="override the sweep file")
    p.add_argument("--cpus-per-trial", type=float, default=None, help="override resources.cpus")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="override resources.gpus")
    p.add_argument("--retries", type=int, default=None, help="override the sweep file")
    p.add_argument("--dry-run", action="store_true", help="print the trials and exit")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.command = (command_line() if argv is None else
                    " ".join(["python", "-m", "agents.sweep", *argv]))
    return args


def _load(args: argparse.Namespace) -> tuple[SweepConfig, dict[str, Any]]:
    path = Path(args.config)
    if path.is_dir():
        if not (path / "sweep.json").exists():
            raise FileNotFoundError(f"{path} is not a sweep folder (no sweep.json)")
        raw = read_json(path / "sweep.json", SWEEP_FIX, keys=("config",),
                        kind="sweep record")["config"]
        cfg, args.out, args.resume = parse_config(raw, str(path)), args.out or str(path), True
    else:
        raw = read_config(path)
        cfg = parse_config(raw, str(path))
    if args.max_concurrent is not None:
        cfg.max_concurrent = raw["max_concurrent"] = args.max_concurrent
    if args.retries is not None:
        cfg.retries = raw["retries"] = args.retries
    if args.cpus_per_trial is not None or args.gpus_per_trial is not None:
        res = dict(raw.get("resources") or {})
        if args.cpus_per_trial is not None:
            cfg.cpus = res["cpus"] = args.cpus_per_trial
        if args.gpus_per_trial is not None:
            cfg.gpus = res["gpus"] = args.gpus_per_trial
        raw["resources"] = res
    return cfg, raw


def prepare(cfg: SweepConfig, raw: dict[str, Any], out: Path, resume: bool, engine: str,
            command: str) -> dict[str, Any]:
    """Create (or check, with ``resume``) the sweep folder; returns the engine's sweep dict."""
    meta = out / "sweep.json"
    if meta.exists() and not resume:
        raise FileExistsError(f"{out} already holds a sweep; pass --resume to continue it or "
                              f"--out to start a new one")
    if resume and meta.exists():
        old = read_json(meta, SWEEP_FIX, keys=("fingerprint",), kind="sweep record")
        if old["fingerprint"] != cfg.fingerprint():
            raise ValueError(f"--resume: {out} was started from a sweep file that expands to "
                             f"different trials; use the original file or another --out")
    sweep = {"name": cfg.name, "target": cfg.target, "sweep_dir": str(out.resolve()),
             "cwd": os.getcwd(), "cpus": cfg.cpus, "gpus": cfg.gpus,
             "max_concurrent": cfg.max_concurrent, "retries": cfg.retries,
             "seed_flag": cfg.seed_flag, "engine": engine}
    if not meta.exists():
        atomic_write_json({"config": raw, "fingerprint": cfg.fingerprint(),
                           "trials": [t.to_dict() for t in cfg.trials()], "sweep": sweep,
                           **provenance(None, command)}, meta)
    return sweep


def log_hparams(sweep_dir: Path, result: dict[str, Any]) -> None:
    """One TensorBoard HParams entry per finished trial under ``<sweep>/tb/<trial_id>``."""
    folder = sweep_dir / "tb" / result["trial_id"]
    if folder.exists():
        return
    from torch.utils.tensorboard import SummaryWriter

    hp = {k: (v if isinstance(v, int | float | str | bool) else str(v))
          for k, v in {**result["params"], "seed": result["seed"],
                       "condition": result["condition"]}.items()}
    metrics = {f"final/{k}": v for k, v in result["metrics"].items() if math.isfinite(v)}
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a driver killed while writing
    with SummaryWriter(str(tmp)) as w:
        w.add_hparams(hp, metrics, run_name=".")
    tmp.rename(folder)  # all or nothing: a killed driver leaves no half entry behind


def collect(sweep_dir: Path, trials: list[Trial]) -> list[dict[str, Any]]:
    out = []
    for t in trials:
        res = load_result(sweep_dir, t)
        if res is None:
            failed = trial_dir(sweep_dir, t) / "failed.json"
            res = read_json(failed, DELETE, keys=("status",), kind="trial record") \
                if failed.exists() else {**t.to_dict(), "status": "not run"}
        out.append(res)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) the sweep; returns the summary written to ``results.json``."""
    cfg, raw = _load(args)
    out = Path(args.out or Path("runs/sweeps") / cfg.name)
    trials = cfg.trials()
    if args.dry_run:
        from agents.sweep.targets import get_target

        for t in trials:
            argv = get_target(cfg.target).command(t.options, t.seed, trial_dir(out, t),
                                                  cfg.seed_flag)
            print(f"{t.trial_id}: python {' '.join(argv)}")
        return {"trials": [t.to_dict() for t in trials]}
    with output_lock(out, "--out (or sweep name)"):  # one driver per sweep folder
        try:
            return _run_locked(args, cfg, raw, out, trials)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; finished trials are kept in {out}: resume "
                                    f"with python -m agents.sweep {out} --resume") from None


def _run_locked(args: argparse.Namespace, cfg: SweepConfig, raw: dict[str, Any], out: Path,
                trials: list[Trial]) -> dict[str, Any]:
    """:func:`run` once the sweep folder is locked."""
    sweep = prepare(cfg, raw, out, args.resume, args.engine, args.command)
    finished_before = {t.trial_id for t in trials if load_result(out, t) is not None}
    todo = [t for t in trials if t.trial_id not in finished_before]
    partial = [t.trial_id for t in todo if attempts(trial_dir(out, t))
               or (trial_dir(out, t) / "running.json").exists()]
    print(f"sweep {cfg.name}: {len(trials)} trials ({len(finished_before)} already finished, "
          f"{len(partial)} to resume from checkpoints), engine {args.engine}, "
          f"folder {out}", flush=True)

    def on_result(trial: Trial, result: dict[str, Any]) -> None:
        status = result.get("status")
        shown = {k: round(v, 4) for k, v in list(result.get("metrics", {}).items())[:4]}
        print(f"  {trial.trial_id}: {status} after {result.get('attempts')} attempt(s) {shown}",
              flush=True)

    t0 = time.perf_counter()
    if todo and args.engine == "local":
        from agents.sweep.engines import run_local

        run_local(sweep, todo, on_result, progress=not args.no_progress)
    elif todo:
        from agents.sweep.engines import run_ray

        run_ray(sweep, todo, on_result, args.address, progress=not args.no_progress)
    results = collect(out, trials)
    for r in results:  # also the trials that finished just before a killed driver noticed
        if r.get("status") == "ok":
            log_hparams(out, r)
    rows = build_table(results, cfg.metrics or None, cfg.baseline)
    per_trial = [{"trial_id": r["trial_id"], "condition": r["condition"], "seed": r["seed"],
                  "status": r.get("status"), "attempts": r.get("attempts"),
                  "metrics": r.get("metrics", {})} for r in results]
    summary = {
        "sweep": cfg.name, "target": cfg.target, "engine": args.engine,
        "command": args.command, "seeds": cfg.seeds, "n_trials": len(trials),
        "finished": sum(r.get("status") == "ok" for r in results),
        "failed": [r["trial_id"] for r in results if r.get("status") == "failed"],
        "finished_before_this_run": len(finished_before),
        "resumed_from_checkpoint": partial,
        "retried": [r["trial_id"] for r in results if (r.get("attempts") or 0) > 1],
        "wall_s_this_run": time.perf_counter() - t0, "trials": per_trial}
    write_table(out, rows, summary)
    print(format_table(rows))
    print(f"wrote {out / 'results.csv'} and {out / 'results.json'}; "
          f"tensorboard --logdir {out}")
    if summary["failed"]:
        raise TrialsFailedError(
            f"{len(summary['failed'])} of {len(trials)} trial(s) failed after retries: "
            f"{', '.join(summary['failed'])}; see {out / 'trials'}/<trial>/log.txt, then re-run "
            f"with python -m agents.sweep {out} --resume to try them again")
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))
