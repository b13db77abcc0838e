"""The fast fake-quantization kernels: exact ranges at rounding ties, the compiled (fused)
path and its fallbacks."""

import warnings

import pytest
import torch

from models.quant import FP_BITS, QUANT_BITS, fake_quant_activation


def test_a_common_0_255_clamp_is_not_exact_for_per_example_bit_widths():
    """The fused native kernel idea (``fake_quantize_per_channel_affine`` over the batch axis
    with one clamp [0, 255] for every bit-width) fails at a rounding tie: with range
    [-3.5, 11.5] at 4 bits (scale 1, zero point round(3.5) = 4) the top value rounds to
    12 + 4 = 16 > 15 and dequantizes above the range; the per-example clamp keeps it at 11."""
    x = torch.tensor([[-3.5, 0.0, 11.5]])
    ours = fake_quant_activation(x, 4)
    native = torch.fake_quantize_per_channel_affine(
        x, torch.tensor([1.0]), torch.tensor([4], dtype=torch.int32), 0, 0, 255)
    assert ours.max() == 11.0 and ours.max() <= x.max()
    assert native.max() == 12.0 and native.max() > x.max()


def test_fast_range_and_affine_match_a_float64_reference_at_every_bit_width():
    torch.manual_seed(3)
    x = torch.randn(6, 4, 7, 7).relu() - 0.2
    for per_channel in (False, True):
        for bits in QUANT_BITS:
            got = fake_quant_activation(x, bits, per_channel)
            xd = x.double()
            dims = (2, 3) if per_channel else (1, 2, 3)
            lo = xd.amin(dim=dims, keepdim=True).clamp(max=0)
            hi = xd.amax(dim=dims, keepdim=True).clamp(min=0)
            scale = (hi - lo) / (2 ** bits - 1)
            zp = torch.round(-lo / scale)
            ref = (torch.clamp(torch.round(xd / scale) + zp, 0, 2 ** bits - 1) - zp) * scale
            close = (got.double() - ref).abs() <= 1e-5
            # float32 vs float64 may flip a rounding tie: then by exactly one step
            step = scale.expand_as(ref)
            flips = ~close
            assert flips.float().mean() < 1e-3
            assert torch.allclose((got.double() - ref).abs()[flips], step[flips], rtol=1e-4)


def test_fused_path_falls_back_to_eager_when_compiling_fails(monkeypatch):
    from models.quant import fake

    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no compiler")
        return call

    monkeypatch.setattr(fake, "_FUSED", {})
    monkeypatch.setattr(fake.torch, "compile", broken)
    x = torch.rand(4, 3, 5, 5)
    with pytest.warns(RuntimeWarning, match="using the eager path"):
        got = fake_quant_activation(x, 4, fused=True)
    torch.testing.assert_close(got, fake_quant_activation(x, 4))
    fake_quant_activation(x, 4, fused=True)  # warned once; eager from then on


def test_fused_default_follows_the_compiler_and_can_be_turned_off(monkeypatch):
    from envs.ptq.config import make_config
    from models.quant.fake import NO_COMPILE_ENV, fused_available

    monkeypatch.setenv(NO_COMPILE_ENV, "1")
    assert not fused_available()
    monkeypatch.delenv(NO_COMPILE_ENV)
    monkeypatch.setenv("CXX", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not fused_available()
    assert make_config({}, has_net=False).fused_quant is None  # resolved when built


def test_fused_quantizer_compiles_once_for_every_layer_and_batch_size():
    """Every batch size ≥ 2 of a layer kind (rank, layout, FP rows or not) runs the graph
    compiled for its first batch: one graph per compiled function, no recompile-limit
    warning (one function for all layers once recompiled per kind and, past dynamo's limit
    of 8, ran the rest uncompiled), and the fused result equals the eager one bit for bit."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from models.quant import fake

    torch._dynamo.reset()
    counters.clear()
    fake._FUSED.clear()
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 14, 14), (32,), (16, 7, 7), (10,), (3, 5, 5)]
    batches = (2, 3, 4, 5, 7, 8, 11, 16, 17, 33, 64, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a recompile-limit or fallback warning fails
        for i, b in enumerate(batches):
            x = torch.randn(b, *shapes[i % len(shapes)], generator=gen) * 3 + 0.5
            bits = torch.randint(2, 9, (b,), generator=gen)
            bits[: (i // 2) % 2] = FP_BITS  # FP rows in every other pair of calls
            got = fake_quant_activation(x, bits, fused=True)
            assert torch.equal(got, fake_quant_activation(x, bits)), (b, x.shape)
            assert got.shape == x.shape and got.stride() == x.stride()
    compiled = [k for k in fake._FUSED if k != "failed"]
    assert len(compiled) == 4  # rank 2 and 4, with and without FP rows
    assert counters["stats"]["unique_graphs"] == len(compiled), dict(counters["stats"])


def test_compiling_does_not_warn_about_a_missing_cuda_runtime(caplog):
    """A CPU-only machine with a CUDA toolkit: inductor's import of torch.utils.cpp_extension
    warns "No CUDA runtime is found"; that one record is dropped, others still show."""
    import logging

    from models.device import CPP_EXTENSION_LOGGER, quiet_cpp_extension

    quiet_cpp_extension()
    log = logging.getLogger(CPP_EXTENSION_LOGGER)
    with caplog.at_level(logging.WARNING, logger=CPP_EXTENSION_LOGGER):
        log.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
        log.warning("another warning")
    messages = [r.getMessage() for r in caplog.records]
    if torch.cuda.is_available():
        assert len(messages) == 2
    else:
        assert messages == ["another warning"]
