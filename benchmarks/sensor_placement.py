"""SensorPlacement benchmark: MaskablePPO against greedy, QR and random layouts at the same K.

For each field and seed, on the env's cached layout-general Voronoi-CNN
(:func:`fields.pretrained.get_reconstructor`):

0. **precondition**: the network must beat gappy POD on random layouts (test block, the same
   layouts for both); if it does not, layouts scored by it say little, and the verdict says so;
1. **PPO**: MaskablePPO trains on ``deploygym/SensorPlacement*-v0`` (the Voronoi-CNN ids; reward: drop of the
   network's error on validation batches); its layout is the deterministic policy's on the
   whole validation block;
2. **greedy**: one sensor at a time, each step trying candidate cells scored by the same network
   on validation snapshots, with the same number of snapshot evaluations PPO's training used;
3. **QR**: QR pivoting on the training block's POD modes (PySensors), scored by the network and
   by its own estimator, gappy POD;
4. **random**: ``n_random`` uniformly random layouts, scored by the network and by gappy POD.

All layouts are chosen without test data and scored on the test block of a time-ordered split.

    python benchmarks/sensor_placement.py --scale smoke
    python benchmarks/sensor_placement.py            # default: 3 seeds
    python -m agents.train --algo maskable_ppo --env deploygym/SensorPlacement-v0   # the same agent
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from envs.sensors.baselines import greedy_placement, random_placement  # noqa: E402
from envs.sensors.env import SensorPlacementEnv  # noqa: E402
from fields.pretrained import get_reconstructor  # noqa: E402
from fields.voronoi_cnn import relative_l2  # noqa: E402
from models import stats  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

PPO = {"n_steps": 128, "batch_size": 128, "learning_rate": 3e-4, "gamma": 1.0,
       "ent_coef": 0.01, "n_epochs": 10, "policy_kwargs": {"net_arch": [128, 128]}}
METHODS = ("ppo", "greedy", "qr", "random")
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": [0], "n_envs": 2, "timesteps": 256, "n_random": 5, "batch": 4,
              "greedy_batch": 4, "fields": {"coads-sst": 5},
              "model": {"width": 4, "depth": 2, "kernel": 3, "epochs": 1, "steps_per_epoch": 2}},
    "default": {"seeds": [0, 1, 2], "n_envs": 4, "timesteps": 3072, "n_random": 30,
                "batch": 4, "greedy_batch": 16, "fields": {"cylinder": 8},
                # the fields benchmark's cylinder budget (the env's width-8 default cannot
                # beat gappy POD): up to 8000 updates, early stopping on validation
                "model": {"width": 16, "batch_size": 16, "epochs": 160, "steps_per_epoch": 50,
                          "patience": 15, "lr_patience": 4, "warmup_steps": 100,
                          "train_layouts": 128, "eval_layouts": 5, "max_eval": 32}},
    "paper": {"seeds": [0, 1, 2, 3, 4], "n_envs": 8, "timesteps": 100_000, "n_random": 100,
              "batch": 16, "greedy_batch": 32, "fields": {"cylinder": 8, "navy-uwnd": 10},
              "model": {}},
}


@torch.no_grad()
def cnn_error(env: SensorPlacementEnv, sensors: np.ndarray, split: str = "test") -> float:
    """Mean relative L2 of the network with layout ``sensors`` on a whole block."""
    pre = env.pre
    block = {"test": pre.test, "val": pre.val}[split]
    x = torch.from_numpy(block.values).to(pre.rec.device)
    pred = pre.rec.predict(x, pre.grid.layout(np.sort(sensors)))
    return relative_l2(pred, x, pre.rec.valid, pre.rec.weight).mean().item()


def gappy_error(env: SensorPlacementEnv, sensors: np.ndarray) -> float:
    """Gappy POD on the whole test block (rank and λ chosen on validation)."""
    env.reset(seed=0, options={"split": "test", "indices": np.arange(len(env.pre.test))})
    return env.gappy_pod_error(sensors)


def ppo_layout(model: MaskablePPO, env: SensorPlacementEnv) -> np.ndarray:
    """The deterministic policy's layout on the whole validation block."""
    obs, _ = env.reset(seed=0, options={"split": "val", "indices": np.arange(len(env.pre.val))})
    done, info = False, {}
    while not done:
        action, _ = model.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, done, _, info = env.step(int(action))
    return info["sensors"]


