"""The three activation grid conventions (integer zero point, float min..max, symmetric):
each against an independent float64 reference, training equals deployment, the float grid
keeps each example's extremes, and a convention means the same in the env and the rollout."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from models.nets import build_model
from models.quant import (
    FP_BITS,
    QUANT_BITS,
    ZERO_POINTS,
    DynamicQuantizer,
    RangeAwareQuantizer,
    fake_quant_activation,
    fake_quant_weight,
)
from models.quant.static import StaticQuantizer


def ref_group(g: np.ndarray, bits: int, zero_point: str) -> np.ndarray:
    """One range group in float64, written out from the definitions."""
    lo, hi, levels = g.min(), g.max(), 2 ** bits - 1
    if zero_point == "float":
        s = (hi - lo) / levels
        return g.copy() if s == 0 else lo + np.clip(np.round((g - lo) / s), 0, levels) * s
    if zero_point == "symmetric":
        m = 2 ** (bits - 1) - 1
        s = max(abs(lo), abs(hi)) / m
        return g.copy() if s == 0 else np.clip(np.round(g / s), -m, m) * s
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    s = (hi - lo) / levels
    if s == 0:
        return g.copy()
    z = np.clip(np.round(-lo / s), 0, levels)
    return (np.clip(np.round(g / s) + z, 0, levels) - z) * s


def ref_quant(x: np.ndarray, bits: int, per_channel: bool, zero_point: str) -> np.ndarray:
    if bits == FP_BITS:
        return x
    if per_channel and x.ndim > 1:
        return np.stack([ref_group(x[c], bits, zero_point) for c in range(x.shape[0])])
    return ref_group(x, bits, zero_point)


def ref_forward(net: nn.Module, x: torch.Tensor, plan: np.ndarray, per_channel: bool,
                zero_point: str, weight_bits: int | None) -> torch.Tensor:
    """One example at a time; quantized weights (when asked) on a copy of the network."""
    outs = []
    for i in range(len(x)):
        n = copy.deepcopy(net)
        layers = n.quantizable_layers()
        if weight_bits is not None and (plan[i] < FP_BITS).any():
            with torch.no_grad():
                for _, m in layers:
                    m.weight.copy_(fake_quant_weight(m.weight, weight_bits))
        for j, (_, m) in enumerate(layers):
            def hook(mod, args, bits=int(plan[i, j])):
                a = args[0][0].detach().numpy()
                return (torch.from_numpy(ref_quant(a, bits, per_channel, zero_point))[None],)
            m.register_forward_pre_hook(hook)
        with torch.no_grad():
            outs.append(n(x[i:i + 1]))
    return torch.cat(outs)


def _net(arch: str, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    net = build_model(arch, num_classes=5, in_channels=1, image_size=(12, 12), width=4,
                      mean=(0.5,), std=(0.25,))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net.to(dtype).eval()


def _x(n: int = 10, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _plan(n: int, layers: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice([*QUANT_BITS, FP_BITS], size=(n, layers))


@pytest.mark.parametrize("zero_point", ZERO_POINTS)
@pytest.mark.parametrize(("per_channel", "weight_bits"), [(False, None), (True, None),
                                                         (False, 8)])
@pytest.mark.parametrize("arch", ["cnn", "resnet8"])
def test_each_convention_agrees_with_its_reference_on_a_whole_network(arch, per_channel,
                                                                      weight_bits, zero_point):
    net, x = _net(arch), _x()
    qnet = DynamicQuantizer(net, per_channel=per_channel, weight_bits=weight_bits,
                            zero_point=zero_point)
    plan = _plan(len(x), qnet.n_layers)
    with torch.no_grad():
        ours = qnet(x, plan).logits
    ref = ref_forward(net, x, plan, per_channel, zero_point, weight_bits)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("zero_point", ZERO_POINTS)
@pytest.mark.parametrize(("arch", "per_channel", "weight_bits"), [("cnn", False, None),
                                                                 ("resnet8", True, 8)])
def test_training_quantizer_equals_deployment_under_each_convention(arch, per_channel,
                                                                   weight_bits, zero_point):
    net, x = _net(arch, torch.float32), _x(6, torch.float32)
    deploy = DynamicQuantizer(net, per_channel=per_channel, weight_bits=weight_bits,
                              zero_point=zero_point, fused=True)
    train = RangeAwareQuantizer(net, per_channel=per_channel, weight_bits=weight_bits,
                                zero_point=zero_point)
    try:
        for plan in [np.full((6, deploy.n_layers), b) for b in QUANT_BITS] + [
                _plan(6, deploy.n_layers, seed=3)]:
            with torch.no_grad():
                ref = deploy(x, plan).logits
                got, rho = train(x, torch.as_tensor(plan))
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
            assert torch.isfinite(rho).all()
    finally:
        deploy.remove()
        train.remove()


@pytest.mark.parametrize("fused", [False, True])
def test_the_float_grid_reproduces_each_examples_min_and_max_exactly(fused):
    x = torch.randn(32, 3, 7, 7, generator=torch.Generator().manual_seed(2)) * 3 + 1
    for bits in QUANT_BITS:
        q = fake_quant_activation(x, bits, zero_point="float", fused=fused).flatten(1)
        assert torch.equal(q.amin(1), x.flatten(1).amin(1))
        assert torch.equal(q.amax(1), x.flatten(1).amax(1))
        assert q.unique().numel() <= 32 * (2 ** bits)  # at most 2^b levels per example
    # the integer grid moves a strictly positive minimum (its range is stretched to 0)
    pos = torch.rand(4, 100, generator=torch.Generator().manual_seed(3)) + 0.3
    q_int = fake_quant_activation(pos, 4)
    assert not torch.equal(q_int.amin(1), pos.amin(1))
    q_sym = fake_quant_activation(x, 2, zero_point="symmetric").flatten(1)
    assert all(len(r.unique()) <= 3 for r in q_sym)  # {-s, 0, s} at 2 bits


def test_static_quantizer_follows_the_convention_and_bad_names_fail():
    net, x = _net("cnn", torch.float32), _x(8, torch.float32)
    ranges = torch.tensor([[0.2, 1.0]] * len(net.quantizable_layers()))
    outs = {zp: StaticQuantizer(net, ranges, 3, zero_point=zp)(x) for zp in ZERO_POINTS}
    assert not torch.allclose(outs["integer"], outs["float"])
    with pytest.raises(ValueError, match="zero_point must be one of"):
        DynamicQuantizer(net, zero_point="asym")
    with pytest.raises(ValueError, match="zero_point must be one of"):
        RangeAwareQuantizer(net, zero_point="")


@pytest.mark.parametrize("zero_point", ["float", "symmetric"])
def test_a_plan_means_the_same_in_the_env_and_the_rollout(zero_point, tiny_digits_net, digits):
    import gymnasium as gym

    from envs.ptq.rollout import env_parts, split_rollout

    kw = {"dataset": "digits", "zero_point": zero_point, "bit_choices": (2, 3, 4),
          "budget_bits": 2.0, "progress": False}
    env = gym.make("deploygym/DynamicPTQJoint-v0", net=tiny_digits_net, data=digits, **kw)
    qnet = DynamicQuantizer(tiny_digits_net, zero_point=zero_point)
    x = digits.test.images[:40]
    with torch.no_grad():
        direct = qnet(x, 2).logits.argmax(1).numpy()
    lowest = np.zeros(env.action_space.shape, dtype=np.int64)  # every layer at 2 bits
    for i in range(5):
        env.reset(seed=i, options={"split": "test", "index": i})
        *_, info = env.step(lowest)
        assert info["q_pred"] == direct[i]

    class Lowest:
        def predict(self, obs, deterministic=True, action_masks=None):
            return np.zeros((len(obs), *env.action_space.shape), dtype=np.int64), None

    cfg, res = env_parts(kw, tiny_digits_net, digits, env_id="deploygym/DynamicPTQJoint-v0")
    r = split_rollout(cfg, res, Lowest(), "test", limit=40)
    np.testing.assert_array_equal(r["q_pred"], direct)
    qnet.remove()
