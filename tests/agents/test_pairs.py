"""Pair learning on a tiny digits network: artifact, resume, FP path kept, direction of the drop."""

import json

import numpy as np
import pytest
import torch

from agents.pairs.trainer import PairTrainer, load_pair, main, parse_args
from models.quant import DynamicQuantizer

TINY = ["--dataset", "digits", "--model-kw", "width:4", "epochs:8", "--n-envs", "8",
        "--policy-steps", "64", "--round-eval", "50", "--eval-limit", "100", "--no-progress"]


def test_pair_artifact_resume_and_fp_path(tmp_path):
    out = tmp_path / "pair"
    first = main([*TINY, "--mode", "detrimental", "--rounds", "1", "--net-steps", "4",
                  "--out", str(out)])
    assert (out / "pair.pt").exists() and (out / "pair.json").exists()
    rec = json.loads((out / "pair.json").read_text())
    assert rec["round"] == 1 and rec["seed"] == 0 and "torch" in rec["versions"]
    assert set(first["test"]) >= {"fp_acc", "dptq_acc", "drop", "mean_bits"}
    assert first["test"]["mean_bits"] >= 4.0 - 1e-9  # the detrimental budget holds
    # resume: a second round continues from the saved one
    second = main([*TINY, "--mode", "detrimental", "--rounds", "2", "--net-steps", "4",
                   "--out", str(out)])
    rec = json.loads((out / "pair.json").read_text())
    assert rec["round"] == 2 and len(rec["history"]) == 2 and second["rounds"] == 2
    pair = load_pair(out)
    assert pair["env_kwargs"]["reward"] == "detrimental"
    # FP path kept close to the teacher's accuracy (KD on the FP path)
    teacher_fp = rec["history"][0]["fp_acc"]
    assert second["test"]["fp_acc"] >= teacher_fp - 10
    with pytest.raises(ValueError, match="different options"):
        main([*TINY, "--mode", "detrimental", "--rounds", "3", "--net-steps", "5",
              "--out", str(out)])


def _quant_margin(tr: PairTrainer, x, y, plan):
    q = DynamicQuantizer(tr.net)
    try:
        with torch.no_grad():
            out = q(x, plan, return_fp=True)
    finally:
        q.remove()
    lg = out.logits
    true = lg.gather(1, y[:, None])[:, 0]
    other = lg.scatter(1, y[:, None], float("-inf")).amax(1)
    return float((true - other).mean()), float((out.fp_logits.argmax(1) == y).float().mean())


@pytest.mark.parametrize("mode", ["detrimental", "robust"])
def test_network_updates_move_the_quantized_margin_the_intended_way(tmp_path, mode):
    tr = PairTrainer(parse_args([*TINY, "--mode", mode, "--net-steps", "15", "--warmup-rounds",
                                 "0", "--out", str(tmp_path / mode)]))
    x, y = tr.data.val.images[:200], tr.data.val.labels[:200]
    plan = np.full((len(x), tr.res.qnet.n_layers), 8)
    plan[:, 1] = 2  # a coarse layer: where detrimental/robust behaviour must differ
    before, fp_before = _quant_margin(tr, x, y, plan)
    tr.network_round()
    after, fp_after = _quant_margin(tr, x, y, plan)
    if mode == "detrimental":
        assert after < before
    else:
        assert after > before
    assert fp_after >= fp_before - 0.1  # the FP path survives