def run_field(dataset: str, k: int, scale: dict[str, Any], seeds: list[int], device: str,
              progress: bool, out_dir: Path) -> dict[str, Any]:
    pre = get_reconstructor(dataset, device=device, progress=progress, **scale["model"])
    env = SensorPlacementEnv(pretrained=pre, n_sensors=k, estimator="cnn")
    valid = pre.grid.valid_np
    rand = [random_placement(valid, k, np.random.default_rng([s, 7]))
            for s in range(scale["n_random"])]
    res: dict[str, Any] = {
        "k": k, "grid": list(pre.grid.shape), "test_snapshots": len(pre.test),
        "val_snapshots": len(pre.val),
        "mean_field": float(relative_l2(pre.rec.mean.expand(len(pre.test), -1, -1),
                                        torch.from_numpy(pre.test.values).to(pre.rec.device),
                                        pre.rec.valid, pre.rec.weight).mean()),
        "random": [cnn_error(env, s) for s in rand],
        "random_gappy_pod": [gappy_error(env, s) for s in rand],
        "qr": cnn_error(env, env.qr_layout()), "qr_gappy_pod": gappy_error(env, env.qr_layout()),
        "qr_layout": env.qr_layout().tolist(),
        "gappy_pod_rank": env.gappy_pod_choice().rank, "gappy_pod_lam": env.gappy_pod_choice().lam,
        "network": {k2: v for k2, v in pre.meta["config"].items()
                    if k2 in ("width", "depth", "kernel", "inputs", "target", "coarsen", "stride",
                              "sensors", "epochs", "steps_per_epoch", "lr", "lr_patience")},
        "network_best_epoch": pre.meta.get("best_epoch"), "network_updates": pre.meta.get("updates"),
        "ppo": [], "ppo_gappy_pod": [], "ppo_layouts": [], "greedy": [], "greedy_gappy_pod": [],
        "greedy_layouts": [], "train_seconds": [], "greedy_seconds": [], "evaluations": {}}
    res["network_beats_gappy_pod_on_random_layouts"] = bool(
        np.mean(res["random"]) < np.mean(res["random_gappy_pod"]))
    # PPO's budget in snapshot evaluations: one forward of `batch` snapshots per env step
    snapshot_evals = scale["timesteps"] * scale["batch"]
    greedy_evals = snapshot_evals // scale["greedy_batch"]
    res["evaluations"] = {"ppo_snapshot_evaluations": snapshot_evals,
                          "greedy_layout_evaluations": greedy_evals,
                          "greedy_batch": scale["greedy_batch"]}
    for seed in seeds:
        venv = DummyVecEnv([lambda: Monitor(SensorPlacementEnv(
            pretrained=pre, n_sensors=k, batch=scale["batch"], estimator="cnn"))]
                           * scale["n_envs"])
        venv.seed(seed)
        torch.manual_seed(seed)
        model = MaskablePPO("MlpPolicy", venv, seed=seed, device=device, verbose=0, **PPO)
        t0 = time.perf_counter()
        model.learn(scale["timesteps"], progress_bar=progress)
        res["train_seconds"].append(time.perf_counter() - t0)
        probe = SensorPlacementEnv(pretrained=pre, n_sensors=k, estimator="cnn",
                                   render_mode="rgb_array" if seed == seeds[0] else None)
        sensors = ppo_layout(model, probe)
        if seed == seeds[0]:
            import matplotlib.pyplot as plt

            plt.imsave(out_dir / f"sensor_placement_{dataset}.png", probe.render())
        res["ppo"].append(cnn_error(env, sensors))
        res["ppo_gappy_pod"].append(gappy_error(env, sensors))
        res["ppo_layouts"].append(sensors.tolist())
        rng = np.random.default_rng([seed, 13])
        gidx = np.sort(rng.choice(len(pre.val), size=min(scale["greedy_batch"], len(pre.val)),
                                  replace=False))
        xv = torch.from_numpy(pre.val.values[gidx]).to(pre.rec.device)

        @torch.no_grad()
        def score(layout: np.ndarray, xv: torch.Tensor = xv) -> float:
            pred = pre.rec.predict(xv, pre.grid.layout(np.sort(layout)))
            return relative_l2(pred, xv, pre.rec.valid, pre.rec.weight).mean().item()

        t0 = time.perf_counter()
        layout, _ = greedy_placement(score, valid, k, greedy_evals, rng)
        res["greedy_seconds"].append(time.perf_counter() - t0)
        res["greedy"].append(cnn_error(env, layout))
        res["greedy_gappy_pod"].append(gappy_error(env, layout))
        res["greedy_layouts"].append(layout.tolist())
        print(f"  {dataset} K={k} seed {seed}: PPO {res['ppo'][-1]:.4f}, greedy "
              f"{res['greedy'][-1]:.4f} (test rel L2, network)", flush=True)
    return res


def _ms(v: list[float] | float) -> tuple[float, float]:
    ci = stats.mean_ci(np.atleast_1d(v))
    return ci.mean, ci.std


