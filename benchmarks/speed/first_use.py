"""First use of every environment id on a fresh clone: time to ``gym.make`` and ``reset``.

Each id runs in a fresh Python process with an empty ``$DEPLOYGYM_CACHE`` (a new temporary
folder), as on a machine that has never built anything: what it needs must come from the
committed artifacts (pinned networks, the processed cylinder field, the default transfer
sets) or be built within the budget. The table reports seconds to ``gym.make`` and to the
first ``reset``, the budget ratio (``make_s / 60``), and whether any build was announced
(a ``deploygym: first use: ...`` line on stderr), which a first use on a fresh clone should not
need.

    python benchmarks/speed/first_use.py                      # every registered id
    python benchmarks/speed/first_use.py --ids deploygym/DynamicPTQ-v0

Writes ``benchmarks/results/first_use.json`` (per id, plus command, versions and machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.cache import BUILD_PREFIX  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

BUDGET_S = 60.0
PROBE = """
import json, sys, time
t0 = time.perf_counter()
import gymnasium as gym, envs
t1 = time.perf_counter()
env = gym.make(sys.argv[1], progress=False)
t2 = time.perf_counter()
env.reset(seed=0)
t3 = time.perf_counter()
print("FIRST_USE " + json.dumps({"import_s": t1 - t0, "make_s": t2 - t1, "reset_s": t3 - t2}))
"""


def time_id(env_id: str) -> dict:
    """Seconds to import, ``gym.make`` and ``reset`` ``env_id`` in a fresh process and cache."""
    with tempfile.TemporaryDirectory(prefix="deploygym-fresh-") as cache:
        proc = subprocess.run([sys.executable, "-c", PROBE, env_id], cwd=ROOT, text=True,
                              capture_output=True, env={**os.environ, "DEPLOYGYM_CACHE": cache})
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FIRST_USE ")), None)
    if proc.returncode != 0 or line is None:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-1:] or ["no output"]}
    r = json.loads(line.removeprefix("FIRST_USE "))
    builds = [ln for ln in proc.stderr.splitlines() if ln.startswith(BUILD_PREFIX)]
    return {"ok": True, **{k: round(v, 2) for k, v in r.items()},
            "budget_ratio": round(r["make_s"] / BUDGET_S, 3), "within_budget":
            r["make_s"] <= BUDGET_S, "builds_announced": builds}


def main(argv: list[str] | None = None) -> dict:
    import envs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ids", nargs="*", default=list(envs.ALL_IDS))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/first_use.json"))
    args = p.parse_args(argv)
    rows = {}
    for env_id in args.ids:
        rows[env_id] = time_id(env_id)
        r = rows[env_id]
        print(f"{env_id:42s} " + (f"make {r['make_s']:6.1f} s  reset {r['reset_s']:5.1f} s  "
                                  f"{'ok' if r['within_budget'] else 'OVER BUDGET'}"
                                  + ("  (built: " + "; ".join(r["builds_announced"]) + ")"
                                     if r["builds_announced"] else "")
                                  if r["ok"] else f"FAILED: {r['error']}"), flush=True)
    summary = {"ids": len(rows), "within_budget": sum(bool(r.get("within_budget"))
                                                      for r in rows.values()),
               "max_make_s": max((r["make_s"] for r in rows.values() if r["ok"]), default=None),
               "budget_s": BUDGET_S}
    record = {"summary": summary, "ids": rows, **provenance(None)}
    atomic_write_json(record, Path(args.out))
    print(json.dumps(summary))
    return record


if __name__ == "__main__":
    main()
