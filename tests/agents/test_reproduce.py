"""agents.reproduce: every registered paper builds a complete report at smoke scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.reproduce.registry import REGISTRY, get
from agents.reproduce.report import markdown_table, write_report
from agents.reproduce.run import _argv_pairs, main, scale_seeds

ROOT = Path(__file__).resolve().parents[2]


def _check_report(folder: Path, name: str, scale: str) -> dict:
    entry = get(name)
    md = (folder / "report.md").read_text()
    for heading in ("# Reproduction", "**Claim.**", "## Our results",
                    "## The paper's published numbers", "## Figures", "## Commands",
                    "## Versions and machine"):
        assert heading in md, heading
    assert entry.paper in md
    raw = folder / "results" / entry.result_name(scale)
    if not raw.exists():  # a script that names its file without the scale
        raw = max((folder / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
    rec = json.loads(raw.read_text())
    for key in ("table", "command", "seeds", "versions"):
        assert key in rec, f"{raw} lacks {key!r} (benchmark contract)"
    assert rec["table"] and "torch" in rec["versions"]
    pngs = list((folder / "figures").glob("*.png"))
    assert pngs and all(f"figures/{p.name}" in md for p in pngs)
    assert entry.script in (folder / "commands.sh").read_text()
    assert "torch" in json.loads((folder / "versions.json").read_text())["versions"]
    return rec


# Real smoke runs: under contention (load 13-16 on 2 cores) they took 2.5-10 min each, and the
# ones that need the Fashion-MNIST teacher train it first in the session's fresh cache.
@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_smoke_report_is_complete(name, tmp_path, request):
    entry = get(name)
    if not entry.path.exists():  # visible as xfail until the benchmark script lands
        request.applymarker(pytest.mark.xfail(raises=FileNotFoundError, strict=True,
                                              reason=f"benchmarks/{entry.script}.py not in "
                                                     f"this checkout"))
    folder = main([name, "--scale", "smoke", "--out", str(tmp_path / name), "--runs-root",
                   str(tmp_path / "runs"), "--quiet"])
    rec = _check_report(folder, name, "smoke")
    assert rec.get("scale", "smoke") == "smoke"


def test_report_from_committed_bn_init_result_puts_paper_beside_ours(tmp_path):
    """The default-scale report of P5 from the committed result file, without re-running."""
    rec = json.loads((ROOT / "benchmarks" / "results" / "bn_init_budget.json").read_text())
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bn_init_budget.json").write_text(json.dumps(rec))
    write_report(tmp_path, get("bn-init"), rec, "default", "local", ["python x"], 1.0)
    md = (tmp_path / "report.md").read_text()
    assert "reproduced" in md or "incomplete" in md
    assert "one-sided paired t-test" in md and "| revisited |" in md and "30 epochs" in md
    assert (tmp_path / "figures" / "table.png").exists()


def test_kd_sources_side_by_side_maps_sources_to_published_numbers():
    rec = {"table": [{"source": "target", "recipe": "plain", "test_acc_mean": 0.80},
                     {"source": "opengl", "recipe": "attack25", "test_acc_mean": 0.60},
                     {"source": "fractals", "recipe": "aug", "test_acc_mean": 0.5}]}
    rows = get("kd-sources").compare(rec)
    by = {r["transfer set"]: r for r in rows}
    assert set(by) == {"target (plain)", "opengl (attack25)"}  # fractals: no published number
    assert by["opengl (attack25)"]["paper: student acc (%)"] == 94.02
    assert abs(by["opengl (attack25)"]["ours: / target-data student"] - 0.75) < 1e-12
    assert "| a | b |" in markdown_table([{"a": 1, "b": None}])


def test_registry_reads_seeds_from_the_script_and_rejects_unknown_names():
    assert scale_seeds(get("bn-init"), "paper") == list(range(15))
    assert _argv_pairs(("--width", "8", "--x", "1", "2", "--flag")) == {
        "--width": "8", "--x": ["1", "2"], "--flag": True}
    with pytest.raises(KeyError, match="choose one of"):
        get("bn_init")
    with pytest.raises(SystemExit):
        main(["not-a-paper"])
