"""``deploygym/SensorPlacement-v0`` on real COADS SST with a tiny cached Voronoi-CNN."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401
from envs.sensors.baselines import greedy_placement, qr_placement, random_placement
from envs.sensors.env import SensorPlacementEnv
from fields.netcdf import load_ferret
from fields.pretrained import get_reconstructor, model_dir, resolve_config

TINY = {"width": 4, "depth": 2, "kernel": 3, "out_kernel": 3, "epochs": 1, "steps_per_epoch": 2,
        "batch_size": 4, "sensors": (1, 2, 3), "train_layouts": 3, "eval_layouts": 1,
        "max_eval": 2}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fields-models")


@pytest.fixture(scope="module")
def pre(cache):  # a named field: keyed by its name (a user's data= by its content)
    return get_reconstructor("coads-sst", cache_root=cache, progress=False, **TINY)


def make(pre, **kw) -> SensorPlacementEnv:
    return SensorPlacementEnv(pretrained=pre, **({"n_sensors": 3, "batch": 2,
                                                  "estimator": "cnn"} | kw))


def test_checkers_pass(pre) -> None:
    gym_check_env(make(pre), skip_render_check=True)
    sb3_check_env(make(pre), warn=True)


def test_same_seed_same_episode_and_rewards_sum_to_improvement(pre) -> None:
    def rollout(seed: int):
        env = make(pre, split="train", batch=3)
        obs, info = env.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(seed)
        rewards, done = [], False
        while not done:
            a = rng.choice(np.flatnonzero(env.action_masks()))
            obs, r, done, trunc, info = env.step(a)
            assert not trunc
            out.append(obs)
            rewards.append(r)
        return np.stack(out), rewards, info

    o1, r1, i1 = rollout(3)
    o2, r2, i2 = rollout(3)
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2 and i1["rel_l2_random"] == i2["rel_l2_random"]
    assert not np.array_equal(rollout(4)[2]["indices"], i1["indices"])
    assert sum(r1) == pytest.approx(i1["improvement"], abs=1e-6)
    assert i1["improvement"] == pytest.approx(1 - i1["rel_l2"] / i1["rel_l2_mean_field"])
    for key in ("rmse", "rel_l2_qr", "beats_random", "beats_qr", "n_repaired", "sensors"):
        assert key in i1
    assert len(set(i1["sensors"].tolist())) == 3
    assert i1["rel_l2_gappy_pod"] == i2["rel_l2_gappy_pod"] > 0


def test_gappy_pod_estimator_env_needs_no_network_and_rewards_its_own_error() -> None:
    from fields.pretrained import get_blocks

    blocks = get_blocks("coads-sst", data=load_ferret("coads-sst"), progress=False, coarsen=3)
    env = SensorPlacementEnv(pretrained=blocks, estimator="gappy_pod", n_sensors=6, batch=2)
    gym_check_env(env, skip_render_check=True)
    _, info = env.reset(seed=0)
    rewards, done = [], False
    for cell in env.qr_layout():
        _, r, done, _, info = env.step(cell)
        rewards.append(r)
    assert done and info["rel_l2"] == pytest.approx(info["rel_l2_qr_gappy_pod"], rel=1e-5)
    assert info["rel_l2"] == pytest.approx(info["rel_l2_gappy_pod"], rel=1e-5)
    assert sum(rewards) == pytest.approx(info["improvement"], abs=1e-6) and info["improvement"] > 0
    with pytest.raises(ValueError, match="estimator must be one of"):
        SensorPlacementEnv(pretrained=blocks, estimator="kriging")
    with pytest.raises(ValueError, match="needs a Pretrained network"):
        SensorPlacementEnv(pretrained=blocks, estimator="cnn")


def test_gappy_pod_scores_layouts_with_its_own_estimator(pre) -> None:
    env = make(pre, split="test", batch=4)
    env.reset(seed=0, options={"split": "test", "indices": [0, 1]})
    c = env.gappy_pod_choice()
    assert 1 <= c.rank <= env._pod.max_rank and c.val_rel_l2 == min(c.table.values())
    x = pre.test.values[:2]
    pred = env._pod.gappy(x, env.qr_layout(), c.rank, c.lam)
    w = np.cos(np.radians(pre.data.coords["lat"]))[:, None] * pre.grid.valid_np
    manual = np.mean([np.sqrt((((p - t) ** 2) * w).sum() / ((t ** 2) * w).sum())
                      for p, t in zip(pred, x, strict=True)])
    assert env.gappy_pod_error(env.qr_layout()) == pytest.approx(manual, rel=1e-4)


def test_masks_exclude_land_and_occupied_cells_and_bad_actions_fail_clearly(pre) -> None:
    env = make(pre)
    env.reset(seed=0)
    land = np.flatnonzero(~pre.grid.valid_np.reshape(-1))
    m = env.action_masks()
    assert land.size and not m[land].any() and m.sum() == pre.grid.valid_np.sum()
    first = int(np.flatnonzero(m)[0])
    env.step(first)
    assert not env.action_masks()[first]
    _, _, _, _, info = env.step(first)  # occupied: moved to the nearest free ocean cell
    assert info["repaired"] and info["cell"] != first and pre.grid.valid_np.reshape(-1)[info["cell"]]
    with pytest.raises(ValueError, match="outside"):
        env.step(env.action_space.n)
    with pytest.raises(ValueError, match="integer"):
        env.step(1.5)
    with pytest.raises(ValueError, match="n_sensors must be in"):
        make(pre, n_sensors=4)
    with pytest.raises(ValueError, match="split"):
        make(pre, split="holdout")
    with pytest.raises(RuntimeError, match="reset"):
        make(pre).step(first)


def test_render_shows_field_sensors_and_reconstruction(pre) -> None:
    env = make(pre, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.action_masks())[5]))
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 10  # not a blank image


def test_registered_ids_build_with_overrides(pre, cache) -> None:
    env = gym.make("deploygym/SensorPlacementSST-v0", n_sensors=2, cache_dir=str(cache),
                   progress=False, model=TINY)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.pre.meta["sha256"] == pre.meta["sha256"]  # loaded from the cache


def test_cache_is_verified_and_rebuilt_when_corrupt(pre, cache) -> None:
    d = model_dir(resolve_config("coads-sst", **TINY), cache)
    meta = json.loads((d / "meta.json").read_text())
    assert meta["config"]["width"] == 4 and "versions" in meta
    (d / "model.pt").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="unusable"):
        again = get_reconstructor("coads-sst", cache_root=cache, progress=False, **TINY)
    assert again.meta["sha256"] == json.loads((d / "meta.json").read_text())["sha256"]


def test_qr_pivoting_picks_well_conditioned_ocean_cells(pre) -> None:
    from fields.classical.pod import POD

    valid = pre.grid.valid_np
    k = 5
    pod = POD(pre.train, valid)
    sensors = qr_placement(pod, valid, k)
    assert len(set(sensors.tolist())) == k and valid.reshape(-1)[sensors].all()
    qr_cond = np.linalg.cond(pod.modes[pod.sensor_rows(sensors), :k])
    rng = np.random.default_rng(0)
    rand_cond = [np.linalg.cond(pod.modes[pod.sensor_rows(random_placement(valid, k, rng)), :k])
                 for _ in range(20)]
    assert qr_cond < np.median(rand_cond)
    more = qr_placement(pre.train, valid, 10)  # beyond the 7 modes 8 months allow
    assert len(set(more.tolist())) == 10 and valid.reshape(-1)[more].all()
    assert np.array_equal(more, qr_placement(pre.train, valid, 10))  # seeded beyond the rank


def test_greedy_search_respects_its_budget_and_finds_the_best_cells() -> None:
    valid = np.ones((4, 5), dtype=bool)
    valid[0, 0] = False
    target = {7, 12, 18}
    calls = []

    def score(layout: np.ndarray) -> float:
        calls.append(layout)
        return -len(target & set(layout.tolist())) + 0.01 * len(layout)

    layout, spent = greedy_placement(score, valid, 3, 1000, np.random.default_rng(0))
    assert set(layout.tolist()) == target and spent == len(calls) == 19 + 18 + 17
    layout, spent = greedy_placement(score, valid, 3, 12, np.random.default_rng(0))
    assert spent == len(calls) - 54 == 12 and valid.reshape(-1)[layout].all()
    with pytest.raises(ValueError, match="fewer than one per sensor"):
        greedy_placement(score, valid, 3, 2, np.random.default_rng(0))


def test_agents_train_runs_maskable_ppo_on_it(pre, cache, tmp_path: Path) -> None:
    from agents.train import main as train_main

    model = "{" + ", ".join(f"{k}: {list(v) if isinstance(v, tuple) else v}"
                            for k, v in TINY.items()) + "}"
    run = train_main(["--algo", "maskable_ppo", "--env", "deploygym/SensorPlacementSST-v0",
                      "--env-kwargs", "n_sensors:2", "batch:2", f"cache_dir:{cache}",
                      "progress:false", f"model:{model}", "-n", "32", "--n-envs", "2",
                      "--hyperparams", "n_steps:16", "batch_size:16", "n_epochs:1",
                      "--eval-freq", "0", "--save-freq", "0", "-f", str(tmp_path),
                      "--no-progress-bar", "-v", "0", "--device", "cpu"])
    assert any(Path(run).rglob("*.zip"))
