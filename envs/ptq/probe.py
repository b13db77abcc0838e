"""How one input's prediction reacts when each layer alone is quantized: the ``probe``
observation of DynamicPTQ.

For an input ``x`` with FP probabilities ``p`` and predicted class ``c = argmax p``, and for
every quantizable layer ``l``, the network runs with layer ``l``'s input at ``bits`` (the
lowest bit choice) and every other layer in FP, giving probabilities ``q_l``. The probe is,
per layer, ``log(1 + KL(p‖q_l))``, ``p_c − q_l[c]`` (confidence lost on the FP prediction) and
``1[argmax q_l ≠ c]``: ``3L`` numbers that use no label. All ``L`` variants of a batch run as
one forward of ``L·B`` rows.

:class:`ProbeCache` keeps the probe of every example of a split, filled lazily in fixed
chunks like the FP cache (so values never depend on the order examples were asked for) and
dropped when the network's parameters change in place.
"""

from __future__ import annotations

import numpy as np
import torch

from models.datasets import Split
from models.quant import FP_BITS, DynamicQuantizer

CHUNK = 128
N_FEATURES = 3


@torch.no_grad()
def probe_features(qnet: DynamicQuantizer, x: torch.Tensor, fp_logits: torch.Tensor,
                   bits: int) -> torch.Tensor:
    """``[B, L, 3]`` probe of inputs ``x`` (see the module docstring); ``fp_logits`` are the
    FP logits of ``x``."""
    b, n_layers = len(x), qnet.n_layers
    plans = torch.full((n_layers, b, n_layers), FP_BITS, dtype=torch.long)
    for layer in range(n_layers):
        plans[layer, :, layer] = int(bits)
    xs = x.unsqueeze(0).expand(n_layers, *x.shape).reshape(n_layers * b, *x.shape[1:])
    q = qnet(xs, plans.reshape(n_layers * b, n_layers)).logits.double()
    lq = torch.log_softmax(q, 1).reshape(n_layers, b, -1).transpose(0, 1)  # [B, L, C]
    lp = torch.log_softmax(fp_logits.double(), 1).unsqueeze(1)              # [B, 1, C]
    kl = (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)
    c = lp.argmax(-1).expand(-1, n_layers).unsqueeze(-1)                    # [B, L, 1]
    lost = lp.exp().expand_as(lq).gather(-1, c).squeeze(-1) - lq.exp().gather(-1, c).squeeze(-1)
    flipped = (lq.argmax(-1) != c.squeeze(-1)).double()
    return torch.stack((torch.log1p(kl), lost, flipped), dim=-1).to(fp_logits.dtype)


class ProbeCache:
    """The probe ``[N, L, 3]`` of every example of one split at one bit-width."""

    def __init__(self, qnet: DynamicQuantizer, split: Split, device: torch.device,
                 bits: int) -> None:
        self.qnet, self.split, self.device, self.bits = qnet, split, device, int(bits)
        self._clear()

    def _clear(self) -> None:
        n = len(self.split)
        p = next(self.qnet.parameters())
        self.values = torch.zeros(n, self.qnet.n_layers, N_FEATURES, dtype=p.dtype,
                                  device=self.device)
        self.filled = np.zeros((n + CHUNK - 1) // CHUNK, dtype=bool)
        self._tensors = [*self.qnet.net.parameters(), *self.qnet.net.buffers()]
        self._key = tuple(t._version for t in self._tensors)

    @torch.no_grad()
    def get(self, idx: np.ndarray, fp_logits_of: object) -> torch.Tensor:
        """Probe of examples ``idx``; ``fp_logits_of(chunk_indices)`` gives FP logits."""
        if tuple(t._version for t in self._tensors) != self._key:
            self._clear()
        chunks = np.unique(np.asarray(idx) // CHUNK)
        for c in chunks[~self.filled[chunks]]:
            rows = np.arange(int(c) * CHUNK, min((int(c) + 1) * CHUNK, len(self.split)))
            x = self.split.images[torch.as_tensor(rows)].to(self.device)
            self.values[torch.as_tensor(rows, device=self.device)] = probe_features(
                self.qnet, x, fp_logits_of(rows), self.bits)
            self.filled[c] = True
        self._key = tuple(t._version for t in self._tensors)
        return self.values[torch.as_tensor(np.asarray(idx), device=self.device)]
