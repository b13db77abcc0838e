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
import shutil
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the ids)
from models.io import atomic_write_json, command_line, machine_description, provenance

SCHEMA = 4  # 4: episodes cached one by one; summary with paired tests
PPO_NAMES = {"discrete": "ppo", "mixture": "ppo mixture"}
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
EVAL_SEED_BASE = 100_000  # evaluation episodes never reuse a training seed


FINAL_KEYS = ("final_accuracy", "final_agreement", "schedule", "mean_weights")


def run_policy(make_env, policy, seeds: list[int], executor=None,
               cache: Path | None = None) -> list[dict[str, Any]]:
    """One episode per evaluation seed (env seed ``EVAL_SEED_BASE + s``), in the pool's
    workers when given; the final infos and the weights of every phase. With ``cache`` (a
    folder) every finished episode is saved as it arrives and reused, so a killed benchmark
    loses at most the episodes in flight."""
    from agents.episodes import SavedAgent, run_episodes
    from models.cache import config_hash, file_digest

    key = {"schema": SCHEMA, "env_id": make_env.env_id, "env_kwargs": make_env.kwargs,
           "policy": repr(policy), "eval_seed_base": EVAL_SEED_BASE}
    if isinstance(policy, SavedAgent):
        key["policy_sha256"] = file_digest(Path(policy.folder) / "policy.pt")
    path = cache / f"{config_hash(key)}.json" if cache is not None else None
    done: dict[int, dict[str, Any]] = {}
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == json.loads(json.dumps(key, default=str)):
            done = {e["seed"]: e for e in saved["episodes"]}

    def keep(e: dict[str, Any]) -> None:
        done[e["seed"] - EVAL_SEED_BASE] = {
            "seed": e["seed"] - EVAL_SEED_BASE, "return": e["return"], **e["final"],
            "weights": [[round(float(v), 4) for v in st["weights"]] for st in e["steps"]],
            "seconds": e["seconds"]}
        if path is not None:
            atomic_write_json({"key": key, "episodes": sorted(done.values(),
                                                              key=lambda d: d["seed"])}, path)

    todo = [EVAL_SEED_BASE + s for s in seeds if s not in done]
    if todo:
        run_episodes(make_env, policy, todo, executor, step_keys=("weights",),
                     final_keys=FINAL_KEYS, on_done=keep)
    return [done[s] for s in seeds]


