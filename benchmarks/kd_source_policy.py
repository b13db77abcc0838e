"""A learned data schedule vs fixed transfer sets on DistillSource (issue 6).

For the setting with a target probe (``deploygym/DistillSource-v0``) and the data-free one
(``deploygym/DistillSourceDataFree-v0``) it compares, on the same evaluation seeds:

* PPO trained with ``python -m agents.train --env <id>`` (same code path, called in-process;
  a finished run with the same settings is reused), on the Discrete env (one source per
  phase, row "ppo") and on the Mixture env (softmax weights over the sources, "ppo mixture");
* every fixed single source; uniform random choices; the uniform mixture of all sources
  (``DistillSourceMixture*-v0`` with a zero action);

and reports the final student accuracy on the Fashion-MNIST test slice (mean ± std over the
seeds), the episode return, and the learned schedule (which source, when) as a PNG and in
TensorBoard (``<results-dir>/kd_source_policy_tb``).

    python -m benchmarks.kd_source_policy --scale smoke
    python -m benchmarks.kd_source_policy                  # the committed result (reuses
                                                           # the committed PPO runs)
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the ids)
from models.io import atomic_write_json, command_line, machine_description, provenance

SCHEMA = 2  # details[setting]["ppo"][action]; results of another schema are not merged
PPO_NAMES = {"discrete": "ppo", "mixture": "ppo mixture"}
SETTINGS = {"target": ("deploygym/DistillSource-v0", "deploygym/DistillSourceMixture-v0"),
            "data-free": ("deploygym/DistillSourceDataFree-v0",
                          "deploygym/DistillSourceMixtureDataFree-v0")}
SCALES: dict[str, dict[str, Any]] = {
    # ppo_steps = env steps (10 per episode); seeds = evaluation episodes per policy
    "smoke": {"ppo_steps": 80, "seeds": [0, 1, 2], "env": {"phases": 4, "updates_per_phase": 4,
                                                           "pool_size": 1024}},
    "default": {"ppo_steps": 3000, "seeds": [0, 1, 2, 3, 4], "env": {}},
    "paper": {"ppo_steps": 20000, "seeds": list(range(10)), "env": {"updates_per_phase": 100}},
}
EVAL_SEED_BASE = 100_000  # evaluation episodes never reuse a training seed


def run_policy(env: gym.Env, act, seeds: list[int]) -> list[dict[str, Any]]:
    """One episode per seed with ``act(obs, rng) -> action``; the final infos."""
    out = []
    for s in seeds:
        obs, _ = env.reset(seed=EVAL_SEED_BASE + s)
        rng = np.random.default_rng(s)
        ret, done, t0, weights = 0.0, False, time.perf_counter(), []
        while not done:
            obs, r, term, trunc, info = env.step(act(obs, rng))
            ret += r
            done = term or trunc
            weights.append([round(float(v), 4) for v in info["weights"]])
        out.append({"seed": s, "return": ret, "final_accuracy": info["final_accuracy"],
                    "final_agreement": info["final_agreement"],
                    "schedule": [int(v) for v in info["schedule"]],
                    "mean_weights": [float(v) for v in info["mean_weights"]],
                    "weights": weights,
                    "seconds": time.perf_counter() - t0})
    return out


def row(setting: str, policy: str, eps: list[dict[str, Any]]) -> dict[str, Any]:
    acc = np.array([e["final_accuracy"] for e in eps])
    ret = np.array([e["return"] for e in eps])
    return {"setting": setting, "policy": policy, "acc_mean": float(acc.mean()),
            "acc_std": float(acc.std()), "return_mean": float(ret.mean()),
            "acc_per_seed": acc.round(4).tolist(), "n_seeds": len(eps)}


def finished_ppo_run(env_id: str, env_kw: dict[str, Any], steps: int, seed: int, folder: Path,
                     hyperparams: list[str]) -> Path | None:
    """A finished ``agents.train`` run under ``folder`` with exactly this env, env options,
    seed, step count and hyperparameters (so a killed benchmark does not train PPO again)."""
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
                and not rec.get("resumed_from") and rec.get("hyperparams") == want
                and rec.get("result", {}).get("num_timesteps", 0) >= steps
                and (run / "model.zip").exists()):
            return run
    return None


def train_ppo(env_id: str, env_kw: dict[str, Any], steps: int, seed: int, folder: Path,
              hyperparams: list[str]) -> Path:
    from agents.train import main as train_main

    done = finished_ppo_run(env_id, env_kw, steps, seed, folder, hyperparams)
    if done is not None:
        print(f"  reusing the finished PPO run {done}", flush=True)
        return done
    kv = [f"{k}:{v}" for k, v in env_kw.items()]
    argv = ["--algo", "ppo", "--env", env_id, "-n", str(steps), "--seed", str(seed),
            "-f", str(folder), "--eval-freq", "0", "--save-freq", "0", "--no-progress-bar",
            "-v", "0"] + (["--env-kwargs", *kv] if kv else []) + \
        (["--hyperparams", *hyperparams] if hyperparams else [])
    print("  $ python -m agents.train " + shlex.join(argv), flush=True)
    return train_main(argv)


def _ppo_act(model, action: str):
    if action == "discrete":
        return lambda o, r: int(model.predict(o, deterministic=True)[0])
    return lambda o, r: model.predict(o, deterministic=True)[0]


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


def plot_accuracy(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({r["setting"] for r in table})
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 3.4), squeeze=False)
    for ax, s in zip(axes[0], settings, strict=True):
        rows = [r for r in table if r["setting"] == s]
        ax.bar(range(len(rows)), [r["acc_mean"] for r in rows],
               yerr=[r["acc_std"] for r in rows],
               color=["tab:red" if r["policy"] in PPO_NAMES.values() else "tab:blue" for r in rows])
        ax.set_xticks(range(len(rows)), [r["policy"] for r in rows], rotation=40, fontsize=7)
        ax.set_ylabel("student test accuracy")
        ax.set_title(f"{s} probe", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="default")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--settings", nargs="*", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    p.add_argument("--ppo-seed", type=int, default=0)
    p.add_argument("--ppo-actions", nargs="+", choices=tuple(PPO_NAMES), default=list(PPO_NAMES),
                   help="train PPO on the Discrete env (one source per phase), on the Mixture "
                        "env (softmax weights over the sources), or both")
    p.add_argument("--ppo-hyperparams", nargs="*", metavar="KEY:VALUE", default=[],
                   help="PPO overrides passed to agents.train --hyperparams")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY:VALUE", default=[],
                   help="extra env options, e.g. width:8 epochs:3 for a cheaper teacher")
    args = p.parse_args(argv)
    command = (shlex.join(["python", "-m", "benchmarks.kd_source_policy", *argv])
               if argv is not None else command_line())
    from stable_baselines3 import PPO

    from agents.zoo_hyperparams import parse_kv

    torch.set_num_threads(1)  # tiny networks: one thread is fastest on a shared CPU
    scale = SCALES[args.scale]
    env_kw = {**scale["env"], "progress": False, **parse_kv(args.env_kwargs, "--env-kwargs")}
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = scale["seeds"]
    table, details, t_start = [], {}, time.perf_counter()
    for setting in args.settings:
        disc_id, mix_id = SETTINGS[setting]
        env = gym.make(disc_id, **env_kw)
        names = env.unwrapped.source_names
        print(f"[{setting}] sources {names}", flush=True)
        for i, name in enumerate(names):
            table.append(row(setting, name, run_policy(env, lambda o, r, i=i: i, seeds)))
            print(f"  fixed {name:10s} acc {table[-1]['acc_mean']:.3f}", flush=True)
        n = len(names)
        table.append(row(setting, "uniform random",
                         run_policy(env, lambda o, r, n=n: int(r.integers(n)), seeds)))
        mix = gym.make(mix_id, **env_kw)
        table.append(row(setting, "uniform mixture",
                         run_policy(mix, lambda o, r, n=n: np.zeros(n, dtype=np.float32), seeds)))
        print(f"  random {table[-2]['acc_mean']:.3f}  mixture {table[-1]['acc_mean']:.3f}", flush=True)
        fixed = [r for r in table if r["setting"] == setting and r["policy"] in names]
        best = max(fixed, key=lambda r: r["acc_mean"])
        details[setting] = {"sources": list(names), "best_fixed": best["policy"],
                            "best_fixed_acc": best["acc_mean"], "ppo": {}}
        for action in args.ppo_actions:
            env_id = disc_id if action == "discrete" else mix_id
            t0 = time.perf_counter()
            folder = train_ppo(env_id, {k: v for k, v in env_kw.items() if k != "progress"},
                               scale["ppo_steps"], args.ppo_seed, out / "kd_source_policy_runs",
                               args.ppo_hyperparams)
            train_s = time.perf_counter() - t0
            model = PPO.load(folder / "model.zip", device="cpu")
            eps = run_policy(env if action == "discrete" else mix, _ppo_act(model, action), seeds)
            table.append(row(setting, PPO_NAMES[action], eps))
            details[setting]["ppo"][action] = {
                "env_id": env_id, "run": str(folder), "train_seconds": train_s,
                "steps": scale["ppo_steps"], "episodes": eps,
                "minus_best_fixed": table[-1]["acc_mean"] - best["acc_mean"]}
            print(f"  {PPO_NAMES[action]} acc {table[-1]['acc_mean']:.3f} (best fixed "
                  f"{best['policy']} {best['acc_mean']:.3f}); mean weights "
                  f"{np.round(np.mean([e['mean_weights'] for e in eps], 0), 2).tolist()}",
                  flush=True)
        teacher_acc = env.unwrapped.teacher_accuracy
    path, previous = out / "kd_source_policy.json", None
    if path.exists() and set(args.settings) != set(SETTINGS):  # keep the other settings' rows
        old = json.loads(path.read_text())
        if old.get("scale") == args.scale and old.get("schema") == SCHEMA:
            table = [r for r in old["table"] if r["setting"] not in args.settings] + table
            details = {**{k: v for k, v in old.get("details", {}).items()
                          if k not in args.settings}, **details}
            previous = old.get("command")
    names = tuple(details[args.settings[0]]["sources"])
    fig = plot_schedules(details, names, out / "kd_source_policy_schedule.png")
    plot_accuracy(table, out / "kd_source_policy_accuracy.png")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "kd_source_policy_tb"))
    writer.add_figure("schedule/ppo", fig, 0)
    for r in table:
        writer.add_scalar(f"{r['setting']}/acc/{r['policy'].replace(' ', '_')}", r["acc_mean"], 0)
    for setting, d in details.items():
        for action, r in d["ppo"].items():
            for phase, w in enumerate(phase_weights(r["episodes"])):
                for name, v in zip(names, w, strict=True):
                    writer.add_scalar(f"{setting}/{PPO_NAMES[action].replace(' ', '_')}"
                                      f"/weight_{name}", v, phase)
    writer.close()
    print(f"\n{'setting':10s} {'policy':16s} {'acc mean':>9s} {'± std':>7s} {'return':>7s}")
    for r in table:
        print(f"{r['setting']:10s} {r['policy']:16s} {r['acc_mean']:9.3f} {r['acc_std']:7.3f} "
              f"{r['return_mean']:7.3f}")
    result = {"benchmark": "kd_source_policy", "schema": SCHEMA, "scale": args.scale,
              "command": command, "ppo_actions": args.ppo_actions,
              "ppo_hyperparams": parse_kv(args.ppo_hyperparams, "--ppo-hyperparams"),
              "seeds": seeds, "eval_seed_base": EVAL_SEED_BASE, "ppo_seed": args.ppo_seed,
              "env_kwargs": env_kw, "teacher_test_acc": teacher_acc, "table": table,
              "details": details, "wall_seconds": time.perf_counter() - t_start,
              "machine": machine_description(), "contended": True,
              "figures": ["kd_source_policy_schedule.png", "kd_source_policy_accuracy.png"],
              "previous_command": previous,
              **{k: v for k, v in provenance(args.ppo_seed, command).items() if k != "machine"}}
    atomic_write_json(result, path)
    return result


if __name__ == "__main__":
    main()
