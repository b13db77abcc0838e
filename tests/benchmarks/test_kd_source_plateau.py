"""The plateau benchmark finds where each fixed-source curve stops improving, and runs."""

from __future__ import annotations

import json

import pytest

from benchmarks.kd_source_plateau import main, plateau, summarise


def test_plateau_is_the_first_point_within_tolerance_of_the_best():
    ups = [100, 200, 300, 400]
    assert plateau([0.5, 0.70, 0.795, 0.80], ups, 0.01) == 300
    assert plateau([0.5, 0.80, 0.70, 0.60], ups, 0.01) == 200  # the best came early
    assert plateau([0.5, 0.6, 0.7, 0.8], ups, 0.25) == 200
    s = summarise([{"student": "a", "augment": "none", "source": "x", "seed": k,
                    "updates": ups, "accuracy": acc, "seconds": 1.0}
                   for k, acc in enumerate([[0.5, 0.7, 0.795, 0.8], [0.5, 0.8, 0.8, 0.8]])]
                  + [{"student": "a", "augment": "none", "source": "y", "seed": 0,
                      "updates": ups, "accuracy": [0.5, 0.6, 0.7, 0.8], "seconds": 1.0}], 0.01)
    row, rising = s["rows"]
    assert row["plateau_updates"] == pytest.approx(250)  # mean of 300 and 200
    assert row["final_accuracy"] == pytest.approx(0.8)
    assert row["rise_last_quarter"] == pytest.approx(0.0025)
    assert rising["rise_last_quarter"] == pytest.approx(0.1)
    assert s["slowest_plateau_updates"] == {"a/none": 400}
    assert s["still_rising"] == {"a/none": ["y"]}


def test_smoke_run_writes_curves_and_resumes(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = main(["--scale", "smoke", "--results-dir", str(tmp_path)])
        assert torch.get_num_threads() == 2  # one thread inside each curve, restored after
    finally:
        torch.set_num_threads(threads)
    sources = out["sources"]
    assert {r["source"] for r in out["rows"]} == set(sources)
    assert all(len(r["mean_accuracy"]) == 2 for r in out["rows"])
    assert (tmp_path / "kd_source_plateau_smoke.png").exists()
    files = sorted((tmp_path / "kd_source_plateau_smoke").glob("*.json"))
    before = [f.stat().st_mtime_ns for f in files]
    again = main(["--scale", "smoke", "--results-dir", str(tmp_path)])  # nothing retrained
    assert [f.stat().st_mtime_ns for f in files] == before
    assert again["rows"] == out["rows"]
    assert json.loads(files[0].read_text())["updates"] == [20, 40]
