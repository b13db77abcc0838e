"""Dynamic post-training quantization of a whole network with one bit plan per example.

>>> qnet = DynamicQuantizer(net)                       # net: a DeployNet (eval mode)
>>> plan = torch.full((len(x), qnet.n_layers), 4)      # 4-bit activations everywhere
>>> out = qnet(x, plan, return_fp=True, return_stats=True)
>>> out.logits, out.fp_logits, out.stats.shape         # stats: [B, n_layers, 4]

A forward pre-hook on every quantizable layer (``net.quantizable_layers()``) quantizes that
layer's *input* with ``plan[:, j]`` — a different bit-width for each row of the batch, in one
batched forward (no loop over examples). The hooks do nothing outside this wrapper's calls, so
the wrapped network keeps working as a plain network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from models.quant.fake import (
    FP_BITS,
    activation_range,
    check_bits,
    fake_quant_activation,
    fake_quant_weight,
    quant_options,
    row_minmax,
    rows,
)

STAT_NAMES = ("min", "max", "std", "outlier_frac")
OUTLIER_SIGMA = 3.0


@dataclass
class QuantOutput:
    """What one :meth:`DynamicQuantizer.forward` call returns.

    Attributes:
        logits: ``[B, classes]`` under the plan; ``None`` when the pass stopped early.
        fp_logits: ``[B, classes]`` of the full-precision network (``return_fp=True``).
        stats: ``[B, n_layers, 4]`` statistics (:data:`STAT_NAMES`) of each layer's input as it
            arrives (after the quantization of earlier layers, before its own); NaN for layers
            a stopped pass did not reach.
        fp_stats: the same statistics in the full-precision pass.
    """

    logits: torch.Tensor | None
    fp_logits: torch.Tensor | None = None
    stats: torch.Tensor | None = None
    fp_stats: torch.Tensor | None = None


def _merge(first_rows: torch.Tensor, a: torch.Tensor | None,
           b: torch.Tensor | None) -> torch.Tensor | None:
    """Rows ``first_rows`` from ``a``, the others from ``b`` (in order); ``None`` stays."""
    if a is None or b is None:
        return None
    out = a.new_empty((len(first_rows), *a.shape[1:]))
    out[first_rows], out[~first_rows] = a, b
    return out


@dataclass
class Prefix:
    """A forward stopped at the input of segment ``seg`` of the network
    (``net.segments()``): ``h`` is that input, ``[B, ...]``, computed under the bits of
    every layer in the segments before it. ``Prefix(0, x)`` is the start of a forward."""

    seg: int
    h: torch.Tensor


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early."""


@dataclass
class _Ctx:
    plan: torch.Tensor                  # [B, L] int64 on the device
    fp_cols: list[bool]                 # layer j is FP for every row
    any_fp: list[bool]                  # layer j is FP for some row
    stats: torch.Tensor | None          # [B, L, 4] filled by the hooks
    stats_at: set[int] | None           # layers whose statistics are wanted (None: all)
    stop_at: int | None


