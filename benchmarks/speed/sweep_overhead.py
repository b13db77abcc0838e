"""Overhead of ``agents.sweep`` per trial (local pool and Ray Tune), and resume after a kill.

Overhead: the same ``python -m models.train`` trial is run (a) directly as a subprocess,
(b) as a one-condition sweep through ``python -m agents.sweep --engine local`` and (c) through
``--engine ray`` with the driver connected to a Ray instance started here (its start-up time,
paid once per sweep, is reported separately). Each sweep runs ``trials`` trials one after
another (``max_concurrent: 1``). Two overhead figures:

* ``overhead_pct``: the time the sweep spends outside its trial processes (driver start-up,
  scheduling, Ray actors, metric parsing, the results table), over the time inside them —
  both from the same sweep run, so it holds on a contended machine;
* ``overhead_pct_vs_direct_run``: (sweep wall − direct runs' wall) / direct wall, from
  interleaved repeats (direct, local, ray, ...); on a shared machine its noise (other jobs)
  can exceed the overhead itself.

Resume: a sweep of 4 tiny digits trials (2 at a time) has its driver SIGKILLed once a trial
has finished and another is running, then is resumed with ``--resume``; counted are trials
lost (finished before the kill, result missing or changed after the resume) and finished
trials re-run (attempts added after the kill). Done for both engines.

    python benchmarks/speed/sweep_overhead.py --scale smoke     # digits trials of a few seconds
    python benchmarks/speed/sweep_overhead.py                   # trials of about a minute

Writes ``<results-dir>/sweep_overhead.json`` (``sweep_overhead_<scale>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.speed.timing import timed  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

TINY = {"dataset": "digits", "width": 4, "epochs": 10, "batch-size": 64, "train-subset": 500}
SCALES = {
    "smoke": {"trial": TINY, "trials": 2, "repeats": 1},
    # about a minute on 2 idle cores: the default CNN, three epochs of the full training set
    "default": {"trial": {"dataset": "fashion-mnist", "arch": "cnn", "epochs": 3},
                "trials": 2, "repeats": 1},
    "paper": {"trial": {"dataset": "fashion-mnist", "arch": "cnn", "epochs": 4}, "trials": 4,
              "repeats": 3},
}


def _sweep_file(folder: Path, name: str, trial: dict, seeds: int, concurrent: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "target": "models.train", "options": trial,
                                    "seeds": seeds, "max_concurrent": concurrent,
                                    "resources": {"cpus": 2 if concurrent == 1 else 1},
                                    "retries": 1}))
    return path


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _command_seconds(argv: list[str], threads: int = 2) -> float:
    """Wall-clock seconds of one run of the command ``argv``."""
    return timed(lambda: subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=_env(threads)))[1]


def overhead(sc: dict, work: Path, address: str) -> dict:
    from agents.sweep.targets import option_flags

    n, rows = sc["trials"], {"direct": [], "local": [], "ray": []}
    inside: dict[str, list[float]] = {"local": [], "ray": []}
    for rep in range(sc["repeats"]):
        direct = 0.0
        for seed in range(n):
            run_dir = work / f"direct-{rep}-{seed}"
            direct += _command_seconds([sys.executable, "-m", "models.train", *option_flags(sc["trial"]),
                              "--seed", str(seed), "--run-dir", str(run_dir), "--no-progress"])
        rows["direct"].append(direct)
        for engine in ("local", "ray"):
            cfg = _sweep_file(work, f"{engine}-{rep}", sc["trial"], n, 1)
            argv = [sys.executable, "-m", "agents.sweep", str(cfg), "--engine", engine, "--out",
                    str(work / f"sweep-{engine}-{rep}"), "--no-progress"]
            rows[engine].append(_command_seconds(argv + (["--address", address] if engine == "ray" else [])))
            inside[engine].append(_trial_seconds(work / f"sweep-{engine}-{rep}"))
        print(f"repeat {rep}: direct {rows['direct'][-1]:.1f} s, local {rows['local'][-1]:.1f} s, "
              f"ray {rows['ray'][-1]:.1f} s for {n} trials", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    per_trial_direct = med["direct"] / n
    out = {"trials_per_sweep": n, "repeats": sc["repeats"], "trial": sc["trial"],
           "wall_s": rows, "direct_s_per_trial": per_trial_direct}
    for engine in ("local", "ray"):
        extra = (med[engine] - med["direct"]) / n
        # time the sweep adds around its trial processes (driver start, scheduling, metrics,
        # table): robust to contention, since both terms come from the same sweep run
        own = [(w - i) / i for w, i in zip(rows[engine], inside[engine], strict=True)]
        out[engine] = {"overhead_s_per_trial_vs_direct": extra,
                       "overhead_ratio_per_trial_vs_direct": extra / per_trial_direct,
                       "sweep_over_direct": med[engine] / med["direct"],
                       "trial_process_s": inside[engine],
                       "outside_trials_s_per_trial": statistics.median(
                           (w - i) / n for w, i in zip(rows[engine], inside[engine], strict=True)),
                       "overhead_ratio_outside_trials": statistics.median(own)}
    return out


def _trial_seconds(sweep_dir: Path) -> float:
    """Wall time spent inside the trial processes of a sweep (sum over attempts)."""
    total = 0.0
    for f in (sweep_dir / "trials").glob("*/attempts.jsonl"):
        total += sum(json.loads(line)["seconds"] for line in f.read_text().splitlines())
    return total


def _finished(out: Path) -> dict[str, tuple[str, int]]:
    res = {}
    for t in (out / "trials").glob("*"):
        if (t / "result.json").exists():
            att = len((t / "attempts.jsonl").read_text().splitlines())
            res[t.name] = ((t / "result.json").read_text(), att)
    return res


def resume_after_kill(work: Path, engine: str, address: str) -> dict:
    cfg = _sweep_file(work, f"resume-{engine}", TINY | {"epochs": 15}, 2, 2)
    yaml_cfg = yaml.safe_load(cfg.read_text())
    yaml_cfg["grid"] = {"bn": ["standard", "revisited"]}
    cfg.write_text(yaml.safe_dump(yaml_cfg))
    out = work / f"resume-{engine}"
    argv = [sys.executable, "-m", "agents.sweep", str(cfg), "--engine", engine, "--out", str(out),
            "--no-progress"] + (["--address", address] if engine == "ray" else [])
    driver = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=_env(1))
    t0 = time.time()
    while time.time() - t0 < 900:
        trials = list((out / "trials").glob("*")) if (out / "trials").exists() else []
        running = [t for t in trials if (t / "running.json").exists()
                   and not (t / "result.json").exists()]
        if _finished(out) and running:
            break
        if driver.poll() is not None:
            break
        time.sleep(0.05)
    killed_while_running = driver.poll() is None
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = _finished(out)
    time.sleep(1.0)
    subprocess.run(argv + ["--resume"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=_env(1))
    after = _finished(out)
    lost = [k for k, (text, _) in before.items() if k not in after or after[k][0] != text]
    rerun = [k for k, (_, n) in before.items() if k in after and after[k][1] != n]
    summary = json.loads((out / "results.json").read_text())
    return {"engine": engine, "trials": summary["n_trials"],
            "driver_killed_mid_sweep": killed_while_running,
            "finished_before_kill": len(before), "finished_after_resume": summary["finished"],
            "resumed_from_checkpoint": summary["resumed_from_checkpoint"],
            "trials_lost": len(lost), "finished_trials_rerun": len(rerun)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=tuple(SCALES), default="default")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    import ray

    sc = SCALES[args.scale]
    work = Path(args.work or tempfile.mkdtemp(prefix="sweep-overhead-"))
    load0 = os.getloadavg()
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t
    address = ray.get_runtime_context().gcs_address
    try:
        ov = overhead(sc, work, address)
        resume = [resume_after_kill(work, e, address) for e in ("local", "ray")]
    finally:
        ray.shutdown()
    table = [{"engine": e, "trial_s_direct": ov["direct_s_per_trial"],
              "trial_s_in_sweep": statistics.median(ov[e]["trial_process_s"]) / sc["trials"],
              "sweep_s_outside_trials_per_trial": ov[e]["outside_trials_s_per_trial"],
              "overhead_pct": 100 * ov[e]["overhead_ratio_outside_trials"],
              "overhead_pct_vs_direct_run": 100 * ov[e]["overhead_ratio_per_trial_vs_direct"],
              "target_pct": 10} for e in ("local", "ray")]
    table += [{"engine": r["engine"], "resume_trials_lost": r["trials_lost"],
               "resume_finished_trials_rerun": r["finished_trials_rerun"], "target": 0}
              for r in resume]
    rec = {"benchmark": "sweep_overhead", "scale": args.scale, "table": table, "overhead": ov,
           "ray_init_s": ray_start, "resume": resume, "seeds": list(range(sc["trials"])),
           "load_average_start_end": [load0, os.getloadavg()],
           "note": "interleaved repeats, medians; overhead = sweep − direct. "
                   "load_average_start_end shows whether other jobs competed for the 2 cores "
                   "(above 2: contended, and the vs-direct figure is then mostly noise).",
           **provenance(None)}
    suffix = "" if args.scale == "default" else f"_{args.scale}"
    path = Path(args.results_dir) / f"sweep_overhead{suffix}.json"
    atomic_write_json(rec, path)
    print(f"\ndirect trial {ov['direct_s_per_trial']:.1f} s; Ray start {ray_start:.1f} s "
          f"(once per sweep)")
    for e in ("local", "ray"):
        print(f"{e:5s}: sweep time outside the trial processes "
              f"{ov[e]['outside_trials_s_per_trial']:.2f} s per trial "
              f"({100 * ov[e]['overhead_ratio_outside_trials']:.1f}%); vs the direct runs "
              f"{ov[e]['overhead_s_per_trial_vs_direct']:+.2f} s per trial "
              f"({100 * ov[e]['overhead_ratio_per_trial_vs_direct']:+.1f}%)")
    for r in resume:
        print(f"resume after killing the {r['engine']} driver: {r['finished_before_kill']} "
              f"finished before the kill, lost {r['trials_lost']}, re-run "
              f"{r['finished_trials_rerun']}, {r['finished_after_resume']}/{r['trials']} done")
    print(f"wrote {path}")
    return rec


if __name__ == "__main__":
    main()
