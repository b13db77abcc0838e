"""SensorPlacement benchmark: RL (MaskablePPO) vs random vs QR-pivoting layouts at the same K.

For each field (cylinder wake, K = 8; COADS monthly SST, K = 5) and each seed, MaskablePPO
trains on ``deploygym/SensorPlacement*-v0`` (reward: drop of the cached Voronoi-CNN's relative
L2 error on batches of *validation* snapshots). Every method then yields one layout without
seeing test data:

* **RL**: the deterministic policy run once on the whole validation block;
* **QR**: QR pivoting on the POD modes of the training block (:mod:`envs.sensors.baselines`);
* **random**: ``n_random`` uniformly random ocean/fluid layouts.

Each layout is scored by the same network on the **test** block (time-ordered split), next to
the training-mean-field error (no sensors).

    python benchmarks/sensor_placement.py --scale smoke
    python benchmarks/sensor_placement.py            # default: 3 seeds
    python benchmarks/sensor_placement.py --scale paper

Equivalent agent training with the suite's CLI::

    python -m agents.train --algo maskable_ppo --env deploygym/SensorPlacement-v0
"""

from __future__ import annotations

import argparse
import statistics
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

from envs.sensors.baselines import random_placement  # noqa: E402
from envs.sensors.env import SensorPlacementEnv  # noqa: E402
from fields.pretrained import get_reconstructor  # noqa: E402
from fields.voronoi_cnn import relative_l2  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

PPO = {"n_steps": 128, "batch_size": 128, "learning_rate": 3e-4, "gamma": 1.0,
       "ent_coef": 0.01, "n_epochs": 10, "policy_kwargs": {"net_arch": [128, 128]}}
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"seeds": [0], "n_envs": 2, "timesteps": 256, "n_random": 5, "batch": 4,
              "fields": {"cylinder": 8, "coads-sst": 5}},
    "default": {"seeds": [0, 1, 2], "n_envs": 4, "timesteps": 3072, "n_random": 30,
                "batch": 4, "fields": {"cylinder": 8, "coads-sst": 5}},
    "paper": {"seeds": [0, 1, 2, 3, 4], "n_envs": 8, "timesteps": 100_000, "n_random": 100,
              "batch": 16, "fields": {"cylinder": 8, "coads-sst": 5, "navy-uwnd": 5}},
}


@torch.no_grad()
def test_error(pre: Any, sensors: np.ndarray) -> float:
    """Mean relative L2 error of the network with layout ``sensors`` on the test block."""
    x = torch.from_numpy(pre.test.values).to(pre.rec.device)
    pred = pre.rec.predict(x, pre.grid.layout(np.sort(sensors)))
    return relative_l2(pred, x, pre.rec.valid).mean().item()


def rl_layout(model: MaskablePPO, env: SensorPlacementEnv) -> tuple[np.ndarray, float]:
    """The deterministic policy's layout on the whole validation block, and its val error."""
    obs, _ = env.reset(seed=0, options={"split": "val",
                                        "indices": np.arange(len(env.pre.val))})
    done, info = False, {}
    while not done:
        action, _ = model.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, done, _, info = env.step(int(action))
    return info["sensors"], info["rel_l2"]


