"""Execution engines of a sweep: a local process pool, or Ray Tune.

Both run the same trial runner (:mod:`agents.sweep.trial`), so a trial's folder, retries and
``result.json`` are identical whichever engine ran it, and a sweep started on one engine can
be resumed on the other.

* ``local``: at most ``max_concurrent`` trial processes at once (default: the machine's CPUs
  divided by the CPUs per trial); each gets ``OMP_NUM_THREADS`` = its CPUs and, with
  ``gpus > 0``, a ``CUDA_VISIBLE_DEVICES`` slot (a fraction f puts ⌊1/f⌋ trials on a GPU).
  Trial processes die with the driver (``PR_SET_PDEATHSIG``).
* ``ray``: one Ray Tune trial per sweep trial (``tune.with_resources`` {cpu, gpu}), retried by
  Tune (``FailureConfig(max_failures=retries)``), each retry resuming from the trial's
  checkpoint; final metrics are reported with ``tune.report``. On a cluster (``--address``)
  the sweep folder must be on a filesystem every node sees, and deploygym installed on each.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from agents.sweep.config import Trial
from agents.sweep.trial import (
    allow_trials,
    attempts,
    load_result,
    run_attempt,
    run_trial,
    stop_trials,
    trial_dir,
    trial_env,
)
from models.io import atomic_write_json

OnResult = Callable[[Trial, dict[str, Any]], None]


def _visible_gpus() -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    import torch

    return torch.cuda.device_count()


def local_slots(cpus: float, gpus: float, max_concurrent: int | None) -> list[str | None]:
    """One entry per concurrent slot: the ``CUDA_VISIBLE_DEVICES`` of that slot (or None)."""
    n = max_concurrent or max(int((os.cpu_count() or 1) // max(cpus, 1e-9)), 1)
    if gpus <= 0:
        return [None] * n
    n_gpu = _visible_gpus()
    if n_gpu == 0:
        raise RuntimeError(f"resources.gpus = {gpus} but no CUDA device is visible; set "
                           f"resources.gpus: 0 or run on a machine with a GPU")
    if gpus >= 1:
        per, n = int(gpus), min(n, n_gpu // int(gpus))
        if n == 0:
            raise RuntimeError(f"a trial asks for {int(gpus)} GPUs; only {n_gpu} are visible")
        return [",".join(str(i * per + j) for j in range(per)) for i in range(n)]
    per_gpu = max(int(1 // gpus), 1)
    n = min(n, per_gpu * n_gpu)
    return [str((i // per_gpu) % n_gpu) for i in range(n)]


def run_local(sweep: dict[str, Any], trials: list[Trial], on_result: OnResult,
              progress: bool = True) -> None:
    """Run ``trials`` in a pool of trial processes; ``on_result`` gets each final record."""
    slots = local_slots(sweep["cpus"], sweep["gpus"], sweep.get("max_concurrent"))
    free, lock = list(slots), threading.Lock()

    def work(trial: Trial) -> dict[str, Any]:
        with lock:
            gpu = free.pop()
        try:
            return run_trial(sweep, trial, trial_env(sweep["cpus"], gpu))
        finally:
            with lock:
                free.append(gpu)

    bar = tqdm(total=len(trials), desc=f"sweep {sweep['name']} (local ×{len(slots)})",
               unit="trial", disable=not progress)
    allow_trials()
    pool = ThreadPoolExecutor(max_workers=len(slots))
    try:
        futures = {pool.submit(work, t): t for t in trials}
        for fut in as_completed(futures):
            on_result(futures[fut], fut.result())
            bar.update(1)
    except BaseException:  # Ctrl-C / SIGTERM: end the running trials, start no other
        stop_trials()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()


def _ray_trainable(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one attempt; raising lets Tune retry (with resume)."""
    from ray import tune

    sweep, trial = config["sweep"], Trial.from_dict(config["trial"])
    record = run_attempt(sweep, trial, trial_env(sweep["cpus"], os.environ.get(
        "CUDA_VISIBLE_DEVICES") if sweep["gpus"] > 0 else None))
    if not record["ok"]:
        raise RuntimeError(f"trial {trial.trial_id} attempt {record['attempt']} failed: "
                           f"{record.get('error')}")
    tune.report({**record["metrics"], "attempt": record["attempt"]})


def run_ray(sweep: dict[str, Any], trials: list[Trial], on_result: OnResult,
            address: str | None = None, progress: bool = True) -> None:
    """Run ``trials`` as Ray Tune trials on a local Ray instance or the cluster at ``address``."""
    try:
        import ray
        from ray import tune
    except ImportError as e:
        raise ImportError("--engine ray needs Ray Tune: pip install -e '.[ray]'") from e
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count(), **kw)
    trainable = tune.with_resources(_ray_trainable, {"cpu": sweep["cpus"], "gpu": sweep["gpus"]})
    sweep_dir = Path(sweep["sweep_dir"]).resolve()
    tuner = tune.Tuner(
        trainable,
        param_space={"sweep": sweep, "trial": tune.grid_search([t.to_dict() for t in trials])},
        tune_config=tune.TuneConfig(num_samples=1,
                                    max_concurrent_trials=sweep.get("max_concurrent")),
        run_config=tune.RunConfig(
            name="ray", storage_path=str(sweep_dir), verbose=1 if progress else 0,
            failure_config=tune.FailureConfig(max_failures=int(sweep.get("retries", 0)))))
    grid = tuner.fit()
    by_id = {t.trial_id: t for t in trials}
    for res in grid:
        trial = by_id[res.config["trial"]["trial_id"]]
        done = load_result(sweep_dir, trial)
        if done is None:
            done = {**trial.to_dict(), "status": "failed", "error": str(res.error),
                    "attempts": len(attempts(trial_dir(sweep_dir, trial)))}
            atomic_write_json(done, trial_dir(sweep_dir, trial) / "failed.json")
        on_result(trial, done)
