"""The dynamic PTQ engine: exactness, references, PyTorch's int8, error vs bits, STE."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.nets import build_model
from models.quant import (
    FP_BITS,
    QUANT_BITS,
    DynamicQuantizer,
    Prefix,
    RangeAwareQuantizer,
    check_bits,
    fake_quant_activation,
    fake_quant_weight,
    layer_stats,
    range_aware_fake_quant,
)
from models.quant.static import StaticQuantizer, calibrate


def _net(arch="cnn", seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    net = build_model(arch, num_classes=5, in_channels=1, image_size=(12, 12), width=4,
                      mean=(0.5,), std=(0.25,))
    with torch.no_grad():  # non-trivial BN statistics so layers see varied ranges
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net.to(dtype).eval()


def _x(n=16, seed=1, dtype=torch.float32):
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------- references (float64 numpy)
def ref_quant(x: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    """One example ``[...]``: asymmetric uniform quantization written out step by step."""
    if bits == FP_BITS:
        return x
    split = per_channel and x.ndim > 1
    groups = [x[c] for c in range(x.shape[0])] if split else [x]
    out = []
    for g in groups:
        lo, hi = min(g.min(), 0.0), max(g.max(), 0.0)
        levels = 2**bits - 1
        scale = (hi - lo) / levels
        if scale == 0:
            out.append(g)
            continue
        zp = min(max(np.round(-lo / scale), 0), levels)
        q = np.clip(np.round(g / scale) + zp, 0, levels)
        out.append((q - zp) * scale)
    return np.stack(out) if split else out[0]


def ref_forward(net: nn.Module, x: torch.Tensor, plan: np.ndarray, per_channel: bool) -> torch.Tensor:
    """The network run one example at a time, each layer input quantized by :func:`ref_quant`."""
    outs = []
    layers = net.quantizable_layers()
    for i in range(len(x)):
        hooks = []
        for j, (_, m) in enumerate(layers):
            def hook(mod, args, bits=int(plan[i, j])):
                a = args[0][0].detach().numpy()
                return (torch.from_numpy(ref_quant(a, bits, per_channel))[None],)
            hooks.append(m.register_forward_pre_hook(hook))
        try:
            with torch.no_grad():
                outs.append(net(x[i:i + 1]))
        finally:
            for h in hooks:
                h.remove()
    return torch.cat(outs)


def _random_plan(n, layers, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([2, 3, 4, 5, 6, 7, 8, FP_BITS], size=(n, layers))


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("arch", ["cnn", "resnet8"])
def test_full_precision_plan_equals_plain_network_exactly(arch):
    net, x = _net(arch), _x()
    qnet = DynamicQuantizer(net)
    with torch.no_grad():
        plain = net(x)
        out = qnet(x, FP_BITS, return_fp=True)
        assert torch.equal(out.logits, plain) and torch.equal(out.fp_logits, plain)
        plan = np.full((len(x), qnet.n_layers), FP_BITS)
        plan[::2] = 3  # quantized rows next to FP rows: the FP rows stay exact
        mixed = qnet(x, plan).logits
        assert torch.equal(mixed[1::2], plain[1::2])
        assert not torch.allclose(mixed[::2], plain[::2])
        assert torch.equal(net(x), plain), "hooks must be inert outside the wrapper's calls"


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("arch", ["cnn", "resnet8"])
def test_agrees_with_float64_per_example_reference(arch, per_channel):
    net, x = _net(arch, dtype=torch.float64), _x(dtype=torch.float64)
    qnet = DynamicQuantizer(net, per_channel=per_channel)
    plan = _random_plan(len(x), qnet.n_layers)
    with torch.no_grad():
        ours = qnet(x, plan).logits
    ref = ref_forward(net, x, plan, per_channel)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    # and float32 agrees with the float64 reference up to float32 rounding at 8 bits
    net32, plan8 = _net(arch), np.full_like(plan, 8)
    with torch.no_grad():
        ours32 = DynamicQuantizer(net32, per_channel=per_channel)(x.float(), plan8).logits
    torch.testing.assert_close(ours32.double(), ref_forward(net, x, plan8, per_channel),
                               rtol=0, atol=2e-3)


def test_each_example_is_quantized_independently_of_its_batch():
    net, x = _net("resnet8"), _x(8)
    qnet = DynamicQuantizer(net)
    plan = _random_plan(8, qnet.n_layers, seed=3)
    with torch.no_grad():
        batched = qnet(x, plan).logits
        single = torch.cat([qnet(x[i:i + 1], plan[i:i + 1]).logits for i in range(8)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def _torch_dynamic_linear(lin: nn.Linear, engine: str) -> nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(nn.Sequential(lin), {nn.Linear: per_channel_dynamic_qconfig})


@pytest.mark.parametrize("engine", ["qnnpack", "x86"])
def test_8bit_matches_pytorch_int8_dynamic_quantization(engine):
    """``torch.ao.quantization.quantize_dynamic`` (deprecated but present in torch 2.14) on a
    Linear. PyTorch measures the activation range per *tensor*, so it is called per example;
    x86/fbgemm uses ``reduce_range`` (7-bit activations), qnnpack the full 8 bits."""
    if engine not in torch.backends.quantized.supported_engines:
        pytest.fail(f"quantized engine {engine} missing from this torch build")
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(16, 64) * 2 + 0.3
    old = torch.backends.quantized.engine
    try:
        tq = _torch_dynamic_linear(lin, engine)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            y_torch = torch.cat([tq(r[None]) for r in x])
            w_torch = tq[0].weight().dequantize()
    finally:
        torch.backends.quantized.engine = old
    act_bits = 8 if engine == "qnnpack" else 7
    with torch.no_grad():
        # activations: identical quantization → equal up to float accumulation order
        ours = F.linear(fake_quant_activation(x, act_bits), w_torch, lin.bias)
        torch.testing.assert_close(ours, y_torch, rtol=0, atol=1e-5)
        # weights: symmetric per channel (ours ±127 levels, PyTorch's ±127.5): ≤ 1 step apart
        step = lin.weight.abs().amax(1, keepdim=True) / 127
        assert ((fake_quant_weight(lin.weight, 8) - w_torch).abs() <= step * 1.01).all()
        full = F.linear(fake_quant_activation(x, act_bits), fake_quant_weight(lin.weight, 8),
                        lin.bias)
        err_fp = (y_torch - lin(x)).abs().max()
        assert (full - y_torch).abs().max() <= 2 * err_fp  # within PyTorch's own rounding error


def test_error_grows_as_bits_shrink():
    net, x = _net("resnet8"), _x(64)
    qnet = DynamicQuantizer(net)
    with torch.no_grad():
        fp = net(x)
        errs = [float(((qnet(x, b).logits - fp) ** 2).mean()) for b in range(8, 1, -1)]
        xs = torch.randn(64, 3, 8, 8)
        rec = [float(((fake_quant_activation(xs, b) - xs) ** 2).mean()) for b in range(8, 1, -1)]
    assert all(a < b for a, b in zip(errs, errs[1:], strict=False)), errs
    # uniform quantization: each bit removed roughly quadruples the squared error
    ratios = np.array(rec[1:]) / np.array(rec[:-1])
    assert ((ratios[:-1] > 3.5) & (ratios[:-1] < 4.6)).all() and ratios[-1] > 3.5, ratios


def test_ste_passes_gradients_and_qat_learns():
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    g = torch.randn_like(x)
    (fake_quant_activation(x, torch.tensor([2, 3, 8, FP_BITS])) * g).sum().backward()
    assert torch.equal(x.grad, g)
    w = torch.randn(6, 3, 3, 3, requires_grad=True)
    fake_quant_weight(w, 4).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))

    net = _net("cnn").train()
    qnet = DynamicQuantizer(net, weight_bits=4)
    x, y = _x(32), torch.arange(32) % 5
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(qnet(x, 3).logits, y)
        opt.zero_grad()
        loss.backward()
        grads = [p.grad for _, m in net.quantizable_layers() for p in m.parameters()]
        assert all(gr is not None and gr.abs().sum() > 0 for gr in grads)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_stats_stop_early_and_match_direct_computation():
    net, x = _net("cnn"), _x(6)
    qnet = DynamicQuantizer(net)
    plan = _random_plan(6, qnet.n_layers, seed=5)
    with torch.no_grad():
        full = qnet(x, plan, return_stats=True, return_fp=True)
        part = qnet(x, plan, return_stats=True, stop_at=3)
        first_input = net.input_norm(x)
        only = qnet(x, plan, return_stats=True, stats_at=[2], stop_at=3).stats
    assert part.logits is None and torch.isnan(part.stats[:, 4:]).all()
    torch.testing.assert_close(part.stats[:, :4], full.stats[:, :4])
    torch.testing.assert_close(only[:, 2], full.stats[:, 2])
    assert torch.isnan(only[:, [0, 1, 3]]).all()
    torch.testing.assert_close(full.fp_stats[:, 0], full.stats[:, 0])  # nothing quantized yet
    flat = first_input.reshape(6, -1)
    manual_outliers = ((flat - flat.mean(1, keepdim=True)).abs()
                       > 3 * flat.std(1, unbiased=False, keepdim=True)).float().mean(1)
    expected = torch.stack((flat.min(1).values, flat.max(1).values, flat.std(1, unbiased=False),
                            manual_outliers), 1)
    torch.testing.assert_close(full.stats[:, 0], expected)
    torch.testing.assert_close(layer_stats(first_input), expected)


def test_weight_quantization_is_static_and_leaves_the_network_untouched():
    net, x = _net("cnn"), _x(4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    qnet = DynamicQuantizer(net, weight_bits=3)
    acts_only = DynamicQuantizer(net)
    with torch.no_grad():
        out = qnet(x, 8, return_fp=True)
        plain = net(x)
        a8 = acts_only(x, 8).logits
        all_fp = qnet(x, FP_BITS).logits
        plan = np.full((4, qnet.n_layers), 8)
        plan[[0, 2]] = FP_BITS  # FP rows next to quantized rows in one batch
        mixed = qnet(x, plan, return_stats=True)
        stats_fp = qnet(x[[0, 2]], FP_BITS, return_stats=True).stats
    assert torch.equal(out.fp_logits, plain) and not torch.allclose(out.logits, a8, atol=1e-3)
    assert torch.equal(all_fp, plain)  # FP means the float network, weights included
    torch.testing.assert_close(mixed.logits[[0, 2]], plain[[0, 2]])
    torch.testing.assert_close(mixed.logits[[1, 3]], out.logits[[1, 3]])
    torch.testing.assert_close(mixed.stats[[0, 2]], stats_fp)
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    qnet.remove()
    acts_only.remove()
    assert all(not m._forward_pre_hooks for _, m in net.quantizable_layers())


def test_invalid_bits_and_plans_raise():
    qnet = DynamicQuantizer(_net())
    with pytest.raises(ValueError, match="invalid bit-widths"):
        check_bits(np.array([4, 1, 9]))
    with pytest.raises(TypeError, match="integers"):
        check_bits(np.array([4.0]))
    with pytest.raises(ValueError, match="shape"):
        qnet(_x(3), np.full((2, qnet.n_layers), 4))
    with pytest.raises(ValueError, match="stop_at"):
        qnet(_x(3), 4, stop_at=qnet.n_layers)


def test_fused_quantization_matches_eager_up_to_float_rounding():
    net, x = _net("cnn"), _x(8)
    plan = _random_plan(8, 7, seed=2)
    with torch.no_grad():
        eager = DynamicQuantizer(net)(x, plan, return_stats=True)
        fused_q = DynamicQuantizer(net, fused=True)
        fused = fused_q(x, plan, return_stats=True)
        fused_small = fused_q(x[:3], plan[:3]).logits  # another batch size: no new graph
    torch.testing.assert_close(fused.logits, eager.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(fused.stats, eager.stats, rtol=1e-5, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(fused_small, eager.logits[:3], rtol=0, atol=1e-6)


def test_range_aware_quant_matches_deployment_forward_and_moves_ranges():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5, 5).relu().requires_grad_(True)
    bits = torch.tensor([2, 3, 4, 8, 32, 2])
    xq, rho = range_aware_fake_quant(x, bits)
    ref = fake_quant_activation(x.detach(), bits)
    assert torch.allclose(xq, ref, atol=1e-5)
    assert rho[4] == 0 and (rho[[0, 1, 2, 3, 5]] > 0).all()
    xq.sum().backward()  # the range (max element) receives a gradient, unlike plain STE
    g = x.grad.reshape(6, -1)
    assert not torch.allclose(g[0], torch.ones_like(g[0]))


@pytest.mark.parametrize("arch", ["cnn", "resnet8"])
@pytest.mark.parametrize(("per_channel", "weight_bits"), [(False, None), (True, None),
                                                         (False, 8), (True, 8)])
def test_training_quantizer_equals_deployment_quantizer_on_a_whole_network(arch, per_channel,
                                                                            weight_bits):
    net = _net(arch).eval()
    x = _x(6)
    deploy = DynamicQuantizer(net, per_channel=per_channel, weight_bits=weight_bits)
    train = RangeAwareQuantizer(net, per_channel=per_channel, weight_bits=weight_bits)
    plans = [np.full((6, deploy.n_layers), b) for b in (*QUANT_BITS, FP_BITS)]
    plans.append(_random_plan(6, deploy.n_layers, seed=3))
    try:
        for plan in plans:
            with torch.no_grad():
                ref = deploy(x, plan).logits
                got, rho = train(x, torch.as_tensor(plan))
            torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
            assert rho.shape == (6, deploy.n_layers) and torch.isfinite(rho).all()
    finally:
        deploy.remove()
        train.remove()


def test_static_quantizer_uses_the_calibrated_ranges():
    net = _net("cnn").eval()
    x = _x(1)
    ranges = calibrate(net, x)
    assert ranges.shape == (DynamicQuantizer(net).n_layers, 2)
    dyn = DynamicQuantizer(net)
    try:
        for b in (3, 4, 8):
            # one calibration image, only the first layer quantized: static = dynamic
            plan = np.full((1, dyn.n_layers), FP_BITS)
            plan[0, 0] = b
            st = StaticQuantizer(net, ranges[:1].expand(dyn.n_layers, 2), b)
            st.layers = st.layers[:1]
            with torch.no_grad():
                torch.testing.assert_close(st(x), dyn(x, plan).logits)
    finally:
        dyn.remove()
    full = StaticQuantizer(net, ranges, 8, weight_bits=8)
    with torch.no_grad():
        torch.testing.assert_close(full(x), net(x), atol=0.05, rtol=0.05)
        assert not torch.equal(full(x), net(x))
        wide = _x(8, seed=4) * 3  # outside the calibrated range: clipped, not rescaled
        assert not torch.allclose(StaticQuantizer(net, ranges, 8)(wide),
                                  dyn_free(net, wide), atol=1e-3)


def dyn_free(net, x):
    q = DynamicQuantizer(net)
    try:
        with torch.no_grad():
            return q(x, 8).logits
    finally:
        q.remove()


@pytest.mark.parametrize("arch", ["cnn", "resnet8"])
@pytest.mark.parametrize("weight_bits", [None, 8])
def test_resume_layer_by_layer_equals_one_forward(arch, weight_bits):
    """Stopping at every layer and continuing from the kept activation gives the same
    statistics and logits as one forward; each segment is entered from its kept input."""
    net, x = _net(arch), _x(5)
    qnet = DynamicQuantizer(net, weight_bits=weight_bits)
    plan = torch.as_tensor(_random_plan(5, qnet.n_layers, seed=7))
    chained = torch.nn.Sequential(*(m for _, m in net.segments()))
    with torch.no_grad():
        torch.testing.assert_close(chained(x), net(x), rtol=0, atol=0)
        full = qnet(x, plan, return_stats=True)
        prefix = Prefix(0, x)
        for j in range(qnet.n_layers):
            out, prefix = qnet.resume(prefix, plan, stop_at=j, return_stats=True, stats_at=[j])
            assert out.logits is None and prefix.seg == qnet.layer_segment[j]
            torch.testing.assert_close(out.stats[:, j], full.stats[:, j], rtol=1e-5, atol=1e-6)
        last, nxt = qnet.resume(prefix, plan)
    assert nxt is None
    torch.testing.assert_close(last.logits, full.logits, rtol=1e-5, atol=1e-6)
    assert len(set(qnet.layer_segment)) > 1  # the network really is cut into pieces
    with pytest.raises(ValueError, match="before the prefix"):
        qnet.resume(prefix, plan, stop_at=0)


@pytest.mark.parametrize("arch", ["cnn", "resnet8"])
def test_plan_logits_share_prefixes_and_equal_one_forward_per_plan(arch):
    from models.quant.plans import plan_logits

    qnet = DynamicQuantizer(_net(arch))
    x = _x(6)
    rng = np.random.default_rng(3)  # 40 plans over 3 bit-widths: many shared prefixes
    plans = rng.choice([2, 4, FP_BITS], size=(40, qnet.n_layers))
    plans[1] = plans[0]  # a duplicate plan gets its own (equal) row
    runs = []  # the first segment's executions
    hook = qnet.net.segments()[0][1].register_forward_hook(lambda *_: runs.append(1))
    got = plan_logits(qnet, x, plans)
    hook.remove()
    assert got.shape == (40, 6, 5)
    with torch.no_grad():
        for j, plan in enumerate(plans):
            want = qnet(x, torch.as_tensor(plan).expand(6, -1)).logits
            torch.testing.assert_close(got[j], want, rtol=1e-5, atol=1e-6)
    assert 1 <= len(runs) <= 3  # once per bit-width of layer 0, not once per plan
