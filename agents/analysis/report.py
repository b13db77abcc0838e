"""What ``agents.evaluate`` writes: the summary of episode outcomes, TensorBoard and PNGs.

* :func:`summarise` — numeric ``info`` keys as mean/std/min/max; categorical keys (a class,
  an example index, a cell: :data:`agents.analysis.baselines.CATEGORICAL`) as counts, never
  averaged.
* :func:`write_tensorboard` — one run folder named after algo, env and seeds; a custom-scalars
  layout (TensorBoard's *Custom Scalars* tab): the headline metric's running mean over the
  episodes for the agent and every baseline, the running paired gap, the per-episode values;
  per-episode scalars of the numeric keys; histograms; frames; the verdict as a text table;
  hparams whose metrics are the verdict's numbers (``verdict/<metric>/mean/<agent or
  baseline>``, ``verdict/<metric>/gap/<baseline>``: the last points of those curves).
* :func:`write_plots` — a histogram per numeric key, a bar chart per categorical key, and the
  verdict's means with 95% CIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def summarise(scalars: dict[str, list[float]], categorical: frozenset[str] | set[str]
              ) -> dict[str, dict[str, Any]]:
    """Per key: mean/std/min/max/n, or for categorical keys ``counts`` (value → episodes),
    ``distinct`` and ``n``."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in scalars.items():
        a = np.asarray(v, dtype=np.float64)
        if k in categorical:
            values, counts = np.unique(a, return_counts=True)
            out[k] = {"counts": {_label(x): int(c) for x, c in zip(values, counts, strict=True)},
                      "distinct": int(len(values)), "n": int(len(a)), "categorical": True}
        else:
            out[k] = {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
                      "max": float(a.max()), "n": int(len(a))}
    return out