def run_field(dataset: str, k: int, scale: dict[str, Any], seeds: list[int], device: str,
              progress: bool, out_dir: Path) -> dict[str, Any]:
    pre = get_reconstructor(dataset, device=device, progress=progress)
    valid = pre.grid.valid_np
    e_mean = float(relative_l2(pre.rec.mean.expand(len(pre.test), -1, -1),
                               torch.from_numpy(pre.test.values).to(pre.rec.device),
                               pre.rec.valid).mean())
    probe = SensorPlacementEnv(pretrained=pre, n_sensors=k)
    qr = probe.qr_layout()
    rand = [test_error(pre, random_placement(valid, k, np.random.default_rng([s, 7])))
            for s in range(scale["n_random"])]
    rl, rl_val, seconds, steps_per_s, layouts = [], [], [], [], []
    for seed in seeds:
        venv = DummyVecEnv([lambda: Monitor(SensorPlacementEnv(
            pretrained=pre, n_sensors=k, batch=scale["batch"]))] * scale["n_envs"])
        venv.seed(seed)
        torch.manual_seed(seed)
        model = MaskablePPO("MlpPolicy", venv, seed=seed, device=device, verbose=0, **PPO)
        t0 = time.perf_counter()
        model.learn(scale["timesteps"], progress_bar=progress)
        seconds.append(time.perf_counter() - t0)
        steps_per_s.append(scale["timesteps"] / seconds[-1])
        env = SensorPlacementEnv(pretrained=pre, n_sensors=k,
                                 render_mode="rgb_array" if seed == seeds[0] else None)
        sensors, e_val = rl_layout(model, env)
        if seed == seeds[0]:
            import matplotlib.pyplot as plt

            plt.imsave(out_dir / f"sensor_placement_{dataset}.png", env.render())
        rl.append(test_error(pre, sensors))
        rl_val.append(e_val)
        layouts.append(sensors.tolist())
        print(f"  {dataset} K={k} seed {seed}: RL test rel L2 {rl[-1]:.4f} (val {e_val:.4f}), "
              f"{steps_per_s[-1]:.1f} env steps/s", flush=True)
    e_qr = test_error(pre, qr)
    return {"k": k, "grid": list(pre.grid.shape), "mean_field": e_mean, "qr": e_qr,
            "qr_layout": qr.tolist(), "random": rand, "rl": rl, "rl_val": rl_val,
            "rl_layouts": layouts, "train_seconds": seconds, "env_steps_per_s": steps_per_s,
            "test_snapshots": len(pre.test), "val_snapshots": len(pre.val),
            "network": {k2: v for k2, v in pre.meta["config"].items()
                        if k2 in ("width", "depth", "kernel", "inputs", "target", "coarsen",
                                  "stride", "sensors", "epochs", "lr")},
            "network_best_epoch": pre.meta.get("best_epoch")}


def make_table(res: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for ds, r in res.items():
        rm, rs = statistics.mean(r["rl"]), (statistics.stdev(r["rl"]) if len(r["rl"]) > 1 else 0.)
        qm, qs = statistics.mean(r["random"]), statistics.stdev(r["random"])
        base = {"dataset": ds, "sensors": r["k"], "mean_field_rel_l2": r["mean_field"]}
        rows += [
            base | {"method": "rl_maskable_ppo", "rel_l2": rm, "std": rs, "seeds": seeds,
                    "beats_random_fraction": float(np.mean([[e < x for x in r["random"]]
                                                            for e in r["rl"]]))},
            base | {"method": "qr_pod", "rel_l2": r["qr"], "std": 0.0, "seeds": [],
                    "beats_random_fraction": float(np.mean([r["qr"] < x for x in r["random"]]))},
            base | {"method": "random", "rel_l2": qm, "std": qs,
                    "seeds": f"layouts rng([i, 7]), i < {len(r['random'])}",
                    "beats_random_fraction": None}]
    return rows


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
           "paper": {"note": "no paper publishes this experiment; it is deploygym's own"},
           "results": res,
           "protocol": "layouts chosen on train (QR) / validation (RL) data, scored on the "
                       "test block of a time-ordered split by the same cached Voronoi-CNN",
           "timing_note": "2 shared CPU cores under contention"}
    _plot(table, out_dir / f"{stem}.png")
    atomic_write_json(out, out_dir / f"{stem}.json")
    print(f"\n{'dataset':<10} {'K':>3} {'method':<16} {'test rel L2':>18} {'mean field':>10} "
          f"{'beats random':>12}")
    for r in table:
        b = "" if r["beats_random_fraction"] is None else f"{r['beats_random_fraction']:.2f}"
        print(f"{r['dataset']:<10} {r['sensors']:>3} {r['method']:<16} {r['rel_l2']:>9.4f} ± "
              f"{r['std']:.4f} {r['mean_field_rel_l2']:>10.4f} {b:>12}")
    print(f"\nwrote {out_dir / (stem + '.json')}")
    return out


def _plot(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.5),
                             constrained_layout=True, squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        rows = [r for r in table if r["dataset"] == ds]
        ax.bar([r["method"] for r in rows], [r["rel_l2"] for r in rows],
               yerr=[r["std"] for r in rows], color=["C0", "C1", "C2"])
        ax.axhline(rows[0]["mean_field_rel_l2"], color="0.5", ls="--", label="mean field")
        ax.set_title(f"{ds}, K={rows[0]['sensors']}")
        ax.set_ylabel("test relative L2")
        lo = min(r["rel_l2"] - r["std"] for r in rows)
        ax.set_ylim(max(0.0, lo * 0.95), None)
        ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
