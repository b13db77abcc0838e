"""The runs of ``benchmarks/fields_regimes.py``: one JSON file per (field, layout protocol, K,
method, seed), written atomically, so a killed benchmark restarts where it stopped.

A job is a dict ``{field, layout, k, method, seed}`` (``k = 0`` for the one layout-general
network that mixes every K). Methods: ``gappy`` (gappy POD on the protocol's layouts and
QR-pivoted layouts scored by gappy POD, rank and λ chosen on validation per condition),
``shallow`` (fixed layouts only; one decoder per condition, and its ridge-regression linear
path alone as ``ridge_linear``: the control that separates nonlinearity from a learned linear
map) and ``cnn-<inputs>`` (one
Voronoi-CNN per cell trained on every condition at once, see :mod:`fields.regimes.cnn`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fields.classical.placement import qr_placement
from fields.classical.pod import POD, cell_weights
from fields.field_data import FieldData
from fields.regimes.cnn import cnn_predictor, fit_cnn
from fields.regimes.evaluate import gappy_predictor, measured_sets, score, tune_gappy
from fields.regimes.noise import Condition, field_std
from fields.regimes.shallow import ShallowConfig, fit_shallow
from fields.train import FieldTrainConfig, prepare
from fields.voronoi import SensorGrid
from models.io import atomic_write_json

FIELD_DATA: dict[str, dict[str, Any]] = {
    "kolmogorov": {"dataset": "kolmogorov", "gap": 100},  # 50 time units: correlation < 0.3
    "cylinder": {"dataset": "cylinder", "stride": 3, "coarsen": 4, "gap": 10},
    "navy-uwnd": {"dataset": "navy-uwnd", "coarsen": 3, "climatology": 12, "gap": 2},
}


@dataclass
class Prepared:
    """A field's blocks and everything fitted on its training block."""

    data: FieldData
    tr: FieldData
    va: np.ndarray  # evenly spaced validation snapshots
    te: np.ndarray  # evenly spaced test snapshots
    grid: SensorGrid
    pod: POD
    sigma: float
    weight: np.ndarray | None


def _even(values: np.ndarray, n: int) -> np.ndarray:
    return values if len(values) <= n else values[np.linspace(0, len(values) - 1, n).round()
                                                  .astype(int)]


@lru_cache(maxsize=4)
def prepared(field: str, n_val: int, n_test: int) -> Prepared:
    """Load and split ``field`` once per process."""
    data, tr, va, te = prepare(FieldTrainConfig(progress=False, **FIELD_DATA[field]))
    grid = SensorGrid.from_field(data)
    weight = cell_weights(data) if data.spherical else None
    return Prepared(data, tr, _even(va.values, n_val), _even(te.values, n_test), grid,
                    POD(tr, grid.valid_np), field_std(tr.values, grid.valid_np), weight)


def layouts(p: Prepared, job: dict[str, Any], spec: dict[str, Any]
            ) -> tuple[list[np.ndarray], dict[int, list[np.ndarray]], dict[int, list[np.ndarray]]]:
    """Training pool, validation and test layouts per K of the job's protocol and seed."""
    seed, ks = job["seed"], spec["ks"]
    if job["layout"] == "fixed":
        fixed = {k: p.grid.random_layout(k, np.random.default_rng([seed, 3, k])).sensors
                 for k in ks}
        pool = [fixed[job["k"]]] if job["k"] else list(fixed.values())
        return pool, {k: [v] for k, v in fixed.items()}, {k: [v] for k, v in fixed.items()}
    rng = np.random.default_rng([seed, 0])
    pool = [p.grid.random_layout(k, rng).sensors for k in ks for _ in range(spec["pool"])]
    seen = {tuple(s) for s in pool}
    val = {k: [p.grid.random_layout(k, np.random.default_rng([seed, 1, k, i])).sensors
               for i in range(spec["val_layouts"])] for k in ks}
    test = {}
    for k in ks:
        rng_t = np.random.default_rng([seed, 2, k])
        test[k] = []
        while len(test[k]) < spec["test_layouts"]:
            s = p.grid.random_layout(k, rng_t).sensors
            if tuple(s) not in seen:
                test[k].append(s)
    return pool, val, test


def run_gappy(p: Prepared, job: dict[str, Any], spec: dict[str, Any],
              conds: list[Condition]) -> dict[str, Any]:
    """Gappy POD on the protocol's layouts and on the QR layout, tuned per condition."""
    k, seed = job["k"], job["seed"]
    _, val, test = layouts(p, job, spec)
    qr = qr_placement(p.pod, p.grid.valid_np, k)
    out: dict[str, Any] = {"test": {}, "choice": {}}
    for name, v_lays, t_lays in (("gappy_pod", val[k], test[k]), ("qr_gappy_pod", [qr], [qr])):
        vsets = measured_sets(p.va, v_lays, conds, p.sigma, seed, "val")
        tsets = measured_sets(p.te, t_lays, conds, p.sigma, seed, "test")
        for c in conds:
            ch = tune_gappy(p.pod, vsets[c.key], p.grid.valid_np, p.weight)
            out["test"].setdefault(name, {})[c.key] = score(
                gappy_predictor(p.pod, ch.rank, ch.lam), tsets[c.key], p.grid.valid_np, p.weight)
            out["choice"].setdefault(name, {})[c.key] = {"rank": ch.rank, "lam": ch.lam,
                                                         "val_rel_l2": ch.val_rel_l2}
    out["qr_layout"] = qr.tolist()
    return out


