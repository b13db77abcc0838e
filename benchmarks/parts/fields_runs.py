"""The network trainings of ``benchmarks/fields.py``: one :func:`fields.train.train` per (set,
dataset, protocol, input variant, sensor counts, seed), in parallel worker processes.

A finished run with exactly the same configuration is reused (its ``metrics.json``), a
killed one resumes from its checkpoint, and a folder holding another configuration is
started afresh, so the benchmark can be stopped and restarted.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from fields.train import FieldTrainConfig, train

_VOLATILE = ("progress", "resume", "threads", "device", "run_dir")


def job_configs(scale: dict[str, Any], sets: list[str], seeds: list[int], runs: Path,
                device: str) -> list[tuple[tuple[str, ...], FieldTrainConfig]]:
    """Every network training of the run, keyed (set, dataset, protocol, variant, K, seed)."""
    jobs = []
    for name in sets:
        spec = scale["sets"][name]
        for ds in spec["datasets"]:
            for protocol, variants in spec["protocols"].items():
                per_k = [(k,) for k in spec["sensors"]] if protocol == "fixed" else [
                    tuple(spec["sensors"])]
                for variant in variants:
                    for ks in per_k:
                        for seed in seeds:
                            tag = f"{ds}-{protocol}-{variant}" + (
                                f"-k{ks[0]}" if protocol == "fixed" else "") + f"-s{seed}"
                            cfg = FieldTrainConfig(
                                dataset=ds, inputs=variant, seed=seed, target="anomaly",
                                layouts="fixed" if protocol == "fixed" else "general",
                                sensors=ks, run_dir=str(runs / name / tag), progress=False,
                                device=device, threads=1,
                                **(scale["net"] | spec.get("net", {}) | spec["data"]))
                            jobs.append(((name, ds, protocol, variant, ks, seed), cfg))
    return jobs


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in _VOLATILE}


def run_one(cfg: FieldTrainConfig) -> dict[str, Any]:
    """Train (or reuse a finished run of exactly this config, or resume a killed one)."""
    done = Path(cfg.run_dir) / "metrics.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if _comparable(saved["config"]) == _comparable(asdict(cfg)):
            return saved["metrics"]
    last = Path(cfg.run_dir) / "last.pt"
    if last.exists():
        old = torch.load(last, map_location="cpu", weights_only=True)["config"]
        if _comparable(old) != _comparable(asdict(cfg)):
            shutil.rmtree(cfg.run_dir)
    cfg = replace(cfg, resume=last.exists())
    t0 = time.perf_counter()
    metrics = train(cfg)["metrics"]
    metrics["wall_s"] = time.perf_counter() - t0
    return metrics


def run_jobs(jobs: list[tuple[tuple[str, ...], FieldTrainConfig]], workers: int
             ) -> dict[tuple[str, ...], dict[str, Any]]:
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    if workers <= 1:
        for key, cfg in jobs:
            out[key] = run_one(cfg)
            _print_job(key, out[key])
        return out
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, cfg): key for key, cfg in jobs}
        for fut in futures:
            key = futures[fut]
            out[key] = fut.result()
            _print_job(key, out[key])
    return out


def _print_job(key: tuple[str, ...], m: dict[str, Any]) -> None:
    errs = ", ".join(f"K={k} {v['rel_l2']:.4f}" for k, v in m["test"].items())
    print(f"  {'/'.join(map(str, key))}: {errs} (best epoch {m.get('best_epoch')}, "
          f"{m.get('updates')} updates, {m.get('train_time_s', 0):.0f} s)", flush=True)
