"""What an agent is judged on, per env family: the headline metric and the baselines.

``agents.evaluate`` stays generic: it looks up the env's family (:func:`envs.registry.family_of`)
in :data:`FAMILIES` and gets

* the **headline metric** of an episode, with its direction;
* the **baselines**, each either an agent played on the *same seeded episodes* as the
  evaluated agent (:attr:`Baseline.make_agent`), or a value the env already reports for each
  of the agent's own episodes (:attr:`Baseline.info_key`, e.g. SensorPlacement's random and
  QR layouts scored on the same snapshots);
* the split that is held out for the final evaluation, and the categorical ``info`` keys
  (reported as counts, never averaged);
* whether its episodes are expensive (then baselines run only when asked).

=================  =============================================  ==============================
family             headline metric                                baselines
=================  =============================================  ==============================
DynamicPTQ         detrimental: accuracy drop, points per         uniform lowest bits / at the
                   episode 100·(FP correct − Q correct), higher    budget, random under the
                   is better; robust: episode return (correct     budget, greedy sensitivity,
                   with few bits), higher is better               best static plan (detrimental;
                                                                  searched on validation)
SensorPlacement    ``rel_l2`` of the agent's layout, lower is     random layout, QR layout (same
                   better                                         estimator); QR + gappy POD
DistillSource      ``final_accuracy`` of the student on the       each source every phase;
                   target test split, higher is better            uniform mixture (Box actions)
=================  =============================================  ==============================

Register another family with :func:`register_family`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.episodes import Constant, PolicyAgent

# info keys that name a thing (a class, an example, a cell, a source), not an amount
CATEGORICAL = frozenset({"label", "fp_pred", "q_pred", "index", "cell", "source", "augment",
                         "attack", "phase", "n_placed"})
Scalars = dict[str, list[float]]


@dataclass(frozen=True)
class Metric:
    """The headline metric: ``values(scalars)`` is one number per episode."""

    key: str                    # short name for tags: "drop", "return", "rel_l2"
    description: str
    higher_is_better: bool
    values: Callable[[Scalars], np.ndarray]

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class Baseline:
    """A reference the agent must beat: ``make_agent(env)`` played on the agent's seeds, or
    the env's ``info_key`` of the agent's own episodes."""

    name: str
    description: str
    make_agent: Callable[[gym.Env], Any] | None = None
    info_key: str | None = None


@dataclass(frozen=True)
class Family:
    """How one env family is judged (see the module docstring)."""

    name: str
    metric: Callable[[gym.Env], Metric]
    baselines: Callable[[gym.Env, dict[str, Any]], list[Baseline]]
    heldout_split: str | None = None
    split_note: str = ""          # where the metric is measured when the env has no split option
    categorical: frozenset[str] = field(default=CATEGORICAL)
    expensive: bool = False


def key_metric(key: str, description: str, higher_is_better: bool) -> Metric:
    """A metric that is the final ``info[key]`` (or ``return``) of each episode."""
    return Metric(key, description, higher_is_better, lambda s: np.asarray(s[key], float))


# --- DynamicPTQ -------------------------------------------------------------------------

def _ptq_metric(env: gym.Env) -> Metric:
    if env.unwrapped.cfg.reward == "detrimental":
        return Metric("drop", "accuracy drop in points, 100·(FP correct − quantized correct) "
                      "per episode (detrimental reward)", True,
                      lambda s: 100.0 * (np.asarray(s["fp_correct"], float)
                                         - np.asarray(s["q_correct"], float)))
    return key_metric("return", "episode return (robust reward: correct with few bits)", True)


class FixedPlanPolicy:
    """The same bit plan for every input (a :mod:`envs.ptq.baselines` policy)."""

    def __init__(self, plan: list[int]) -> None:
        self.plan = np.asarray(plan, dtype=np.int64)

    def plans(self, qnet: Any, x: Any, budget: Any, rng: np.random.Generator) -> np.ndarray:
        return np.tile(self.plan, (len(x), 1))


def _ptq_uniform_bits(cfg: Any) -> list[int]:
    """Uniform plans the budget leaves unrepaired: the lowest such and the one at the budget."""
    bits = list(cfg.bit_choices)
    if cfg.budget_kind == "min":  # mean bits ≥ budget: the lowest feasible is at the budget
        return [min(b for b in bits if b >= cfg.budget_bits - 1e-9)]
    at = max(b for b in bits if b <= cfg.budget_bits + 1e-9)
    return sorted({bits[0], at})


def _ptq_baselines(env: gym.Env, opts: dict[str, Any]) -> list[Baseline]:
    from envs.ptq.baselines import (
        BaselineAgent,
        GreedySensitivityPolicy,
        RandomBudgetPolicy,
        UniformPolicy,
    )

    base = env.unwrapped
    cfg, seed = base.cfg, int(opts.get("seed", 0))

    def agent(policy: Any) -> Callable[[gym.Env], Any]:
        return lambda e: BaselineAgent(policy, e, seed=seed)

    out = [Baseline(f"uniform{b}", f"{b} bits on every layer", agent(UniformPolicy(b)))
           for b in _ptq_uniform_bits(cfg)]
    out.append(Baseline("random_budget", "uniformly random bits under the budget",
                        agent(RandomBudgetPolicy())))
    out.append(Baseline("greedy", "greedy per-input sensitivity (KL of one layer at a time)",
                        agent(GreedySensitivityPolicy())))
    if cfg.budget_kind == "min" and opts.get("static", True):
        from envs.ptq.static_plans import best_static_plan

        found = best_static_plan(base.res, base.core.budget, split="val",
                                 limit=int(opts.get("static_limit", 500)),
                                 max_evals=int(opts.get("static_evals", 200)), seed=seed)
        out.append(Baseline("best_static", f"best single plan {found.plan} ({found.method} "
                            f"on {found.n_examples} validation inputs)",
                            agent(FixedPlanPolicy(found.plan))))
    return out


# --- SensorPlacement --------------------------------------------------------------------

def _sensor_baselines(env: gym.Env, opts: dict[str, Any]) -> list[Baseline]:
    out = [Baseline("random_layout", "a random layout of the same size, same snapshots, same "
                    "estimator", info_key="rel_l2_random"),
           Baseline("qr_layout", "QR-pivoted layout on the training POD modes, same "
                    "estimator", info_key="rel_l2_qr")]
    if getattr(env.unwrapped, "estimator", "cnn") != "gappy_pod":
        out.append(Baseline("qr_gappy_pod", "QR layout reconstructed by gappy POD (the "
                            "classical pipeline)", info_key="rel_l2_qr_gappy_pod"))
    return out


# --- DistillSource ----------------------------------------------------------------------

def fixed_source_action(space: gym.Space, cfg: Any, k: int) -> int | tuple[float, ...]:
    """The action that distils from source ``k`` alone (with the env's default augmentation
    and attack when the action also controls them)."""
    from envs.distill_source.config import AUGMENT_LEVELS

    aug, attack = AUGMENT_LEVELS.index(cfg.augment), int(cfg.attack)
    if isinstance(space, gym.spaces.Discrete):
        return k
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple([k] + [aug] * cfg.control_augment + [attack] * cfg.control_attack)
    logits = [1.0 if j == k else -1.0 for j in range(cfg.n_sources)]
    extra = ([(aug + 0.5) / len(AUGMENT_LEVELS) * 2 - 1] * cfg.control_augment
             + [1.0 if attack else -1.0] * cfg.control_attack)
    return tuple(float(v) for v in logits + extra)


class _Fixed(Constant):
    """A constant action of any space (MultiDiscrete ones as an int array)."""

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, env: gym.Env) -> Any:
        if isinstance(env.action_space, gym.spaces.MultiDiscrete):
            return np.asarray(self.action, dtype=np.int64)
        return super().__call__(obs, rng, env)


def _distill_baselines(env: gym.Env, opts: dict[str, Any]) -> list[Baseline]:
    base = env.unwrapped
    cfg, space = base.cfg, env.action_space

    def agent(action: Any) -> Callable[[gym.Env], Any]:
        return lambda e: PolicyAgent(_Fixed(action), e)

    out = [Baseline(f"only_{name}", f"{name} every phase",
                    agent(fixed_source_action(space, cfg, k)))
           for k, name in enumerate(cfg.sources)]
    if isinstance(space, gym.spaces.Box):
        mid = fixed_source_action(space, cfg, 0)[cfg.n_sources:]
        out.append(Baseline("uniform_mixture", "equal weights on every source every phase",
                            agent(tuple([0.0] * cfg.n_sources) + tuple(mid))))
    return out


FAMILIES: dict[str, Family] = {}
#: any other env: judged on its episode return, with no baselines
GENERIC = Family("generic", lambda env: key_metric("return", "episode return", True),
                 lambda env, opts: [])


def register_family(family: Family) -> None:
    """Add (or replace) the verdict definition of ``family.name``."""
    FAMILIES[family.name] = family


register_family(Family("DynamicPTQ", _ptq_metric, _ptq_baselines, heldout_split="test"))
register_family(Family("SensorPlacement",
                       lambda env: key_metric("rel_l2", "relative L2 reconstruction error of "
                                              "the agent's layout", False),
                       _sensor_baselines, heldout_split="test"))
register_family(Family("DistillSource",
                       lambda env: key_metric("final_accuracy", "student accuracy on the "
                                              "target test split after the last phase", True),
                       _distill_baselines, expensive=True,
                       split_note="test (the env measures final_accuracy on the target test "
                                  "split in every episode)"))
