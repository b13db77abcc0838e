"""The report folder of ``agents.reproduce``: Markdown, PNG figures, raw JSON, commands, versions.

Layout of ``<report>/``::

    report.md        our table next to the paper's published numbers, figures, provenance
    results/         the raw JSON and PNGs exactly as the benchmark wrote them
    figures/         table.png (our primary metric per row) and the benchmark's PNGs
    commands.sh      the exact commands that produced the results (re-runnable)
    versions.json    package versions and machine of the run
    log.txt          the benchmark's output
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from agents.reproduce.registry import Reproduction
from models.io import atomic_write_json

SKIP_COLS = {"seeds", "params", "test_acc", "values"}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else (f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}")
    if isinstance(v, list | tuple):
        return ", ".join(_cell(x) for x in v[:8]) + (" …" if len(v) > 8 else "")
    if isinstance(v, dict):
        return json.dumps(v, default=str)[:80]
    return "—" if v is None else str(v).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as a GitHub Markdown table (union of keys, in first-seen order)."""
    if not rows:
        return "_(no rows)_\n"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols and k not in SKIP_COLS]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _flat_published(pub: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    rows = []
    for k, v in pub.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _flat_published(v, key + " / ")
        else:
            rows.append({"published": key, "value": v})
    return rows


def _row_label(row: dict[str, Any], i: int) -> str:
    parts = [str(v) for k, v in row.items() if isinstance(v, str) and k not in SKIP_COLS]
    return " / ".join(parts[:2]) or f"row {i}"


def table_figure(rec: dict[str, Any], entry: Reproduction, path: Path) -> Path | None:
    """Horizontal bars of the primary metric per row (± its spread column)."""
    rows = [r for r in rec.get("table", []) if isinstance(r, dict)]
    col = entry.primary
    if col is None:  # first numeric column of the first row
        col = next((k for r in rows[:1] for k, v in r.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                    and k not in ("n", "seed")), None)
    pts = [(_row_label(r, i), r[col], r.get(entry.error) if entry.error else None)
           for i, r in enumerate(rows) if isinstance(r.get(col), int | float)
           and math.isfinite(r[col])]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(pts) + 1.4))
    err = [e if isinstance(e, int | float) and math.isfinite(e) else 0 for _, _, e in pts]
    ax.barh(range(len(pts)), [v for _, v, _ in pts], xerr=err, color="tab:blue", capsize=3)
    ax.set_yticks(range(len(pts)), [lab[:40] for lab, _, _ in pts], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(col + (f" (± {entry.error})" if entry.error else ""))
    ax.set_title(f"{entry.name}: {rec.get('scale', '?')} scale, seeds {rec.get('seeds')}",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(folder: Path, entry: Reproduction, rec: dict[str, Any], scale: str,
                 engine: str, commands: list[str], wall_s: float, note: str = "") -> Path:
    """Assemble ``report.md`` and the figures from the benchmark's result ``rec``."""
    folder = Path(folder)
    figs = folder / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    made = [table_figure(rec, entry, figs / "table.png")]
    for png in sorted((folder / "results").glob("*.png")):
        shutil.copy2(png, figs / png.name)
        made.append(figs / png.name)
    figures = [p for p in made if p is not None]
    (folder / "commands.sh").write_text("#!/usr/bin/env bash\n# exact commands of this report\n"
                                        + "\n".join(commands) + "\n")
    atomic_write_json({"versions": rec.get("versions"), "machine": rec.get("machine")},
                      folder / "versions.json")
    paper = rec.get("paper") or entry.published
    md = [f"# Reproduction: {entry.name} ({scale} scale)\n",
          f"**Paper.** {entry.paper}\n", f"**Claim.** {entry.claim}\n"]
    if entry.notes:
        md.append(f"_{entry.notes}_\n")
    if note:
        md.append(f"> {note}\n")
    if entry.verdict:
        md.append(f"**Verdict.** {entry.verdict(rec)}\n")
    md += ["## Our results\n", f"Seeds: {rec.get('seeds')}; engine: {engine}; wall time "
           f"{wall_s:.0f} s on {rec.get('machine', {}).get('cpu_count', '?')} CPUs.\n",
           markdown_table([r for r in rec.get("table", []) if isinstance(r, dict)])]
    if entry.compare:
        side = entry.compare(rec)
        md += ["## Side by side with the paper\n",
               markdown_table(side) if side else "_No row of ours maps to a published number "
                                                 "at this scale._\n"]
    md += ["## The paper's published numbers\n",
           markdown_table(_flat_published(paper)) if paper else "_None published._\n"]
    md.append("## Figures\n")
    md += [f"![{p.stem}](figures/{p.name})\n" for p in figures] or ["_None._\n"]
    md += ["## Commands\n", "```bash\n" + "\n".join(commands) + "\n```\n",
           f"Benchmark's own record of its command: `{rec.get('command')}`\n",
           "## Versions and machine\n",
           "```json\n" + json.dumps({"versions": rec.get("versions"),
                                     "machine": rec.get("machine")}, indent=1) + "\n```\n",
           "## Files\n", "- `results/`: raw JSON and PNGs as written by the benchmark\n"
           "- `figures/`: the figures above\n- `commands.sh`, `versions.json`, `log.txt`\n"]
    (folder / "report.md").write_text("\n".join(md))
    return folder / "report.md"
