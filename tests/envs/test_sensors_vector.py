"""The batched gappy-POD placement env: the single env's episodes, stepped together."""

from __future__ import annotations

import numpy as np
import pytest

from envs.sensors.env import SensorPlacementEnv
from envs.sensors.vector import K_SCALE, BatchedSensorPlacement
from fields.classical.synthetic import synthetic_field
from fields.pretrained import get_blocks


@pytest.fixture(scope="module")
def blocks():
    return get_blocks("synthetic", data=synthetic_field(t=80, h=8, w=10), progress=False)


def test_batched_episodes_equal_single_env_episodes(blocks) -> None:
    k, s = 4, 5
    core = BatchedSensorPlacement(3, n_sensors=(2, 6), batch=s, blocks=blocks)
    rng = np.random.default_rng(0)
    idx = [np.sort(rng.choice(len(blocks.train), s, replace=False)) for _ in range(3)]
    obs, infos = core.reset_ids(np.arange(3), [0, 1, 2],
                                [{"n_sensors": k, "indices": i} for i in idx])
    singles = [SensorPlacementEnv(pretrained=blocks, n_sensors=k, split="train", batch=s)
               for _ in range(3)]
    single_obs = [e.reset(seed=0, options={"indices": i})[0] for e, i in zip(singles, idx, strict=True)]
    for step in range(k):
        n = core.n_cells
        for j in range(3):
            np.testing.assert_array_equal(obs[j, :n], single_obs[j][:n])
            np.testing.assert_allclose(obs[j, n:2 * n + 1], single_obs[j][n:], atol=1e-5)
            assert obs[j, -1] == pytest.approx(k / K_SCALE)
        # includes occupied and invalid cells, which both envs repair the same way
        acts = rng.integers(0, n, size=3)
        obs, rew, done, infos = core.step(acts)
        for j, env in enumerate(singles):
            o, r, d, _, info = env.step(int(acts[j]))
            single_obs[j] = o
            assert infos[j]["cell"] == info["cell"] and d == done[j] == (step == k - 1)
            assert rew[j] == pytest.approx(r, rel=1e-5, abs=1e-7)
            assert infos[j]["rel_l2"] == pytest.approx(info["rel_l2"], rel=1e-5)
    assert (infos[0]["sensors"] == singles[0].sensors).all()


def test_episodes_are_deterministic_under_their_seeds_and_resume_from_state(blocks) -> None:
    def run(core, steps, rng):
        out = []
        for _ in range(steps):
            masks = core.action_masks()
            acts = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
            obs, rew, done, _ = core.step(acts)
            out.append((obs, rew))
            if done.any():
                out.append(core.reset_ids(np.flatnonzero(done))[0])
        return out

    a = BatchedSensorPlacement(4, n_sensors=(2, 5), batch=3, blocks=blocks)
    a.reset_ids(np.arange(4), [7, 8, 9, 10])
    assert set(a.k) <= set(range(2, 6))
    first = run(a, 3, np.random.default_rng(1))
    state = a.get_state()
    rest = run(a, 9, np.random.default_rng(2))
    b = BatchedSensorPlacement(4, n_sensors=(2, 5), batch=3, blocks=blocks)
    b.reset_ids(np.arange(4), [7, 8, 9, 10])
    for x, y in zip(first, run(b, 3, np.random.default_rng(1)), strict=True):
        np.testing.assert_array_equal(np.concatenate(x, None), np.concatenate(y, None))
    c = BatchedSensorPlacement(4, n_sensors=(2, 5), batch=3, blocks=blocks)
    c.set_state(state)
    for x, y in zip(rest, run(c, 9, np.random.default_rng(2)), strict=True):
        np.testing.assert_array_equal(np.concatenate(x, None), np.concatenate(y, None))


def test_bad_input_is_refused(blocks) -> None:
    with pytest.raises(ValueError, match="n_sensors"):
        BatchedSensorPlacement(2, n_sensors=(5, 2), blocks=blocks)
    core = BatchedSensorPlacement(2, n_sensors=3, blocks=blocks)
    core.reset_ids(np.arange(2), [0, 1])
    with pytest.raises(ValueError, match="integer cell"):
        core.step(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="in \\[0"):
        core.step(np.array([0, core.n_cells]))
