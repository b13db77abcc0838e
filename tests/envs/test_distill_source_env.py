"""The DistillSource environment: API checks, determinism, rewards, observations, errors.

A tiny digits teacher (8×8 images) and small pools keep every test to seconds.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from distill.guided import relative_entropy
from envs.distill_source.actions import decode_action
from envs.distill_source.config import make_config
from envs.distill_source.env import DistillSourceEnv
from envs.distill_source.phase import draw_batch
from envs.distill_source.resources import SourceUnavailableError

SOURCES = ("target", "opengl", "leaves", "noise")
FREE = ("opengl", "leaves", "noise", "uniform")
EXACT = "donot_use_mm_for_euclid_dist"  # the matmul shortcut is off by ~1e-3 for equal rows
SMALL = dict(pool_size=256, probe_size=96, stats_size=32, eval_size=300, phases=4,
             updates_per_phase=4, batch_size=32, attack_images=8, progress=False,
             student_width=8, student_depth=1, augment="none")


@pytest.fixture(scope="module")
def kit(tiny_digits_net, digits):
    return {"teacher": tiny_digits_net, "data": digits, "dataset": "digits"}


def make(kit, **kw):
    return DistillSourceEnv(**kit, **{"sources": SOURCES, **SMALL, **kw})


def play(env, actions, seed):
    obs, info = env.reset(seed=seed)
    traj, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        traj.append(obs)
        rewards.append(r)
        if term:
            return traj, rewards, info
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("kw", [
    {},
    {"action_mode": "mixture", "probe": "sources", "sources": FREE},
    {"control_augment": True, "control_attack": True, "mixup_alpha": 1.0, "probe": "sources",
     "sources": FREE},
    {"action_mode": "mixture", "control_augment": True, "reward": "accuracy"},
])
def test_gymnasium_and_sb3_checkers_pass(kit, kw):
    env = make(kit, render_mode="rgb_array", **kw)
    check_env(env)
    sb3_check_env(env)
    env.reset(seed=0)
    before = env.render()
    env.step(env.action_space.sample())
    after = env.render()
    for frame in (before, after):
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_registered_ids_are_idempotent_and_build(kit):
    before = len(gym.registry)
    assert envs.register_distill_source() == envs.DISTILL_SOURCE_IDS
    assert len(gym.registry) == before
    assert gym.spec("deploygym/DistillSourceDataFree-v0").kwargs == {"probe": "sources"}
    env = gym.make("deploygym/DistillSourceMixtureDataFree-v0", **kit,
                   **{**SMALL, "sources": FREE})
    assert isinstance(env.action_space, gym.spaces.Box) and env.unwrapped.cfg.probe == "sources"
    env = gym.make("deploygym/DistillSourceAugment-v0", **kit, **{**SMALL, "sources": FREE})
    assert list(env.action_space.nvec) == [len(FREE), 3, 2]


@pytest.mark.parametrize("kw", [{}, {"control_augment": True, "control_attack": True,
                                     "mixup_alpha": 1.0}])
def test_same_seed_same_episode(kit, kw):
    env = make(kit, **kw)
    env.action_space.seed(3)
    acts = [env.action_space.sample() for _ in range(env.cfg.phases)]
    a, ra, ia = play(env, acts, seed=11)
    b, rb, ib = play(env, acts, seed=11)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) and ra == rb
    assert ia["final_accuracy"] == ib["final_accuracy"]
    c, rc, _ = play(env, acts, seed=12)
    assert rc != ra  # another student initialisation and other batches


def test_return_is_the_probe_agreement_gain_and_info_is_complete(kit):
    env = make(kit, reward_scale=10.0, record_timings=True)
    obs, info0 = env.reset(seed=0)
    rewards = []
    for k in range(env.cfg.phases):
        obs, r, term, trunc, info = env.step(k % env.cfg.n_sources)
        rewards.append(r)
        assert info["phase"] == k + 1 and info["source"] == k % env.cfg.n_sources
        assert info["source_name"] == SOURCES[k % 4] and info["weights"].sum() == pytest.approx(1)
        for key in ("time_phase", "time_data", "time_teacher", "time_update", "time_eval"):
            assert info[key] >= 0
        assert info["time_phase"] >= info["time_update"] > 0
        assert 0 <= info["probe_accuracy"] <= 1
    assert term and not trunc
    gain = info["probe_agreement"] - info0["probe_agreement"]
    assert sum(rewards) == pytest.approx(10.0 * gain, abs=1e-9)
    assert list(info["schedule"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(info["mean_weights"], np.full(4, 0.25))
    assert 0 <= info["final_accuracy"] <= 1 and info["teacher_accuracy"] > 0.8
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_observation_layout_and_closed_loop_source_features(kit):
    env = make(kit)
    obs, _ = env.reset(seed=0)
    s, c = len(SOURCES), 10
    assert obs.shape == (4 + c + 5 * s,)
    assert obs[0] == 0 and obs[1] == 1  # phase 0, whole budget left
    student = env.unwrapped._runner.student
    n = env.cfg.stats_size
    with torch.no_grad():
        student.eval()
        preds = [student(p.images[:n]).argmax(1) for p in env.res.pools]
        student.train()
    np.testing.assert_allclose(obs[4 + c:4 + c + s], [relative_entropy(q, c) for q in preds],
                               rtol=1e-5)  # the *student's* balance on each pool
    agree = [float((q == p.logits[:n].argmax(1)).float().mean())
             for q, p in zip(preds, env.res.pools, strict=True)]
    np.testing.assert_allclose(obs[4 + c + 2 * s:4 + c + 3 * s], agree, rtol=1e-5)
    obs1, *_ = env.step(2)
    assert obs1[0] == pytest.approx(1 / env.cfg.phases)
    usage = obs1[4 + c + 4 * s:]
    np.testing.assert_allclose(usage, np.eye(s)[2])
    recent = obs1[4 + c + 3 * s:4 + c + 4 * s]
    assert recent[[0, 1, 3]].tolist() == [0, 0, 0]  # only the chosen source is credited
    # closed loop: the per-source block follows the student, not the pools
    block = slice(4 + c, 4 + c + 3 * s)
    assert not np.allclose(obs[block], obs1[block])
    with torch.no_grad():
        for prm in student.parameters():
            prm.mul_(0.0)  # another student, same phase and pools
    env.unwrapped._src_stats = env.unwrapped._source_stats()
    assert not np.allclose(env.unwrapped._obs()[block], obs1[block])


def test_distilling_from_target_beats_noise(kit):
    env = make(kit, phases=5, updates_per_phase=8, lr=0.03, student_width=8)
    _, r_target, i_target = play(env, [0] * 5, seed=0)
    _, r_noise, i_noise = play(env, [3] * 5, seed=0)
    assert sum(r_target) > sum(r_noise)
    assert i_target["final_accuracy"] > i_noise["final_accuracy"] + 0.2


def test_data_free_probe_uses_no_target_images(kit):
    env = make(kit, probe="sources", sources=FREE)
    assert env.res.probe_labels is None and len(env.res.probe_images) == SMALL["probe_size"]
    train = kit["data"].train.images.flatten(1)
    probe = env.res.probe_images.flatten(1)
    assert torch.cdist(probe, train, compute_mode=EXACT).min() > 1e-3  # no target image
    pools = torch.cat([p.images for p in env.res.pools]).flatten(1)
    assert torch.cdist(probe, pools, compute_mode=EXACT).min() > 1e-4  # and none is in the training pools
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert "probe_accuracy" not in info


def test_mixture_weights_and_attack_compose_the_batch(kit):
    cfg = make_config({"sources": SOURCES, "action_mode": "mixture", "control_attack": True},
                      has_teacher=True)
    d = decode_action(np.array([1.0, -1.0, -1.0, 0.0, 1.0], dtype=np.float32), cfg)
    assert d.attack and d.weights[0] > 0.95 and d.weights.sum() == pytest.approx(1)
    env = make(kit, attack=True)
    gen = torch.Generator().manual_seed(0)
    w = np.array([0.5, 0.0, 0.5, 0.0])
    x, logits, src = draw_batch(env.res.pools, w, 400, True, gen)
    assert set(src.tolist()) == {0, 2} and abs((src == 0).float().mean() - 0.5) < 0.1
    boundary = torch.cat([env.res.pools[i].boundary.images for i in (0, 2)]).flatten(1)
    from_boundary = torch.cdist(x.flatten(1), boundary, compute_mode=EXACT).min(1).values < 1e-6
    assert 0.4 < from_boundary.float().mean() < 0.6  # half of each share: boundary samples
    assert len(logits) == 400


def test_invalid_actions_raise_clear_errors(kit):
    env = make(kit)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        env.step(4)
    with pytest.raises(TypeError, match="integer"):
        env.step(1.5)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0, 1]))
    mix = make(kit, action_mode="mixture")
    mix.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        mix.step(np.array([np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        mix.step(np.array([2.0, 0, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        mix.step(np.zeros(3))
    aug = make(kit, control_augment=True)
    aug.reset(seed=0)
    with pytest.raises(ValueError, match="augment level"):
        aug.step(np.array([0, 3]))


def test_bad_options_and_missing_sources_raise_clear_errors(kit, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown source.*valid names"):
        make(kit, sources=("opengl", "sunsets"))
    with pytest.raises(ValueError, match="≥ 2 distinct"):
        make(kit, sources=("opengl",))
    with pytest.raises(ValueError, match="data-free"):
        make(kit, probe="sources")  # 'target' is among SOURCES
    with pytest.raises(ValueError, match="labelled target"):
        make(kit, probe="sources", sources=FREE, reward="accuracy")
    with pytest.raises(TypeError, match="unknown options"):
        make(kit, phasez=3)
    with pytest.raises(ValueError, match="phases"):
        make(kit, phases=0)
    monkeypatch.setenv("DEPLOYGYM_DATA", str(tmp_path))  # no CIFAR files there
    with pytest.raises(SourceUnavailableError, match="'cifar10'.*sources="):
        make(kit, sources=("cifar10", "noise"))


def test_evaluate_hook_reports_the_schedule(kit, tmp_path):
    from agents.analysis.hooks import HookContext, find_hooks

    hooks = dict(find_hooks("deploygym/DistillSource-v0"))
    assert "distill_source_schedule" in hooks

    class Always2:
        def predict(self, obs, deterministic=True):
            return np.int64(2), None

    kw = {**kit, **SMALL, "sources": SOURCES, "phases": 3}
    ctx = HookContext("deploygym/DistillSource-v0", kw, Always2(), tmp_path,
                      options={"episodes": 2}, progress=False)
    out = hooks["distill_source_schedule"](ctx)
    assert out["schedule_share"][2] == [1.0, 1.0, 1.0] and out["mean_weights"][2] == 1.0
    assert (tmp_path / "distill_source_schedule.png").exists()


def test_balanced_agreement_does_not_reward_predicting_one_class():
    from envs.distill_source.phase import probe

    class OneClass(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()

    t_logits = torch.eye(4)[torch.tensor([0] * 7 + [1, 2, 3])] * 5  # teacher: mostly class 0
    r = probe(OneClass(), torch.zeros(10, 1, 2, 2), t_logits, 4, 4.0)
    assert r.agreement == pytest.approx(0.7) and r.balanced == pytest.approx(0.25)
    np.testing.assert_allclose(r.per_class, [1, 0, 0, 0])
    assert make_config({"probe": "sources", "sources": FREE}, has_teacher=True).reward \
        == "balanced_agreement"
    assert make_config({}, has_teacher=True).reward == "agreement"


def test_pinned_teacher_is_loaded_and_a_different_teacher_is_refused(tiny_digits_net, digits):
    from envs.distill_source.teacher import (
        TeacherMismatchError,
        check_teacher,
        load_pinned,
        pinned_entry,
        weights_sha256,
    )

    entry = pinned_entry("fashion-mnist", "cnn")
    net = load_pinned("fashion-mnist", "cnn")
    assert entry is not None and weights_sha256(net) == entry["weights_sha256"]
    assert net.meta["pinned"] and net.meta["test_acc"] > 0.9
    assert check_teacher(net, "fashion-mnist", "cnn", "pinned") == entry["weights_sha256"]
    with torch.no_grad():
        next(net.parameters()).add_(1e-6)  # one changed weight is another teacher
    with pytest.raises(TeacherMismatchError, match="teacher_sha256=None"):
        check_teacher(net, "fashion-mnist", "cnn", "pinned")
    assert check_teacher(net, "fashion-mnist", "cnn", None) == weights_sha256(net)
    # through the env: an explicit checksum that the given teacher does not have is refused
    with pytest.raises(TeacherMismatchError, match="not the ones given as teacher_sha256"):
        gym.make("deploygym/DistillSource-v0", teacher=tiny_digits_net, data=digits,
                 dataset="digits", teacher_sha256="0" * 64, pool_size=64, progress=False)
    with pytest.raises(ValueError, match="teacher_sha256"):
        gym.make("deploygym/DistillSource-v0", teacher=tiny_digits_net, data=digits,
                 dataset="digits", teacher_sha256="abc", progress=False)


@pytest.mark.parametrize("options", [{}, {"seed": 1}])  # the env's and the held-out teacher
def test_env_distils_from_the_pinned_teacher_without_training(options, monkeypatch, tmp_path):
    import models.zoo
    from envs.distill_source.teacher import pinned_entry, weights_sha256

    def no_training(*a, **k):
        raise AssertionError("a pinned teacher must not be trained or loaded from the cache")

    monkeypatch.setattr(models.zoo, "get_trained", no_training)
    env = gym.make("deploygym/DistillSource-v0", sources=["opengl", "noise"], pool_size=64,
                   probe_size=32, eval_size=64, phases=2, updates_per_phase=2,
                   cache_dir=str(tmp_path), progress=False, **options)
    teacher = env.unwrapped.res.teacher
    entry = pinned_entry("fashion-mnist", "cnn", options)
    assert entry["recipe"]["seed"] == options.get("seed", 0)
    assert weights_sha256(teacher) == entry["weights_sha256"] == env.unwrapped.res.teacher_sha256
    env.close()


def test_a_teacher_with_options_is_checked_against_its_own_pinned_entry():
    from envs.distill_source.teacher import (
        TeacherMismatchError,
        check_teacher,
        load_pinned,
        pinned_entry,
    )

    held_out = load_pinned("fashion-mnist", "cnn", options={"seed": 1})
    assert held_out.meta["pinned"] and held_out.meta["test_acc"] > 0.9
    assert check_teacher(held_out, "fashion-mnist", "cnn", "pinned", {"seed": 1}) \
        == pinned_entry("fashion-mnist", "cnn", {"seed": 1})["weights_sha256"]
    with pytest.raises(TeacherMismatchError, match=r"fashion-mnist/cnn\?seed=1"):
        check_teacher(load_pinned("fashion-mnist", "cnn"), "fashion-mnist", "cnn", "pinned",
                      {"seed": 1})
    with pytest.raises(TeacherMismatchError, match="not the pinned fashion-mnist/cnn "):
        check_teacher(held_out, "fashion-mnist", "cnn", "pinned")
    # options nobody pinned: no entry, so the env trains that teacher and checks nothing
    assert pinned_entry("fashion-mnist", "cnn", {"seed": 2}) is None
    assert load_pinned("fashion-mnist", "cnn", options={"seed": 2}) is None


@pytest.mark.parametrize("kw", [{}, {"control_augment": True, "mixup_alpha": 1.0,
                                     "action_mode": "mixture"}])
def test_batched_students_equal_one_by_one_episodes(kit, kw):
    """N episodes whose students train as one grouped network give each episode's student,
    observations and rewards of DistillSourceEnv with the same seed and actions."""
    from envs.distill_source.vector import BatchedDistillSource

    n, seeds = 3, [5, 6, 7]
    batched = BatchedDistillSource(n, **kit, **{"sources": SOURCES, **SMALL, **kw})
    batched.action_space.seed(0)
    obs_b, _ = batched.reset(seeds)
    actions = [[batched.action_space.sample() for _ in range(n)] for _ in range(SMALL["phases"])]
    for a in actions[0]:
        assert batched.action_space.contains(a)
    steps_b = [batched.step(a) for a in actions]
    assert steps_b[-1][2].all() and not steps_b[0][2].any()
    # obs layout: time (2), probe agreement/loss (2), per-class agreement (C), source stats
    # (3S), recent gain (S), usage (S), controls. Grouped and separate convolutions round
    # differently, and Adam turns that noise in near-zero gradients into steps of ~lr, so for
    # some actions (and CPUs) a probe image's argmax flips: the student-derived entries get a tolerance,
    # the rest must be exact.
    c, s = batched.envs[0].res.num_classes, len(SOURCES)
    learned = np.zeros(batched.observation_space.shape[0], dtype=bool)
    learned[2:4 + c + 4 * s] = True
    students = []
    for i in range(n):
        env = make(kit, **kw)
        obs, _ = env.reset(seed=seeds[i])
        np.testing.assert_allclose(obs, obs_b[i], atol=1e-6)
        for t, a in enumerate(actions):
            obs, r, done, _, info = env.step(a[i])
            ob, rb, db, ib = (x[i] for x in steps_b[t])
            np.testing.assert_array_equal(obs[~learned], ob[~learned])
            diff = np.abs(obs[learned] - ob[learned])
            assert diff.max() < 0.3 and diff.mean() < 0.03, diff
            assert r == pytest.approx(rb, abs=2 * env.cfg.reward_scale / env.cfg.probe_size)
            assert done == db and info["source"] == ib["source"]
        students.append((env._runner.student, batched.envs[i]._runner.student))

    def flat(net):
        return torch.cat([v.float().ravel() for v in net.state_dict().values()])

    # the grouped student equals the separate one to ~1e-6 on most action draws and drifts
    # to ~1 % on some (16 draws measured); allow 10 % of the distance to another episode's
    # student (other seed, batches, sources)
    for i, (one, grouped) in enumerate(students):
        other = flat(students[(i + 1) % n][1])
        assert (flat(one) - flat(grouped)).norm() < 0.1 * (flat(one) - other).norm()
    with pytest.raises(RuntimeError, match="reset"):
        batched.step(actions[0])  # the episodes ended together


def test_batched_vec_env_is_the_dummy_vec_env_and_trains_ppo(kit):
    """DistillSourceVecEnv = DummyVecEnv of one-by-one envs (seeds seed + i): same actions
    give the same sources, usage and done/auto-reset; SB3's PPO trains on it via
    agents.vec.make_training_env(..., "batched")."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.vec import DistillSourceVecEnv, make_training_env

    n, kw = 2, {"sources": SOURCES, **SMALL, "phases": 2}
    venv = DistillSourceVecEnv(n, **kit, **kw)
    ref = DummyVecEnv([lambda: DistillSourceEnv(**kit, **kw) for _ in range(n)])
    for v in (venv, ref):
        v.seed(3)
    obs, obs_ref = venv.reset(), ref.reset()
    np.testing.assert_allclose(obs, obs_ref, atol=1e-6)
    for t in range(3):  # crosses the end of the first episodes
        a = np.array([t % 4, (t + 1) % 4])
        (obs, r, d, info), (obs_r, r_r, d_r, info_r) = venv.step(a), ref.step(a)
        assert d.tolist() == d_r.tolist() == [t == 1, t == 1]
        np.testing.assert_allclose(r, r_r, atol=2 * 10.0 / SMALL["probe_size"])
        assert [i["source"] for i in info] == [i["source"] for i in info_r]
        usage = slice(-len(SOURCES), None)
        np.testing.assert_array_equal(obs[:, usage], obs_r[:, usage])
        if t == 1:
            np.testing.assert_allclose(obs, obs_r, atol=1e-6)  # both reset: fresh students
            assert all("terminal_observation" in i for i in info)
    assert venv.get_attr("cfg")[0].phases == 2
    assert venv.env_method("render") == [None, None]
    with pytest.raises(AttributeError, match="together"):
        venv.env_method("reset")
    venv.close()

    train_env = make_training_env("deploygym/DistillSourceDataFree-v0", 2, 0,
                                  {**kit, **{**kw, "sources": FREE}}, "batched")
    assert train_env.get_attr("cfg")[0].probe == "sources"  # the variant's own kwargs
    model = PPO("MlpPolicy", train_env, n_steps=4, batch_size=8, n_epochs=1, seed=0)
    model.learn(8)
    assert model.num_timesteps == 8