def _label(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def run_name(algo: str, env_id: str, train_seed: Any, eval_seed: int) -> str:
    """``<algo>_<env>_seed<train seed>_eval<eval seed>`` (the TensorBoard run name)."""
    seed = "" if train_seed is None else f"_seed{train_seed}"
    return f"{algo}_{env_id.split('/')[-1]}{seed}_eval{eval_seed}"


def _md_table(v: dict[str, Any]) -> str:
    rows = ["| | mean | 95% CI | agent − baseline | p | verdict |", "|---|---|---|---|---|---|"]
    a = v["agent"]
    rows.append(f"| agent | {a['mean']:.4g} | [{a['ci95'][0]:.4g}, {a['ci95'][1]:.4g}] | | | |")
    for name, r in v["baselines"].items():
        rows.append(f"| {name} | {r['mean']:.4g} | [{r['ci95'][0]:.4g}, {r['ci95'][1]:.4g}] | "
                    f"{r['gap']:.4g} | {r['p_value']:.3g} | agent {r['verdict']} |")
    m = v["metric"]
    return (f"**{m['key']}** ({m['direction']}): {m['description']}. Split {v['split']}, "
            f"{v['episodes']} paired episodes, {v['test']}.\n\n" + "\n".join(rows))


def verdict_metrics(v: dict[str, Any] | None) -> dict[str, float]:
    """The hparams metrics: ``verdict/<metric>/mean/agent``, ``.../mean/<baseline>`` and
    ``.../gap/<baseline>`` (agent − baseline), each the last point of its running-mean curve."""
    if not v:
        return {}
    key = v["metric"]["key"]
    out = {f"verdict/{key}/mean/agent": v["agent"]["mean"]}
    for name, r in v["baselines"].items():
        out[f"verdict/{key}/mean/{name}"] = r["mean"]
        out[f"verdict/{key}/gap/{name}"] = r["gap"]
    return out


def _layout(v: dict[str, Any] | None) -> dict[str, Any]:
    charts: dict[str, Any] = {"return per episode": ["Multiline", [r"^episode/return$"]]}
    if v:
        key, d = v["metric"]["key"], v["metric"]["direction"]
        charts = {f"{key}: running mean over episodes, agent vs baselines ({d})":
                  ["Multiline", [rf"^verdict/{key}/mean/"]],
                  f"{key}: running mean of the paired gap agent − baseline":
                  ["Multiline", [rf"^verdict/{key}/gap/"]],
                  f"{key} per episode, agent vs baselines":
                  ["Multiline", [rf"^verdict/{key}/episode/"]], **charts}
    return {"evaluation": charts}


def _running_mean(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.cumsum(x) / np.arange(1, len(x) + 1)


def _write_verdict(writer: Any, v: dict[str, Any]) -> None:
    key, agent = v["metric"]["key"], np.asarray(v["series"]["agent"])
    for name, vals in v["series"].items():
        vals = np.asarray(vals)
        curves = {f"verdict/{key}/episode/{name}": vals,
                  f"verdict/{key}/mean/{name}": _running_mean(vals)}
        if name != "agent":
            curves[f"verdict/{key}/gap/{name}"] = _running_mean(agent - vals)
        for tag, ys in curves.items():
            for i, y in enumerate(ys):
                writer.add_scalar(tag, y, i)
    writer.add_text("verdict", _md_table(v), 0)


def _write_hparams(writer: Any, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """The HParams plugin's records without extra scalar points: its metric values are the
    last points of the curves of the same tags."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    clean = {k: v if isinstance(v, int | float | str | bool) else str(v)
             for k, v in hparams.items()}
    for summary in hparams_summary(clean, metrics):
        writer.file_writer.add_summary(summary)


def write_tensorboard(logdir: Path, result: dict[str, Any], summary: dict[str, Any],
                      hparams: dict[str, Any], verdict: dict[str, Any] | None) -> None:
    """Everything of one evaluation into the TensorBoard run folder ``logdir``."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    try:
        writer.add_custom_scalars(_layout(verdict))
        if verdict:
            _write_verdict(writer, verdict)
        for k, vals in result["scalars"].items():
            if not summary[k].get("categorical"):
                for i, x in enumerate(vals):
                    writer.add_scalar(f"episode/{k}", x, i)
            writer.add_histogram(f"hist/{k}", np.asarray(vals), 0)
        for k, vals in result["arrays"].items():
            writer.add_histogram(f"hist/{k}", np.concatenate(vals), 0)
        writer.add_histogram("hist/actions", result["actions"], 0)
        for ep, frame in result["frames"]:
            writer.add_image("frames/final", torch.as_tensor(frame).permute(2, 0, 1), ep)
        metrics = verdict_metrics(verdict) or {"episode/return": summary["return"]["mean"]}
        _write_hparams(writer, hparams, metrics)
    finally:
        writer.close()


def write_plots(out: Path, result: dict[str, Any], summary: dict[str, Any],
                verdict: dict[str, Any] | None) -> list[str]:
    """PNGs into ``out``: histograms (numeric keys), counts (categorical), the verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)

    series = {**{k: np.asarray(v) for k, v in result["scalars"].items()},
              **{k: np.concatenate(v) for k, v in result["arrays"].items()},
              "actions": result["actions"]}
    for k, v in series.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        if k in summary and summary[k].get("categorical"):
            counts = summary[k]["counts"]
            ax.bar(range(len(counts)), list(counts.values()))
            if len(counts) <= 30:
                ax.set_xticks(range(len(counts)), list(counts), rotation=90, fontsize=8)
            ax.set_title(f"{k}: counts ({summary[k]['distinct']} distinct, n={len(v)})")
        else:
            spread = np.ptp(v) > 1e-9 * max(1.0, float(np.abs(v).max()))
            ax.hist(v, bins=min(30, max(len(np.unique(v)), 2)) if spread else 1)
            ax.set_title(f"{k}: mean {v.mean():.3g} (n={len(v)})")
        save(fig, f"{k.replace('/', '_')}.png")
    if verdict:
        names = ["agent", *verdict["baselines"]]
        rows = [verdict["agent"], *verdict["baselines"].values()]
        means = np.array([r["mean"] for r in rows])
        lo = np.array([r["ci95"][0] for r in rows])
        err = np.nan_to_num(means - lo)
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 4.5))
        colors = ["tab:blue"] + ["tab:gray"] * (len(names) - 1)
        ax.bar(range(len(names)), means, yerr=err, capsize=4, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=11)
        m = verdict["metric"]
        ax.set_ylabel(f"{m['key']} ({m['direction']})", fontsize=11)
        ax.set_title(f"{m['key']} on {verdict['split']}, mean ± 95% CI, "
                     f"{verdict['episodes']} paired episodes", fontsize=11)
        save(fig, "verdict.png")
    return written
