"""P1's tables beyond the headline: pairs trained under each zero-point convention, per-input
headroom, attackers by observation, and the mechanism/defence rows (``gen_results`` registers
them). A result file that does not exist yet gives a one-line note instead of a table."""

from __future__ import annotations

from docs.gen_results import RESULTS, load, p_fmt, pm, table

KEYS = ("det_pair_drop", "det_pair_fp_gap", "standard_attacked_drop", "robust_attacked_drop")


def _pending(name: str) -> str | None:
    if not (RESULTS / f"{name}.json").exists():
        return f"*(`benchmarks/results/{name}.json` not yet computed)*\n"
    return None


def ptq_trained_conventions() -> str:
    """Pairs trained and attacked under each convention (``conventions`` of each cell)."""
    rows = []
    for arch, by_w in load("ptq_pairs_hard")["summary"].items():
        for w, cell in by_w.items():
            for zp, r in cell.get("conventions", {}).items():
                ci = r.get("ci95", {})
                rows.append([zp, arch, w, ",".join(map(str, r["seeds"])),
                             *(pm(r[k], ci.get(k)) for k in KEYS),
                             pm(r["det_pair_best_static_drop"], ci.get("det_pair_best_static_drop")),
                             "yes" if any(d >= 40 and abs(g) <= 1 for d, g in zip(
                                 r["per_seed"]["det_pair_drop"], r["per_seed"]["det_pair_fp_gap"],
                                 strict=True)) else "no"])
    return table(["trained under", "network", "weights", "seeds", "det. pair: own policy",
                  "its FP − standard FP", "standard: fresh attacker", "robust: fresh attacker",
                  "det. pair: best static", "a seed with ≥ 40 and FP within 1"], rows)


def ptq_oracle() -> str:
    if (note := _pending("ptq_oracle")) is not None:
        return note
    rows, robust = [], []
    for arch, by_w in load("ptq_oracle")["summary"].items():
        for w, nets in by_w.items():
            for net in ("standard", "detrimental", "robust"):
                if net in nets:
                    r, ci = nets[net], nets[net]["ci95"]
                    sel = " / ".join(pm(r.get(f"selector_{o}_gain"), None)
                                     for o in ("stats", "probe", "query"))
                    rows.append([arch, w, net, len(r["seeds"]), r["n_plans"],
                                 pm(r["static_drop"], ci["static_drop"]),
                                 pm(r["oracle_drop"], ci["oracle_drop"]),
                                 pm(r["oracle_gain"], ci["oracle_gain"]), sel,
                                 pm(r.get("query_L_gain"), None)])
            if "robust_side" in nets:
                r, ci = nets["robust_side"], nets["robust_side"]["ci95"]
                robust.append([arch, w, len(r["seeds"]), pm(r["static_acc"], ci["static_acc"]),
                               pm(r["static_cost_bits"], ci["static_cost_bits"]),
                               pm(r["oracle_acc"], ci["oracle_acc"]),
                               pm(r["oracle_cost_bits"], ci["oracle_cost_bits"])])
    out = table(["network", "weights", "attacked net", "seeds", "candidate plans",
                 "best static drop", "oracle drop", "oracle_gain",
                 "learned selector gain: stats / probe / query (3L plans)",
                 "label-aware L-query gain"], rows)
    if robust:
        out += "\n" + table(["network", "weights", "seeds", "robust pair: best static acc",
                             "its bits", "oracle acc", "oracle mean bits"], robust)
    return out


def ptq_observations() -> str:
    if (note := _pending("ptq_observations")) is not None:
        return note
    rows = []
    for arch, by_w in load("ptq_observations")["summary"].items():
        for w, by_obs in by_w.items():
            for obs, nets in by_obs.items():
                for net, r in nets.items():
                    ci = r["ci95"]
                    rows.append([arch, w, obs, net, len(r["seeds"]),
                                 pm(r["drop"], ci["drop"]),
                                 pm(r["dynamic_gain"], ci["dynamic_gain"]),
                                 pm(r["distinct_plans"], ci["distinct_plans"], 0),
                                 pm(r.get("oracle_gain"), None),
                                 pm(r.get("gain_share"), None),
                                 p_fmt(r.get("p_gain_vs_stats"))])
    return table(["network", "weights", "attacker", "attacked net", "seeds", "drop",
                  "dynamic gain", "distinct plans", "oracle gain", "share of oracle gain",
                  "p (gain > stats)"], rows)


def ptq_defences() -> str:
    if (note := _pending("ptq_defences")) is not None:
        return note
    rows = []
    for ps, by_arch in load("ptq_defences")["summary"].items():
        for arch, by_w in by_arch.items():
            for w, cell in by_w.items():
                raise_rows = sorted((k for k in cell if k.startswith("raise_")),
                                    key=lambda k: int(k.split("_")[1]))
                most = max(raise_rows, key=lambda k: -cell[k]["drop"])
                rows.append([ps.removeprefix("hard-default").strip("-") or "integer", arch, w,
                             len(cell["seeds"]), pm(cell["own"]["drop"], cell["own"]["ci95"]),
                             f"{most.split('_')[1]}: {cell[most]['drop']:.1f}",
                             " / ".join(f"{cell['offset'][zp]:+.3f}"
                                        for zp in ("integer", "float", "symmetric")),
                             *(f"{cell[k]['drop']:.1f} (+{cell[k]['cost_bits_added']:.2f} b)"
                               for k in ("first_layer_8", "zero_point_float",
                                         "zero_point_symmetric", "per_channel"))])
    return table(["trained under", "network", "weights", "seeds", "own policy drop",
                  "layer whose raise to FP helps most: drop",
                  "background offset (std) at 4 bits: integer / float / symmetric",
                  "input layer at 8 bits", "float zero point", "symmetric", "per-channel"], rows)


TABLES = {"ptq_trained_conventions": ptq_trained_conventions, "ptq_oracle": ptq_oracle,
          "ptq_observations": ptq_observations, "ptq_defences": ptq_defences}

