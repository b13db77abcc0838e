"""A learned data schedule vs fixed transfer sets on DistillSource.

For the data-free setting (``deploygym/DistillSourceDataFree-v0``, the default) and, with
``--settings target``, the one with a labelled target probe, it compares on the same evaluation
seeds (20 at the default scale, paired):

* PPO trained with ``python -m agents.train --env <id>`` (same code path, called in-process;
  a finished run with the same settings is reused, a killed one continues from its last
  checkpoint) for every ``--ppo-seeds`` (3), on the Mixture env (``--ppo-actions mixture``,
  default: softmax weights over the sources, row "ppo mixture") and/or the Discrete env
  (one source per phase, row "ppo");
* every fixed single source; uniform random choices; the uniform mixture of all sources;
* the **black-box static mixture**: Optuna TPE over the Mixture env's constant action with as
  many full student trainings as one PPO training consumed episodes
  (:func:`agents.blackbox.static_mixture_search`, scored on the probe, never the test split);
* on a **held-out teacher** (``--heldout-teacher``, default another training seed, pinned like
  the env's teacher and never seen by PPO or the search): the same policies without retraining.

It reports the final student accuracy on the Fashion-MNIST test slice (mean, 95% CI over the
evaluation seeds), paired one-sided t-tests of each policy against the best fixed source and
against the black-box mixture, the learned schedule as a PNG and in TensorBoard, and the
batched-students speed-up measured by ``benchmarks/kd_source_batched.py``.

Every episode trains a student from scratch (the env's defaults: ~105 s on one core), so the
default scale is about 600 episodes, ~9 h on 2 cores (``--workers 2``). Evaluations, the
black-box history and PPO checkpoints are saved as they finish; re-running the command
continues where a killed run stopped.

    python -m benchmarks.kd_source_policy --scale smoke
    python -m benchmarks.kd_source_policy                  # the committed result
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

import envs  # noqa: E402, F401  (registers the ids)
from benchmarks.figures.kd_source_policy import (  # noqa: E402
    PPO_NAMES,
    plot_accuracy,
    plot_schedules,
    tensorboard_snapshot,
)
from benchmarks.parts.kd_source_policy_runs import (  # noqa: E402
    EVAL_SEED_BASE,
    SCHEMA,
    ppo_train_seconds,
    run_policy,
    train_ppo,
)
from models import stats  # noqa: E402
from models.device import intra_op_threads  # noqa: E402
from models.io import atomic_write_json, command_line, machine_description, provenance  # noqa: E402

SETTINGS = {"target": ("deploygym/DistillSource-v0", "deploygym/DistillSourceMixture-v0"),
            "data-free": ("deploygym/DistillSourceDataFree-v0",
                          "deploygym/DistillSourceMixtureDataFree-v0")}
SCALES: dict[str, dict[str, Any]] = {
    # ppo_steps = env steps (10 per episode); seeds = evaluation episodes per policy
    "smoke": {"ppo_steps": 80, "seeds": [0, 1, 2], "ppo_seeds": [0], "blackbox_trials": 4,
              "workers": 1, "env": {"phases": 4, "updates_per_phase": 4, "pool_size": 1024,
                                    "student_width": 8, "student_depth": 1, "augment": "none"}},
    # the env's defaults (41k student, heavy augmentation, 10 × 300 updates) cost ~105 s per
    # episode on one core, so 60 min of PPO on 2 cores (2 envs) is ~65 episodes: 600 steps,
    # a PPO update every 4 episodes (ppo.yml); the black box gets the same 60 trainings
    "default": {"ppo_steps": 600, "seeds": list(range(20)), "ppo_seeds": [0, 1, 2],
                "workers": 2, "save_freq": 40, "env": {}},
    "paper": {"ppo_steps": 20000, "seeds": list(range(30)), "ppo_seeds": [0, 1, 2, 3, 4],
              "workers": 2, "env": {"updates_per_phase": 100}},
}
def row(setting: str, policy: str, eps: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over the evaluation seeds (episodes of one seed, one per PPO
    training seed: averaged), and the RL aggregate of :func:`rl_scores`."""
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for e in eps:
        by_seed.setdefault(e["seed"], []).append(e)
    seeds = sorted(by_seed)
    acc = np.array([np.mean([e["final_accuracy"] for e in by_seed[s]]) for s in seeds])
    ret = np.array([np.mean([e["return"] for e in by_seed[s]]) for s in seeds])
    scores, resampled = rl_scores(by_seed)
    return {"setting": setting, "policy": policy, "acc_mean": float(acc.mean()),
            "acc_std": stats.std(acc), "return_mean": float(ret.mean()),
            "acc_per_seed": acc.round(4).tolist(), "seeds": seeds, "n_seeds": len(seeds),
            "rl": {**stats.rl_aggregate(scores), "resampled": resampled}}