def row(setting: str, policy: str, eps: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over the evaluation seeds (episodes of one seed: averaged)."""
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for e in eps:
        by_seed.setdefault(e["seed"], []).append(e)
    seeds = sorted(by_seed)
    acc = np.array([np.mean([e["final_accuracy"] for e in by_seed[s]]) for s in seeds])
    ret = np.array([np.mean([e["return"] for e in by_seed[s]]) for s in seeds])
    return {"setting": setting, "policy": policy, "acc_mean": float(acc.mean()),
            "acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "return_mean": float(ret.mean()), "acc_per_seed": acc.round(4).tolist(),
            "seeds": seeds, "n_seeds": len(seeds)}


def summarise(table: list[dict[str, Any]], setting: str, best_fixed: str,
              blackbox: str = "blackbox mixture") -> dict[str, Any]:
    """Per policy: mean, 95% CI, number of evaluation seeds, and one-sided paired p-values
    (policy > best fixed source, policy > black-box mixture) over the shared seeds."""
    from agents.sweep.results import mean_ci, paired

    rows = {r["policy"]: r for r in table if r["setting"] == setting}

    def per_seed(name: str) -> dict[int, float]:
        r = rows[name]
        return dict(zip(r["seeds"], r["acc_per_seed"], strict=True))

    out = {}
    for name, r in rows.items():
        m, _, lo, hi = mean_ci(r["acc_per_seed"])
        cell = {"mean": m, "ci95": None if np.isnan(lo) else (hi - lo) / 2,
                "n_eval_seeds": r["n_seeds"]}
        for key, ref in (("p_vs_best_fixed", best_fixed), ("p_vs_blackbox", blackbox)):
            if ref in rows and ref != name:
                pr = paired(per_seed(name), per_seed(ref))
                cell[key] = pr.get("p_greater")
                cell[key.replace("p_", "diff_")] = pr.get("diff_mean")
        out[name] = cell
    return out


def _matching_ppo_runs(env_id: str, env_kw: dict[str, Any], steps: int, seed: int,
                       folder: Path, hyperparams: list[str], n_envs: int):
    """``agents.train`` runs under ``folder`` started with exactly this env, env options, seed,
    step count, number of envs and hyperparameters, with their ``run.json``."""
    from agents.zoo_hyperparams import load_hyperparams, parse_kv

    want = json.loads(json.dumps(load_hyperparams(
        "ppo", env_id, overrides=parse_kv(hyperparams, "--ppo-hyperparams")), default=str))
    for run in sorted((folder / "ppo").glob(f"{env_id.split('/')[-1]}_*")):
        try:
            rec = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("env") == env_id and rec.get("env_kwargs") == env_kw
                and rec.get("seed") == seed and rec.get("n_timesteps") == steps
                and rec.get("n_envs", 1) == n_envs
                and not rec.get("resumed_from") and rec.get("hyperparams") == want):
            yield run, rec


def finished_ppo_run(env_id: str, env_kw: dict[str, Any], steps: int, seed: int, folder: Path,
                     hyperparams: list[str], n_envs: int = 1) -> Path | None:
    """A finished matching run (so a killed benchmark does not train PPO again)."""
    for run, rec in _matching_ppo_runs(env_id, env_kw, steps, seed, folder, hyperparams, n_envs):
        if (rec.get("result", {}).get("num_timesteps", 0) >= steps
                and (run / "policy.json").exists()):
            return run
    return None


def unfinished_ppo_run(env_id: str, env_kw: dict[str, Any], steps: int, seed: int,
                       folder: Path, hyperparams: list[str],
                       n_envs: int = 1) -> tuple[Path, int] | None:
    """A matching run that was killed after a checkpoint: its ``checkpoints/latest`` folder
    and the steps it had taken (the most advanced such run)."""
    best = None
    for run, rec in _matching_ppo_runs(env_id, env_kw, steps, seed, folder, hyperparams, n_envs):
        meta = run / "checkpoints" / "latest" / "policy.json"
        if "result" in rec or not meta.exists():
            continue
        done = int(json.loads(meta.read_text()).get("num_timesteps", 0))
        if 0 < done < steps and (best is None or done > best[1]):
            best = (meta.parent, done)
    return best


def train_ppo(env_id: str, env_kw: dict[str, Any], steps: int, seed: int, folder: Path,
              hyperparams: list[str], n_envs: int = 1, save_freq: int = 0) -> Path:
    """Train PPO with ``agents.train`` (in-process), or reuse a finished matching run, or
    continue a killed one from its last checkpoint (saved every ``save_freq`` steps)."""
    from agents.train import main as train_main

    done = finished_ppo_run(env_id, env_kw, steps, seed, folder, hyperparams, n_envs)
    if done is not None:
        print(f"  reusing the finished PPO run {done}", flush=True)
        return done
    killed = unfinished_ppo_run(env_id, env_kw, steps, seed, folder, hyperparams, n_envs)
    kv = [f"{k}:{v}" for k, v in env_kw.items()]
    argv = ["--algo", "ppo", "--env", env_id, "-n", str(steps - (killed[1] if killed else 0)),
            "--seed", str(seed), "-f", str(folder), "--eval-freq", "0",
            "--save-freq", str(save_freq), "--no-progress-bar", "-v", "0"] \
        + (["-i", str(killed[0])] if killed else []) \
        + (["--n-envs", str(n_envs), "--vec-env", "subproc"] if n_envs > 1 else []) \
        + (["--env-kwargs", *kv] if kv else []) + \
        (["--hyperparams", *hyperparams] if hyperparams else [])
    print("  $ python -m agents.train " + shlex.join(argv), flush=True)
    return train_main(argv)


def ppo_train_seconds(run: Path) -> dict[str, float]:
    """Wall-clock cost of a PPO training, from the TensorBoard times of its updates: the median
    gap between consecutive updates times their number. A timer around the call would see only
    the last piece of a killed and resumed run, and a paused one would be charged its pause."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    times: dict[int, float] = {}
    for log in sorted((run / "tb").glob("*")):
        acc = EventAccumulator(str(log), size_guidance={"scalars": 0})
        acc.Reload()
        if "time/fps" in acc.Tags()["scalars"]:
            times.update({e.step: e.wall_time for e in acc.Scalars("time/fps")})
    if len(times) < 2:
        return {"updates": len(times), "seconds_per_update": float("nan"),
                "train_seconds": float("nan")}
    steps = sorted(times)
    per_update = float(np.median(np.diff([times[s] for s in steps])))
    return {"updates": len(steps), "seconds_per_update": per_update,
            "train_seconds": per_update * len(steps)}


def plot_schedules(details: dict[str, Any], names: tuple[str, ...], path: Path):
    """Per setting and PPO action mode: the mean weight of each source in each phase over the
    evaluation episodes (for one-source-per-phase policies, the share of episodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(setting, action, r) for setting, d in details.items()
              for action, r in d["ppo"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.2), squeeze=False)
    for ax, (setting, action, r) in zip(axes[0], panels, strict=True):
        w = phase_weights(r["episodes"])
        im = ax.imshow(w.T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("phase")
        ax.set_title(f"{PPO_NAMES[action]} schedule, {setting} probe\n(mean weight over "
                     f"{len(r['episodes'])} eval episodes)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def phase_weights(episodes: list[dict[str, Any]]) -> np.ndarray:
    """(phases, sources): each source's weight per phase, averaged over the episodes."""
    return np.mean([e["weights"] for e in episodes], axis=0)


def _fmt_p(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def plot_accuracy(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.sweep.results import mean_ci

    settings = sorted({r["setting"] for r in table})
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 3.4), squeeze=False)
    for ax, s in zip(axes[0], settings, strict=True):
        rows = [r for r in table if r["setting"] == s]
        for i, r in enumerate(rows):  # points, not bars from 0: a few-point gap shows
            _, _, lo, hi = mean_ci(r["acc_per_seed"])
            ax.errorbar(i, r["acc_mean"], yerr=0.0 if np.isnan(lo) else (hi - lo) / 2,
                        fmt="o", capsize=3,
                        color="tab:red" if r["policy"] in PPO_NAMES.values() else "tab:blue")
        ax.set_xticks(range(len(rows)), [r["policy"] for r in rows], rotation=40, fontsize=7)
        ax.set_ylabel("student test accuracy (mean, 95% CI)")
        ax.set_title(f"{s} probe", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_tensorboard(table: list[dict[str, Any]], schedule_fig: Any, tb_dir: Path) -> None:
    """Log each row's mean accuracy and the schedule figure, replacing an earlier run's log.

    The log is a snapshot of this run's table: event files left by an earlier run would show
    their (stale) scalars at the same step beside the new ones.
    """
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(tb_dir, ignore_errors=True)
    writer = SummaryWriter(str(tb_dir))
    writer.add_figure("schedule/ppo", schedule_fig, 0)
    for r in table:
        writer.add_scalar(f"{r['setting']}/acc/{r['policy'].replace(' ', '_')}", r["acc_mean"], 0)
    writer.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
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
    command = (shlex.join(["python", "-m", "benchmarks.kd_source_policy", *argv])
               if argv is not None else command_line())
    from agents.blackbox import static_mixture_search
    from agents.episodes import Constant, EnvFactory, SavedAgent, UniformRandom, episode_pool
    from agents.zoo_hyperparams import parse_kv
    from models.cache import config_hash

    torch.set_num_threads(1)  # small networks: one thread is fastest on a shared CPU
    scale = SCALES[args.scale]
    ppo_seeds = args.ppo_seeds or scale["ppo_seeds"]
    workers = args.workers or scale["workers"]
    ppo_hp = [*scale.get("ppo_hyperparams", []), *args.ppo_hyperparams]  # the CLI's win
    env_kw = {**scale["env"], "progress": False, **parse_kv(args.env_kwargs, "--env-kwargs")}
    heldout_kw = ({**env_kw, **parse_kv(args.heldout_teacher, "--heldout-teacher")}
                  if args.heldout_teacher else None)
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = scale["seeds"]
    table, details, summary, t_start = [], {}, {}, time.perf_counter()
    cache = out / "kd_source_policy_runs" / "episodes"  # finished evaluations (resume)
    ex = episode_pool(workers) if workers > 1 else None
    try:
        for setting in args.settings:
            disc_id, mix_id = SETTINGS[setting]
            # built here first: pools and teacher land in the cache before the workers read them
            env = gym.make(disc_id, **env_kw)
            make_d, make_m = EnvFactory(disc_id, env_kw), EnvFactory(mix_id, env_kw)
            names = env.unwrapped.source_names
            n = len(names)
            phases = env.unwrapped.cfg.phases
            print(f"[{setting}] sources {names}", flush=True)
            for i, name in enumerate(names):
                table.append(row(setting, name, run_policy(make_d, Constant(i), seeds, ex, cache)))
                print(f"  fixed {name:10s} acc {table[-1]['acc_mean']:.3f}", flush=True)
            uniform = Constant((0.0,) * n)
            table.append(row(setting, "uniform random",
                             run_policy(make_d, UniformRandom(), seeds, ex, cache)))
            table.append(row(setting, "uniform mixture", run_policy(make_m, uniform, seeds, ex, cache)))
            fixed = [r for r in table if r["setting"] == setting and r["policy"] in names]
            best = max(fixed, key=lambda r: r["acc_mean"])
            # the black box gets as many student trainings as one PPO training's episodes
            trials = scale.get("blackbox_trials") or max(scale["ppo_steps"] // phases, 1)
            t0 = time.perf_counter()
            bb = static_mixture_search(
                make_m, trials, seed=0, episode_seed_base=EVAL_SEED_BASE * 2, executor=ex,
                batch=workers, history_path=out / "kd_source_policy_runs" / f"blackbox-{setting}-"
                f"{config_hash([mix_id, env_kw, trials])}.json")
            bb_policy = Constant(tuple(bb["best_action"]))
            table.append(row(setting, "blackbox mixture", run_policy(make_m, bb_policy, seeds, ex, cache)))
            print(f"  random {table[-3]['acc_mean']:.3f}  mixture {table[-2]['acc_mean']:.3f}  "
                  f"black-box mixture {table[-1]['acc_mean']:.3f} ({trials} trials)", flush=True)
            details[setting] = {"sources": list(names), "best_fixed": best["policy"],
                                "best_fixed_acc": best["acc_mean"], "ppo": {},
                                "blackbox": {**{k: v for k, v in bb.items() if k != "history"},
                                             "seconds": time.perf_counter() - t0,
                                             "history": bb["history"]}}
            agents: dict[str, SavedAgent] = {}
            for action in args.ppo_actions:
                env_id, make = (disc_id, make_d) if action == "discrete" else (mix_id, make_m)
                eps_all, runs = [], {}
                for ps in ppo_seeds:
                    folder = train_ppo(env_id, {k: v for k, v in env_kw.items() if k != "progress"},
                                       scale["ppo_steps"], ps, out / "kd_source_policy_runs",
                                       ppo_hp, n_envs=workers,
                                       save_freq=scale.get("save_freq", 0))
                    agent = agents[f"{action} {ps}"] = SavedAgent(str(folder))
                    eps = run_policy(make, agent, seeds, ex, cache)
                    eps_all += eps
                    runs[ps] = {"run": str(folder), **ppo_train_seconds(folder),
                                "acc_mean": row(setting, "", eps)["acc_mean"], "episodes": eps}
                table.append(row(setting, PPO_NAMES[action], eps_all))  # mean over PPO seeds
                details[setting]["ppo"][action] = {"env_id": env_id, "steps": scale["ppo_steps"],
                                                   "n_envs": workers, "seeds": runs,
                                                   "episodes": [e for r in runs.values()
                                                                for e in r["episodes"]]}
                print(f"  {PPO_NAMES[action]} acc {table[-1]['acc_mean']:.3f} over PPO seeds "
                      f"{ppo_seeds} (best fixed {best['policy']} {best['acc_mean']:.3f})",
                      flush=True)
            summary[setting] = summarise(table, setting, best["policy"])
            if heldout_kw is not None:
                h_d, h_m = EnvFactory(disc_id, heldout_kw), EnvFactory(mix_id, heldout_kw)
                h_env = gym.make(disc_id, **heldout_kw)
                hs = f"{setting} (held-out teacher)"
                bi = names.index(best["policy"])
                table.append(row(hs, best["policy"], run_policy(h_d, Constant(bi), seeds, ex, cache)))
                table.append(row(hs, "uniform mixture", run_policy(h_m, uniform, seeds, ex, cache)))
                table.append(row(hs, "blackbox mixture", run_policy(h_m, bb_policy, seeds, ex, cache)))
                for action in args.ppo_actions:
                    make = h_d if action == "discrete" else h_m
                    eps_all = []
                    for ps in ppo_seeds:
                        eps_all += run_policy(make, agents[f"{action} {ps}"], seeds, ex, cache)
                    table.append(row(hs, PPO_NAMES[action], eps_all))
                summary[hs] = summarise(table, hs, best["policy"])
                details[hs] = {"teacher_options": parse_kv(args.heldout_teacher,
                                                           "--heldout-teacher"),
                               "teacher_test_acc": h_env.unwrapped.teacher_accuracy,
                               "teacher_sha256": h_env.unwrapped.res.teacher_sha256}
                h_env.close()
            teacher_acc = env.unwrapped.teacher_accuracy
            details[setting]["teacher_sha256"] = env.unwrapped.res.teacher_sha256
            env.close()
    finally:
        if ex is not None:
            ex.shutdown()
    names = tuple(details[args.settings[0]]["sources"])
    fig = plot_schedules({k: v for k, v in details.items() if "ppo" in v}, names,
                         out / "kd_source_policy_schedule.png")
    plot_accuracy(table, out / "kd_source_policy_accuracy.png")
    write_tensorboard(table, fig, out / "kd_source_policy_tb")
    print(f"\n{'setting':34s} {'policy':16s} {'acc mean':>9s} {'± CI95':>7s} {'p>best':>7s} "
          f"{'p>bbox':>7s}")
    for setting, cells in summary.items():
        for name, c in cells.items():
            print(f"{setting:34s} {name:16s} {c['mean']:9.3f} {c['ci95'] or 0:7.3f} "
                  f"{_fmt_p(c.get('p_vs_best_fixed')):>7s} {_fmt_p(c.get('p_vs_blackbox')):>7s}")
    batched = out / "kd_source_batched.json"
    speedup = json.loads(batched.read_text())["batched_speedup"] if batched.exists() else None
    result = {"benchmark": "kd_source_policy", "schema": SCHEMA, "scale": args.scale,
              "command": command, "ppo_actions": args.ppo_actions, "ppo_seeds": ppo_seeds,
              "ppo_hyperparams": parse_kv(ppo_hp, "--ppo-hyperparams"),
              "seeds": seeds, "eval_seed_base": EVAL_SEED_BASE, "env_kwargs": env_kw,
              "teacher_test_acc": teacher_acc, "table": table, "batched_speedup": speedup,
              "summary": {**summary, "batched_speedup": speedup},  # the headline summary keys
              "details": details, "wall_seconds": time.perf_counter() - t_start,
              "machine": machine_description(), "contended": True,
              "figures": ["kd_source_policy_schedule.png", "kd_source_policy_accuracy.png"],
              **{k: v for k, v in provenance(ppo_seeds[0], command).items() if k != "machine"}}
    atomic_write_json(result, out / ("kd_source_policy.json" if args.scale == "default"
                                     else f"kd_source_policy_{args.scale}.json"))
    return result


if __name__ == "__main__":
    main()
