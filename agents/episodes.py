"""Whole evaluation episodes of fixed and saved policies, optionally in worker processes.

DistillSource episodes each train a student from scratch, so a benchmark spends most of its
time in them; with ``executor`` (a :class:`concurrent.futures.ProcessPoolExecutor`, see
:func:`episode_pool`) they run one per core. Everything sent to a worker is picklable: the
env as an :class:`EnvFactory` (id + kwargs), the policy as one of the small policy classes
below. Each worker keeps the envs and agents it built, so a pool pays env construction
(teacher, cached pools) once per worker, not once per episode.

    >>> make = EnvFactory("deploygym/DistillSourceMixture-v0", {"phases": 4})
    >>> with episode_pool(2) as ex:                       # doctest: +SKIP
    ...     eps = run_episodes(make, Constant((0.0,) * 6), seeds=range(20), executor=ex)
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

_ENVS: dict[str, gym.Env] = {}      # per process: EnvFactory key -> env
_AGENTS: dict[str, Any] = {}        # per process: run folder -> loaded SB3 agent


@dataclass(frozen=True)
class EnvFactory:
    """A picklable ``gym.make(env_id, **kwargs)`` that registers the deploygym ids first."""

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> gym.Env:
        import envs  # noqa: F401  (registers the ids in a fresh worker)

        return gym.make(self.env_id, **self.kwargs)

    @property
    def key(self) -> str:
        return json.dumps([self.env_id, self.kwargs], sort_keys=True, default=str)


@dataclass(frozen=True)
class Constant:
    """The same action every step: a discrete index or a Box action (tuple of floats)."""

    action: int | tuple[float, ...]

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, env: gym.Env) -> Any:
        if isinstance(self.action, int):
            return self.action
        return np.asarray(self.action, dtype=np.float32)


@dataclass(frozen=True)
class UniformRandom:
    """A uniformly random action from the env's action space, drawn from the episode's rng."""

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, env: gym.Env) -> Any:
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return int(space.start + rng.integers(space.n))
        if isinstance(space, gym.spaces.Box):
            return rng.uniform(space.low, space.high).astype(space.dtype)
        raise TypeError(f"UniformRandom supports Discrete and Box action spaces, got {space}")


@dataclass(frozen=True)
class SavedAgent:
    """The deterministic action of an agent saved by ``agents.train`` (its run folder, read
    through :func:`agents.policy_io.load_policy`: no pickle)."""

    folder: str

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, env: gym.Env) -> Any:
        model = _AGENTS.get(self.folder)
        if model is None:
            from agents.policy_io import load_policy

            model = _AGENTS[self.folder] = load_policy(self.folder, env, device="cpu")
        action = model.predict(obs, deterministic=True)[0]
        return int(action) if isinstance(env.action_space, gym.spaces.Discrete) else action


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def run_episode(make_env: EnvFactory, policy: Any, seed: int, step_keys: Sequence[str] = (),
                final_keys: Sequence[str] = ()) -> dict[str, Any]:
    """One episode from ``reset(seed=seed)``; the policy's rng is ``default_rng(seed)``.

    Returns ``seed``, ``return``, ``seconds``, ``steps`` (``step_keys`` of each step's info)
    and ``final`` (``final_keys`` of the last info), as plain Python values.
    """
    env = _ENVS.get(make_env.key)
    if env is None:
        env = _ENVS[make_env.key] = make_env()
    t0 = time.perf_counter()
    total, steps, info = play(env, policy, seed, step_keys)
    return {"seed": seed, "return": total, "seconds": time.perf_counter() - t0, "steps": steps,
            "final": {k: _plain(info[k]) for k in final_keys}}


def play(env: gym.Env, policy: Any, seed: int, step_keys: Sequence[str] = ()
         ) -> tuple[float, list[dict[str, Any]], dict[str, Any]]:
    """One episode of ``policy(obs, rng, env)`` from ``reset(seed=seed)`` (rng
    ``default_rng(seed)``): its return, ``step_keys`` of each step's info, the last info."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    total, done, steps, info = 0.0, False, [], {}
    while not done:
        obs, r, term, trunc, info = env.step(policy(obs, rng, env))
        total += float(r)
        done = term or trunc
        steps.append({k: _plain(info[k]) for k in step_keys})
    return total, steps, info


def run_episodes(make_env: EnvFactory, policy: Any, seeds: Iterable[int],
                 executor: Executor | None = None, step_keys: Sequence[str] = (),
                 final_keys: Sequence[str] = (),
                 on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """:func:`run_episode` for every seed, in order; in ``executor``'s workers when given.

    ``on_done`` is called in this process with each episode as soon as it finishes (in
    completion order), e.g. to save it before the others are done.
    """
    seeds = [int(s) for s in seeds]
    if executor is None:
        eps = []
        for s in seeds:
            eps.append(run_episode(make_env, policy, s, step_keys, final_keys))
            if on_done is not None:
                on_done(eps[-1])
        return eps
    futures = [executor.submit(run_episode, make_env, policy, s, step_keys, final_keys)
               for s in seeds]
    if on_done is not None:
        for f in as_completed(futures):
            on_done(f.result())
    return [f.result() for f in futures]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def episode_pool(workers: int, threads: int = 1) -> ProcessPoolExecutor:
    """Spawned worker processes (no forked torch state), ``threads`` torch threads each."""
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))


__all__ = ["Constant", "EnvFactory", "SavedAgent", "UniformRandom", "episode_pool", "play",
           "run_episode", "run_episodes"]