def rl_scores(by_seed: dict[int, list[dict[str, Any]]]) -> tuple[np.ndarray, str]:
    """The accuracies as a (runs, tasks) matrix for :func:`models.stats.rl_aggregate`: with
    one episode per evaluation seed and PPO run, (PPO seeds, evaluation seeds), resampling
    the training runs within each evaluation seed; a policy without training runs has one
    episode per seed, and its episodes are resampled."""
    counts = {len(v) for v in by_seed.values()}
    seeds = sorted(by_seed)
    if counts == {1} or len(counts) != 1:
        acc = [np.mean([e["final_accuracy"] for e in by_seed[s]]) for s in seeds]
        return np.asarray(acc)[:, None], "evaluation episodes"
    m = np.array([[e["final_accuracy"] for e in by_seed[s]] for s in seeds]).T
    return m, "training runs within each evaluation seed"


def summarise(table: list[dict[str, Any]], setting: str, best_fixed: str,
              blackbox: str = "blackbox mixture") -> dict[str, Any]:
    """Per policy: mean, 95% CI, number of evaluation seeds, and one-sided paired p-values
    (policy > best fixed source, policy > black-box mixture) over the shared seeds."""
    rows = {r["policy"]: r for r in table if r["setting"] == setting}

    def per_seed(name: str) -> dict[int, float]:
        r = rows[name]
        return dict(zip(r["seeds"], r["acc_per_seed"], strict=True))

    out = {}
    for name, r in rows.items():
        ci = stats.mean_ci(r["acc_per_seed"])
        cell = {"mean": ci.mean, "ci95": None if ci.n < 2 else ci.half_width,
                "n_eval_seeds": r["n_seeds"]}
        for key, ref in (("p_vs_best_fixed", best_fixed), ("p_vs_blackbox", blackbox)):
            if ref in rows and ref != name:
                pr = stats.paired_by_seed(per_seed(name), per_seed(ref))
                cell[key] = pr.get("p_greater")
                cell[key.replace("p_", "diff_")] = pr.get("diff_mean")
        out[name] = cell
    return out


# ------------------------------------------------------------------------------ stages
@dataclass
class Plan:
    """The run's options, resolved from the scale and the command line."""

    scale_name: str
    scale: dict[str, Any]
    settings: list[str]
    ppo_actions: list[str]
    ppo_seeds: list[int]
    ppo_hp: list[str]
    workers: int
    env_kw: dict[str, Any]
    heldout_kw: dict[str, Any] | None
    heldout_teacher: list[str]
    out: Path
    command: str

    @property
    def seeds(self) -> list[int]:
        return self.scale["seeds"]

    @property
    def runs(self) -> Path:
        return self.out / "kd_source_policy_runs"

    @property
    def cache(self) -> Path:  # finished evaluations (resume)
        return self.runs / "episodes"


@dataclass
class Collected:
    """What the stages gather: table rows, per-setting details and summaries."""

    table: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    teacher_acc: float | None = None


