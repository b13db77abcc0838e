"""DistillSource policies (``kd_source_policy.json``): accuracy per policy, learned schedules.

* :func:`plot_accuracy` — the student's test accuracy per policy and setting (mean, 95% CI);
* :func:`plot_schedules` — each PPO schedule: a source's mean weight in each phase;
* :func:`tensorboard_snapshot` — both into a fresh TensorBoard log.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from models.stats import t_half_width

#: the table name of the PPO policy trained on each DistillSource action space
PPO_NAMES = {"discrete": "ppo", "mixture": "ppo mixture"}


def phase_weights(episodes: list[dict[str, Any]]) -> np.ndarray:
    """(phases, sources): each source's weight per phase, averaged over the episodes."""
    return np.mean([e["weights"] for e in episodes], axis=0)


def plot_schedules(details: dict[str, Any], names: tuple[str, ...], path: Path) -> Any:
    """Per setting and PPO action mode: the mean weight of each source in each phase over the
    evaluation episodes (for one-source-per-phase policies, the share of episodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(setting, action, r) for setting, d in details.items()
              for action, r in d["ppo"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.2), squeeze=False)
    for ax, (setting, action, r) in zip(axes[0], panels, strict=True):
        w = phase_weights(r["episodes"])
        im = ax.imshow(w.T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("phase")
        ax.set_title(f"{PPO_NAMES[action]} schedule, {setting} probe\n(mean weight over "
                     f"{len(r['episodes'])} eval episodes)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_accuracy(table: list[dict[str, Any]], path: Path) -> None:
    """Per setting: each policy's mean accuracy with its 95% CI over the evaluation seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({r["setting"] for r in table})
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 3.4), squeeze=False)
    for ax, s in zip(axes[0], settings, strict=True):
        rows = [r for r in table if r["setting"] == s]
        for i, r in enumerate(rows):  # points, not bars from 0: a few-point gap shows
            ax.errorbar(i, r["acc_mean"], yerr=t_half_width(r["acc_per_seed"], undefined=0.0),
                        fmt="o", capsize=3,
                        color="tab:red" if r["policy"] in PPO_NAMES.values() else "tab:blue")
        ax.set_xticks(range(len(rows)), [r["policy"] for r in rows], rotation=40, fontsize=7)
        ax.set_ylabel("student test accuracy (mean, 95% CI)")
        ax.set_title(f"{s} probe", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def tensorboard_snapshot(table: list[dict[str, Any]], schedule_fig: Any, tb_dir: Path) -> None:
    """Log each row's mean accuracy and the schedule figure, replacing an earlier run's log.

    The log is a snapshot of this run's table: event files left by an earlier run would show
    their (stale) scalars at the same step beside the new ones.
    """
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(tb_dir, ignore_errors=True)
    writer = SummaryWriter(str(tb_dir))
    writer.add_figure("schedule/ppo", schedule_fig, 0)
    for r in table:
        writer.add_scalar(f"{r['setting']}/acc/{r['policy'].replace(' ', '_')}", r["acc_mean"], 0)
    writer.close()
