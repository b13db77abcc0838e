"""Roll a bit-width policy over a whole dataset split of a DynamicPTQ env, in batches.

:func:`split_rollout` plays one episode per example of the split through the env's own
batched engine (:class:`envs.ptq.core.PTQCore`), so budgets, repairs, observations and
outcomes are exactly the env's, for any action mode and any agent with an SB3-style
``predict`` (trained policies, :class:`envs.ptq.baselines.BaselineAgent`, random agents).
It then runs one more forward of the chosen plans to record per-layer activation
statistics in FP and under quantization.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.ptq.config import PTQConfig, make_config
from envs.ptq.core import PTQCore
from envs.ptq.resources import PTQResources, get_resources
from envs.registry import env_options, family_of
from models.datasets import DatasetSplits

BASE_ID = "deploygym/DynamicPTQ-v0"
INFO_KEYS = ("fp_correct", "q_correct", "failure", "label", "fp_pred", "q_pred", "kl",
             "p_true_fp", "p_true_q", "mean_bits", "cost_bits", "n_repaired", "index")


def env_parts(env_kwargs: dict[str, Any], net: nn.Module | None = None,
              data: DatasetSplits | None = None, *, env_id: str = BASE_ID
              ) -> tuple[PTQConfig, PTQResources]:
    """The checked config and shared resources of ``gym.make(env_id, **env_kwargs)``.

    ``env_kwargs`` are the caller's options on top of ``env_id``'s registered variant options
    (:func:`envs.registry.env_options`): ``env_parts(kw, env_id="deploygym/DynamicPTQJoint-v0")``
    is the joint env, as ``gym.make`` builds it. The base id has no variant options, so a
    complete set of options (a pair's ``env_kwargs``) needs no id. ``ValueError`` if ``env_id``
    is not a DynamicPTQ id.
    """
    if family_of(env_id) != "DynamicPTQ":
        raise ValueError(f"{env_id} is not a DynamicPTQ id; whole-split rollouts need one")
    kw = {k: v for k, v in env_options(env_id, env_kwargs).items() if k != "render_mode"}
    cfg = make_config(kw, has_net=net is not None)
    return cfg, get_resources(cfg, net, data)


def _predict(agent: Any, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool) -> np.ndarray:
    kw = {}
    if masks is not None and "action_masks" in inspect.signature(agent.predict).parameters:
        kw["action_masks"] = masks
    action, _ = agent.predict(obs, deterministic=deterministic, **kw)
    return np.asarray(action)


def split_rollout(cfg: PTQConfig, res: PTQResources, agent: Any, split: str = "test",
                  limit: int | None = None, chunk: int = 1000, deterministic: bool = True,
                  make_agent: Any = None) -> dict[str, np.ndarray]:
    """One episode per example ``0..limit-1`` of ``split``; arrays keyed by info name.

    Args:
        agent: has ``predict(obs_batch, deterministic=)`` returning a batch of actions; or
            ``None`` with ``make_agent(env_like) -> agent`` for agents bound to an env
            (:class:`envs.ptq.baselines.BaselineAgent`), built per chunk.

    Returns ``bits`` ``[N, L]`` and every key of :data:`INFO_KEYS` ``[N]``, plus
    ``fp_stats`` / ``q_stats`` ``[N, L, 4]`` (min, max, std, outlier fraction of each
    layer's input) and ``fp_conf`` / ``fp_margin`` (FP max probability, top-1 − top-2).
    """
    n_total = len(res.labels(split))
    n_total = n_total if limit is None else min(int(limit), n_total)
    if n_total < 1:
        raise ValueError(f"split {split!r} has no examples to evaluate (limit={limit})")
    out: dict[str, list] = {k: [] for k in (*INFO_KEYS, "bits", "fp_stats", "q_stats",
                                            "fp_conf", "fp_margin")}
    for start in range(0, n_total, chunk):
        idx = np.arange(start, min(start + chunk, n_total))
        core = PTQCore(cfg, res, len(idx))
        ids = np.arange(len(idx))
        rngs = [np.random.default_rng(0) for _ in ids]
        obs, _ = core.reset(ids, rngs, [{"split": split, "index": int(i)} for i in idx])
        who = agent if agent is not None else make_agent(SimpleNamespace(core=core))
        infos: list[dict] = [{} for _ in ids]
        done = np.zeros(len(ids), dtype=bool)
        while not done.all():
            masks = core.action_masks(ids) if cfg.action_mode != "continuous" else None
            act = _predict(who, obs, masks, deterministic)
            obs, _, d, step_infos = core.step(act, ids)
            for i in np.flatnonzero(d & ~done):
                infos[i] = step_infos[i]
            done |= d
        for k in INFO_KEYS:
            out[k].append(np.asarray([inf[k] for inf in infos]))
        plans = np.stack([np.asarray(inf["bits"]) for inf in infos])
        out["bits"].append(plans)
        x = res.split(split).images[torch.as_tensor(idx)].to(res.device)
        was = res.net.training
        res.net.eval()
        try:
            with torch.no_grad():
                q = res.qnet(x, plans, return_fp=True, return_stats=True)
        finally:
            res.net.train(was)
        out["fp_stats"].append(q.fp_stats.double().cpu().numpy())
        out["q_stats"].append(q.stats.double().cpu().numpy())
        p = torch.softmax(q.fp_logits.double(), 1).sort(dim=1, descending=True).values
        out["fp_conf"].append(p[:, 0].cpu().numpy())
        out["fp_margin"].append((p[:, 0] - p[:, 1]).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def headline(r: dict[str, np.ndarray]) -> dict[str, float]:
    """FP accuracy, DPTQ accuracy, drop (points), mean bits, cost bits, failure rate, and
    ``distinct_plans``: how many different plans the policy chose over the examples."""
    fp, q = float(r["fp_correct"].mean()), float(r["q_correct"].mean())
    return {"fp_acc": 100 * fp, "dptq_acc": 100 * q, "drop": 100 * (fp - q),
            "mean_bits": float(r["mean_bits"].mean()), "cost_bits": float(r["cost_bits"].mean()),
            "failure_rate": 100 * float(r["failure"].mean()), "n": int(len(r["label"])),
            "distinct_plans": int(len(np.unique(r["bits"], axis=0)))}