def run_shallow(p: Prepared, job: dict[str, Any], spec: dict[str, Any],
                conds: list[Condition]) -> dict[str, Any]:
    """One shallow decoder per condition on the fixed layout of K."""
    k, seed = job["k"], job["seed"]
    _, val, test = layouts(p, job, spec)
    vsets = measured_sets(p.va, val[k], conds, p.sigma, seed, "val")
    tsets = measured_sets(p.te, test[k], conds, p.sigma, seed, "test")
    out: dict[str, Any] = {"test": {"shallow_decoder": {}, "ridge_linear": {}}, "training": {}}
    cfg = ShallowConfig(seed=seed, **spec["shallow"])
    for c in conds:
        rec, info = fit_shallow(test[k][0], p.tr.values, vsets[c.key], p.grid.valid_np, c, cfg,
                                p.weight)
        out["test"]["shallow_decoder"][c.key] = score(rec.predict, tsets[c.key],
                                                      p.grid.valid_np, p.weight)
        rec.net.load_state_dict(rec.ridge_state)  # its epoch-0 linear path alone
        out["test"]["ridge_linear"][c.key] = score(rec.predict, tsets[c.key], p.grid.valid_np,
                                                   p.weight)
        out["training"][c.key] = info
    return out


def run_cnn(p: Prepared, job: dict[str, Any], spec: dict[str, Any],
            conds: list[Condition]) -> dict[str, Any]:
    """One Voronoi-CNN for the job's cell (or all K, layout-general) under every condition."""
    seed, inputs = job["seed"], job["method"].split("-", 1)[1]
    pool, val, test = layouts(p, job, spec)
    ks = [job["k"]] if job["k"] else list(spec["ks"])
    vsets = [s for k in ks
             for sets in measured_sets(_even(p.va, spec["cnn_val"]), val[k], conds, p.sigma, seed,
                                       "val").values() for s in sets]
    cfg = FieldTrainConfig(dataset=job["field"], inputs=inputs, seed=seed, target="anomaly",
                           progress=False, threads=1, **spec["net"])
    rec, info = fit_cnn(cfg, p.grid, p.tr, pool, vsets, conds, p.sigma, p.data.spherical)
    predict = cnn_predictor(rec)
    out: dict[str, Any] = {"test": {}, "training": info}
    for k in ks:
        tsets = measured_sets(p.te, test[k], conds, p.sigma, seed, "test")
        out["test"][str(k)] = {f"cnn_{inputs}": {c.key: score(predict, tsets[c.key],
                                                              p.grid.valid_np, p.weight)
                                                 for c in conds}}
    return out


def run_path(root: Path, job: dict[str, Any]) -> Path:
    k = f"k{job['k']}" if job["k"] else "kall"
    return root / job["field"] / f"{job['layout']}-{k}-{job['method']}-s{job['seed']}.json"


def run_job(root: Path, job: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` unless its file holds a finished run of the same spec; return the record."""
    path = run_path(root, job)
    ident = {"job": job, "spec": json.loads(json.dumps(spec))}
    if path.exists():
        rec = json.loads(path.read_text())
        if rec.get("identity") == ident:
            return rec
    conds = [Condition.parse(c) for c in spec["conditions"]]
    p = prepared(job["field"], spec["n_val"], spec["n_test"])
    t0 = time.perf_counter()
    method = job["method"]
    if method == "gappy":
        res = run_gappy(p, job, spec, conds)
    elif method == "shallow":
        res = run_shallow(p, job, spec, conds)
    elif method.startswith("cnn-"):
        res = run_cnn(p, job, spec, conds)
    else:
        raise ValueError(f"unknown method {method!r}")
    if not method.startswith("cnn-"):  # gappy / shallow: one K per job
        res["test"] = {str(job["k"]): res["test"]}
    rec = {"identity": ident, **res, "wall_s": time.perf_counter() - t0,
           "sigma": p.sigma, "n_snapshots": {"train": len(p.tr), "val": len(p.va),
                                             "test": len(p.te)}}
    atomic_write_json(rec, path)
    return rec


def spec_for(scale: dict[str, Any], field: str) -> dict[str, Any]:
    """The job spec of ``field`` at ``scale`` (what a run file's identity records)."""
    net = dict(scale["net"]) | scale.get("field_net", {}).get(field, {})
    return {"ks": list(scale["ks"]), "conditions": list(scale["conditions"]),
            "n_val": scale["n_val"], "n_test": scale["n_test"], "cnn_val": scale["cnn_val"],
            "pool": scale["pool"], "val_layouts": scale["val_layouts"],
            "test_layouts": scale["test_layouts"], "net": net,
            "shallow": dict(scale["shallow"]), "data": FIELD_DATA[field]}
