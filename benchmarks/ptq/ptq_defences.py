"""What P1's detrimental pairs' drops come from, and which deployment-side defence stops them.

For every detrimental pair of a pair set (``--pairs hard-default``: trained under the integer
zero point; ``hard-default-float`` / ``-symmetric``: trained under those conventions), on the
whole test split, with the pair's own policy:

* ``own`` — the pair as published;
* ``raise_<l>`` — per-layer sensitivity: the policy's (budget-repaired) plan with layer ``l``
  alone raised to FP;
* ``offset`` — the signed error each convention puts on the input layer's background (the
  pixels at each image's minimum) at the plan's first-layer bits, in units of the image's
  standard deviation (mean over test images), and under the pair's own convention its mean
  over the images that fail and over those that do not;
* defences, each with its cost in mean bits over the policy's plan:
  ``first_layer_8`` (the repaired plan with the input layer at 8 bits), ``zero_point_float`` (the grid runs from each
  example's exact minimum, so the minimum is representable; no bits), ``zero_point_symmetric``
  and ``per_channel`` (per-channel ranges; on one-channel images the input layer is unchanged).

    python benchmarks/ptq/ptq_defences.py                          # integer-trained pairs
    python benchmarks/ptq/ptq_defences.py --pairs hard-default-float

Per pair: ``benchmarks/results/ptq_defences/<pairs>/<combo>.json`` (atomic, resumable); the
summary goes to ``benchmarks/results/ptq_defences.json`` (``summary[pairs][arch][w]``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.io import atomic_write_json, provenance  # noqa: E402
from models.stats import mean_ci  # noqa: E402

RESULTS = ROOT / "benchmarks/results"
OUT = RESULTS / "ptq_defences"
FP = 32


class FixedPlans:
    """An SB3-style policy that plays given plans (as choice indices) for the examples in the
    order a whole-split rollout visits them."""

    def __init__(self, choices: np.ndarray) -> None:
        self.choices, self.at = choices, 0

    def predict(self, obs: Any, deterministic: bool = True, **kw: Any) -> tuple[np.ndarray, None]:
        n = len(obs["stats"]) if isinstance(obs, dict) else len(obs)
        act = self.choices[self.at:self.at + n]
        self.at += n
        return act, None


def _edited(plan: np.ndarray, bits: list[int], layer: int, value: int) -> FixedPlans:
    """The own (budget-repaired) plans with ``layer`` set to ``value`` bits, as indices into
    ``bits``."""
    edited = plan.copy()
    edited[:, layer] = value
    return FixedPlans(np.searchsorted(np.asarray(bits), edited))


def _row(env_kwargs: dict[str, Any], net: Any, data: Any, agent: Any) -> dict[str, Any]:
    from envs.ptq.rollout import env_parts, headline, split_rollout

    cfg, res = env_parts(env_kwargs, net, data)
    r = split_rollout(cfg, res, agent, "test")
    return {**headline(r), "_failure": r["failure"], "_bits": r["bits"]}


@torch.no_grad()
def background_offset(net: Any, x: torch.Tensor, bits: np.ndarray, zero_point: str) -> np.ndarray:
    """Per image: the mean quantization error on the input layer's minimum-valued elements at
    ``bits`` under ``zero_point``, divided by the input's standard deviation."""
    from models.quant import fake_quant_activation

    first = net.quantizable_layers()[0][1]
    seen: list[torch.Tensor] = []
    hook = first.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    try:
        net.eval()
        net(x)
    finally:
        hook.remove()
    h = seen[0].flatten(1)
    hq = fake_quant_activation(h, torch.as_tensor(bits), zero_point=zero_point)
    at_min = h == h.min(1, keepdim=True).values
    err = ((hq - h) * at_min).sum(1) / at_min.sum(1)
    return (err / h.std(1)).cpu().numpy()


def offsets(net: Any, x: torch.Tensor, bits: np.ndarray, zero_point: str,
            failure: np.ndarray) -> dict[str, Any]:
    """The input background's mean signed offset (in the input's std) at the plans'
    first-layer ``bits`` under every convention, and under the pair's own among the images
    that fail and those that do not."""
    from models.quant import ZERO_POINTS

    by = {zp: background_offset(net, x, bits, zp) for zp in ZERO_POINTS}
    own = by[zero_point]
    return {"by_convention": {zp: float(v.mean()) for zp, v in by.items()},
            "offset_failed": float(own[failure].mean()) if failure.any() else None,
            "offset_kept": float(own[~failure].mean())}


