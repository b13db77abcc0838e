"""What ``python -m agents.reproduce NAME`` runs for each paper, and what the paper published.

Every entry names a benchmark script that follows the benchmark contract (``main(argv)``,
``--scale``, ``--results-dir``, a JSON with ``table``/``paper``/``command``/``seeds``/
``versions``), the paper and its claim, the published numbers (from DESIGN.md) and how to
put our rows next to them. ``smoke_args`` trims the script's own smoke budget further so that
every report can be produced by the test suite on 2 cores (the report says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Reproduction:
    name: str
    script: str  # benchmarks/<script>.py
    paper: str
    claim: str
    published: dict[str, Any]  # the paper's numbers as DESIGN.md gives them ({} if none)
    primary: str | None = None  # column of the table plotted in the report
    error: str | None = None  # its spread column (std), if any
    smoke_args: tuple[str, ...] = ()
    compare: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    verdict: Callable[[dict[str, Any]], str] | None = None
    notes: str = ""
    runs_flag: str = "--runs"  # the script's flag for its resumable per-run folders
    extra: dict[str, Any] = field(default_factory=dict)
    result_files: dict[str, str] = field(default_factory=dict)  # per scale, if not the default

    @property
    def path(self) -> Path:
        return ROOT / "benchmarks" / f"{self.script}.py"

    def result_name(self, scale: str) -> str:
        if scale in self.result_files:
            return self.result_files[scale]
        return f"{self.script}.json" if scale == "default" else f"{self.script}_{scale}.json"


def _bn_verdict(rec: dict[str, Any]) -> str:
    head = rec.get("headline")
    if not isinstance(head, dict) or head.get("diff_mean") is None:
        return "no paired test in the result file"
    ladder = ", ".join(f"{e} epochs {100 * c['diff_mean']:+.2f}"
                       for e, c in rec.get("ladder", {}).items() if c.get("diff_mean") is not None)
    return (f"{head['verdict']} (revisited − standard, one-sided paired t-test; paper: p ≤ 0.05, "
            f"15 seeds, full training schedules). By training budget, in points: {ladder}.")


# Our headline rows (each source with its validation-selected recipe) against P2's numbers.
KD_PAPER_KEY = {"target": "target", "photos": "ood_real", "opengl": "opengl", "leaves": "leaves",
                "noise": "noise"}


def _kd_compare(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Our student accuracy next to P2's, both also relative to distilling from the target data."""
    pub = rec.get("paper", {}).get("student_acc") or KD_PUBLISHED["student_acc"]
    rows = [r for r in rec.get("table", []) if isinstance(r, dict)]
    target = next((r.get("test_acc_mean") for r in rows if r.get("source") == "target"), None)
    out = []
    for r in rows:
        key = KD_PAPER_KEY.get(r.get("source"))
        if key is None or key not in pub:
            continue
        ours = r.get("test_acc_mean")
        out.append({"transfer set": f"{r['source']} ({r['recipe']})",
                    "ours: student acc (%)": None if ours is None else 100 * ours,
                    "ours: / target-data student": (ours / target) if ours and target else None,
                    "paper: student acc (%)": pub[key],
                    "paper: / original-data student": pub[key] / pub["target"]})
    return out


