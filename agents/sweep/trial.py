"""Run one sweep trial: a subprocess in its own run folder, retried from its last checkpoint.

Files of a trial folder ``<sweep>/trials/<trial_id>/`` besides what the trainer writes:

* ``trial.json``: the trial (condition, seed, options);
* ``log.txt``: stdout and stderr of every attempt, appended;
* ``attempts.jsonl``: one line per finished attempt (command, return code, seconds, resumed);
* ``running.json``: pid and command of the attempt in progress (removed when it ends);
* ``result.json``: written atomically once the trial succeeded — a trial is finished iff
  this file exists, so a killed driver loses no result and re-runs no finished trial;
* ``failed.json``: the last error once every retry failed (a resumed sweep tries again).
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from agents.sweep.config import Trial
from agents.sweep.targets import get_target, python_argv
from models.io import atomic_write_json, package_versions
from models.readers import read_json

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def trial_dir(sweep_dir: Path, trial: Trial) -> Path:
    return Path(sweep_dir) / "trials" / trial.trial_id


def load_result(sweep_dir: Path, trial: Trial) -> dict[str, Any] | None:
    """The trial's ``result.json`` (``None`` if it has not finished); a damaged one is an
    error naming it."""
    path = trial_dir(sweep_dir, trial) / "result.json"
    if not path.exists():
        return None
    return read_json(path, "delete it (the trial then runs again with --resume)",
                     keys=("status", "metrics"), kind="trial result")


def attempts(folder: Path) -> list[dict[str, Any]]:
    """The finished attempts of a trial (a line cut short by a kill is skipped)."""
    path = folder / "attempts.jsonl"
    out = []
    for line in (path.read_text(errors="replace").splitlines() if path.exists() else []):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class _Live:
    """Trial processes running now, so a stopping driver can end them (``stop``)."""

    lock = threading.Lock()
    procs: set[subprocess.Popen] = set()
    stopping = threading.Event()


def stop_trials() -> None:
    """End every running trial process (SIGTERM: each keeps its last checkpoint) and start
    no new attempt until :func:`allow_trials`."""
    _Live.stopping.set()
    with _Live.lock:
        for proc in _Live.procs:
            if proc.poll() is None:
                proc.terminate()


def allow_trials() -> None:
    """Let attempts start again (a new sweep in the same process)."""
    _Live.stopping.clear()


def trial_env(cpus: float, gpu_ids: str | None = None) -> dict[str, str]:
    """The environment of a trial process: thread count = its CPUs, optional visible GPUs."""
    env = dict(os.environ)
    threads = str(max(int(cpus), 1))
    env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"})
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu_ids
    return env


def run_attempt(sweep: dict[str, Any], trial: Trial, env: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """One attempt of ``trial`` (resuming from its checkpoint if there is one).

    Returns the attempt record; ``record["ok"]`` tells whether the trial finished, and then
    ``record["metrics"]`` holds its final metrics and ``result.json`` has been written.
    """
    folder = trial_dir(Path(sweep["sweep_dir"]), trial)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "trial.json").exists():
        atomic_write_json({**trial.to_dict(), "target": sweep["target"]}, folder / "trial.json")
    target = get_target(sweep["target"])
    argv = target.command(trial.options, trial.seed, folder.resolve(), sweep.get("seed_flag"))
    shown = shlex.join(["python", *argv])
    resumed = any(a in argv for a in ("--resume", "-i")) or bool(attempts(folder))
    n = len(attempts(folder)) + 1
    t0 = time.perf_counter()
    with open(folder / "log.txt", "ab") as log:
        log.write(f"\n=== attempt {n}: {shown}\n".encode())
        log.flush()
        with _Live.lock:
            if _Live.stopping.is_set():
                raise KeyboardInterrupt("the sweep is stopping")
            proc = subprocess.Popen(python_argv(argv), cwd=sweep.get("cwd") or None,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    env=env or trial_env(sweep.get("cpus", 1)),
                                    preexec_fn=_die_with_parent)
            _Live.procs.add(proc)
        try:
            atomic_write_json({"pid": proc.pid, "attempt": n, "command": shown,
                               "started": time.time()}, folder / "running.json")
            rc = proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
        finally:
            with _Live.lock:
                _Live.procs.discard(proc)
    if _Live.stopping.is_set():  # ended by stop_trials: not a failed attempt
        raise KeyboardInterrupt("the sweep is stopping")
    seconds = time.perf_counter() - t0
    record: dict[str, Any] = {"attempt": n, "command": shown, "returncode": rc,
                              "seconds": seconds, "resumed": resumed, "ok": False}
    if rc == 0:
        try:
            record["metrics"] = target.metrics(folder)
            record["ok"] = True
        except (FileNotFoundError, KeyError, ValueError) as e:
            record["error"] = f"finished but no metrics: {e}"
    else:
        record["error"] = f"exit code {rc}; last lines of {folder / 'log.txt'}:\n" + _tail(folder)
    with open(folder / "attempts.jsonl", "a") as f:
        f.write(json.dumps({k: v for k, v in record.items() if k != "metrics"}) + "\n")
    (folder / "running.json").unlink(missing_ok=True)
    if record["ok"]:
        result = {**trial.to_dict(), "target": sweep["target"], "status": "ok",
                  "metrics": record["metrics"], "attempts": n, "command": shown,
                  "seconds_last_attempt": seconds, "run_dir": str(folder),
                  "tensorboard": str(target.tensorboard_dir(folder)),
                  "engine": sweep.get("engine"), "versions": package_versions()}
        atomic_write_json(result, folder / "result.json")
        (folder / "failed.json").unlink(missing_ok=True)
    return record


def _tail(folder: Path, n: int = 15) -> str:
    lines = (folder / "log.txt").read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def run_trial(sweep: dict[str, Any], trial: Trial, env: dict[str, str] | None = None
              ) -> dict[str, Any]:
    """Run ``trial`` with up to ``sweep['retries']`` retries from its last checkpoint.

    Returns the trial's ``result.json`` content, or a ``{"status": "failed", ...}`` record
    (also written to ``failed.json``) when every attempt failed.
    """
    done = load_result(Path(sweep["sweep_dir"]), trial)
    if done is not None:
        return done
    record: dict[str, Any] = {}
    for _ in range(int(sweep.get("retries", 0)) + 1):
        record = run_attempt(sweep, trial, env)
        if record["ok"]:
            return load_result(Path(sweep["sweep_dir"]), trial) or {}
    failed = {**trial.to_dict(), "status": "failed", "error": record.get("error"),
              "attempts": record.get("attempt")}
    atomic_write_json(failed, trial_dir(Path(sweep["sweep_dir"]), trial) / "failed.json")
    return failed
