"""DistillSource on a user's objects: any teacher module (its sha256 recorded, not compared with
the pinned one), a student builder, a registered transfer set, the ``target`` source read from
the given data, and one clear line for networks that do not fit the data."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch import nn

import distill.sources as sources
import envs  # noqa: F401
from distill.sources import register_source
from envs.distill_source.env import DistillSourceEnv
from envs.distill_source.teacher import TeacherMismatchError
from models.cache import state_dict_sha256
from models.device import intra_op_threads

SMALL = dict(pool_size=128, probe_size=64, stats_size=16, eval_size=200, phases=3,
             updates_per_phase=6, batch_size=32, progress=False, augment="none", lr=0.03)


@pytest.fixture(scope="module")
def user_teacher(digits):
    """A plain nn.Module (no DeployNet, no input_shape): an MLP fitted to digits in a second."""
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x, y = digits.train.images, digits.train.labels
    with intra_op_threads(1):
        for _ in range(100):
            idx = torch.randint(0, len(x), (128,), generator=gen)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def mlp_student(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), 32),
                         nn.ReLU(), nn.Linear(32, num_classes))


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))
    monkeypatch.setattr(sources, "_FINGERPRINTS", dict(sources._FINGERPRINTS))


def run(env, action, seed=0):
    _, first = env.reset(seed=seed)
    done = False
    while not done:
        _, _, done, _, info = env.step(action)
    return first, info


def test_a_user_teacher_distils_and_its_sha256_lands_in_the_result(user_teacher, digits,
                                                                   tmp_path):
    sha = state_dict_sha256(user_teacher)
    # the default dataset is fashion-mnist: a user teacher is not compared with its pinned one
    env = gym.make("deploygym/DistillSource-v0", teacher=user_teacher, data=digits,
                   sources=("target", "noise"), cache_dir=str(tmp_path),
                   **{**SMALL, "updates_per_phase": 20})
    first, info = run(env, 0)
    assert first["teacher_sha256"] == info["teacher_sha256"] == sha
    assert env.unwrapped.res.teacher_sha256 == sha and info["teacher_accuracy"] > 0.85
    assert info["final_agreement"] > first["probe_agreement"] + 0.2  # it learned the teacher
    with pytest.raises(TeacherMismatchError, match="not the ones given as teacher_sha256"):  # an explicit pin binds
        DistillSourceEnv(teacher=user_teacher, data=digits, teacher_sha256="0" * 64,
                         sources=("target", "noise"), cache_dir=str(tmp_path), **SMALL)


def test_the_target_source_reads_the_given_data(user_teacher, digits, tmp_path):
    from dataclasses import replace

    from models.datasets import Split

    flipped = replace(digits, train=Split(digits.train.images.flip(-1), digits.train.labels))
    env = DistillSourceEnv(teacher=user_teacher, data=flipped, sources=("target", "noise"),
                           cache_dir=str(tmp_path), **SMALL)
    pool = env.res.pools[0].images.flatten(1)
    near = lambda ref: torch.cdist(pool, ref.flatten(1)).min(1).values.max()  # noqa: E731
    assert near(flipped.train.images) < 0.02  # every target image is one of the given ones
    assert near(digits.train.images) > 0.1  # and not the named dataset's


def test_data_may_be_plain_images_and_labels(user_teacher, digits, tmp_path):
    x, y = digits.train.images, digits.train.labels
    env = DistillSourceEnv(teacher=user_teacher, data=(x, y), sources=("target", "noise"),
                           cache_dir=str(tmp_path), **SMALL)
    d = env.res.data
    assert d.info.name == "custom" and len(d.train) + len(d.val) + len(d.test) == len(x)
    pool = env.res.pools[0].images.flatten(1)
    assert torch.cdist(pool, d.train.images.flatten(1)).min(1).values.max() < 0.02
    assert info_keys_ok(env)


def info_keys_ok(env) -> bool:
    _, info = env.reset(seed=0)
    return info["teacher_sha256"] == state_dict_sha256(env.res.teacher)


def test_a_student_builder_or_name_trains_and_episodes_stay_seeded(user_teacher, digits,
                                                                     tmp_path):
    kw = dict(teacher=user_teacher, data=digits, sources=("target", "noise"),
              cache_dir=str(tmp_path), **SMALL)
    env = DistillSourceEnv(student=mlp_student, **kw)
    check_env(env)
    a, b = run(env, 0, seed=4)[1], run(env, 0, seed=4)[1]
    assert isinstance(env._runner.student, nn.Sequential)
    assert a["final_agreement"] == b["final_agreement"]
    assert a["final_agreement"] != run(env, 0, seed=5)[1]["final_agreement"]
    assert DistillSourceEnv(student="resnet8", **kw).cfg.student_arch == "resnet8"
    plain = DistillSourceEnv(student=lambda: mlp_student(10, (1, 8, 8)), **kw)  # no arguments
    plain.reset(seed=0)
    assert isinstance(plain._runner.student, nn.Sequential)


def test_networks_that_do_not_fit_the_data_fail_with_one_clear_line(user_teacher, digits,
                                                                    tmp_path):
    from envs.distill_source.vector import BatchedDistillSource

    kw = dict(data=digits, sources=("target", "noise"), cache_dir=str(tmp_path), **SMALL)
    wrong_input = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match=r"the teacher cannot take the data's images \[N, 1, 8, 8\]"):
        DistillSourceEnv(teacher=wrong_input, **kw)
    with pytest.raises(ValueError, match=r"the student returns \(2, 3\).*\(2, 10\)"):
        DistillSourceEnv(teacher=user_teacher, student=lambda: mlp_student(3, (1, 8, 8)), **kw)
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        DistillSourceEnv(teacher=user_teacher, student=lambda: "cnn", **kw)
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        DistillSourceEnv(teacher="my_teacher.pt", **kw)
    with pytest.raises(ValueError, match="without teacher="):
        DistillSourceEnv(**kw)  # the default (fashion-mnist) teacher cannot read digits
    with pytest.raises(ValueError, match="batched students need"):
        BatchedDistillSource(2, teacher=user_teacher, student=mlp_student, **kw)


def test_a_registered_source_is_used(user_teacher, digits, tmp_path, registry):
    def stripes(n, gen, image_size, channels):
        row = torch.rand(n, channels, 1, image_size[1], generator=gen)
        return row.expand(n, channels, *image_size).clone()

    register_source("stripes", stripes)
    env = gym.make("deploygym/DistillSourceDataFree-v0", teacher=user_teacher, data=digits,
                   sources="stripes,noise", cache_dir=str(tmp_path), **SMALL)
    check_env(env.unwrapped)
    pool = env.unwrapped.res.pools[0]
    assert pool.name == "stripes" and len(pool) == SMALL["pool_size"]
    assert torch.equal(pool.images, pool.images[:, :, :1].expand_as(pool.images))
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert info["source_name"] == "stripes" and info["kd_loss"] > 0
