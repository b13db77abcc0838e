"""The DynamicPTQ analysis hook of ``python -m agents.evaluate`` (registered on import).

Over a whole split (``--hook-opts split:test limit:N``) it measures, for the evaluated policy
on the env's network (or a pair's network, ``options["net"]``):

* FP accuracy, DPTQ accuracy, the drop (points), mean bits and budget cost;
* the drop per class and the histogram of chosen bits per layer;
* the same for the baselines on the same network: uniform bits, random under the budget,
  greedy sensitivity (on the first ``greedy_limit`` examples: it costs L·|bits| forwards);
* uniform plans at every bit-width of the protocol and at 4 bits, the budget aside
  (``uniform_plans``): what a plain static deployment of the network loses;
* the vulnerability analysis: per layer, how much accuracy comes back when only that layer
  is raised to 8 bits (and the bits it gets on failing vs surviving inputs); per class, the
  drop; per input, how failing inputs differ from surviving ones in FP confidence, margin
  and per-layer activation range / peak-to-typical ratio;
* an image grid of the worst failures (largest KL(FP‖Q)) with FP vs quantized predictions.

Everything goes to the returned JSON dict, PNGs in the output folder
(:mod:`agents.analysis.ptq_plots`) and TensorBoard: one text table ``analysis/ptq`` with the
headline of the policy and each baseline, the figures, and per-layer bit histograms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.analysis.hooks import HookContext, register_hook
from agents.analysis.ptq_plots import ptq_plots
from envs.ptq.baselines import (
    BaselineAgent,
    GreedySensitivityPolicy,
    RandomBudgetPolicy,
    UniformPolicy,
)
from envs.ptq.rollout import env_parts, headline, split_rollout
from models.quant import FP_BITS, evaluate_plan


def _baseline(policy: Any):
    return lambda env_like: BaselineAgent(policy, env_like, seed=0)


def per_class_drop(r: dict[str, np.ndarray], classes: int) -> list[float]:
    """Points lost per class (FP accuracy − DPTQ accuracy within the class)."""
    out = []
    for c in range(classes):
        m = r["label"] == c
        out.append(100 * float(r["fp_correct"][m].mean() - r["q_correct"][m].mean()) if m.any()
                   else float("nan"))
    return out


def bit_histogram(bits: np.ndarray, choices: tuple[int, ...]) -> list[list[int]]:
    """``[L][n_choices]`` how often each layer got each bit-width."""
    return [[int((bits[:, j] == b).sum()) for b in choices] for j in range(bits.shape[1])]


@torch.no_grad()
def layer_recovery(res: Any, split: str, r: dict[str, np.ndarray]) -> list[float]:
    """Points of DPTQ accuracy regained when only layer ``l`` is raised to 8 bits."""
    x = res.split(split).images[: len(r["label"])].to(res.device)
    y = torch.as_tensor(r["label"], device=res.device)
    base = r["q_correct"].mean()
    out = []
    was = res.net.training
    res.net.eval()
    try:
        for j in range(r["bits"].shape[1]):
            plan = r["bits"].copy()
            plan[:, j] = np.maximum(plan[:, j], 8)
            acc = []
            for s in range(0, len(x), 1000):
                lg = res.qnet(x[s:s + 1000], plan[s:s + 1000]).logits
                acc.append((lg.argmax(1) == y[s:s + 1000]).float().cpu())
            out.append(100 * float(torch.cat(acc).mean() - base))
    finally:
        res.net.train(was)
    return out


def input_profile(r: dict[str, np.ndarray]) -> dict[str, Any]:
    """Failing vs surviving (FP-correct) inputs: confidence, margin, activation ranges."""
    fail = r["failure"].astype(bool)
    keep = r["fp_correct"].astype(bool) & ~fail
    st = r["fp_stats"]
    rng = st[..., 1] - st[..., 0]
    peak = st[..., 1] / np.maximum(st[..., 2], 1e-12)  # max / std: outlier-driven ranges

    def side(m: np.ndarray) -> dict[str, Any]:
        if not m.any():
            return {"n": 0}
        return {"n": int(m.sum()), "fp_conf": float(r["fp_conf"][m].mean()),
                "fp_margin": float(r["fp_margin"][m].mean()),
                "act_range": rng[m].mean(0).round(4).tolist(),
                "peak_to_std": peak[m].mean(0).round(3).tolist(),
                "mean_bits_per_layer": r["bits"][m].mean(0).round(3).tolist()}

    return {"failing": side(fail), "surviving": side(keep)}


def uniform_plans(res: Any, split: str, n: int, bits: tuple[int, ...]) -> dict[str, Any]:
    """FP and quantized accuracy and the drop (points) of every uniform plan in ``bits``
    (and 4 bits) over the first ``n`` examples of ``split``, the budget aside."""
    s = res.split(split)
    out = {}
    for b in sorted({*(b for b in bits if b < FP_BITS), 4}):
        m = evaluate_plan(res.qnet, s.images[:n], s.labels[:n], b)
        out[f"uniform{b}"] = {"bits": b, "fp_acc": m["fp_acc"], "dptq_acc": m["q_acc"],
                              "drop": 100 * m["drop"], "kl": m["kl"]}
    return out


def summary_table(out: dict[str, Any]) -> str:
    """The whole-split headline of the policy and every baseline as one markdown table."""
    keys = ("fp_acc", "dptq_acc", "drop", "mean_bits", "cost_bits", "failure_rate",
            "distinct_plans", "n")
    rows = [f"| {out['split']} split | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|"]
    for name, h in {"policy": out["policy"], **out["baselines"]}.items():
        rows.append(f"| {name} | " + " | ".join(f"{h[k]:.4g}" for k in keys) + " |")
    u = out.get("uniform_plans", {})
    if u:
        rows.append("\n\nuniform plans, budget aside: " + ", ".join(
            f"{r['bits']} bits {r['dptq_acc']:.4g} (drop {r['drop']:.3g} pts)" for r in u.values()))
    v = out.get("vulnerability", {})
    tail = (f"\n\nmost exposed layers: {', '.join(v['most_exposed_layers'])}; classes: "
            f"{', '.join(v['most_exposed_classes'])}" if v else "")
    return "\n".join(rows) + tail


def ptq_analysis(ctx: HookContext) -> dict[str, Any]:
    """The DynamicPTQ hook (see the module docstring). Options: ``net``, ``data``, ``split``
    (``test``), ``limit`` (all), ``greedy_limit`` (1000), ``baselines`` (True)."""
    opt = ctx.options
    split = str(opt.get("split", ctx.env_kwargs.get("split", "test")))
    limit = opt.get("limit")
    limit = None if limit is None else int(limit)
    cfg, res = env_parts(ctx.env_kwargs, opt.get("net"), opt.get("data"), env_id=ctx.env_id)
    agent = ctx.agent
    if agent is None or not hasattr(agent, "policy"):  # random / missing: random under budget
        r = split_rollout(cfg, res, None, split, limit, make_agent=_baseline(RandomBudgetPolicy()))
    else:
        r = split_rollout(cfg, res, agent, split, limit)
    classes = res.net.num_classes
    out: dict[str, Any] = {"split": split, "policy": headline(r),
                           "per_class_drop": per_class_drop(r, classes),
                           "layer_bits_hist": bit_histogram(r["bits"], cfg.bit_choices),
                           "bit_choices": list(cfg.bit_choices),
                           "layer_names": list(res.qnet.layer_names)}
    out["uniform_plans"] = uniform_plans(res, split, len(r["label"]), cfg.bit_choices)
    rec = layer_recovery(res, split, r)
    order = np.argsort(out["per_class_drop"])[::-1]
    names = res.data.info.class_names
    out["vulnerability"] = {
        "layer_recovery_points": rec,
        "most_exposed_layers": [res.qnet.layer_names[j] for j in np.argsort(rec)[::-1][:3]],
        "most_exposed_classes": [names[c] for c in order[:3]],
        "inputs": input_profile(r),
    }
    out["baselines"] = {}
    if opt.get("baselines", True) not in (False, "false", "False", 0):
        # Uniform plans the budget leaves as they are: at the budget and at the far feasible
        # end (highest bits under a minimum, lowest under a maximum); others would be repaired.
        budget_b = int(round(cfg.budget_bits))
        far = cfg.bit_choices[-1] if cfg.budget_kind == "min" else cfg.bit_choices[0]
        uniform = sorted({b for b in (budget_b, far) if b in cfg.bit_choices})
        for b in uniform:
            rb = split_rollout(cfg, res, None, split, limit, make_agent=_baseline(UniformPolicy(b)))
            out["baselines"][f"uniform{b}"] = headline(rb)
        rb = split_rollout(cfg, res, None, split, limit, make_agent=_baseline(RandomBudgetPolicy()))
        out["baselines"]["random_budget"] = headline(rb)
        g_lim = int(opt.get("greedy_limit", 1000))
        g_lim = g_lim if limit is None else min(g_lim, limit)
        rb = split_rollout(cfg, res, None, split, g_lim, chunk=250,
                           make_agent=_baseline(GreedySensitivityPolicy()))
        out["baselines"]["greedy"] = headline(rb)
    if ctx.writer is not None:  # one table, not a single-point chart per number
        ctx.writer.add_text("analysis/ptq", summary_table(out), 0)
        for j, name in enumerate(res.qnet.layer_names):
            ctx.writer.add_histogram(f"analysis/bits/{j}_{name}", r["bits"][:, j], 0)
    out["plots"] = ptq_plots(ctx.out, ctx.writer, r, res.split(split).images, names, out,
                             cfg.bit_choices)
    return out


register_hook("deploygym/DynamicPTQ", ptq_analysis, name="ptq_analysis")