def make_plan(argv: list[str] | None) -> Plan:
    """Parse the command line and resolve it against the scale."""
    from agents.zoo_hyperparams import parse_kv

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="default")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--settings", nargs="*", choices=sorted(SETTINGS), default=["data-free"],
                   help="the data-free probe (default: the headline question) and/or the "
                        "labelled target probe")
    p.add_argument("--ppo-seeds", type=int, nargs="+", default=None,
                   help="PPO training seeds (default: the scale's, 3 at the default scale)")
    p.add_argument("--ppo-actions", nargs="+", choices=tuple(PPO_NAMES), default=["mixture"],
                   help="train PPO on the Discrete env (one source per phase), on the Mixture "
                        "env (softmax weights over the sources), or both")
    p.add_argument("--ppo-hyperparams", nargs="*", metavar="KEY:VALUE", default=[],
                   help="PPO overrides passed to agents.train --hyperparams")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY:VALUE", default=[],
                   help="extra env options, e.g. width:8 epochs:3 for a cheaper teacher")
    p.add_argument("--workers", type=int, default=None,
                   help="processes for evaluation episodes, black-box trials and PPO's envs "
                        "(default: the scale's, 2)")
    p.add_argument("--heldout-teacher", nargs="*", metavar="KEY:VALUE", default=["seed:1"],
                   help="teacher options of the held-out teacher (none: skip it)")
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    env_kw = {**scale["env"], "progress": False, **parse_kv(args.env_kwargs, "--env-kwargs")}
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Plan(
        scale_name=args.scale, scale=scale, settings=args.settings, ppo_actions=args.ppo_actions,
        ppo_seeds=args.ppo_seeds or scale["ppo_seeds"],
        ppo_hp=[*scale.get("ppo_hyperparams", []), *args.ppo_hyperparams],  # the CLI's win
        workers=args.workers or scale["workers"], env_kw=env_kw,
        heldout_kw=({**env_kw, **parse_kv(args.heldout_teacher, "--heldout-teacher")}
                    if args.heldout_teacher else None),
        heldout_teacher=args.heldout_teacher, out=out,
        command=(shlex.join(["python", "-m", "benchmarks.kd_source_policy", *argv])
                 if argv is not None else command_line()))


