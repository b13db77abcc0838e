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

from envs.ptq.actions import parse_actions
from envs.ptq.budget import Budget
from envs.ptq.config import SPLITS, PTQConfig
from envs.ptq.observations.extras import OBS_CLIP, Obs, ObservationExtras
from envs.ptq.resources import PTQResources
from models.quant import FP_BITS, Prefix

__all__ = ["OBS_CLIP", "PTQCore"]
_EPS = 1e-6


@contextmanager
def _eval(net: torch.nn.Module):
    """Eval mode and no autograd for the env's forwards; the caller's mode is restored."""
    was = net.training
    if was:
        net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was:
            net.train(True)


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
        self.extras = ObservationExtras(cfg, res, self.n, self.L, self.budget)
        # choices per action: bit-widths, or (menu) the query plans
        self.n_actions = len(self.extras.plans) if self.mode == "menu" else len(self.bits)
        self.obs_dim = (4 + self.L + 5 if self.mode == "sequential" else 3 * self.L + 2
                        ) + self.extras.flat_dim
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
        # sequential mode with prefix reuse: each episode's forward so far, kept at the input
        # of the segment holding its next layer, as (batch tensor, row) — rows stepped together
        # share one tensor, so the next step needs no copy (None: start from the image)
        self.prefix_seg = np.zeros(self.n, dtype=np.int64)
        self.prefix_h: list[tuple[torch.Tensor, int] | None] = [None] * self.n
        self.last_info: list[dict[str, Any]] = [{} for _ in range(self.n)]

    # ------------------------------------------------------------------ reset
    def reset(self, ids: np.ndarray, rngs: list[np.random.Generator],
              options: list[dict[str, Any] | None]) -> tuple[Obs, list[dict[str, Any]]]:
        """Start new episodes in slots ``ids``; ``rngs[j]`` draws the example of ``ids[j]``."""
        ids = np.asarray(ids, dtype=np.int64)
        default_size = len(self.res.labels(self.cfg.split))
        for i, rng, opt in zip(ids, rngs, options, strict=True):
            if not opt:  # the common case: a random example of the configured split
                self.split[i], self.idx[i] = self.cfg.split, rng.integers(default_size)
                continue
            split, index = self.cfg.split, None
            if opt:
                opt = dict(opt)
                split, index = opt.pop("split", split), opt.pop("index", None)
                if opt:
                    raise ValueError(f"unknown reset options {sorted(opt)}; valid: 'split', 'index'")
                if split not in SPLITS:
                    raise ValueError(f"options['split'] must be one of {SPLITS}, got {split!r}")
            size = len(self.res.labels(split))
            if index is None:
                index = int(rng.integers(size))
            elif not (isinstance(index, int | np.integer) and 0 <= index < size):
                raise ValueError(f"options['index'] must be an int in [0, {size}), got {index!r}")
            self.split[i], self.idx[i] = split, int(index)
        splits = {self.split[i] for i in ids}
        for split in splits:
            rows = ids if len(splits) == 1 else ids[[self.split[i] == split for i in ids]]
            self.labels[rows] = self.res.labels(split)[self.idx[rows]]
            with _eval(self.res.net):
                lg, st = self.res.cache(split).get(self.idx[rows])
                self.extras.fill(rows, split, self.idx[rows])
            self.fp_logits[rows] = lg.float().cpu().numpy()
            self.fp_stats[rows] = st.double().cpu().numpy()
        self._start(ids)
        infos = [{"index": i, "label": y, "split": self.split[s]}
                 for s, i, y in zip(ids, self.idx[ids].tolist(), self.labels[ids].tolist(),
                                    strict=True)]
        return self.observe(ids), infos

    def load_inputs(self, x: torch.Tensor) -> Obs:
        """Start episodes ``0..len(x)-1`` on the inputs ``x`` themselves (no dataset index,
        no label): what a policy would be shown for them. The FP pass runs in the network's
        current mode (pair training calls it mid-update), the probe in eval mode. Returns
        their observations."""
        ids = np.arange(len(x))
        with torch.no_grad():
            out = self.res.qnet(x, FP_BITS, return_stats=True)
        with _eval(self.res.net):  # the probe's forwards never touch batch-norm statistics
            self.extras.fill_inputs(x, out.logits)
        self.fp_logits[ids] = out.logits.float().cpu().numpy()
        self.fp_stats[ids] = out.stats.double().cpu().numpy()
        self._start(ids)
        return self.observe(ids)

    def _start(self, ids: np.ndarray) -> None:
        """Episodes ``ids`` are at their first layer with nothing chosen."""
        self.k[ids] = 0
        self.plan[ids] = FP_BITS
        self.requested[ids] = FP_BITS
        self.prev[ids] = 0.0
        self.n_repaired[ids] = 0
        self.prefix_seg[ids] = 0
        for i in ids:
            self.prefix_h[i] = None
        self.cur_stats[ids] = self.fp_stats[ids, 0]

    # ------------------------------------------------------------ observation
    def observe(self, ids: np.ndarray) -> Obs:
        """The observations of episodes ``ids`` (see :mod:`envs.ptq.observations.extras`)."""
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
        return self.extras.present(ids, obs)

    def action_masks(self, ids: np.ndarray) -> np.ndarray:
        """Sequential: ``[len(ids), n_choices]`` feasible choices under the budget; joint:
        ``[len(ids), layers * n_choices]`` all True (the budget couples layers; it is
        repaired after the action instead); menu: ``[len(ids), K]`` all True."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.mode == "joint":
            return np.ones((len(ids), self.L * len(self.bits)), dtype=bool)
        if self.mode == "menu":  # every plan of the menu (one over the budget is repaired)
            return np.ones((len(ids), self.n_actions), dtype=bool)
        if self.mode != "sequential":
            raise NotImplementedError("action_masks() exists for the discrete action modes only")
        return self.budget.feasible(self.plan[ids], self.k[ids], self.bits)

    # ------------------------------------------------------------------- step
    def step(self, actions: Any, ids: np.ndarray) -> tuple[Obs, np.ndarray, np.ndarray,
                                                          list[dict[str, Any]]]:
        """Apply ``actions`` to episodes ``ids`` with one batched forward.

        Returns observations, rewards, terminated flags and infos for ``ids``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if (self.k[ids] >= self.L).any():
            raise RuntimeError("step() called on a finished episode; call reset() first")
        choice = parse_actions(actions, self.mode, len(ids), self.L, self.n_actions)
        if self.mode == "sequential":
            mask = self.budget.feasible(self.plan[ids], self.k[ids], self.bits)
            ok = mask[np.arange(len(ids)), choice]
            asked = choice.copy()
            # feasible choices form an interval (cost is monotone in bits): clip into it
            first = mask.argmax(axis=1)
            last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            choice = np.clip(choice, first, last)
            rows = ids
            self.requested[rows, self.k[rows]] = self.bits[asked]
            self.plan[rows, self.k[rows]] = self.bits[choice]
            self.n_repaired[rows] += ~ok
            self.prev[rows] = choice / max(len(self.bits) - 1, 1)
            self.k[rows] += 1
        else:
            self.requested[ids] = (self.extras.plans[choice] if self.mode == "menu"
                                   else self.bits[choice])
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

    def _images(self, ids: np.ndarray) -> torch.Tensor:
        res = self.res
        splits = {self.split[i] for i in ids}
        if len(splits) == 1:
            x = res.split(splits.pop()).images[torch.as_tensor(self.idx[ids])]
        else:
            x = torch.stack([res.split(self.split[i]).images[self.idx[i]] for i in ids])
        return x.to(res.device)

    def _forward(self, ids: np.ndarray, done: np.ndarray) -> np.ndarray:
        """One batched quantized forward for ``ids``: final logits for finished episodes,
        the next layer's input statistics for the others (stopping as early as possible)."""
        if self.mode == "sequential" and self.cfg.prefix_reuse:
            return self._forward_resumed(ids, done)
        res = self.res
        live = np.flatnonzero(~done)
        need = self.k[ids[live]]
        stop = None if done.any() else int(need.max())
        with _eval(res.net):
            out = res.qnet(self._images(ids), self.plan[ids], return_stats=len(live) > 0,
                           stats_at=np.unique(need).tolist(), stop_at=stop)
        if len(live):
            st = out.stats[torch.as_tensor(live), torch.as_tensor(need)]
            self.cur_stats[ids[live]] = st.double().cpu().numpy()
        if out.logits is None:
            return np.zeros((len(ids), self.classes), dtype=np.float32)
        return out.logits.float().cpu().numpy()

    def _forward_resumed(self, ids: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Sequential mode: continue each episode's forward from the activation it kept,
        up to its next layer's input (or to the logits when it is done). Episodes at the
        same point (all of them, in lockstep vector envs) share one batched call."""
        qnet = self.res.qnet
        logits = np.zeros((len(ids), self.classes), dtype=np.float32)
        target = np.where(done, -1, self.k[ids])  # -1: run to the logits
        for seg, tgt in sorted({(int(a), int(b)) for a, b in zip(self.prefix_seg[ids], target,
                                                                 strict=True)}):
            rows = np.flatnonzero((self.prefix_seg[ids] == seg) & (target == tgt))
            g = ids[rows]
            h = self._images(g) if seg == 0 else self._kept(g)  # segment 0 takes the image
            stop = None if tgt < 0 else tgt
            with _eval(self.res.net):
                out, nxt = qnet.resume(Prefix(seg, h), self.plan[g], stop_at=stop,
                                       return_stats=stop is not None,
                                       stats_at=None if stop is None else [stop])
            if stop is None:
                logits[rows] = out.logits.float().cpu().numpy()
                continue
            self.cur_stats[g] = out.stats[:, stop].double().cpu().numpy()
            self.prefix_seg[g] = nxt.seg
            for j, i in enumerate(g):
                self.prefix_h[i] = (nxt.h, j)
        return logits

    def _kept(self, g: np.ndarray) -> torch.Tensor:
        """The kept activations of episodes ``g`` as one batch (no copy when they are the
        rows of one earlier batch, in order)."""
        refs = [self.prefix_h[i] for i in g]
        base = refs[0][0]
        if all(r[0] is base for r in refs):
            rows = [r[1] for r in refs]
            if rows == list(range(len(base))):
                return base
            return base[torch.as_tensor(rows, device=base.device)]
        return torch.stack([t[j] for t, j in refs])

    def _outcome(self, ids: np.ndarray, q_logits: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        """Rewards and end-of-episode infos (see the reward table in :mod:`envs.ptq`)."""
        cfg, n = self.cfg, len(ids)
        fp = self.fp_logits[ids].astype(np.float64)
        q = q_logits.astype(np.float64)
        lp = fp - fp.max(1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(1, keepdims=True))
        lq = q - q.max(1, keepdims=True)
        lq -= np.log(np.exp(lq).sum(1, keepdims=True))
        kl = np.maximum((np.exp(lp) * (lp - lq)).sum(1), 0.0)
        y = self.labels[ids]
        p_fp, p_q = np.exp(lp[np.arange(n), y]), np.exp(lq[np.arange(n), y])
        fp_pred, q_pred = fp.argmax(1), q.argmax(1)
        fp_ok, q_ok = fp_pred == y, q_pred == y
        plan = self.plan[ids]
        cost = self.budget.cost(plan)
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
        cols = {"fp_correct": fp_ok.tolist(), "q_correct": q_ok.tolist(),
                "failure": (fp_ok & ~q_ok).tolist(), "label": y.tolist(),
                "fp_pred": fp_pred.tolist(), "q_pred": q_pred.tolist(), "kl": kl.tolist(),
                "p_true_fp": p_fp.tolist(), "p_true_q": p_q.tolist(), "bits": list(plan),
                "requested_bits": list(self.requested[ids].copy()),
                "mean_bits": plan.mean(1).tolist(), "cost_bits": cost.tolist(),
                "budget_bits": [cfg.budget_bits] * n, "n_repaired": self.n_repaired[ids].tolist(),
                "index": self.idx[ids].tolist(), "split": [self.split[i] for i in ids],
                **{k: v.tolist() for k, v in terms.items()}, "reward": reward.tolist()}
        keys = list(cols)
        infos = [dict(zip(keys, row, strict=True)) for row in zip(*cols.values(), strict=True)]
        return reward.astype(np.float64), infos
