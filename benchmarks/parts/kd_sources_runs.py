"""The student trainings of ``benchmarks/kd_sources.py``: one distillation per (source,
recipe, steps, seed) and the DAFL baseline, each in its own run folder.

A finished run is reused after checking its configuration (a folder holding another one is
an error naming it); a killed one resumes from its checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.parts.kd_sources_pools import Pools
from distill.datafree import DAFLConfig, train_dafl
from distill.loop import evaluate
from distill.train import DistillConfig, build_student, distill
from models.io import atomic_write_json, provenance

RECIPES: dict[str, dict[str, Any]] = {
    "plain": {"augment": "none", "mixup": 0.0, "share": 0.0},
    "aug": {"augment": "heavy", "mixup": 1.0, "share": 0.0},
    "aug_nomix": {"augment": "heavy", "mixup": 0.0, "share": 0.0},
    "attack25": {"augment": "heavy", "mixup": 1.0, "share": 0.25},
    "attack50": {"augment": "heavy", "mixup": 1.0, "share": 0.5},
    "attack25_nomix": {"augment": "heavy", "mixup": 0.0, "share": 0.25},
    "attack50_nomix": {"augment": "heavy", "mixup": 0.0, "share": 0.5},
}


def run_dir(root: Path, kind: str, source: str, recipe: str, steps: int, seed: int) -> Path:
    return root / f"{kind}-{source}-{recipe}-{steps}-s{seed}"


def run_kd(sc: dict, pools: Pools, source: str, recipe: str, steps: int, seed: int,
           root: Path, kind: str) -> dict[str, Any]:
    """One student distilled from ``source``'s pool with ``recipe`` (reused when finished)."""
    r = RECIPES[recipe]
    d = run_dir(root, kind, source, recipe, steps, seed)
    cfg = DistillConfig(dataset="fashion-mnist", student="cnn", student_width=sc["student_width"],
                        source=source, pool=1, balanced=source != "target", steps=steps,
                        batch_size=sc["batch"], seed=seed, optimizer="adam", lr=0.01,
                        temperature=4.0, eval_subset=sc["eval_subset"],
                        eval_every=max(steps // 5, 1), augment=r["augment"], mixup=r["mixup"],
                        attack=r["share"] > 0, boundary_share=r["share"] or 0.25,
                        attack_iter=sc["attack_iter"], progress=False, run_dir=str(d))
    prev = finished_run(d, cfg.result_key())
    if prev is not None:
        return prev
    pool = pools.get(source, r["share"])
    cfg.pool = len(pool)
    cfg.resume = (d / "last.pt").exists()  # a killed run continues (its config is checked)
    return distill(cfg, data=pools.data, teacher=pools.teacher, pool=pool)["metrics"]


def run_dafl(sc: dict, teacher, data, steps: int, seed: int, root: Path) -> dict[str, Any]:
    """DAFL at the same number of student updates, the same student and evaluation."""
    d = run_dir(root, "final", "dafl", "generator", steps, seed)
    cfg = DAFLConfig(steps=steps, batch_size=sc["batch"], lr_student=0.01, width=sc["dafl_width"])
    key = {"dafl": cfg.__dict__, "seed": seed, "student_width": sc["student_width"],
           "eval_subset": sc["eval_subset"]}
    prev = finished_run(d, key)
    if prev is not None:
        return prev
    scfg = DistillConfig(student="cnn", student_width=sc["student_width"], seed=seed)
    student = build_student(scfg, data)
    rep = train_dafl(teacher, student, cfg, seed=seed, progress=False)
    val = data.val.subset(sc["eval_subset"]) if sc["eval_subset"] else data.val
    test = data.test.subset(sc["eval_subset"]) if sc["eval_subset"] else data.test
    ev_val, ev = evaluate(student, val, teacher), evaluate(student, test, teacher)
    metrics = {"test_acc": ev["acc"], "test_agreement": ev["agreement"], "val_acc": ev_val["acc"],
               "compute_s": rep["compute_s"], "final_terms": rep["final_terms"]}
    atomic_write_json({"config": key, "metrics": metrics, **provenance(seed)}, d / "metrics.json")
    return metrics


def finished_run(d: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        rec = json.loads((d / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    saved = rec.get("config", {})
    same = all(json.dumps(saved.get(k), default=str) == json.dumps(v, default=str)
               for k, v in key.items() if k != "pool")
    if not same:
        raise ValueError(f"{d} holds a finished run of another configuration; delete it or use "
                         f"another --runs folder")
    return rec["metrics"]