def run_baselines(plan: Plan, setting: str, env: gym.Env, ex: Any, res: Collected
                  ) -> tuple[dict[str, Any], Any]:
    """Every fixed source, uniform random choices, the uniform mixture and the black-box
    static mixture; returns the best fixed source's row and the black-box policy."""
    from agents.blackbox import static_mixture_search
    from agents.episodes import Constant, EnvFactory, UniformRandom
    from models.cache import config_hash

    disc_id, mix_id = SETTINGS[setting]
    make_d, make_m = EnvFactory(disc_id, plan.env_kw), EnvFactory(mix_id, plan.env_kw)
    names = env.unwrapped.source_names
    print(f"[{setting}] sources {names}", flush=True)
    for i, name in enumerate(names):
        res.table.append(row(setting, name, run_policy(make_d, Constant(i), plan.seeds, ex,
                                                       plan.cache)))
        print(f"  fixed {name:10s} acc {res.table[-1]['acc_mean']:.3f}", flush=True)
    uniform = Constant((0.0,) * len(names))
    res.table.append(row(setting, "uniform random",
                         run_policy(make_d, UniformRandom(), plan.seeds, ex, plan.cache)))
    res.table.append(row(setting, "uniform mixture",
                         run_policy(make_m, uniform, plan.seeds, ex, plan.cache)))
    fixed = [r for r in res.table if r["setting"] == setting and r["policy"] in names]
    best = max(fixed, key=lambda r: r["acc_mean"])
    # the black box gets as many student trainings as one PPO training's episodes
    trials = plan.scale.get("blackbox_trials") or max(
        plan.scale["ppo_steps"] // env.unwrapped.cfg.phases, 1)
    t0 = time.perf_counter()
    bb = static_mixture_search(
        make_m, trials, seed=0, episode_seed_base=EVAL_SEED_BASE * 2, executor=ex,
        batch=plan.workers, history_path=plan.runs / f"blackbox-{setting}-"
        f"{config_hash([mix_id, plan.env_kw, trials])}.json")
    bb_policy = Constant(tuple(bb["best_action"]))
    res.table.append(row(setting, "blackbox mixture",
                         run_policy(make_m, bb_policy, plan.seeds, ex, plan.cache)))
    print(f"  random {res.table[-3]['acc_mean']:.3f}  mixture {res.table[-2]['acc_mean']:.3f}  "
          f"black-box mixture {res.table[-1]['acc_mean']:.3f} ({trials} trials)", flush=True)
    res.details[setting] = {"sources": list(names), "best_fixed": best["policy"],
                            "best_fixed_acc": best["acc_mean"], "ppo": {},
                            "blackbox": {**{k: v for k, v in bb.items() if k != "history"},
                                         "seconds": time.perf_counter() - t0,
                                         "history": bb["history"]}}
    return best, bb_policy


def run_ppo(plan: Plan, setting: str, best: dict[str, Any], ex: Any, res: Collected
            ) -> dict[str, Any]:
    """PPO on each action space, one training per PPO seed, evaluated on the evaluation
    seeds; returns the trained agents by ``"<action> <seed>"``."""
    from agents.episodes import EnvFactory, SavedAgent

    agents: dict[str, SavedAgent] = {}
    train_kw = {k: v for k, v in plan.env_kw.items() if k != "progress"}
    for action in plan.ppo_actions:
        disc_id, mix_id = SETTINGS[setting]
        env_id = mix_id if action == "mixture" else disc_id
        make = EnvFactory(env_id, plan.env_kw)
        eps_all, runs = [], {}
        for ps in plan.ppo_seeds:
            folder = train_ppo(env_id, train_kw, plan.scale["ppo_steps"], ps, plan.runs,
                               plan.ppo_hp, n_envs=plan.workers,
                               save_freq=plan.scale.get("save_freq", 0))
            agent = agents[f"{action} {ps}"] = SavedAgent(str(folder))
            eps = run_policy(make, agent, plan.seeds, ex, plan.cache)
            eps_all += eps
            runs[ps] = {"run": str(folder), **ppo_train_seconds(folder),
                        "acc_mean": row(setting, "", eps)["acc_mean"], "episodes": eps}
        res.table.append(row(setting, PPO_NAMES[action], eps_all))  # mean over PPO seeds
        res.details[setting]["ppo"][action] = {
            "env_id": env_id, "steps": plan.scale["ppo_steps"], "n_envs": plan.workers,
            "seeds": runs, "episodes": [e for r in runs.values() for e in r["episodes"]]}
        print(f"  {PPO_NAMES[action]} acc {res.table[-1]['acc_mean']:.3f} over PPO seeds "
              f"{plan.ppo_seeds} (best fixed {best['policy']} {best['acc_mean']:.3f})",
              flush=True)
    return agents


def run_heldout(plan: Plan, setting: str, best: dict[str, Any], bb_policy: Any,
                agents: dict[str, Any], ex: Any, res: Collected) -> None:
    """The same policies, without retraining, on the held-out teacher."""
    from agents.episodes import Constant, EnvFactory
    from agents.zoo_hyperparams import parse_kv

    disc_id, mix_id = SETTINGS[setting]
    h_d, h_m = EnvFactory(disc_id, plan.heldout_kw), EnvFactory(mix_id, plan.heldout_kw)
    h_env = gym.make(disc_id, **plan.heldout_kw)
    names = res.details[setting]["sources"]
    hs = f"{setting} (held-out teacher)"
    for policy, make, name in ((Constant(names.index(best["policy"])), h_d, best["policy"]),
                               (Constant((0.0,) * len(names)), h_m, "uniform mixture"),
                               (bb_policy, h_m, "blackbox mixture")):
        res.table.append(row(hs, name, run_policy(make, policy, plan.seeds, ex, plan.cache)))
    for action in plan.ppo_actions:
        make = h_d if action == "discrete" else h_m
        eps_all = []
        for ps in plan.ppo_seeds:
            eps_all += run_policy(make, agents[f"{action} {ps}"], plan.seeds, ex, plan.cache)
        res.table.append(row(hs, PPO_NAMES[action], eps_all))
    res.summary[hs] = summarise(res.table, hs, best["policy"])
    res.details[hs] = {"teacher_options": parse_kv(plan.heldout_teacher, "--heldout-teacher"),
                       "teacher_test_acc": h_env.unwrapped.teacher_accuracy,
                       "teacher_sha256": h_env.unwrapped.res.teacher_sha256}
    h_env.close()


def run_setting(plan: Plan, setting: str, ex: Any, res: Collected) -> None:
    """Baselines, PPO and (optionally) the held-out teacher of one setting."""
    # built here first: pools and teacher land in the cache before the workers read them
    env = gym.make(SETTINGS[setting][0], **plan.env_kw)
    best, bb_policy = run_baselines(plan, setting, env, ex, res)
    agents = run_ppo(plan, setting, best, ex, res)
    res.summary[setting] = summarise(res.table, setting, best["policy"])
    if plan.heldout_kw is not None:
        run_heldout(plan, setting, best, bb_policy, agents, ex, res)
    res.teacher_acc = env.unwrapped.teacher_accuracy
    res.details[setting]["teacher_sha256"] = env.unwrapped.res.teacher_sha256
    env.close()


def plot(plan: Plan, res: Collected) -> None:
    """The schedule and accuracy PNGs, and the TensorBoard snapshot."""
    names = tuple(res.details[plan.settings[0]]["sources"])
    fig = plot_schedules({k: v for k, v in res.details.items() if "ppo" in v}, names,
                         plan.out / "kd_source_policy_schedule.png")
    plot_accuracy(res.table, plan.out / "kd_source_policy_accuracy.png")
    tensorboard_snapshot(res.table, fig, plan.out / "kd_source_policy_tb")


def print_summary(summary: dict[str, Any]) -> None:
    def _fmt_p(v: float | None) -> str:
        return "—" if v is None else f"{v:.3g}"

    print(f"\n{'setting':34s} {'policy':16s} {'acc mean':>9s} {'± CI95':>7s} {'p>best':>7s} "
          f"{'p>bbox':>7s}")
    for setting, cells in summary.items():
        for name, c in cells.items():
            print(f"{setting:34s} {name:16s} {c['mean']:9.3f} {c['ci95'] or 0:7.3f} "
                  f"{_fmt_p(c.get('p_vs_best_fixed')):>7s} {_fmt_p(c.get('p_vs_blackbox')):>7s}")


def write(plan: Plan, res: Collected, t_start: float) -> dict[str, Any]:
    """``kd_source_policy[_SCALE].json``: the table, the summary, details and provenance."""
    from agents.zoo_hyperparams import parse_kv

    batched = plan.out / "kd_source_batched.json"
    speedup = json.loads(batched.read_text())["batched_speedup"] if batched.exists() else None
    result = {"benchmark": "kd_source_policy", "schema": SCHEMA, "scale": plan.scale_name,
              "command": plan.command, "ppo_actions": plan.ppo_actions,
              "ppo_seeds": plan.ppo_seeds,
              "ppo_hyperparams": parse_kv(plan.ppo_hp, "--ppo-hyperparams"),
              "seeds": plan.seeds, "eval_seed_base": EVAL_SEED_BASE, "env_kwargs": plan.env_kw,
              "teacher_test_acc": res.teacher_acc, "table": res.table, "batched_speedup": speedup,
              "summary": {**res.summary, "batched_speedup": speedup},  # the headline keys
              "details": res.details, "wall_seconds": time.perf_counter() - t_start,
              "machine": machine_description(), "contended": True,
              "figures": ["kd_source_policy_schedule.png", "kd_source_policy_accuracy.png"],
              **{k: v for k, v in provenance(plan.ppo_seeds[0], plan.command).items()
                 if k != "machine"}}
    atomic_write_json(result, plan.out / ("kd_source_policy.json" if plan.scale_name == "default"
                                          else f"kd_source_policy_{plan.scale_name}.json"))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from agents.episodes import episode_pool

    plan = make_plan(argv)
    t_start, res = time.perf_counter(), Collected()
    ex = episode_pool(plan.workers) if plan.workers > 1 else None
    try:
        with intra_op_threads(1):  # small networks: one thread is fastest on a shared CPU
            for setting in plan.settings:
                run_setting(plan, setting, ex, res)
    finally:
        if ex is not None:
            ex.shutdown()
    plot(plan, res)
    print_summary(res.summary)
    return write(plan, res, t_start)


if __name__ == "__main__":
    main()
