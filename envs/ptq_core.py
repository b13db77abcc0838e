"""The batched engine behind every DynamicPTQ environment.

:class:`PTQCore` holds the state of ``n`` independent episodes and advances all of them with
**one** batched forward of the quantized network per step. A single environment is a core with
``n = 1``; the vector environments are cores with ``n = N``, so both share every line of logic.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from envs.ptq_actions import parse_actions
from envs.ptq_budget import Budget
from envs.ptq_config import PTQConfig
from envs.ptq_resources import PTQResources
from models.quant import FP_BITS, kl_fp_q

OBS_CLIP = 10.0
_EPS = 1e-6


@contextmanager
def _eval(net: torch.nn.Module):
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was)


def _features(stats: np.ndarray, fp_stats: np.ndarray) -> np.ndarray:
    """``[..., 4]`` stats → log range, log std, outlier fraction, log(range / FP range)."""
    rng, fp_rng = stats[..., 1] - stats[..., 0], fp_stats[..., 1] - fp_stats[..., 0]
    return np.stack((np.log1p(rng), np.log1p(stats[..., 2]), stats[..., 3],
                     np.log((rng + _EPS) / (fp_rng + _EPS))), axis=-1)


class PTQCore:
    """``n`` DynamicPTQ episodes advanced together.

    Args:
        cfg: checked options.
        res: shared network, quantizer, data and FP caches.
        n: number of episodes.
    """

    def __init__(self, cfg: PTQConfig, res: PTQResources, n: int) -> None:
        self.cfg, self.res, self.n = cfg, res, int(n)
        self.L = res.qnet.n_layers
        self.bits = np.asarray(cfg.bit_choices, dtype=np.int64)
        self.budget = Budget(cfg, res.qnet.layer_macs())
        self.classes = res.net.num_classes
        self.mode = cfg.action_mode
        self.obs_dim = 4 + self.L + 5 if self.mode == "sequential" else 3 * self.L + 2
        self.split = [cfg.split] * self.n
        self.idx = np.zeros(self.n, dtype=np.int64)
        self.labels = np.zeros(self.n, dtype=np.int64)
        self.k = np.zeros(self.n, dtype=np.int64)
        self.plan = np.full((self.n, self.L), FP_BITS, dtype=np.int64)
        self.requested = self.plan.copy()
        self.prev = np.zeros(self.n)
        self.n_repaired = np.zeros(self.n, dtype=np.int64)
        self.fp_logits = np.zeros((self.n, self.classes), dtype=np.float32)
        self.fp_stats = np.zeros((self.n, self.L, 4))
        self.cur_stats = np.zeros((self.n, 4))
        self.last_info: list[dict[str, Any]] = [{} for _ in range(self.n)]

    # ------------------------------------------------------------------ reset
    def reset(self, ids: np.ndarray, rngs: list[np.random.Generator],
              options: list[dict[str, Any] | None]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Start new episodes in slots ``ids``; ``rngs[j]`` draws the example of ``ids[j]``."""
        ids = np.asarray(ids, dtype=np.int64)
        for i, rng, opt in zip(ids, rngs, options, strict=True):
            opt = dict(opt or {})
            split = opt.pop("split", self.cfg.split)
            if split not in ("train", "val", "test"):
                raise ValueError(f"options['split'] must be train/val/test, got {split!r}")
            size = len(self.res.split(split))
            index = opt.pop("index", None)
            if opt:
                raise ValueError(f"unknown reset options {sorted(opt)}; valid: 'split', 'index'")
            if index is None:
                index = int(rng.integers(size))
            elif not (isinstance(index, int | np.integer) and 0 <= index < size):
                raise ValueError(f"options['index'] must be an int in [0, {size}), got {index!r}")
            self.split[i], self.idx[i] = split, int(index)
            self.labels[i] = int(self.res.split(split).labels[index])
        for split in set(self.split[i] for i in ids):
            rows = ids[[self.split[i] == split for i in ids]]
            with _eval(self.res.net):
                lg, st = self.res.cache(split).get(self.idx[rows])
            self.fp_logits[rows] = lg.float().cpu().numpy()
            self.fp_stats[rows] = st.double().cpu().numpy()
        self.k[ids] = 0
        self.plan[ids] = FP_BITS
        self.requested[ids] = FP_BITS
        self.prev[ids] = 0.0
        self.n_repaired[ids] = 0
        self.cur_stats[ids] = self.fp_stats[ids, 0]
        infos = [{"index": int(self.idx[i]), "label": int(self.labels[i]), "split": self.split[i]}
                 for i in ids]
        return self.observe(ids), infos

    # ------------------------------------------------------------ observation
    def observe(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        p = np.exp(self.fp_logits[ids] - self.fp_logits[ids].max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        top = np.sort(p, axis=1)
        conf = np.stack((top[:, -1], top[:, -1] - top[:, -2]), axis=1)
        if self.mode != "sequential":
            f = _features(self.fp_stats[ids], self.fp_stats[ids])[..., :3].reshape(len(ids), -1)
            obs = np.concatenate((f, conf), axis=1)
        else:
            k = self.k[ids]
            live = k < self.L
            kk = np.minimum(k, self.L - 1)
            feats = _features(self.cur_stats[ids], self.fp_stats[ids, kk]) * live[:, None]
            onehot = np.zeros((len(ids), self.L))
            onehot[np.flatnonzero(live), k[live]] = 1.0
            need = self.budget.remaining_mean(self.plan[ids], k) / self.bits[-1] * live
            share = self.budget.w[kk] * self.L * live
            obs = np.concatenate((feats, onehot, self.prev[ids, None], need[:, None],
                                  share[:, None], conf), axis=1)
        return np.clip(obs, -OBS_CLIP, OBS_CLIP).astype(np.float32)

    def action_masks(self, ids: np.ndarray) -> np.ndarray:
        """Sequential: ``[len(ids), n_choices]`` feasible choices under the budget; joint:
        ``[len(ids), layers * n_choices]`` all True (the budget couples layers; it is
        repaired after the action instead)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.mode == "joint":
            return np.ones((len(ids), self.L * len(self.bits)), dtype=bool)
        if self.mode != "sequential":
            raise NotImplementedError("action_masks() exists for the discrete action modes only")
        return self.budget.feasible(self.plan[ids], self.k[ids], self.bits)

    # ------------------------------------------------------------------- step
    def step(self, actions: Any, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          list[dict[str, Any]]]:
        """Apply ``actions`` to episodes ``ids`` with one batched forward.

        Returns observations, rewards, terminated flags and infos for ``ids``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if (self.k[ids] >= self.L).any() or (self.mode != "sequential" and (self.k[ids] > 0).any()):
            raise RuntimeError("step() called on a finished episode; call reset() first")
        choice = parse_actions(actions, self.mode, len(ids), self.L, len(self.bits))
        if self.mode == "sequential":
            mask = self.budget.feasible(self.plan[ids], self.k[ids], self.bits)
            ok = mask[np.arange(len(ids)), choice]
            asked = choice.copy()
            for r in np.flatnonzero(~ok):
                allowed = np.flatnonzero(mask[r])
                choice[r] = allowed[np.argmin(np.abs(allowed - choice[r]))]
            rows = ids
            self.requested[rows, self.k[rows]] = self.bits[asked]
            self.plan[rows, self.k[rows]] = self.bits[choice]
            self.n_repaired[rows] += ~ok
            self.prev[rows] = choice / max(len(self.bits) - 1, 1)
            self.k[rows] += 1
        else:
            self.requested[ids] = self.bits[choice]
            self.plan[ids], self.n_repaired[ids] = self.budget.repair(self.requested[ids], self.bits)
            self.k[ids] = self.L
        done = self.k[ids] >= self.L
        q_logits = self._forward(ids, done)
        rewards = np.zeros(len(ids))
        infos: list[dict[str, Any]] = [{} for _ in ids]
        if done.any():
            fin = np.flatnonzero(done)
            rewards[fin], fin_infos = self._outcome(ids[fin], q_logits[fin])
            for r, info in zip(fin, fin_infos, strict=True):
                infos[r] = info
                self.last_info[ids[r]] = info
        return self.observe(ids), rewards, done, infos

    def _forward(self, ids: np.ndarray, done: np.ndarray) -> np.ndarray:
        """One batched quantized forward for ``ids``: final logits for finished episodes,
        the next layer's input statistics for the others (stopping as early as possible)."""
        res = self.res
        x = torch.cat([res.split(self.split[i]).images[self.idx[i]][None] for i in ids]) \
            if len(set(self.split[i] for i in ids)) > 1 else \
            res.split(self.split[ids[0]]).images[torch.as_tensor(self.idx[ids])]
        live = np.flatnonzero(~done)
        stop = None if done.any() else int(self.k[ids].max())
        with _eval(res.net):
            out = res.qnet(x.to(res.device), self.plan[ids], return_stats=len(live) > 0,
                           stop_at=stop)
        if len(live):
            st = out.stats[torch.as_tensor(live), torch.as_tensor(self.k[ids[live]])]
            self.cur_stats[ids[live]] = st.double().cpu().numpy()
        if out.logits is None:
            return np.zeros((len(ids), self.classes), dtype=np.float32)
        return out.logits.float().cpu().numpy()

    def _outcome(self, ids: np.ndarray, q_logits: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        """Rewards and end-of-episode infos (see the reward table in :mod:`envs.ptq`)."""
        cfg = self.cfg
        fp = torch.as_tensor(self.fp_logits[ids])
        q = torch.as_tensor(q_logits)
        y = self.labels[ids]
        kl = kl_fp_q(fp, q).clamp_min(0).numpy().astype(np.float64)
        p_fp = F.softmax(fp, 1).numpy()[np.arange(len(ids)), y].astype(np.float64)
        p_q = F.softmax(q, 1).numpy()[np.arange(len(ids)), y].astype(np.float64)
        fp_pred, q_pred = self.fp_logits[ids].argmax(1), q_logits.argmax(1)
        fp_ok, q_ok = fp_pred == y, q_pred == y
        cost = self.budget.cost(self.plan[ids])
        kl_term = np.minimum(kl, cfg.kl_clip) / cfg.kl_clip
        terms: dict[str, np.ndarray]
        if cfg.reward == "detrimental":
            terms = {"r_fail": (fp_ok & ~q_ok).astype(np.float64),
                     "r_kl": cfg.kl_weight * kl_term * cfg.dense,
                     "r_drop": cfg.drop_weight * (p_fp - p_q) * cfg.dense}
        else:
            span = self.bits[-1] - self.bits[0]
            terms = {"r_correct": q_ok.astype(np.float64) - fp_ok.astype(np.float64),
                     "r_bits": -cfg.bits_weight * (cost - self.bits[0]) / span,
                     "r_kl": -cfg.kl_weight * kl_term * cfg.dense}
        reward = sum(terms.values())
        infos = []
        for r, i in enumerate(ids):
            infos.append({
                "fp_correct": bool(fp_ok[r]), "q_correct": bool(q_ok[r]),
                "failure": bool(fp_ok[r] and not q_ok[r]), "label": int(y[r]),
                "fp_pred": int(fp_pred[r]), "q_pred": int(q_pred[r]), "kl": float(kl[r]),
                "p_true_fp": float(p_fp[r]), "p_true_q": float(p_q[r]),
                "bits": self.plan[i].copy(), "requested_bits": self.requested[i].copy(),
                "mean_bits": float(self.plan[i].mean()), "cost_bits": float(cost[r]),
                "budget_bits": cfg.budget_bits, "n_repaired": int(self.n_repaired[i]),
                "index": int(self.idx[i]), "split": self.split[i],
                **{k: float(v[r]) for k, v in terms.items()}, "reward": float(reward[r])})
        return reward.astype(np.float64), infos
