"""DistillSource evaluate hook: the learned distillation schedule (which source, when).

``python -m agents.evaluate --env deploygym/DistillSource-v0 --agent <run folder>`` calls
:func:`schedule_analysis`. It runs ``episodes`` seeded episodes (hook option, default 5) with
the agent and reports the share of episodes that chose each source at each phase (PNG +
TensorBoard figure), the mean mixture weights, and the final student accuracy; with the hook
option ``baselines:true`` it also runs every fixed single source on the same seeds.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.analysis.hooks import HookContext, register_hook
from envs.registry import env_options

SEED_OFFSET = 50_000  # hook episodes use other seeds than the evaluator's own


def _episode(env: gym.Env, act, seed: int) -> dict[str, Any]:
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(act(obs))
        done = term or trunc
    return info


def schedule_analysis(ctx: HookContext) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = int(ctx.options.get("episodes", 5))
    env = gym.make(ctx.env_id, **env_options(ctx.env_id, {"progress": ctx.progress,
                                                          **ctx.env_kwargs}))
    names = list(env.unwrapped.source_names)
    agent = ctx.agent
    if agent is None:
        env.action_space.seed(ctx.seed)
        act = lambda obs: env.action_space.sample()  # noqa: E731
    else:
        act = lambda obs: agent.predict(obs, deterministic=True)[0]  # noqa: E731
    infos = [_episode(env, act, ctx.seed + SEED_OFFSET + i) for i in range(episodes)]
    weights = np.stack([i["mean_weights"] for i in infos])
    sched = np.stack([i["schedule"] for i in infos])
    share = np.stack([(sched == s).mean(0) for s in range(len(names))])  # [S, phases]
    acc = [float(i["final_accuracy"]) for i in infos]
    out: dict[str, Any] = {"sources": names, "episodes": episodes,
                           "schedule_share": share.round(3).tolist(),
                           "mean_weights": weights.mean(0).round(4).tolist(),
                           "final_accuracy_mean": float(np.mean(acc)), "final_accuracy": acc}
    if str(ctx.options.get("baselines", "false")).lower() in ("1", "true", "yes"):
        if isinstance(env.action_space, gym.spaces.Discrete):
            out["fixed_sources"] = {
                n: float(np.mean([_episode(env, lambda o, k=k: k, ctx.seed + SEED_OFFSET + i)
                                  ["final_accuracy"] for i in range(episodes)]))
                for k, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 2.5))
    im = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(names)), names, fontsize=11)
    ax.set_xlabel("phase", fontsize=11)
    ax.set_title(f"schedule over {episodes} episodes (largest-weight source); "
                 f"acc {np.mean(acc):.3f}", fontsize=12)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(ctx.out / "distill_source_schedule.png", dpi=100)
    if ctx.writer is not None:
        ctx.writer.add_figure("analysis/schedule", fig, 0)
        ctx.writer.add_text("analysis/distill_source",
                            f"final accuracy {np.mean(acc):.4f} over {episodes} episodes; mean "
                            f"weights " + ", ".join(f"{n} {w:.3f}" for n, w in
                                                    zip(names, out["mean_weights"], strict=True)),
                            0)
    plt.close(fig)
    out["plots"] = ["distill_source_schedule.png"]
    return out


register_hook("deploygym/DistillSource", schedule_analysis, name="distill_source_schedule")