def test_compute_cost_is_charged_from_the_source_table_and_reported(kit):
    """With compute_cost, a phase loses c · (images · ms per image of the chosen source);
    the cost is in info either way, and the same episode without the charge differs by
    exactly that."""
    from envs.distill_source.costs import SOURCE_MS_PER_IMAGE

    plain = make(kit)
    charged = make(kit, compute_cost=2.0, source_cost_ms={"noise": 1.5})
    images = SMALL["updates_per_phase"] * SMALL["batch_size"]
    actions = [SOURCES.index(s) for s in ("leaves", "noise", "target", "leaves")]
    _, r_plain, info_plain = play(plain, actions, seed=4)
    _, r_charged, info_charged = play(charged, actions, seed=4)
    expect = [images * ms / 1000 for ms in (SOURCE_MS_PER_IMAGE["leaves"], 1.5,
                                             SOURCE_MS_PER_IMAGE["target"],
                                             SOURCE_MS_PER_IMAGE["leaves"])]
    np.testing.assert_allclose(np.subtract(r_plain, r_charged), 2.0 * np.array(expect),
                               rtol=1e-9, atol=1e-12)
    assert info_charged["episode_data_cost_s"] == pytest.approx(sum(expect))
    assert info_plain["episode_data_cost_s"] == pytest.approx(
        sum(expect) - images * (1.5 - SOURCE_MS_PER_IMAGE["noise"]) / 1000)
    with pytest.raises(ValueError, match="compute_cost"):
        make(kit, compute_cost=-1.0)
    with pytest.raises(ValueError, match="source_cost_ms"):
        make(kit, source_cost_ms={"noise": float("nan")})
