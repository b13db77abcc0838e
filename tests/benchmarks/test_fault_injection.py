"""The fault-injection script runs its cases and records them (a quick subset here; the
benchmark runs all of them)."""

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


def test_quick_cases_pass_and_are_recorded(tmp_path):
    fi = _module()
    out = tmp_path / "fi.json"
    res = fi.main(["--cases", "bad_n", "zoo_normalize", "umask", "cifar_code", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["total"] == 4 and saved["passed"] == 4, saved["cases"]
    assert {c["name"] for c in saved["cases"]} == {"bad_n", "zoo_normalize", "umask", "cifar_code"}
    assert all({"expected", "observed", "passed"} <= set(c) for c in saved["cases"])
    assert res["passed"] == 4


def test_a_case_that_is_not_handled_is_reported_as_failed(tmp_path, monkeypatch):
    fi = _module()
    broken = fi._cli_case(["-m", "agents.train", "-n", "-5"], 0, "anything")  # wrong expectation
    monkeypatch.setattr(fi, "cases", lambda: {"broken": broken})
    res = fi.main(["--out", str(tmp_path / "fi.json")])
    assert res["passed"] == 0 and res["total"] == 1
