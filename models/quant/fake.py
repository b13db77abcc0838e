"""Uniform fake quantization with a straight-through estimator (STE).

Conventions (shared by the whole suite):

* A bit-width is an integer in ``2..8`` or :data:`FP_BITS` (``32``), which means "full
  precision": the tensor passes through untouched. 32 is the storage width of a float32, so a
  bit plan's mean bits stays a meaningful cost.
* Activations: a range measured on **each example** (per tensor, or per channel with
  ``per_channel=True``) and one of three grid conventions (``zero_point=``, see
  :data:`ZERO_POINTS`; a result about dynamic quantization depends on it, so name it):

  - ``"integer"`` (default): asymmetric (affine), ``2**b`` levels ``0..2**b-1`` over
    ``[min(lo, 0), max(hi, 0)]`` with an integer zero point, so zero is exactly representable
    (zero padding, ReLU zeros), as in PyTorch's own dynamic quantization;
  - ``"float"``: ``2**b`` levels from the example's own min to its max,
    ``x̂ = lo + round((x − lo)/s)·s`` with ``s = (hi − lo)/(2**b − 1)``: the min and max are
    reproduced exactly, zero in general is not;
  - ``"symmetric"``: a signed grid without zero point, levels ``-(2**(b-1)-1)..2**(b-1)-1``
    with ``s = max abs(x) / (2**(b-1) - 1)`` (the TensorRT-style activation convention).

  A constant tensor (zero range) passes unchanged under every convention.
* Weights: symmetric per output channel, levels ``-(2**(b-1)-1) .. 2**(b-1)-1``, static
  (computed from the weights, never from the data).
* Rounding is round-half-to-even (``torch.round``), like ``torch.quantize_per_tensor``.
* The STE passes the gradient of the quantized value straight to its input (identity),
  so quantization-aware training works unchanged.
"""

from __future__ import annotations

import os
import shutil
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from models.device import compile_quietly

FP_BITS = 32
QUANT_BITS = tuple(range(2, 9))
VALID_BITS = (*QUANT_BITS, FP_BITS)
ZERO_POINTS = ("integer", "float", "symmetric")


def check_zero_point(zero_point: str) -> str:
    """``zero_point`` if it is one of :data:`ZERO_POINTS`, else a ``ValueError`` naming them."""
    if zero_point not in ZERO_POINTS:
        raise ValueError(f"zero_point must be one of {ZERO_POINTS}, got {zero_point!r}")
    return zero_point


def quant_options(per_channel: bool, weight_bits: int | None, zero_point: str
                  ) -> tuple[bool, int | None, str]:
    """Checked ``(per_channel, weight_bits, zero_point)`` of a quantizer wrapper."""
    if weight_bits is not None:
        check_bits(int(weight_bits))
    return bool(per_channel), weight_bits, check_zero_point(zero_point)


def check_bits(bits: torch.Tensor | np.ndarray | int) -> None:
    """Raise ``ValueError`` unless every entry of ``bits`` is in :data:`VALID_BITS`."""
    arr = bits.detach().cpu().numpy() if isinstance(bits, torch.Tensor) else np.asarray(bits)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"bit-widths must be integers, got dtype {arr.dtype}")
    bad = ~np.isin(arr, VALID_BITS)
    if bad.any():
        raise ValueError(f"invalid bit-widths {sorted(set(arr[bad].tolist()))}; valid are "
                         f"{QUANT_BITS[0]}..{QUANT_BITS[-1]} and {FP_BITS} (full precision)")