def layer_stats(x: torch.Tensor, minmax: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
    """``[B, 4]``: min, max, std and the fraction of elements beyond 3 std of the mean.

    Two-pass (centred) moments with vectorised reductions and in-place passes: on CPU
    ``std_mean`` and boolean sums are an order of magnitude slower than the quantization they
    describe.
    """
    flat = rows(x.detach())
    mn, mx = minmax if minmax is not None else row_minmax(flat, 1)
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    std = torch.linalg.vector_norm(centred, dim=1, keepdim=True) / flat.shape[1] ** 0.5
    outliers = centred.abs_().gt_(OUTLIER_SIGMA * std).mean(dim=1)
    return torch.stack((mn, mx, std[:, 0], outliers), dim=1)


class DynamicQuantizer(nn.Module):
    """Wraps a network so each example's activations are quantized at its own bit-widths.

    Args:
        net: a network with ``quantizable_layers()`` (every :class:`models.nets.DeployNet`).
        per_channel: activation ranges per (example, channel) instead of per example.
        weight_bits: static symmetric per-channel weight quantization of the quantizable
            layers (``None``: float weights) for every row whose plan quantizes something; a
            row whose plan is all :data:`FP_BITS` is the float network, weights included, so
            "FP" means the same everywhere. Applied through ``torch.func.functional_call``,
            so the wrapped network and its ``state_dict`` are never modified.
        fused: fuse the quantization arithmetic with ``torch.compile`` (inference only;
            the same results up to float rounding, much less memory traffic on large batches; needs a C++
            compiler and compiles for a few seconds on first use).
        zero_point: the activation grid convention, ``"integer"`` (PyTorch's), ``"float"``
            (each example's exact min..max) or ``"symmetric"`` (:mod:`models.quant.fake`).
    """

    def __init__(self, net: nn.Module, *, per_channel: bool = False,
                 weight_bits: int | None = None, fused: bool = False,
                 zero_point: str = "integer") -> None:
        super().__init__()
        self.net = net
        self.per_channel, self.weight_bits, self.zero_point = quant_options(
            per_channel, weight_bits, zero_point)
        self.fused = bool(fused)
        layers = net.quantizable_layers()
        self.layer_names: list[str] = [n for n, _ in layers]
        self._ctx: _Ctx | None = None
        self._handles = [m.register_forward_pre_hook(self._make_hook(j))
                         for j, (_, m) in enumerate(layers)]
        self._macs: np.ndarray | None = None
        self.segments: list[tuple[str, nn.Module]] = (
            net.segments() if hasattr(net, "segments") else [("", net)])
        self.layer_segment: list[int] = [
            next(i for i, (sn, _) in enumerate(self.segments)
                 if not sn or n == sn or n.startswith(sn + "."))
            for n in self.layer_names]
        self._captured: Prefix | None = None

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def remove(self) -> None:
        """Detach the hooks from the wrapped network."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _make_hook(self, j: int):
        def hook(module: nn.Module, args: tuple) -> tuple | None:
            ctx = self._ctx
            if ctx is None:
                return None
            x = args[0]
            lohi = None
            if ctx.stats is not None and (ctx.stats_at is None or j in ctx.stats_at):
                with torch.no_grad():
                    if not self.per_channel:
                        lohi = activation_range(x)
                    mm = None if lohi is None else (lohi[0].reshape(-1), lohi[1].reshape(-1))
                    ctx.stats[:, j] = layer_stats(x, mm).to(ctx.stats.dtype)
            if ctx.stop_at == j:
                raise _Stop
            if ctx.fp_cols[j]:
                return None
            xq = fake_quant_activation(x, ctx.plan[:, j], self.per_channel,
                                       has_fp=ctx.any_fp[j], lohi=lohi, fused=self.fused,
                                       zero_point=self.zero_point)
            return (xq, *args[1:])
        return hook

    def as_plan(self, plan: torch.Tensor | np.ndarray | Sequence | int, batch: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """``plan`` (an int, ``[n_layers]`` or ``[batch, n_layers]``) as a checked
        ``[batch, n_layers]`` int64 tensor on ``device``."""
        p = torch.as_tensor(plan.cpu() if isinstance(plan, torch.Tensor) else np.asarray(plan))
        check_bits(p)
        p = p.to(torch.int64)
        if p.ndim == 0:
            p = p.expand(batch, self.n_layers)
        elif p.ndim == 1:
            p = p.unsqueeze(0).expand(batch, -1)
        if p.shape != (batch, self.n_layers):
            raise ValueError(f"bit plan must have shape [{batch}, {self.n_layers}] (batch, "
                             f"layers) or [{self.n_layers}], got {tuple(p.shape)}")
        return p.to(device)

    def _run(self, x: torch.Tensor, plan_cpu: torch.Tensor, want_stats: bool,
             stats_at: set[int] | None, stop_at: int | None, quant_weights: bool,
             start: int | None = None
             ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """One forward; with ``weight_bits``, rows whose plan is all FP run the float weights
        (FP means the float network), the other rows the quantized weights.

        With ``start`` (a segment index), ``x`` is that segment's input and the forward runs
        segment by segment; the third value is then the input of the segment holding layer
        ``stop_at`` (``None`` without ``start`` or ``stop_at``).
        """
        fp = plan_cpu >= FP_BITS
        if quant_weights and self.weight_bits is not None:
            fp_rows = fp.all(dim=1)
            if fp_rows.all():
                quant_weights = False
            elif fp_rows.any():
                parts = [self._run(x[rows.to(x.device)], plan_cpu[rows], want_stats, stats_at,
                                   stop_at, q, start)
                         for rows, q in ((fp_rows, False), (~fp_rows, True))]
                return tuple(_merge(fp_rows.to(x.device), a, b)  # type: ignore[return-value]
                             for a, b in zip(*parts, strict=True))
        stats = None
        if want_stats:
            stats = torch.full((x.shape[0], self.n_layers, len(STAT_NAMES)), float("nan"),
                               dtype=x.dtype, device=x.device)
        self._ctx = _Ctx(plan_cpu.to(x.device), fp.all(dim=0).tolist(), fp.any(dim=0).tolist(),
                         stats, stats_at, stop_at)
        weights = (self.quantized_weights() if quant_weights and self.weight_bits is not None
                   else None)
        self._captured = None
        try:
            if start is not None:
                logits = self._chain(x, start, None if stop_at is None
                                     else self.layer_segment[stop_at], weights)
            elif weights is not None:
                logits = functional_call(self.net, weights, (x,))
            else:
                logits = self.net(x)
        except _Stop:
            logits = None
        finally:
            self._ctx = None
        kept, self._captured = self._captured, None
        return logits, stats, None if kept is None else kept.h

    def _chain(self, h: torch.Tensor, first: int, capture: int | None,
               weights: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Apply segments ``first..`` to ``h``, keeping the input of segment ``capture``."""
        for s in range(first, len(self.segments)):
            name, mod = self.segments[s]
            if s == capture:
                self._captured = Prefix(s, h)
            if weights is None:
                h = mod(h)
            else:
                cut = len(name) + 1 if name else 0
                own = {k[cut:]: v for k, v in weights.items() if not name or k.startswith(name + ".")}
                h = functional_call(mod, own, (h,))
        return h

    def resume(self, prefix: Prefix, plan: torch.Tensor | np.ndarray | Sequence | int, *,
               stop_at: int | None = None, return_stats: bool = False,
               stats_at: Sequence[int] | None = None) -> tuple[QuantOutput, Prefix | None]:
        """Continue a forward from ``prefix`` under ``plan`` (bits of layers in earlier
        segments are ignored: they were applied when the prefix was made).

        Returns the output (``logits`` ``None`` when it stopped at ``stop_at``) and, with
        ``stop_at``, the prefix to continue from: the input of the segment holding layer
        ``stop_at``. An episode that decides one layer per step then runs each segment about
        once instead of re-running the whole prefix every step. The result equals
        :meth:`forward` with the same plan (tested).
        """
        b = prefix.h.shape[0]
        plan_c = self.as_plan(plan, b)
        if stop_at is not None and not 0 <= stop_at < self.n_layers:
            raise ValueError(f"stop_at must be in [0, {self.n_layers}), got {stop_at}")
        if stop_at is not None and self.layer_segment[stop_at] < prefix.seg:
            raise ValueError(f"layer {stop_at} lies before the prefix's segment {prefix.seg}")
        at = None if stats_at is None else {int(j) for j in stats_at}
        logits, stats, h = self._run(prefix.h, plan_c, return_stats, at, stop_at, True,
                                     start=prefix.seg)
        nxt = None if h is None else Prefix(self.layer_segment[stop_at], h)
        return QuantOutput(logits, None, stats, None), nxt

    def quantized_weights(self) -> dict[str, torch.Tensor]:
        """The quantizable layers' weights at ``weight_bits`` (straight-through gradients),
        keyed for ``torch.func.functional_call``."""
        mods = dict(self.net.named_modules())
        return {f"{n}.weight": fake_quant_weight(mods[n].weight, int(self.weight_bits))
                for n in self.layer_names}

    def forward(self, x: torch.Tensor, plan: torch.Tensor | np.ndarray | Sequence | int, *,
                return_fp: bool = False, return_stats: bool = False,
                stats_at: Sequence[int] | None = None, stop_at: int | None = None) -> QuantOutput:
        """Run ``x`` (``[B, C, H, W]``) under ``plan`` (bits per example and layer).

        Args:
            plan: ``[B, n_layers]`` bit-widths (``2..8`` or ``FP_BITS``), or ``[n_layers]`` /
                one int shared by all examples.
            return_fp: also return the full-precision logits (and statistics). In eval mode
                both run in one forward of ``2B`` rows; in training mode (batch-norm batch
                statistics) they run as two forwards so they do not mix.
            return_stats: also return per-layer activation statistics.
            stats_at: only compute the statistics of these layers (the others stay NaN).
            stop_at: end the pass at layer ``stop_at``'s input, after its statistics
                (``logits`` is then ``None``); saves compute when only statistics are needed.
        """
        b = x.shape[0]
        plan_c = self.as_plan(plan, b)
        if stop_at is not None and not 0 <= stop_at < self.n_layers:
            raise ValueError(f"stop_at must be in [0, {self.n_layers}), got {stop_at}")
        at = None if stats_at is None else {int(j) for j in stats_at}
        if not return_fp:
            logits, stats, _ = self._run(x, plan_c, return_stats, at, stop_at, True)
            return QuantOutput(logits, None, stats, None)
        fp_plan = torch.full_like(plan_c, FP_BITS)
        if self.net.training or self.weight_bits is not None or stop_at is not None:
            logits, stats, _ = self._run(x, plan_c, return_stats, at, stop_at, True)
            fp_logits, fp_stats, _ = self._run(x, fp_plan, return_stats, at, None, False)
            return QuantOutput(logits, fp_logits, stats, fp_stats)
        logits, stats, _ = self._run(torch.cat((x, x)), torch.cat((plan_c, fp_plan)),
                                     return_stats, at, None, True)
        assert logits is not None
        return QuantOutput(logits[:b], logits[b:], None if stats is None else stats[:b],
                           None if stats is None else stats[b:])

    def layer_macs(self) -> np.ndarray:
        """Multiply–accumulates of each quantizable layer for one example (``[n_layers]``)."""
        if self._macs is None:
            mods = dict(self.net.named_modules())
            macs: dict[str, int] = {}

            def record(name: str):
                def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
                    if isinstance(m, nn.Conv2d):
                        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
                        macs[name] = int(out[0].numel()) * k
                    else:
                        macs[name] = int(out[0].numel()) * m.in_features
                return hook

            hs = [mods[n].register_forward_hook(record(n)) for n in self.layer_names]
            p = next(self.net.parameters())
            was = self.net.training
            try:
                self.net.eval()
                with torch.no_grad():
                    self.net(torch.zeros(1, *self.net.input_shape, dtype=p.dtype, device=p.device))
            finally:
                self.net.train(was)
                for h in hs:
                    h.remove()
            self._macs = np.array([macs[n] for n in self.layer_names], dtype=np.float64)
        return self._macs
