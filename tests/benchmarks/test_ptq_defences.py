"""The mechanism/defence rows of benchmarks/ptq_defences.py on a tiny digits pair."""

from __future__ import annotations

import json

import numpy as np
import torch

from benchmarks.ptq import ptq_defences as d

TINY = ["--dataset", "digits", "--model-kw", "width:4", "epochs:2", "--n-envs", "8",
        "--policy-steps", "64", "--round-eval", "20", "--eval-limit", "40", "--no-progress",
        "--bit-choices", "2", "4", "8", "--budget-bits", "4", "--rounds", "1", "--net-steps", "2"]


def test_rows_equal_direct_evaluations_and_the_float_grid_keeps_the_minimum(tmp_path):
    from agents.pairs.matrix import policy_row
    from agents.pairs.trainer import load_pair, main
    from models.quant import DynamicQuantizer

    main([*TINY, "--mode", "detrimental", "--out", str(tmp_path / "det")])
    pair = load_pair(tmp_path / "det")
    rows = d.analyse(tmp_path / "det")
    own = policy_row(pair, pair.net, pair.data)
    assert rows["own"]["drop"] == own["drop"] and rows["own"]["cost_bits_added"] == 0.0
    n_layers = pair.net.quantizable_layers().__len__()
    assert {f"raise_{k}" for k in range(n_layers)} <= set(rows)
    # the first-layer defence, recomputed by hand from the own plans
    from envs.ptq.rollout import env_parts, split_rollout

    cfg, res = env_parts(pair.env_kwargs, pair.net, pair.data)
    plans = split_rollout(cfg, res, pair.policy, "test")["bits"]
    plans[:, 0] = 8
    x, y = pair.data.test.images, pair.data.test.labels.numpy()
    q = DynamicQuantizer(pair.net)
    with torch.no_grad():
        fp_ok = pair.net(x).argmax(1).numpy() == y
        q_ok = q(x, plans).logits.argmax(1).numpy() == y
    q.remove()
    assert np.isclose(rows["first_layer_8"]["drop"], 100 * (fp_ok.mean() - q_ok.mean()))
    assert np.isclose(rows["first_layer_8"]["cost_bits_added"],
                      plans.mean() - rows["own"]["mean_bits"])
    # the float grid runs from each example's exact minimum: no offset on the background
    bits = np.full(len(x), 2)
    assert np.allclose(d.background_offset(pair.net, x, bits, "float"), 0.0, atol=1e-6)
    assert np.abs(d.background_offset(pair.net, x, bits, "integer")).max() > 1e-3
    assert rows["offset"]["by_convention"]["float"] == 0.0
    # the summary reads every row of such files
    out = tmp_path / "defences"
    (out / "set").mkdir(parents=True)
    for s in (0, 1):
        (out / "set" / f"cnn-a-s{s}.json").write_text(json.dumps({"rows": rows}))
    monkey_out, d.OUT = d.OUT, out
    try:
        cell = d.summarise(["set"])["set"]["cnn"]["a"]
    finally:
        d.OUT = monkey_out
    assert cell["own"]["drop"] == rows["own"]["drop"] and cell["zero_point"] == "integer"
    assert cell["offset"]["float"] == 0.0 and cell["first_layer_8"]["cost_bits_added"] >= 0