def ste(x: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """``xq`` in the forward pass, identity gradient to ``x`` in the backward pass."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return xq
    return x + (xq - x).detach()


def activation_range(x: torch.Tensor, per_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example ``(lo, hi)`` of ``x`` (``[B, ...]``), shaped to broadcast against ``x``.

    Per channel needs a channel axis with spatial extent (``x.ndim > 2``); a ``[B, F]`` input
    is always measured per tensor (one value per feature has no range).
    """
    b = x.shape[0]
    if per_channel and x.ndim > 2:
        flat, dim = x.detach().flatten(2), 2
        shape = (b, x.shape[1]) + (1,) * (x.ndim - 2)
    else:
        flat, dim = rows(x.detach()), 1
        shape = (b,) + (1,) * (x.ndim - 1)
    lo, hi = row_minmax(flat, dim)
    return lo.reshape(shape), hi.reshape(shape)


def row_minmax(flat: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(amin, amax)`` along ``dim``: two vectorised reductions, several times faster on CPU
    than one ``aminmax(dim=)`` (which does not vectorise along a reduced inner axis)."""
    return flat.amin(dim=dim), flat.amax(dim=dim)


def rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``[B, -1]`` in memory order (no copy for contiguous or channels-last 4-D
    tensors); for per-example reductions where the element order does not matter."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    return x.reshape(x.shape[0], -1)


def qparams(levels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and (integer-valued) zero point of the affine grid ``0..levels`` over
    ``[min(lo, 0), max(hi, 0)]`` (small per-example tensors)."""
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    # a zero range means an all-zero tensor: scale 1 then reproduces it exactly
    scale = (hi - lo) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, torch.round(-lo / scale).clamp(torch.zeros_like(levels), levels)


def quantize_grid(x: torch.Tensor, levels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
            keep: torch.Tensor | None, zero_point: str = "integer") -> torch.Tensor:
    """The quantize–dequantize arithmetic of convention ``zero_point``.

    ``"integer"``: ``(clamp(round(x/s) + z, 0, levels) − z) · s``, written as
    ``clamp(round(x/s), −z, levels − z) · s`` (the same value: ``z`` is an integer) with one
    allocation and in-place passes; broadcasting a per-example operand as the *first*
    argument of an op is several times slower on CPU, so only ``x`` leads. ``"float"``:
    ``lerp(lo, hi, round((x − lo)/s)/levels)`` (exact at both ends of the range).
    ``"symmetric"``: ``clamp(round(x/s), −m, m) · s`` with ``m = (levels − 1)/2``.
    """
    if zero_point == "float":
        scale = (hi - lo) / levels
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.sub(x, lo).div_(scale).round_().clamp_(min=0).minimum(levels)
        xq = torch.lerp(lo.expand_as(x), hi.expand_as(x), q.div_(levels))
    elif zero_point == "symmetric":
        m = (levels - 1) / 2
        scale = torch.maximum(-lo, hi) / m
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        xq = torch.div(x, scale).round_()
        xq = torch.minimum(torch.maximum(xq, -m), m).mul_(scale)
    else:
        scale, zp = qparams(levels, lo, hi)
        xq = torch.div(x, scale)
        xq.round_().clamp_(-zp, levels - zp).mul_(scale)
    return xq if keep is None else torch.where(keep, x, xq)


def _grid_function(*key: str | int) -> Callable[..., torch.Tensor]:
    """``quantize_grid`` at convention ``key[0]`` as a function with a code object of its
    own, named after ``key``.

    Dynamo keeps compiled graphs, and its limit of 8 recompiles, per code object, and guards
    on rank, strides, ``None`` arguments and sizes 0 and 1: one function for all layers
    recompiled per layer kind and, past 8, ran the rest uncompiled. One function per
    convention, range kind, rank, memory layout and FP-row presence (:func:`_fused`) leaves
    each with only the size-1 variants (batch size 1, a single input channel): at most 4
    graphs, and no graph is compiled twice.
    """
    zero_point = str(key[0])

    def grid(x: torch.Tensor, levels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
             keep: torch.Tensor | None) -> torch.Tensor:
        return quantize_grid(x, levels, lo, hi, keep, zero_point)

    code = grid.__code__.replace(co_name="quantize_grid_" + "_".join(map(str, key)))
    return types.FunctionType(code, grid.__globals__, code.co_name, None, grid.__closure__)


_FUSED: dict[Any, Any] = {}  # (convention, kind, rank, layout) -> compiled; 'failed'
NO_COMPILE_ENV = "DEPLOYGYM_NO_COMPILE"


def fused_available() -> bool:
    """Whether the fused path can be built here: ``torch.compile`` needs a C++ compiler on
    CPU; ``DEPLOYGYM_NO_COMPILE=1`` turns it off."""
    if os.environ.get(NO_COMPILE_ENV, "") not in ("", "0"):
        return False
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def _fused(x: torch.Tensor, levels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
           keep: torch.Tensor | None, zero_point: str = "integer") -> torch.Tensor | None:
    """``quantize_grid`` compiled into one fused loop (bit for bit the eager result), one
    compiled function per convention, range kind, rank, layout and FP-row presence
    (:func:`_grid_function`); ``None`` (after one warning, for the rest of the process) when
    compiling or running it fails, so callers fall back to the eager arithmetic."""
    if _FUSED.get("failed"):
        return None
    layout = "contiguous"
    if not x.is_contiguous():
        if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
            layout = "channels_last"
        else:
            x = x.contiguous()  # any other strides would be a graph each
    key = (zero_point, "rows" if lo.numel() == x.shape[0] else "channels", x.ndim, layout,
           "fp" if keep is not None else "nofp")
    try:
        if key not in _FUSED:
            _FUSED[key] = compile_quietly(_grid_function(*key), dynamic=True)
        return _FUSED[key](x, levels, lo, hi, keep)
    except Exception as e:  # noqa: BLE001 - any compiler failure means "use eager"
        _FUSED["failed"] = True
        warnings.warn(f"fused quantization is unavailable ({type(e).__name__}: {e}); using the "
                      f"eager path (same results up to float rounding)", RuntimeWarning,
                      stacklevel=3)
        return None


def fake_quant_activation(x: torch.Tensor, bits: torch.Tensor | int, per_channel: bool = False,
                          *, has_fp: bool | None = None,
                          lohi: tuple[torch.Tensor, torch.Tensor] | None = None,
                          fused: bool = False, zero_point: str = "integer") -> torch.Tensor:
    """Quantize–dequantize ``x`` with a range measured per example, at ``bits[i]`` for row i.

    Args:
        x: ``[B, ...]`` activations.
        bits: ``[B]`` integer tensor (one bit-width per example) or one int for all; entries
            equal to :data:`FP_BITS` leave their row untouched.
        per_channel: one range per (example, channel) instead of per example.
        has_fp: whether any entry of ``bits`` is FP, when the caller already knows (saves a
            device synchronisation).
        lohi: the per-example ``(min, max)`` from :func:`activation_range`, if already known.
        fused: run the arithmetic as one ``torch.compile``-d loop (bit for bit the eager
            result; compiles on first use, a few seconds). Only without autograd and not for
            the ``"float"`` grid; otherwise, or if compiling fails (warned once), the eager
            path is used.
        zero_point: the grid convention, one of :data:`ZERO_POINTS` (module docstring).
    """
    check_zero_point(zero_point)
    b = x.shape[0]
    if not isinstance(bits, torch.Tensor):
        bits = torch.full((b,), int(bits), device=x.device)
    bits = bits.to(x.device)
    bshape = (b,) + (1,) * (x.ndim - 1)
    levels = torch.exp2(bits.clamp(max=16).to(x.dtype)).sub_(1).reshape(bshape)
    lo, hi = lohi if lohi is not None else activation_range(x, per_channel)
    fp_rows = bits >= FP_BITS
    if has_fp is None:
        has_fp = bool(fp_rows.any())
    keep = fp_rows.reshape(bshape) if has_fp else None
    needs_grad = x.requires_grad and torch.is_grad_enabled()
    # the compiled lerp of the float grid differs from eager in the last bit: kept eager so
    # training and deployment agree exactly under every convention
    fuse = fused and not needs_grad and zero_point != "float"
    xq = _fused(x.detach(), levels, lo, hi, keep, zero_point) if fuse else None
    return ste(x, xq if xq is not None else quantize_grid(x.detach(), levels, lo, hi, keep,
                                                    zero_point))


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel quantize–dequantize of a weight ``[C_out, ...]``."""
    if bits >= FP_BITS:
        return w
    qmax = 2 ** (bits - 1) - 1
    amax = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = (amax / qmax).reshape((w.shape[0],) + (1,) * (w.ndim - 1))
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    wq = torch.clamp(torch.round(w.detach() / safe), -qmax, qmax) * safe
    return ste(w, wq)
