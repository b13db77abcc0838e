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

:func:`rollout` plays an SB3-style agent (``predict(obs, deterministic=)``: a trained model,
:class:`RandomAgent`, :class:`PolicyAgent` around a policy above, a DynamicPTQ baseline) in
one env over seeded episodes and collects each episode's final ``info``; ``agents.evaluate``
runs the agent and every baseline of its verdict through it, on the same seeds.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from envs.registry import env_options

_ENVS: dict[str, gym.Env] = {}      # per process: EnvFactory key -> env
_AGENTS: dict[str, Any] = {}        # per process: run folder -> loaded SB3 agent


@dataclass(frozen=True)
class EnvFactory:
    """A picklable ``gym.make(env_id, **kwargs)`` that registers the deploygym ids first."""

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> gym.Env:
        import envs  # noqa: F401  (registers the ids in a fresh worker)

        return gym.make(self.env_id, **env_options(self.env_id, self.kwargs))

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


class RandomAgent:
    """Uniformly random actions, restricted to ``action_masks()`` when the env has them."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        self.env = env
        env.action_space.seed(seed)

    def predict(self, obs: Any, deterministic: bool = True,
                action_masks: np.ndarray | None = None) -> tuple[Any, None]:
        if action_masks is not None:
            return self.env.action_space.sample(mask=action_masks.astype(np.int8)), None
        return self.env.action_space.sample(), None


class PolicyAgent:
    """An SB3-style ``predict`` around a policy of this module (``policy(obs, rng, env)``),
    with the rng reseeded from each episode's seed by :func:`rollout` (``reseed``)."""

    def __init__(self, policy: Any, env: gym.Env) -> None:
        self.policy, self.env = policy, env
        self.rng = np.random.default_rng(0)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
        return self.policy(obs, self.rng, self.env), None


def rollout(env: gym.Env, agent: Any, episodes: int, seed: int, render_every: int = 0,
            progress: bool = True, desc: str = "episodes") -> dict[str, Any]:
    """``episodes`` episodes of ``agent.predict(obs, deterministic=True)`` seeded ``seed + i``.

    Masks from the env's ``action_masks()`` are passed to agents whose ``predict`` takes
    them. Returns ``scalars`` (numeric final-``info`` values and ``return``, one per episode),
    ``arrays`` (array-valued final-``info`` entries), ``actions`` (every action, flattened)
    and ``frames`` (``(episode, rgb)`` every ``render_every`` episodes when rendering).
    """
    from agents.callbacks import numeric_items

    scalars: dict[str, list[float]] = defaultdict(list)
    arrays: dict[str, list[np.ndarray]] = defaultdict(list)
    actions, frames = [], []
    masked = hasattr(env.unwrapped, "action_masks") and (
        "action_masks" in inspect.signature(agent.predict).parameters)

    def act(obs: Any, rng: np.random.Generator, env: gym.Env) -> Any:
        kw = {"action_masks": env.unwrapped.action_masks()} if masked else {}
        action, _ = agent.predict(obs, deterministic=True, **kw)
        actions.append(np.asarray(action, dtype=np.float64).ravel())
        return action

    for ep in tqdm(range(episodes), desc=desc, disable=not progress):
        if hasattr(agent, "reseed"):
            agent.reseed(seed + ep)
        ret, _, info = play(env, act, seed + ep)
        s, a = numeric_items(info)
        for k, v in {**s, "return": ret}.items():
            scalars[k].append(v)
        for k, v in a.items():
            arrays[k].append(v)
        if render_every and ep % render_every == 0 and env.render_mode == "rgb_array":
            frames.append((ep, env.render()))
    return {"scalars": dict(scalars), "arrays": dict(arrays),
            "actions": np.concatenate(actions), "frames": frames}


__all__ = ["Constant", "EnvFactory", "PolicyAgent", "RandomAgent", "SavedAgent",
           "UniformRandom", "episode_pool", "play", "rollout", "run_episode", "run_episodes"]
