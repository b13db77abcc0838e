"""A black-box baseline for DistillSource: the best *static* mixture found by Optuna (TPE).

Each trial is one full episode (one student trained from scratch) of the Mixture env with a
constant action; its objective is the episode return, i.e. ``reward_scale ×`` the gain of the
probe metric (target validation split or the data-free source probe — never the test split).
Give it as many trials as the learned policy's training consumed episodes, and it is the
"strongest simple baseline" a schedule must beat: a tuned fixed recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.episodes import play
from models.io import atomic_write_json
from models.readers import read_json


def episode_return(env: gym.Env, action: np.ndarray, seed: int) -> tuple[float, dict[str, Any]]:
    """Return and final info of one episode that repeats ``action`` every phase."""
    total, _, info = play(env, lambda obs, rng, e: action, seed)
    return total, info


def static_mixture_search(make_env: Callable[[], gym.Env], n_trials: int, seed: int = 0,
                          episode_seed_base: int = 0, executor: Executor | None = None,
                          batch: int = 1, history_path: str | Path | None = None) -> dict[str, Any]:
    """Optuna TPE over the Mixture env's constant action (``Box(-1, 1, S)``).

    Trial ``k`` trains its student with episode seed ``episode_seed_base + k``. With
    ``executor`` (and ``make_env`` an :class:`agents.episodes.EnvFactory`), ``batch`` trials
    are asked at a time and run in its workers; TPE then proposes from the trials told so far.
    With ``history_path`` every finished batch is saved (atomically) and a killed search resumes
    from it: its trials are told to a new study whose sampler is seeded ``seed +
    resumed_trials`` (so its start-up proposals are not the saved ones again), then the search
    goes on.
    Returns the best action, its return, and the history (action, return) of every trial.
    """
    import optuna

    from agents.episodes import Constant, run_episode

    if n_trials < 1 or batch < 1:
        raise ValueError(f"n_trials and batch must be ≥ 1, got {n_trials} and {batch}")
    env = make_env()
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"a static mixture needs the Mixture env (a Box action space), got "
                         f"{space}; use deploygym/DistillSourceMixture*-v0")
    bounds = [[lo, hi] for lo, hi in zip(space.low.tolist(), space.high.tolist(), strict=True)]
    history: list[dict[str, Any]] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    key = {"bounds": bounds, "seed": seed, "episode_seed_base": episode_seed_base}
    saved = {"history": []}
    if history_path is not None and Path(history_path).exists():
        saved = read_json(history_path, "delete it to start the search over",
                          keys=("history",), kind="search history")
        if saved.get("key") != key:
            raise ValueError(f"{history_path} holds another search ({saved.get('key')}, this one "
                             f"{key}); delete it or choose another path")
    # a resumed search reseeds its sampler, or TPE's random start-up would propose the
    # saved trials' actions again
    resumed = min(len(saved["history"]), n_trials)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed + resumed))
    dists = {f"a{i}": optuna.distributions.FloatDistribution(lo, hi)
             for i, (lo, hi) in enumerate(bounds)}
    for h in saved["history"][:resumed]:
        study.add_trial(optuna.trial.create_trial(
            params={f"a{i}": v for i, v in enumerate(h["action"])}, distributions=dists,
            value=h["return"]))
        history.append(h)
    while len(history) < n_trials:
        trials = [study.ask() for _ in range(min(batch, n_trials - len(history)))]
        actions = [np.array([t.suggest_float(f"a{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)],
                            dtype=np.float32) for t in trials]
        if executor is None:
            results = [episode_return(env, a, episode_seed_base + t.number)
                       for t, a in zip(trials, actions, strict=True)]
        else:
            futures = [executor.submit(run_episode, make_env, Constant(tuple(a.tolist())),
                                       episode_seed_base + t.number, (), ("mean_weights",))
                       for t, a in zip(trials, actions, strict=True)]
            results = [(e["return"], e["final"]) for e in (f.result() for f in futures)]
        for t, a, (ret, info) in zip(trials, actions, results, strict=True):
            study.tell(t, ret)
            history.append({"action": a.tolist(), "return": ret,
                            "mean_weights": np.asarray(info.get("mean_weights", [])).tolist()})
        if history_path is not None:
            atomic_write_json({"key": key, "history": history}, history_path)
    best = max(range(len(history)), key=lambda i: history[i]["return"])
    env.close()
    return {"best_action": history[best]["action"], "best_return": history[best]["return"],
            "best_mean_weights": history[best]["mean_weights"], "n_trials": n_trials,
            "batch": batch, "resumed_trials": resumed, "history": history,
            "sampler": f"optuna.TPESampler(seed={seed})"}


__all__ = ["episode_return", "static_mixture_search"]
