"""The fault-injection script runs its cases and records them by class (a quick subset here;
the benchmark runs all of them, and its committed results handle every case)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("fault_injection",
                                                  ROOT / "benchmarks" / "fault_injection.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_cases_pass_and_are_recorded_by_class(tmp_path):
    fi = _module()
    out = tmp_path / "fi.json"
    names = ["umask", "data_env_empty", "cifar_code"]  # cheap ones: no SB3 to import
    res = fi.main(["--cases", *names, "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["summary"]["total"] == 3 and saved["summary"]["handled"] == 3, saved["cases"]
    assert [c["name"] for c in saved["cases"]] == [n for n in fi.cases() if n in names]
    assert all({"class", "expected", "observed", "handled"} <= set(c) for c in saved["cases"])
    assert saved["summary"]["classes"]["disk and environment"] == {"total": 2, "handled": 2}
    assert res["summary"] == saved["summary"]


def test_every_class_of_the_issue_has_cases_and_there_are_at_least_60():
    fi = _module()
    classes = {cls for cls, _ in fi.cases().values()}
    assert {"unverified artifacts", "unreadable files", "interrupts and exit codes",
            "disk and environment", "non-finite options", "locks on outputs"} <= classes
    assert len(fi.cases()) >= 60


def test_a_case_that_is_not_handled_is_reported_as_failed(tmp_path, monkeypatch):
    fi = _module()
    from benchmarks.faults.common import cli

    broken = cli(["-c", "raise SystemExit(2)"], 0, "anything")  # a wrong expectation
    monkeypatch.setattr(fi, "cases", lambda: {"broken": ("bad input", broken)})
    res = fi.main(["--out", str(tmp_path / "fi.json")])
    assert res["summary"] == {"total": 1, "handled": 0,
                              "classes": {"bad input": {"total": 1, "handled": 0}}}
    assert "exit 2" in res["cases"][0]["observed"]


def test_the_committed_results_handle_every_case():
    saved = json.loads((ROOT / "benchmarks" / "results" / "fault_injection.json").read_text())
    assert saved["summary"]["total"] >= 60
    assert saved["summary"]["handled"] == saved["summary"]["total"], [
        c["name"] for c in saved["cases"] if not c["handled"]]


def test_merge_replaces_only_the_rerun_cases_and_records_the_rerun(tmp_path, monkeypatch):
    fi = _module()
    out = tmp_path / "fi.json"

    def case(handled):
        return lambda tmp: {"expected": "e", "observed": "o", "handled": handled}
    monkeypatch.setattr(fi, "cases", lambda: {"a": ("bad input", case(True)),
                                              "b": ("locks on outputs", case(False))})
    fi.main(["--out", str(out)])
    monkeypatch.setattr(fi, "cases", lambda: {"a": ("bad input", case(True)),
                                              "b": ("locks on outputs", case(True))})
    res = fi.main(["--cases", "b", "--merge", "--out", str(out)])
    assert [c["name"] for c in res["cases"]] == ["a", "b"]
    assert res["summary"]["handled"] == res["summary"]["total"] == 2
    assert [r["cases"] for r in res["reruns"]] == [["b"]]
