"""The DistillSource benchmark reuses a finished PPO run only when everything matches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.zoo_hyperparams import load_hyperparams
from benchmarks.figures.kd_source_policy import tensorboard_snapshot
from benchmarks.parts.kd_source_policy_runs import finished_ppo_run

ENV = "deploygym/DistillSourceMixture-v0"


def _fake_run(root: Path, k: int, **changes) -> Path:
    run = root / "ppo" / f"DistillSourceMixture-v0_{k}"
    run.mkdir(parents=True)
    rec = {"env": ENV, "env_kwargs": {"phases": 4}, "seed": 0, "n_timesteps": 80,
           "resumed_from": None, "result": {"num_timesteps": 80},
           "hyperparams": load_hyperparams("ppo", ENV, overrides={"ent_coef": 0.01})}
    rec.update(changes)
    (run / "run.json").write_text(json.dumps(rec))
    (run / "policy.json").write_text("{}")
    return run


def test_finished_ppo_run_matches_env_options_seed_steps_and_hyperparams(tmp_path):
    args = (ENV, {"phases": 4}, 80, 0, tmp_path, ["ent_coef:1e-2"])
    assert finished_ppo_run(*args) is None
    _fake_run(tmp_path, 1, seed=1)
    _fake_run(tmp_path, 2, env_kwargs={"phases": 5})
    _fake_run(tmp_path, 3, result={"num_timesteps": 40})  # killed before the end
    _fake_run(tmp_path, 4, hyperparams=load_hyperparams("ppo", ENV))
    _fake_run(tmp_path, 5, resumed_from="x/model.zip")
    assert finished_ppo_run(*args) is None
    good = _fake_run(tmp_path, 6)
    assert finished_ppo_run(*args) == good
    assert finished_ppo_run(*args, n_envs=2) is None  # trained with another number of envs
    (good / "policy.json").unlink()
    assert finished_ppo_run(*args) is None


def test_rows_use_sample_std_and_the_summary_pairs_policies_by_evaluation_seed():
    from scipy import stats

    from benchmarks.kd_source_policy import row, summarise

    def eps(accs, reps=1):
        return [{"seed": s, "final_accuracy": a, "return": a} for s, a in enumerate(accs)
                for _ in range(reps)]

    best = [0.50, 0.52, 0.48, 0.51]
    ppo = [0.55, 0.56, 0.50, 0.57]
    box = [0.53, 0.50, 0.49, 0.52]
    table = [row("t", "opengl", eps(best)), row("t", "blackbox mixture", eps(box)),
             row("t", "ppo", eps(ppo, reps=3))]  # three PPO seeds on the same eval seeds
    assert table[0]["acc_std"] == pytest.approx(np.std(best, ddof=1))
    assert table[2]["n_seeds"] == 4 and table[2]["acc_per_seed"] == ppo
    # RL aggregate: PPO's (training runs × evaluation seeds), a fixed source's episodes
    assert (table[2]["rl"]["n_runs"], table[2]["rl"]["n_tasks"]) == (3, 4)
    assert (table[0]["rl"]["n_runs"], table[0]["rl"]["n_tasks"]) == (4, 1)
    assert table[0]["rl"]["iqm"] == pytest.approx(np.mean(sorted(best)[1:3]))
    s = summarise(table, "t", best_fixed="opengl")
    assert set(s["ppo"]) >= {"mean", "ci95", "n_eval_seeds", "p_vs_best_fixed", "p_vs_blackbox"}
    assert s["ppo"]["p_vs_best_fixed"] == pytest.approx(
        stats.ttest_rel(ppo, best, alternative="greater").pvalue)
    assert s["ppo"]["p_vs_blackbox"] == pytest.approx(
        stats.ttest_rel(ppo, box, alternative="greater").pvalue)
    assert "p_vs_best_fixed" not in s["opengl"] and s["ppo"]["n_eval_seeds"] == 4


def test_finished_episodes_are_reused_and_a_changed_policy_is_not(tmp_path, monkeypatch):
    import agents.episodes
    from agents.episodes import Constant, EnvFactory
    from benchmarks.parts.kd_source_policy_runs import EVAL_SEED_BASE, run_policy

    calls, kill_after = [], [None]

    def fake_run(make, policy, seeds, executor, step_keys, final_keys, on_done):
        calls.append(seeds)
        eps = []
        for s in seeds:
            if kill_after[0] is not None and len(eps) == kill_after[0]:
                raise KeyboardInterrupt
            eps.append({"seed": s, "return": 1.0, "seconds": 0.1,
                        "steps": [{"weights": [1.0, 0.0]}],
                        "final": {k: 0.5 for k in final_keys}})
            on_done(eps[-1])
        return eps

    monkeypatch.setattr(agents.episodes, "run_episodes", fake_run)
    make = EnvFactory("deploygym/DistillSourceDataFree-v0", {"phases": 1})
    first = run_policy(make, Constant(0), [0, 1], cache=tmp_path)
    assert calls == [[EVAL_SEED_BASE, EVAL_SEED_BASE + 1]] and [e["seed"] for e in first] == [0, 1]
    assert run_policy(make, Constant(0), [0, 1], cache=tmp_path) == first and len(calls) == 1
    run_policy(make, Constant(1), [0, 1], cache=tmp_path)  # another policy: run again
    assert calls[-1] == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1]
    more = run_policy(make, Constant(0), [0, 1, 2], cache=tmp_path)  # only the new seed runs
    assert calls[-1] == [EVAL_SEED_BASE + 2] and more[:2] == first and len(more) == 3
    kill_after[0] = 2  # killed after two of four episodes: those two are kept
    with pytest.raises(KeyboardInterrupt):
        run_policy(make, Constant(2), [0, 1, 2, 3], cache=tmp_path)
    kill_after[0] = None
    assert [e["seed"] for e in run_policy(make, Constant(2), [0, 1, 2, 3], cache=tmp_path)] == [
        0, 1, 2, 3]
    assert calls[-1] == [EVAL_SEED_BASE + 2, EVAL_SEED_BASE + 3]


def test_a_killed_ppo_run_is_found_with_its_last_checkpoint(tmp_path):
    from benchmarks.parts.kd_source_policy_runs import unfinished_ppo_run

    args = (ENV, {"phases": 4}, 80, 0, tmp_path, ["ent_coef:1e-2"])
    assert unfinished_ppo_run(*args) is None
    for k, done in ((1, 20), (2, 40)):
        run = _fake_run(tmp_path, k)
        rec = json.loads((run / "run.json").read_text())
        del rec["result"]  # killed: agents.train writes the result at the end
        (run / "run.json").write_text(json.dumps(rec))
        (run / "checkpoints" / "latest").mkdir(parents=True)
        (run / "checkpoints" / "latest" / "policy.json").write_text(
            json.dumps({"num_timesteps": done}))
    got = unfinished_ppo_run(*args)
    assert got == (tmp_path / "ppo" / "DistillSourceMixture-v0_2" / "checkpoints" / "latest", 40)
    assert unfinished_ppo_run(*args, n_envs=2) is None
    assert finished_ppo_run(*args) is None


def test_ppo_training_cost_is_not_charged_for_a_pause_or_a_resume(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from benchmarks.parts.kd_source_policy_runs import ppo_train_seconds

    # 8 updates 200 s apart; killed after the 3rd, resumed 5000 s later into a new event file
    walls = [1000 + 200 * i for i in range(3)] + [6400 + 200 * i for i in range(5)]
    for part, (lo, hi) in enumerate(((0, 3), (3, 8))):
        w = SummaryWriter(str(tmp_path / "tb" / "PPO_1"), filename_suffix=f".{part}")
        for i in range(lo, hi):
            w.add_scalar("time/fps", 0, global_step=40 * (i + 1), walltime=walls[i])
            w.add_scalar("train/loss", 1.0, global_step=40 * (i + 1), walltime=walls[i])
        w.close()
    got = ppo_train_seconds(tmp_path)
    assert got == {"updates": 8, "seconds_per_update": 200.0, "train_seconds": 1600.0}
    assert np.isnan(ppo_train_seconds(tmp_path / "missing")["train_seconds"])


def test_accuracy_plot_draws_each_policy_with_its_95_ci(tmp_path, monkeypatch):
    import matplotlib.axes

    from benchmarks.figures.kd_source_policy import plot_accuracy
    from models.stats import mean_ci

    drawn = []
    real = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda ax, x, y, yerr=None, **kw: drawn.append((y, yerr))
                        or real(ax, x, y, yerr=yerr, **kw))
    accs = [0.80, 0.82, 0.79, 0.85]
    table = [{"setting": "s", "policy": "leaves", "acc_mean": float(np.mean(accs)),
              "acc_per_seed": accs},
             {"setting": "s", "policy": "one seed", "acc_mean": 0.7, "acc_per_seed": [0.7]}]
    plot_accuracy(table, tmp_path / "acc.png")
    assert drawn[0] == (pytest.approx(np.mean(accs)), pytest.approx(mean_ci(accs).half_width))
    assert drawn[1] == (0.7, 0.0)  # a single seed has no CI: drawn without a bar
    assert (tmp_path / "acc.png").stat().st_size > 0


def test_tensorboard_log_holds_only_the_latest_runs_scalars(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    for acc in (0.5, 0.8):  # an earlier run, then this one
        tensorboard_snapshot([{"setting": "data-free", "policy": "uniform mixture", "acc_mean": acc}],
                          plt.figure(), tb)
    files = list(tb.glob("events.out.tfevents.*"))
    assert len(files) == 1
    ea = EventAccumulator(str(files[0]))
    ea.Reload()
    assert [e.value for e in ea.Scalars("data-free/acc/uniform_mixture")] == [pytest.approx(0.8)]
    assert "schedule/ppo" in ea.Tags()["images"]
