"""DynamicPTQ on a researcher's own network and data: torchvision's resnet18 and a plain MLP as
``net=``, data as tensors, and ``data=`` without ``net=`` training on that data, not the
named dataset."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
import torchvision
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from torch import nn

import envs  # noqa: F401  (registers the ids)
from envs.ptq.env import DynamicPTQEnv
from envs.ptq.resources import get_resources, release_resources
from models.datasets import load_dataset


def resnet18_1ch() -> nn.Module:
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # the stem adapted to 1 channel
    return m


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits_tensors():
    """sklearn's digits as plain (images, labels) tensors, 10 of each class: the user's data
    (small, so the resnet18's FP cache is one chunk)."""
    d = load_dataset("digits")
    keep = torch.cat([torch.nonzero(d.train.labels == c)[:10, 0] for c in range(10)])
    return d.train.images[keep], d.train.labels[keep]


# resnet18 in sequential mode (21 steps, each continuing a forward that is one segment: the
# module's own forward); its joint mode runs in the agents.pairs test
@pytest.mark.parametrize("build, n_layers, mode", [(resnet18_1ch, 21, "sequential"),
                                                   (mlp, 2, "sequential"), (mlp, 2, "joint")])
def test_a_plain_module_passes_both_checkers(build, n_layers, mode, digits_tensors):
    module = build()
    env = gym.make("deploygym/DynamicPTQ-v0", net=module, data=digits_tensors,
                   action_mode=mode, render_mode="rgb_array", progress=False,
                   fused_quant=False)  # the eager path: no compilation in a short test
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    base = env.unwrapped
    assert base.n_layers == n_layers and base.res.net.module is module
    assert (len(base.res.data.train), len(base.res.data.val), len(base.res.data.test)) == \
        (80, 10, 10)  # 80/10/10, seeded and stratified
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, r, done, _, info = env.step(env.action_space.sample())
    with torch.no_grad():  # the env's default split is train
        fp = module(base.res.split("train").images[info["index"]][None]).argmax(1).item()
    assert info["fp_pred"] == fp  # the FP baseline is the user's module itself
    assert info["mean_bits"] >= 4.0 - 1e-9
    # a second env on the same objects shares the wrapper and the resources
    kw = dict(net=module, data=digits_tensors, progress=False, fused_quant=False)
    assert DynamicPTQEnv(**kw).res is base.res  # the same objects share one set of resources
    release_resources(module)
    assert DynamicPTQEnv(**kw).res is not base.res
    release_resources(module)


def test_data_without_net_trains_on_that_data_keyed_by_content(digits_tensors):
    from envs.ptq.config import make_config

    x, y = digits_tensors
    cfg = make_config({"arch": "cnn", "width": 2, "epochs": 1, "progress": False}, has_net=False)
    a = get_resources(cfg, None, (x, y))
    b = get_resources(cfg, None, (1.0 - x, y))  # other data under the same (default) name
    assert a.data.info.name == b.data.info.name == "custom"
    assert a.net.meta["config"]["data_sha256"] != b.net.meta["config"]["data_sha256"]
    assert not all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters(),
                                                     strict=True))
    assert a.data.info.image_size == (8, 8) and len(a.data.test) == 10
    # never the named dataset's network: the default is fashion-mnist (28×28 inputs)
    assert tuple(a.net.input_shape) == (1, 8, 8)
