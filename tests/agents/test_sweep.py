"""agents.sweep: sweep files, the results table, and both engines end to end with kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from scipy import stats

from agents.sweep.config import SweepConfigError, parse_config
from agents.sweep.results import build_table
from agents.sweep.run import main
from agents.sweep.targets import option_flags

ROOT = Path(__file__).resolve().parents[2]
# Tiny but real: models.train on scikit-learn digits, long enough (10 epochs) to be killed mid-way.
TINY = {"name": "tiny", "target": "models.train",
        "options": {"dataset": "digits", "width": 4, "epochs": 10, "batch-size": 64,
                    "train-subset": 500, "lr": 0.02},
        "metrics": ["test_acc", "best_val_acc"], "retries": 2}


def _write(tmp_path: Path, **over) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**TINY, **over}))
    return path


def _wait(cond, timeout: float = 240.0, what: str = "condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def _trials(out: Path) -> list[Path]:
    return sorted((out / "trials").glob("*")) if (out / "trials").exists() else []


def _running_with_checkpoint(out: Path, exclude: set[str] = frozenset()) -> Path | None:
    for t in _trials(out):
        if t.name not in exclude and (t / "running.json").exists() and (t / "last.pt").exists() \
                and not (t / "result.json").exists():
            return t
    return None


def _attempts(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "attempts.jsonl").read_text().splitlines()]


def test_bad_sweep_files_name_the_problem():
    with pytest.raises(SweepConfigError, match="target"):
        parse_config({"target": "models.tran"})
    with pytest.raises(SweepConfigError, match="grid"):
        parse_config({"target": "models.train", "grid": {"lr": 0.1}})
    with pytest.raises(SweepConfigError, match="loguniform"):
        parse_config({"target": "models.train",
                      "random": {"samples": 2, "params": {"lr": {"logunif": [1, 2]}}}})
    with pytest.raises(SweepConfigError, match="seeds"):
        parse_config({"target": "models.train", "grid": {"seed": [0, 1]}})
    with pytest.raises(SweepConfigError, match="unknown key"):
        parse_config({"target": "models.train", "epochs": 3})
    with pytest.raises(SweepConfigError, match="baseline"):
        parse_config({"target": "models.train", "grid": {"bn": ["a"]}, "baseline": {"lr": 1}})


def test_grid_random_seeds_expand_deterministically():
    raw = {"target": "agents.train", "options": {"env-kwargs": {"dataset": "digits"}},
           "grid": {"env-kwargs.reward": ["detrimental", "robust"]},
           "random": {"samples": 3, "seed": 0,
                      "params": {"hyperparams.learning_rate": {"loguniform": [1e-4, 1e-2]}}},
           "seeds": 2}
    a, b = parse_config(raw).trials(), parse_config(raw).trials()
    assert [t.trial_id for t in a] == [t.trial_id for t in b] and len(a) == 2 * 3 * 2
    assert len({t.trial_id for t in a}) == len(a)
    lrs = {t.params["hyperparams.learning_rate"] for t in a}
    assert len(lrs) == 3 and all(1e-4 <= x <= 1e-2 for x in lrs)
    flags = option_flags(a[0].options)
    assert flags[:3] == ["--env-kwargs", "dataset:digits", "reward:detrimental"]
    assert flags[3] == "--hyperparams" and flags[4].startswith("learning_rate:")
    assert option_flags({"augment": False, "no-progress": True, "sensors": [8, 16]}) == [
        "--no-augment", "--no-progress", "--sensors", "8", "16"]
    # a choice drawn twice is one condition, not two trials with the same id
    dup = parse_config({"target": "models.train", "random": {
        "samples": 6, "params": {"width": {"choice": [4, 8]}}}}).trials()
    assert sorted(t.params["width"] for t in dup) == [4, 8]


def test_grid_blocks_carry_their_own_seeds_and_baseline_pairs_within_other_axes():
    cfg = parse_config({"target": "models.train", "seeds": [0, 1], "baseline": {"bn": "standard"},
                        "grid": [{"epochs": [1, 3], "bn": ["standard", "revisited"]},
                                 {"epochs": [3], "bn": ["standard", "revisited"], "seeds": [1, 2]}]})
    got = sorted((t.options["epochs"], t.options["bn"], t.seed) for t in cfg.trials())
    assert got == sorted([(e, b, s) for e in (1, 3) for b in ("standard", "revisited")
                          for s in (0, 1)] + [(3, "standard", 2), (3, "revisited", 2)])
    assert len(cfg.conditions()) == 4  # overlapping blocks: one condition, seeds merged
    with pytest.raises(SweepConfigError, match="seeds"):
        parse_config({"target": "models.train", "grid": [{"bn": ["a"], "seeds": [0, 0]}]})
    # each epochs' revisited is paired with that epochs' standard, not with the first standard
    acc = {(1, "standard"): [0.5, 0.6, 0.55], (1, "revisited"): [0.4, 0.5, 0.45],
           (3, "standard"): [0.8, 0.82, 0.81], (3, "revisited"): [0.85, 0.86, 0.88]}
    results = [{"status": "ok", "condition": f"epochs={e},bn={b}", "params": {"epochs": e, "bn": b},
                "seed": s, "metrics": {"test_acc": v}}
               for (e, b), vs in acc.items() for s, v in enumerate(vs)]
    rows = {r["condition"]: r for r in build_table(results, ["test_acc"], {"bn": "standard"})}
    assert rows["epochs=3,bn=revisited"]["baseline"] == "epochs=3,bn=standard"
    assert abs(rows["epochs=3,bn=revisited"]["diff_mean"] - 0.16 / 3) < 1e-12
    assert rows["epochs=1,bn=revisited"]["diff_mean"] < 0


def test_results_table_mean_ci_and_paired_test():
    acc = {"standard": [0.80, 0.82, 0.79, 0.85], "revisited": [0.83, 0.84, 0.80, 0.88]}
    results = [{"status": "ok", "condition": f"bn={c}", "params": {"bn": c}, "seed": s,
                "metrics": {"test_acc": v}} for c, vs in acc.items() for s, v in enumerate(vs)]
    rows = build_table(results + [{"status": "failed", "condition": "bn=x", "seed": 0}],
                       ["test_acc"], {"bn": "standard"})
    assert [r["condition"] for r in rows] == ["bn=standard", "bn=revisited"]
    std, rev = rows
    assert std["n"] == 4 and abs(std["mean"] - 0.815) < 1e-12
    half = stats.t.ppf(0.975, 3) * stats.tstd(acc["standard"]) / 2
    assert abs(std["ci95_high"] - (0.815 + half)) < 1e-12 and "p_two_sided" not in std
    ref = stats.ttest_rel(acc["revisited"], acc["standard"])
    assert rev["n_pairs"] == 4 and rev["wins"] == 4 and abs(rev["diff_mean"] - 0.0225) < 1e-12
    assert abs(rev["p_two_sided"] - ref.pvalue) < 1e-12 and abs(rev["p_greater"] - ref.pvalue / 2) < 1e-12


def test_local_sweep_trial_killed_driver_killed_and_resumed(tmp_path):
    """Kill one trial process (retried from its checkpoint), then the driver; resume loses
    nothing and re-runs no finished trial."""
    cfg = _write(tmp_path, grid={"bn": ["standard", "revisited"]}, seeds=2, max_concurrent=2,
                 baseline={"bn": "standard"})
    out = tmp_path / "sweep"
    driver = subprocess.Popen([sys.executable, "-m", "agents.sweep", str(cfg), "--out", str(out),
                               "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        victim = _wait(lambda: _running_with_checkpoint(out), what="a trial with a checkpoint")
        os.kill(json.loads((victim / "running.json").read_text())["pid"], signal.SIGKILL)
        _wait(lambda: any((t / "result.json").exists() for t in _trials(out))
              and any((t / "running.json").exists() and not (t / "result.json").exists()
                      for t in _trials(out)), what="one finished and one running trial")
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    done_before = {t.name: (t / "result.json").read_text() for t in _trials(out)
                   if (t / "result.json").exists()}
    n_attempts_before = {t.name: len(_attempts(t)) for t in _trials(out) if t.name in done_before}
    assert done_before and len(done_before) < 4

    summary = main([str(cfg), "--out", str(out), "--resume", "--no-progress"])
    assert summary["finished"] == 4 and summary["failed"] == []
    assert summary["finished_before_this_run"] == len(done_before)
    for name, text in done_before.items():  # no finished trial re-run, no result lost
        assert (out / "trials" / name / "result.json").read_text() == text
        assert len(_attempts(out / "trials" / name)) == n_attempts_before[name]
    killed = _attempts(victim)
    assert killed[0]["returncode"] == -signal.SIGKILL and "--resume" in killed[1]["command"]
    history = json.loads((victim / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(10))  # continued, not restarted
    rows = {(r["condition"], r["metric"]): r for r in
            json.loads((out / "results.json").read_text())["table"]}
    assert rows[("bn=standard", "test_acc")]["n"] == 2
    assert rows[("bn=revisited", "test_acc")]["n_pairs"] == 2
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("condition,metric,n,mean,std,ci95_low") and len(csv) == 5
    for t in _trials(out):  # own run folder with TensorBoard logs; hparams entry per trial
        assert list(t.glob("events.out.tfevents*")) and (out / "tb" / t.name).exists()

    again = main([str(cfg), "--out", str(out), "--resume", "--no-progress"])
    assert again["finished_before_this_run"] == 4
    with pytest.raises(FileExistsError, match="--resume"):
        main([str(cfg), "--out", str(out)])


@pytest.fixture(scope="module")
def ray_local():
    import ray  # the 'ray' extra; make setup installs it

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_trial_killed_retried_from_checkpoint(tmp_path, ray_local):
    cfg = _write(tmp_path, seeds=2, max_concurrent=2)
    out = tmp_path / "sweep"
    killed: list[Path] = []

    def killer():
        victim = _wait(lambda: _running_with_checkpoint(out), what="a Ray trial with a checkpoint")
        os.kill(json.loads((victim / "running.json").read_text())["pid"], signal.SIGKILL)
        killed.append(victim)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    summary = main([str(cfg), "--out", str(out), "--engine", "ray", "--no-progress"])
    th.join(timeout=5)
    assert killed, "the trial was not killed"
    assert summary["finished"] == 2 and summary["failed"] == []
    att = _attempts(killed[0])
    assert att[0]["returncode"] == -signal.SIGKILL and "--resume" in att[1]["command"]
    assert len(json.loads((killed[0] / "metrics.json").read_text())["history"]) == 10
    assert killed[0].name in summary["retried"]
    assert list((out / "ray").glob("*/result.json"))  # Tune's own per-trial reports
    again = main([str(cfg), "--out", str(out), "--engine", "ray", "--resume", "--no-progress"])
    assert again["finished_before_this_run"] == 2 and len(_attempts(killed[0])) == 2


def test_example_sweep_files_parse():
    from agents.sweep.config import load_config
    from agents.sweep.targets import get_target

    files = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        cfg = load_config(f)
        t = cfg.trials()[0]
        argv = get_target(cfg.target).command(t.options, t.seed, Path("/tmp/x"), cfg.seed_flag)
        assert str(t.seed) in argv, f
