"""Fault injection: bad input, broken files and failures, met as a user meets them.

Every case runs the real command line in a fresh process in its own folder (exit codes and
what is printed are the user's) and checks: the exit code (0 only when everything asked for
succeeded, 2 for bad input or bad files, 1 for a failed run, 130/143 for Ctrl-C/SIGTERM),
that the message names the problem and the file on one line without a traceback, and that
nothing good is lost or written elsewhere (no collapsed result saved, the last checkpoint kept,
nothing run from a file, nothing outside the folder the user named). Cases come in classes
(:mod:`benchmarks.faults`): bad input, failed runs, non-finite options, unverified artifacts,
unreadable files, disk and environment, interrupts and exit codes, locks on outputs.

    python benchmarks/fault_injection.py                      # every case (~15 min, 2 cores)
    python benchmarks/fault_injection.py --cases bad_n umask  # some of them
    python benchmarks/fault_injection.py --classes "locks on outputs"
    python benchmarks/fault_injection.py --cases umask --merge  # re-run one case into the JSON

Writes ``benchmarks/results/fault_injection.json``: ``summary`` (``total``, ``handled`` and the
same per class), ``cases`` (class, name, expected, observed, handled, seconds) and provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.faults import CLASSES  # noqa: E402
from benchmarks.faults.common import Case, Session  # noqa: E402
from models.io import atomic_write_json, command_line, provenance  # noqa: E402


def cases() -> dict[str, tuple[str, Case]]:
    """Every case by name: ``(class, case)``."""
    out: dict[str, tuple[str, Case]] = {}
    for cls, make in CLASSES.items():
        for name, case in make().items():
            out[name] = (cls, case)
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``total`` and ``handled`` overall and per class (in class order)."""
    by_class: dict[str, dict[str, int]] = {}
    for r in rows:
        c = by_class.setdefault(r["class"], {"total": 0, "handled": 0})
        c["total"] += 1
        c["handled"] += bool(r["handled"])
    return {"total": len(rows), "handled": sum(bool(r["handled"]) for r in rows),
            "classes": by_class}


def merged(old: dict[str, Any], rows: list[dict[str, Any]], order: list[str]
           ) -> dict[str, Any]:
    """``old`` results with ``rows`` replacing (or adding) their cases, in case order; the
    re-run's command, machine and cases are appended to ``reruns``."""
    by_name = {r["name"]: r for r in old["cases"]} | {r["name"]: r for r in rows}
    cases_ = [by_name[n] for n in order if n in by_name]
    rerun = {"cases": [r["name"] for r in rows], **provenance(seed=None, command=command_line())}
    return {**old, "summary": summarize(cases_), "cases": cases_,
            "reruns": [*old.get("reruns", []), rerun]}


def run_case(name: str, cls: str, case: Case) -> dict[str, Any]:
    """One case in a fresh folder; an exception in the harness is an unhandled case."""
    with tempfile.TemporaryDirectory(prefix=f"fault-{name}-") as tmp:
        t0 = time.perf_counter()
        try:
            row = case(Path(tmp))
        except Exception as e:  # noqa: BLE001 - the report says what broke
            row = {"expected": "", "observed": f"harness error: {type(e).__name__}: {e}"[:400],
                   "handled": False}
        seconds = round(time.perf_counter() - t0, 1)
    return {"class": cls, "name": name, **row, "seconds": seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="*", default=None, help="run only these cases")
    p.add_argument("--classes", nargs="*", default=None, help="run only these classes")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fault_injection.json"))
    p.add_argument("--merge", action="store_true",
                   help="replace only these cases' rows in the existing --out (the re-run is "
                        "recorded under 'reruns')")
    args = p.parse_args(argv)
    table = cases()
    unknown = sorted(set(args.cases or []) - set(table)) + sorted(
        set(args.classes or []) - set(CLASSES))
    if unknown:
        p.error(f"unknown cases or classes {unknown}; cases: {sorted(table)}; classes: "
                f"{list(CLASSES)}")
    names = [n for n, (cls, _) in table.items()
             if (args.cases is None or n in args.cases)
             and (args.classes is None or cls in args.classes)]
    rows = []
    try:
        for name in names:
            cls, case = table[name]
            row = run_case(name, cls, case)
            rows.append(row)
            print(f"{'ok  ' if row['handled'] else 'FAIL'} {cls[:12]:12s} {name:28s} "
                  f"{row['seconds']:6.1f}s {row['observed'][:90]}", flush=True)
    finally:
        Session.close()
    result = {"summary": summarize(rows), "cases": rows,
              **provenance(seed=None, command=command_line())}
    if args.merge and Path(args.out).exists():
        result = merged(json.loads(Path(args.out).read_text()), rows, list(table))
    atomic_write_json(result, args.out)
    s = result["summary"]
    print(f"{s['handled']} / {s['total']} cases handled; wrote {args.out}")
    return result


if __name__ == "__main__":
    raise SystemExit(0 if (s := main()["summary"])["handled"] == s["total"] else 1)
