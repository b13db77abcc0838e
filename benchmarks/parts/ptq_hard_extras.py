"""What ``ptq_pairs_hard.json`` gathers from its sibling result files.

For every ``summary[arch][w]`` cell (the integer zero point, the convention the headline pairs
are trained under) it adds:

* ``conventions[name]``: the same headline keys for pairs trained and attacked under zero-point
  convention ``name`` (``ptq_pairs_hard_<name>.json``, written by ``ptq_pairs.py --protocol
  hard --zero-point <name>``), ``integer`` included so the three read side by side;
* ``committed_pairs_under``: the integer-trained pairs evaluated under each convention
  (``ptq_conventions.json``);
* ``oracle_gain``: per-input headroom of each network (``ptq_oracle.json``);
* ``dynamic_gain_by_observation``: what fresh attackers with each observation option reach
  (``ptq_observations.json``).

Files that do not exist yet leave their key out; re-running any of the benchmarks re-merges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.io import atomic_write_json

HARD_PAIRS = Path(__file__).resolve().parents[2] / "benchmarks/results/pairs/hard-default"
CONVENTIONS = ("float", "symmetric")
#: the keys merge_extras adds to a summary cell
EXTRAS = ("conventions", "committed_pairs_under", "oracle_gain", "dynamic_gain_by_observation")
KEYS = ("det_pair_drop", "det_pair_fp_gap", "standard_attacked_drop", "robust_attacked_drop",
        "det_pair_attacked_drop", "dynamic_gain", "distinct_plans", "robust_pair_own_drop",
        "standard_best_static_drop", "det_pair_best_static_drop", "ci95", "per_seed", "seeds",
        "targets")


def committed_combos() -> list[str]:
    """Every committed hard combo (``<arch>-<w>-s<seed>`` folders holding a detrimental pair).

    The default of each sibling benchmark's ``--combos``, and what its summary is built from:
    a run on a few combos re-summarises all of them, so it never drops the others' cells."""
    return sorted(d.name for d in HARD_PAIRS.iterdir() if (d / "detrimental").is_dir())


def _cells(path: Path) -> dict[str, Any]:
    """``summary`` of a result file (``{}`` when it does not exist)."""
    return json.loads(path.read_text()).get("summary", {}) if path.exists() else {}


def _headline(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: cell[k] for k in KEYS if k in cell}


def merge_extras(main: Path) -> dict[str, Any] | None:
    """Add the sibling results to ``main`` (``ptq_pairs_hard[_scale].json``) in place; returns
    the record, or ``None`` when ``main`` does not exist."""
    if not main.exists():
        return None
    record = json.loads(main.read_text())
    trained = {zp: _cells(main.with_name(f"{main.stem}_{zp}.json")) for zp in CONVENTIONS}
    evaluated = _cells(main.with_name("ptq_conventions.json"))
    oracle = _cells(main.with_name("ptq_oracle.json"))
    observations = _cells(main.with_name("ptq_observations.json"))
    for arch, by_w in record["summary"].items():
        for w, cell in by_w.items():
            conv = {"integer": _headline(cell)}
            for zp, summary in trained.items():
                if w in summary.get(arch, {}):
                    conv[zp] = _headline(summary[arch][w])
            cell["conventions"] = conv
            under = {zp: evaluated[zp][arch][w] for zp in evaluated
                     if w in evaluated[zp].get(arch, {})}
            for key, value in (("committed_pairs_under", under),
                               ("oracle_gain", oracle.get(arch, {}).get(w)),
                               ("dynamic_gain_by_observation",
                                observations.get(arch, {}).get(w))):
                if value:
                    cell[key] = value
                else:
                    cell.pop(key, None)
    atomic_write_json(record, main)
    return record
