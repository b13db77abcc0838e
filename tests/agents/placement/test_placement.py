"""The grid placement agent: deterministic under its seed, exact resume, any grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from agents.placement.place import Placer
from agents.placement.train import PlacementTrainConfig, train_placement
from agents.placement.vec import PlacementVecEnv
from fields.classical.synthetic import synthetic_field
from fields.pretrained import get_blocks

TINY = {"dataset": "synthetic", "k_range": (2, 4), "n_envs": 4, "batch": 3, "n_steps": 8,
        "batch_size": 16, "n_epochs": 2, "chunk_rollouts": 1, "channels": 4,
        "scales": (3,), "eval_k": (3,)}


@pytest.fixture(scope="module")
def blocks():
    return get_blocks("synthetic", data=synthetic_field(t=60, h=8, w=10), progress=False)


def _params(folder) -> dict[str, torch.Tensor]:
    return MaskablePPO.load(folder / "ckpt" / "model.zip", device="cpu").policy.state_dict()


def test_resumed_training_equals_uninterrupted_and_layouts_are_deterministic(tmp_path, blocks):
    whole = train_placement(PlacementTrainConfig(**TINY, total_steps=96), tmp_path / "a", blocks)
    train_placement(PlacementTrainConfig(**TINY, total_steps=32), tmp_path / "b", blocks)
    resumed = train_placement(PlacementTrainConfig(**TINY, total_steps=96), tmp_path / "b",
                              blocks)
    assert whole["num_timesteps"] == resumed["num_timesteps"] == 96
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=0, msg=k)
    assert [p["steps"] for p in resumed["curve"]] == [32, 64, 96]
    assert resumed["curve"] == whole["curve"]
    # training changed the policy (the comparison above is not between two untrained nets)
    first = MaskablePPO.load(tmp_path / "a" / "ckpt" / "model.zip", device="cpu")
    assert (tmp_path / "a" / "tb").exists()
    placer = Placer(blocks)
    lay, err = placer.layout(first.policy, 3)
    lay2, err2 = placer.layout(MaskablePPO.load(tmp_path / "b" / "ckpt" / "model.zip",
                                                device="cpu").policy, 3)
    assert len(set(lay.tolist())) == 3 and (lay == lay2).all() and err == err2
    assert err == pytest.approx(whole["curve"][-1]["val_rel_l2_k3"])
    # the same policy places sensors on another grid and for a count it never trained on
    other = get_blocks("synthetic", data=synthetic_field(t=40, h=6, w=12, seed=3),
                       progress=False)
    lay3, err3 = Placer(other).layout(first.policy, 5)
    assert len(set(lay3.tolist())) == 5 and np.isfinite(err3)
    assert other.grid.valid_np.reshape(-1)[lay3].all()


def test_a_different_configuration_is_not_continued(tmp_path, blocks):
    train_placement(PlacementTrainConfig(**TINY, total_steps=32), tmp_path, blocks)
    with pytest.raises(ValueError, match="learning_rate"):
        train_placement(PlacementTrainConfig(**TINY, total_steps=64, learning_rate=1e-3),
                        tmp_path, blocks)
    assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] == 3e-4


def test_vec_env_gives_masks_to_maskable_ppo(blocks):
    venv = PlacementVecEnv(3, n_sensors=(2, 3), batch=2, blocks=blocks)
    venv.seed(0)
    obs = venv.reset()
    masks = np.stack(venv.env_method("action_masks"))
    assert obs.shape == (3, venv.observation_space.shape[0]) and masks.shape == (3, 80)
    assert not masks[:, ~blocks.grid.valid_np.reshape(-1)].any()


def test_separable_box_mean_equals_the_square_window_mean():
    import torch.nn.functional as F

    from agents.placement.policy import _box_mean

    x = torch.rand(2, 2, 9, 13)
    for s in (3, 7, 15):
        torch.testing.assert_close(_box_mean(x, s),
                                   F.avg_pool2d(x, s, 1, s // 2, count_include_pad=False))


def test_sampled_layouts_are_seeded_valid_and_scored_like_single_episodes(tmp_path, blocks):
    train_placement(PlacementTrainConfig(**TINY, total_steps=32), tmp_path, blocks)
    policy = MaskablePPO.load(tmp_path / "ckpt" / "model.zip", device="cpu").policy
    placer = Placer(blocks)
    lays, errs = placer.samples(policy, 3, 16, seed=5)
    again, errs2 = placer.samples(policy, 3, 16, seed=5)
    other, _ = placer.samples(policy, 3, 16, seed=6)
    assert lays.shape == (16, 3) and (lays == again).all() and (errs == errs2).all()
    assert not (lays == other).all()
    assert all(len(set(lay.tolist())) == 3 for lay in lays)
    assert blocks.grid.valid_np.reshape(-1)[lays].all()
    # each sample's error is the error of that layout scored alone on the same block
    core = placer.core(3)
    for i in (0, 7):
        core.reset_ids(np.array([0]), [0], [{"n_sensors": 3,
                                             "indices": np.arange(core.snaps.shape[1])}])
        for cell in lays[i]:
            *_, infos = core.step(np.array([cell]))
        assert infos[0]["rel_l2"] == pytest.approx(errs[i], rel=1e-9)
