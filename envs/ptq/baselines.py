"""Baseline bit-width policies for DynamicPTQ, to compare learned policies against.

Each policy maps a batch of inputs to bit plans ``[B, L]`` (:meth:`plans`):

* :class:`UniformPolicy` — the same ``b`` bits in every layer;
* :class:`RandomBudgetPolicy` — uniformly random feasible choices, layer by layer, under the
  environment's budget (what a masked random agent does);
* :class:`GreedySensitivityPolicy` — per-example, per-layer sensitivity ``KL(FP‖Q)`` of
  quantizing one layer alone at each bit-width, then greedy bit lowering from the highest
  choice until the budget binds: lowest bits where the KL grows *least* (robust, the classic
  mixed-precision heuristic) or *most* (detrimental, an adversarial heuristic).

:class:`QueryArgmaxAgent` acts on the ``query`` observation directly: each input gets the
query plan that breaks it (if any). :class:`BaselineAgent` turns a policy into an SB3-style
``predict`` for a DynamicPTQ env or
vector env, so evaluation code can treat baselines and trained agents alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.ptq.budget import Budget
from models.quant import FP_BITS, DynamicQuantizer, kl_fp_q


class UniformPolicy:
    def __init__(self, bits: int) -> None:
        self.bits = int(bits)

    def plans(self, qnet: DynamicQuantizer, x: torch.Tensor, budget: Budget,
              rng: np.random.Generator) -> np.ndarray:
        return np.full((len(x), qnet.n_layers), self.bits, dtype=np.int64)


class RandomBudgetPolicy:
    def plans(self, qnet: DynamicQuantizer, x: torch.Tensor, budget: Budget,
              rng: np.random.Generator) -> np.ndarray:
        b, n = len(x), qnet.n_layers
        plan = np.full((b, n), FP_BITS, dtype=np.int64)
        for k in range(n):
            ok = budget.feasible(plan, np.full(b, k), budget.bits)
            u = rng.random((b, len(budget.bits))) * ok
            plan[:, k] = budget.bits[u.argmax(axis=1)]
        return plan


class GreedySensitivityPolicy:
    """Args:
        direction: ``"least"`` lowers where the KL grows least, ``"most"`` where it grows
            most; ``None`` picks ``"most"`` for a minimum budget (detrimental) and
            ``"least"`` for a maximum budget (robust).
    """

    def __init__(self, direction: str | None = None) -> None:
        if direction not in (None, "least", "most"):
            raise ValueError(f"direction must be 'least', 'most' or None, got {direction!r}")
        self.direction = direction

    @torch.no_grad()
    def sensitivity(self, qnet: DynamicQuantizer, x: torch.Tensor,
                    bits: np.ndarray) -> np.ndarray:
        """``[B, L, n_bits]``: KL(FP‖Q) with only layer l quantized at ``bits[j]``."""
        b, n, m = len(x), qnet.n_layers, len(bits)
        fp = qnet(x, FP_BITS).logits.repeat(m, 1)
        xs = x.repeat(m, *([1] * (x.ndim - 1)))
        kl = torch.empty(n, m, b, dtype=torch.float64)
        for layer in range(n):  # one forward of m·B rows per layer
            plan = np.full((m, b, n), FP_BITS, dtype=np.int64)
            plan[:, :, layer] = bits[:, None]
            q = qnet(xs, plan.reshape(-1, n)).logits
            kl[layer] = kl_fp_q(fp, q).clamp_min(0).reshape(m, b).double().cpu()
        return kl.permute(2, 0, 1).numpy()

    def plans(self, qnet: DynamicQuantizer, x: torch.Tensor, budget: Budget,
              rng: np.random.Generator) -> np.ndarray:
        bits = budget.bits[budget.bits < FP_BITS]
        sens = self.sensitivity(qnet, x, bits)
        direction = self.direction or ("most" if budget.kind == "min" else "least")
        sign = 1.0 if direction == "least" else -1.0
        b, n = sens.shape[:2]
        pos = np.full((b, n), len(bits) - 1)
        rows = np.arange(b)
        active = np.ones(b, dtype=bool)
        while active.any():
            can = pos > 0
            nxt = np.maximum(pos - 1, 0)
            gain = (sens[rows[:, None], np.arange(n), nxt] - sens[rows[:, None], np.arange(n), pos])
            saved = budget.w[None] * (bits[pos] - bits[nxt])
            score = np.where(can, sign * gain / np.maximum(saved, 1e-12), np.inf)
            trial = pos.copy()
            j = score.argmin(axis=1)
            trial[rows, j] -= 1
            cost_now, cost_try = bits[pos] @ budget.w, bits[trial] @ budget.w
            if budget.kind == "min":
                step = active & can.any(axis=1) & (cost_try >= budget.value - 1e-9)
            else:
                step = active & can.any(axis=1) & (cost_now > budget.value + 1e-9)
            pos[step] = trial[step]
            active = step
        return bits[pos]


class BaselineAgent:
    """SB3-style ``predict`` for a baseline policy acting in a DynamicPTQ env or vector env.

    The plan of each episode is computed at its first step (from the example the env drew)
    and then played one layer per step (sequential) or at once (joint / continuous).
    """

    def __init__(self, policy: Any, env: Any, seed: int = 0) -> None:
        base = getattr(env, "unwrapped", env)
        self.core = base.core
        if self.core.mode == "menu":
            raise ValueError("a baseline policy chooses its own plan, not one of the menu's; "
                             "use it with action_mode='joint'")
        self.policy = policy
        self.rng = np.random.default_rng(seed)
        self._plans = np.zeros((self.core.n, self.core.L), dtype=np.int64)
        self._key = [None] * self.core.n

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        c = self.core
        stale = [i for i in range(c.n)
                 if self._key[i] != (c.split[i], int(c.idx[i])) or c.k[i] == 0]
        if stale:
            x = torch.stack([c.res.split(c.split[i]).images[c.idx[i]] for i in stale])
            with torch.no_grad():
                self._plans[stale] = self.policy.plans(c.res.qnet, x.to(c.res.device),
                                                       c.budget, self.rng)
            bad = ~np.isin(self._plans[stale], c.bits)
            if bad.any():
                raise ValueError(
                    f"the policy chose bits {sorted(set(self._plans[stale][bad].tolist()))}, "
                    f"outside the env's bit_choices {c.bits.tolist()} (floor {c.bits[0]} bits "
                    f"for every layer); pick bits from bit_choices or widen them")
            for i in stale:
                self._key[i] = (c.split[i], int(c.idx[i]))
        choice = np.searchsorted(c.bits, self._plans)
        if c.mode == "sequential":
            act = choice[np.arange(c.n), np.minimum(c.k, c.L - 1)]
        elif c.mode == "joint":
            act = choice
        else:
            act = ((choice + 0.5) / len(c.bits) * 2 - 1).astype(np.float32)
        single = np.ndim(observation) == 1
        return (act[0] if single else act), None


class QueryArgmaxAgent:
    """A rule for the ``query`` observation (joint or menu mode). An input whose FP top-1
    probability is at least ``confident`` gets the query plan that changes its prediction, or
    failing that the one that costs its FP class the most probability; a less confident input
    (likely misclassified already) gets the plan that moves it least. No learning beyond choosing
    ``confident`` (on validation); it shows what the observation alone is worth.

    Args:
        plans: the env's query plans ``[K, L]`` (``env.unwrapped.core.extras.plans``).
        bit_choices: the env's bit choices (actions are indices into them).
        confident: FP top-1 probability from which an input is attacked.
        menu: act in ``action_mode="menu"`` (the plan's index) instead of joint.
    """

    def __init__(self, plans: np.ndarray, bit_choices: Any, confident: float = 0.0,
                 menu: bool = False) -> None:
        self.choices = np.searchsorted(np.asarray(bit_choices), np.asarray(plans))
        self.confident = float(confident)
        self.n_layers = np.asarray(plans).shape[1]
        self.menu = menu

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        obs = np.atleast_2d(observation)
        k = len(self.choices)
        feats = obs[:, -3 * k:].reshape(len(obs), k, 3)
        harm = feats[..., 2] * 10.0 + feats[..., 1]                 # flips first
        top = obs[:, 3 * self.n_layers]                             # FP top-1 probability
        best = np.where(top >= self.confident, harm.argmax(1), harm.argmin(1))
        act = best if self.menu else self.choices[best]
        return (act[0] if np.ndim(observation) == 1 else act), None