def _ptq_compare(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Our accuracy drop per (arch, mode) next to P1's range for that kind of pair."""
    ref = {"detrimental": "10–65 (ResNet-18: 24.39)", "robust": "< 2 (ResNet-18: 0.22)"}
    out = []
    for r in rec.get("table", []):
        mode = str(r.get("mode", ""))
        if mode in ref and isinstance(r.get("drop"), int | float):
            out.append({"arch": r.get("arch"), "pair": mode, "seeds": r.get("seeds"),
                        "ours: FP acc": r.get("fp_acc"), "ours: DPTQ acc": r.get("dptq_acc"),
                        "ours: drop (points)": r["drop"], "ours: mean bits": r.get("mean_bits"),
                        "paper: drop (points)": ref[mode]})
    return out


KD_PUBLISHED = {"setting": "CIFAR-10, ResNet-50 teacher → ResNet-18 student (P2, CVPR 2025)",
                "student_acc": {"target": 95.98, "ood_real": 94.69, "opengl": 94.02,
                                "leaves": 92.08, "noise": 69.24,
                                "opengl_without_aug_mixup": 31.84},
                "opengl_relative_entropy": 0.94,
                "p4_generator_baselines_cifar10_resnet34_to_18": {
                    "teacher": 95.70, "DAFL": 92.22, "ZSKT": 93.32, "DeepInversion": 93.26,
                    "DFQ": 94.61, "CMI": 94.84, "Fast-10": 94.05}}
PTQ_PUBLISHED = {"detrimental_drop_points": "10–65", "robust_drop_points_max": "< 2",
                 "resnet18_example": {"detrimental_drop_points": 24.39,
                                      "robust_drop_points": 0.22}}

REGISTRY: dict[str, Reproduction] = {r.name: r for r in (
    Reproduction(
        "bn-init", "bn_init_budget",
        "P5 — Revisiting batch-norm initialization (arXiv:2110.13989)",
        "BN scales initialised to c_γ = 0.1 (trained at lr/100, no weight decay on BN "
        "parameters and biases, online input BN) beat γ₀ = 1 over 15 paired seeds "
        "(one-sided paired t-test, p ≤ 0.05).",
        {"seeds": 15, "test": "one-sided paired t-test", "alpha": 0.05,
         "numbers": "the paper reports CIFAR/ImageNet gains, not Fashion-MNIST numbers"},
        primary="test_acc_mean", error="test_acc_std", verdict=_bn_verdict,
        notes="Our rows: ResNet-8 (width 8) on Fashion-MNIST at 3, 10 and 30 epochs, and the "
              "leave-one-out ablation at 10 epochs (benchmarks/bn_init_budget.py)."),
    Reproduction(
        "ptq-pairs", "ptq_pairs",
        "P1 — Catastrophic failure under dynamic post-training quantization (arXiv:2510.02457)",
        "A detrimental network–policy pair keeps full-precision accuracy but loses 10–65 "
        "points under its policy's per-input bit-widths; a robust pair loses under 2 points "
        "(ResNet-18: 24.39 vs 0.22).", PTQ_PUBLISHED, primary="drop", error="drop_std",
        compare=_ptq_compare, runs_flag="--runs-dir",
        result_files={"default": "ptq_pairs_hard.json", "paper": "ptq_pairs_hard_paper.json"},
        # smoke: the easy protocol's robust pair on a cheap network (the hard protocol's five
        # searches and matrices take ~10 min even at its smoke scale)
        smoke_args=("--protocol", "easy", "--modes", "robust", "--model-kw", "width:8",
                    "epochs:1")),
    Reproduction(
        "kd-sources", "kd_sources",
        "P2 — What makes a good dataset for knowledge distillation (arXiv:2411.12817) and "
        "P4 — data-free KD with OpenGL shader images (arXiv:2310.13782)",
        "Surrogate transfer sets rank original > real OOD > OpenGL > dead leaves ≫ noise; "
        "OpenGL images need augmentation and mixup (94.02 → 31.84 without).",
        KD_PUBLISHED, primary="test_acc_mean", error="test_acc_std", compare=_kd_compare,
        smoke_args=("--teacher-kw", "width:8", "epochs:1")),  # cheap teacher
    Reproduction(
        "kd-policy", "kd_source_policy", "DistillSource agent (deploygym, on P2/P4)",
        "An RL agent choosing the next transfer set distils a better student under the same "
        "image budget than any fixed source or a uniform mixture.", {},
        # cheap teacher; no held-out teacher (a second training) at smoke scale
        smoke_args=("--settings", "target", "--env-kwargs", "width:8", "epochs:1",
                    "--heldout-teacher"),
        notes="No paper publishes this experiment; it is deploygym's own."),
    Reproduction(
        "fields", "fields",
        "P3 — Improved sparse field reconstruction (arXiv:2408.12531) on Voronoi-CNN "
        "(arXiv:2101.00554)",
        "Distance-transform input, [−1, 1] scaling and a separate land-mask channel lower the "
        "relative L2 error, most on cyclical data (cylinder wake, SST).",
        {"numbers": "qualitative in the abstract; per-dataset tables not available offline"},
        primary="improved_over_faithful", smoke_args=("--sets", "coads-sst")),
    Reproduction(
        "sensor-placement", "sensor_placement", "SensorPlacement agent (deploygym, on P3)",
        "A grid-seeing PPO policy places K sensors whose gappy-POD reconstruction beats random "
        "and QR layouts (p < 0.05) and is within 5% of the best non-learned optimiser.", {},
        primary="rel_l2", error="ci95",
        notes="No paper publishes this experiment; it is deploygym's own."),
)}


def get(name: str) -> Reproduction:
    if name not in REGISTRY:
        raise KeyError(f"unknown reproduction {name!r}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[name]
