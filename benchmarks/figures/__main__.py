"""``python -m benchmarks.figures [NAME ...] [--results-dir DIR]``: re-draw from the JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.figures import fields, ptq_pairs_hard, sensor_placement

FIGURES = {"ptq_pairs_hard": ptq_pairs_hard.redraw, "fields": fields.redraw,
           "sensor_placement": sensor_placement.redraw}
RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split(":", 1)[1].strip())
    p.add_argument("names", nargs="*", help=f"figures to draw (default: all of "
                                            f"{', '.join(FIGURES)})")
    p.add_argument("--results-dir", default=str(RESULTS))
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        p.error(f"unknown figures {unknown}; choose from {', '.join(FIGURES)}")
    out = [FIGURES[n](Path(args.results_dir)) for n in (args.names or FIGURES)]
    for path in out:
        print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