def analyse(folder: Path) -> dict[str, Any]:
    """Every row of the module docstring for the detrimental pair in ``folder``."""
    from agents.pairs.artifact import load_pair

    pair = load_pair(folder)
    env, net, data = dict(pair.env_kwargs), pair.net, pair.data
    bits = list(env["bit_choices"])
    zp = env.get("zero_point", "integer")
    out: dict[str, Any] = {"zero_point": zp, "own": _row(env, net, data, pair.policy)}
    plan = out["own"]["_bits"]
    wide = [*bits, FP]
    for layer in range(plan.shape[1]):
        out[f"raise_{layer}"] = _row({**env, "bit_choices": tuple(wide)}, net, data,
                                     _edited(plan, wide, layer, FP))
    out["first_layer_8"] = _row(env, net, data, _edited(plan, bits, 0, 8))
    for name, kw in (("zero_point_float", {"zero_point": "float"}),
                     ("zero_point_symmetric", {"zero_point": "symmetric"}),
                     ("per_channel", {"per_channel": True})):
        out[name] = _row({**env, **kw}, net, data, pair.policy)
    out["offset"] = offsets(net, data.test.images, plan[:, 0], zp, out["own"]["_failure"])
    base_bits = float(plan.mean())
    for key, row in out.items():
        if isinstance(row, dict) and "_bits" in row:
            row["cost_bits_added"] = (None if key.startswith("raise_")
                                      else float(row["_bits"].mean()) - base_bits)
            del row["_bits"], row["_failure"]
    return out


def upgrade_offsets(path: Path, folder: Path) -> None:
    """Give a file computed before ``offset.by_convention`` existed its offsets (the plans are
    the policy's, recomputed; the rows are kept)."""
    from agents.pairs.artifact import load_pair
    from envs.ptq.rollout import env_parts, split_rollout

    rec = json.loads(path.read_text())
    if "by_convention" in rec["rows"]["offset"]:
        return
    pair = load_pair(folder)
    cfg, res = env_parts(pair.env_kwargs, pair.net, pair.data)
    r = split_rollout(cfg, res, pair.policy, "test")
    rec["rows"]["offset"] = offsets(pair.net, pair.data.test.images, r["bits"][:, 0],
                                    cfg.zero_point, r["failure"])
    atomic_write_json(rec, path)


def summarise(pair_sets: list[str]) -> dict[str, Any]:
    """``summary[pairs][arch][w][row]``: drop (mean, 95% CI, per seed) of each row."""
    out: dict[str, Any] = {}
    for ps in pair_sets:
        by_group: dict[tuple[str, str], list[tuple[str, dict]]] = {}
        for f in sorted((OUT / ps).glob("*.json")):
            arch, w, _ = f.stem.split("-")
            by_group.setdefault((arch, w), []).append((f.stem, json.loads(f.read_text())["rows"]))
        for (arch, w), items in by_group.items():
            cell: dict[str, Any] = {"seeds": [c for c, _ in items]}
            cell["offset"] = {zp: float(np.mean([r["offset"]["by_convention"][zp]
                                                  for _, r in items]))
                              for zp in items[0][1]["offset"]["by_convention"]}
            cell["zero_point"] = items[0][1]["zero_point"]
            for name in (k for k, v in items[0][1].items() if k != "offset" and isinstance(v, dict)):
                vals = np.array([r[name]["drop"] for _, r in items])
                ci = mean_ci(vals)
                cell[name] = {"drop": ci.mean, "ci95": ci.half_width_or_none,
                              "per_seed": vals.tolist()}
                if items[0][1][name].get("cost_bits_added") is not None:
                    cell[name]["cost_bits_added"] = float(np.mean(
                        [r[name]["cost_bits_added"] for _, r in items]))
            out.setdefault(ps, {}).setdefault(arch, {})[w] = cell
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="*", default=["hard-default"],
                   help="pair sets under benchmarks/results/pairs/")
    p.add_argument("--combos", nargs="*", default=None, help="default: every combo of the set")
    p.add_argument("--collect-only", action="store_true")
    args = p.parse_args(argv)
    for ps in args.pairs if not args.collect_only else []:
        root = RESULTS / "pairs" / ps
        combos = args.combos or sorted(d.name for d in root.iterdir()
                                       if (d / "detrimental" / "pair.json").exists())
        for combo in combos:
            path = OUT / ps / f"{combo}.json"
            if path.exists():
                upgrade_offsets(path, root / combo / "detrimental")
                continue
            t0 = time.perf_counter()
            rows = analyse(root / combo / "detrimental")
            atomic_write_json({"pairs": ps, "combo": combo, "rows": rows,
                               "seconds": time.perf_counter() - t0,
                               **provenance(int(combo.rsplit("-s", 1)[1]))}, path)
            print(f"{ps}/{combo}: " + ", ".join(f"{k} {v['drop']:.1f}" for k, v in rows.items()
                                               if isinstance(v, dict) and "drop" in v), flush=True)
    sets = sorted(d.name for d in OUT.iterdir() if d.is_dir()) if OUT.exists() else []
    record = {"summary": summarise(sets), **provenance(None)}
    atomic_write_json(record, RESULTS / "ptq_defences.json")
    return record


if __name__ == "__main__":
    main()
