"""A black-box baseline for DistillSource: the best *static* mixture found by Optuna (TPE).

Each trial is one full episode (one student trained from scratch) of the Mixture env with a
constant action; its objective is the episode return, i.e. ``reward_scale ×`` the gain of the
probe metric (target validation split or the data-free source probe — never the test split).
Give it as many trials as the learned policy's training consumed episodes, and it is the
"strongest simple baseline" a schedule must beat: a tuned fixed recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


def episode_return(env: gym.Env, action: np.ndarray, seed: int) -> tuple[float, dict[str, Any]]:
    """Return and final info of one episode that repeats ``action`` every phase."""
    env.reset(seed=seed)
    total, done, info = 0.0, False, {}
    while not done:
        _, r, term, trunc, info = env.step(action)
        total += float(r)
        done = term or trunc
    return total, info


def static_mixture_search(make_env: Callable[[], gym.Env], n_trials: int, seed: int = 0,
                          episode_seed_base: int = 0) -> dict[str, Any]:
    """Optuna TPE over the Mixture env's constant action (``Box(-1, 1, S)``).

    Trial ``k`` trains its student with episode seed ``episode_seed_base + k``. Returns the
    best action, its return, and the history (action, return) of every trial.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be ≥ 1, got {n_trials}")
    env = make_env()
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"a static mixture needs the Mixture env (a Box action space), got "
                         f"{space}; use deploygym/DistillSourceMixture*-v0")
    history: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        action = np.array([trial.suggest_float(f"a{i}", float(lo), float(hi))
                           for i, (lo, hi) in enumerate(zip(space.low, space.high, strict=True))],
                          dtype=np.float32)
        ret, info = episode_return(env, action, episode_seed_base + trial.number)
        history.append({"action": action.tolist(), "return": ret,
                        "mean_weights": np.asarray(info.get("mean_weights", [])).tolist()})
        return ret

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    best = max(range(len(history)), key=lambda i: history[i]["return"])
    env.close()
    return {"best_action": history[best]["action"], "best_return": history[best]["return"],
            "best_mean_weights": history[best]["mean_weights"], "n_trials": n_trials,
            "history": history, "sampler": f"optuna.TPESampler(seed={seed})"}


__all__ = ["episode_return", "static_mixture_search"]