def make_table(res: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for ds, r in res.items():
        base = {"dataset": ds, "sensors": r["k"], "mean_field_rel_l2": r["mean_field"]}
        for method in METHODS:
            for estimator, key in (("network", method), ("gappy_pod", f"{method}_gappy_pod")):
                m, s = _ms(r[key])
                rows.append(base | {"method": method, "estimator": estimator, "rel_l2": m,
                                    "std": s, "n": len(np.atleast_1d(r[key])),
                                    "ci95": stats.t_half_width(np.atleast_1d(r[key]),
                                                               undefined=0.0),
                                    "seeds": seeds if method in ("ppo", "greedy") else []})
    return rows


def summary(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ds, r in res.items():
        net = {m: _ms(r[m])[0] for m in METHODS}
        cell = dict(net) | {f"{m}_gappy_pod": _ms(r[f"{m}_gappy_pod"])[0] for m in METHODS}
        cell["ordering_ppo_le_greedy_le_qr_le_random"] = bool(
            net["ppo"] <= net["greedy"] <= net["qr"] <= net["random"])
        cell["network_beats_gappy_pod_on_random_layouts"] = r[
            "network_beats_gappy_pod_on_random_layouts"]
        cell["best_classical"] = min(cell["qr_gappy_pod"], cell["random_gappy_pod"])
        cell.update(rl_statistics(r))
        out[ds] = cell
    return out


def rl_statistics(r: dict[str, Any]) -> dict[str, Any]:
    """PPO's test error over its training seeds as an RL result (IQM with a stratified-
    bootstrap CI: seeds are the runs, the field the task), and one-sided tests of PPO having
    the lower error: paired by seed against greedy, Welch's against the random layouts."""
    return {"ppo_rl": stats.rl_aggregate(np.asarray(r["ppo"], dtype=float)[:, None]),
            "p_ppo_lt_greedy": stats.paired_p(r["ppo"], r["greedy"], "less"),
            "p_ppo_lt_random": stats.unpaired_p(r["ppo"], r["random"], "less")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="default")
    p.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--fields", nargs="+", default=None, help="subset of the scale's fields")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = SCALES[args.scale]
    seeds = args.seeds or scale["seeds"]
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = {}
    for ds, k in scale["fields"].items():
        if args.fields and ds not in args.fields:
            continue
        res[ds] = run_field(ds, k, scale, seeds, args.device, not args.no_progress, out_dir)
    table = make_table(res, seeds)
    stem = "sensor_placement" if args.scale == "default" else f"sensor_placement_{args.scale}"
    out = {**provenance(seeds[0]), "seeds": seeds, "scale": args.scale, "ppo": PPO,
           "budget": {k: v for k, v in scale.items() if k != "seeds"}, "table": table,
           "summary": summary(res),
           "paper": {"note": "no paper publishes this experiment; it is deploygym's own"},
           "results": res,
           "protocol": "layouts chosen on train (QR) / validation (PPO, greedy) data, scored "
                       "on the test block of a time-ordered split by the env's network and by "
                       "gappy POD; greedy gets PPO's number of snapshot evaluations",
           "timing_note": "2 shared CPU cores"}
    _plot(table, out_dir / f"{stem}.png")
    atomic_write_json(out, out_dir / f"{stem}.json")
    print(f"\n{'dataset':<10} {'K':>3} {'method':<8} {'estimator':<10} {'test rel L2':>18}")
    for r in table:
        print(f"{r['dataset']:<10} {r['sensors']:>3} {r['method']:<8} {r['estimator']:<10} "
              f"{r['rel_l2']:>9.4f} ± {r['std']:.4f}")
    for ds, s in out["summary"].items():
        print(f"{ds}: network beats gappy POD on random layouts: "
              f"{s['network_beats_gappy_pod_on_random_layouts']}; PPO ≤ greedy ≤ QR ≤ random: "
              f"{s['ordering_ppo_le_greedy_le_qr_le_random']}")
    print(f"\nwrote {out_dir / (stem + '.json')}")
    return out


def _plot(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6),
                             constrained_layout=True, squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        rows = [r for r in table if r["dataset"] == ds]
        x = np.arange(len(METHODS))
        for off, est in ((-0.2, "network"), (0.2, "gappy_pod")):
            sel = [next(r for r in rows if r["method"] == m and r["estimator"] == est)
                   for m in METHODS]
            ax.bar(x + off, [r["rel_l2"] for r in sel], 0.4, yerr=[r["std"] for r in sel],
                   label=f"scored by {est}")
        ax.axhline(rows[0]["mean_field_rel_l2"], color="0.5", ls="--", label="mean field")
        ax.set_xticks(x, METHODS)
        ax.set_title(f"{ds}, K={rows[0]['sensors']}")
        ax.set_ylabel("test relative L2")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
