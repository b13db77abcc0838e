"""N networks of one architecture as a single grouped network: one forward/backward for all.

Student ``n``'s channels are group ``n`` of every layer: convolutions become ``groups=N``
convolutions, batch norms one ``BatchNorm2d(N·C)`` (its per-channel statistics are exactly the
per-student ones, since student ``n``'s channels only ever see student ``n``'s batch), and the
classifier a batched matrix product. Element-wise optimisers (SGD, Adam) on the grouped
parameters are the N per-student optimisers, so N students trained together equal N students
trained one by one, to float tolerance. Supported: the plain CNN of :mod:`models.nets.cnn`
(conv–BN–ReLU stages, max-pool, global average pool, linear head).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.bn import DatasetNormalize
from models.nets.base import DeployNet

_PASS = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d)


class GroupedLinear(nn.Module):
    """N linear layers applied to ``[B, N, F]`` → ``[B, N, K]``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # [N, K, F]
        self.bias = nn.Parameter(bias)      # [N, K]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bnf,nkf->bnk", x, self.weight) + self.bias


class GroupedNet(nn.Module):
    """``N`` copies of a plain-CNN :class:`DeployNet` run as one network.

    ``forward(x)`` takes ``[N, B, C, H, W]`` (each student its own batch) or ``[B, C, H, W]``
    (one batch shared by all) and returns logits ``[N, B, K]``.
    """

    def __init__(self, nets: Sequence[DeployNet]) -> None:
        super().__init__()
        if not nets:
            raise ValueError("GroupedNet needs at least one network")
        self.n = len(nets)
        first = nets[0]
        self.input_shape, self.num_classes = first.input_shape, first.num_classes
        if not isinstance(first.input_norm, DatasetNormalize | nn.Identity):
            raise NotImplementedError("GroupedNet supports fixed dataset normalisation (or none) "
                                      f"at the input, not {type(first.input_norm).__name__}")
        self.input_norm = first.input_norm  # fixed, identical for every student
        layers: list[nn.Module] = []
        per_net = [list(net.features) for net in nets]
        for mods in zip(*per_net, strict=True):
            m0 = mods[0]
            if isinstance(m0, nn.Conv2d):
                layers.append(self._conv(mods))
            elif isinstance(m0, nn.BatchNorm2d):
                layers.append(self._bn(mods))
            elif isinstance(m0, _PASS):
                layers.append(m0)
            elif isinstance(m0, nn.Flatten):
                continue  # [B, N·C, 1, 1] is reshaped to [B, N, C] below
            else:
                raise NotImplementedError(f"GroupedNet cannot group {type(m0).__name__}; it "
                                          f"supports the plain CNN (models.nets.cnn)")
        self.features = nn.Sequential(*layers)
        heads = [net.head for net in nets]
        if not all(isinstance(h, nn.Linear) for h in heads):
            raise NotImplementedError("GroupedNet needs an nn.Linear head")
        self.head = GroupedLinear(torch.stack([h.weight.detach() for h in heads]).clone(),
                                  torch.stack([h.bias.detach() for h in heads]).clone())

    def _conv(self, mods: Sequence[nn.Conv2d]) -> nn.Conv2d:
        m0 = mods[0]
        if m0.groups != 1 or m0.bias is not None:
            raise NotImplementedError("GroupedNet groups bias-free, ungrouped convolutions")
        conv = nn.Conv2d(self.n * m0.in_channels, self.n * m0.out_channels, m0.kernel_size,
                         m0.stride, m0.padding, m0.dilation, groups=self.n, bias=False)
        conv.weight.data.copy_(torch.cat([m.weight.detach() for m in mods]))
        return conv

    def _bn(self, mods: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
        m0 = mods[0]
        bn = nn.BatchNorm2d(self.n * m0.num_features, eps=m0.eps, momentum=m0.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).data.copy_(torch.cat([getattr(m, name).detach() for m in mods]))
        bn.num_batches_tracked.copy_(m0.num_batches_tracked)
        return bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # one batch for every student
            x = x.unsqueeze(0).expand(self.n, *x.shape)
        n, b, c, h, w = x.shape
        if n != self.n:
            raise ValueError(f"expected {self.n} batches, got {n}")
        z = self.input_norm(x.reshape(n * b, c, h, w)).reshape(n, b, c, h, w)
        z = z.permute(1, 0, 2, 3, 4).reshape(b, n * c, h, w)
        z = self.features(z)  # [B, N·F, 1, 1]
        logits = self.head(z.reshape(b, n, -1))  # [B, N, K]
        return logits.permute(1, 0, 2)

    @torch.no_grad()
    def unstack_into(self, nets: Sequence[DeployNet]) -> None:
        """Copy student ``n``'s weights and BN statistics back into ``nets[n]``."""
        if len(nets) != self.n:
            raise ValueError(f"expected {self.n} networks, got {len(nets)}")
        grouped = [m for m in self.features if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
        for i, net in enumerate(nets):
            own = [m for m in net.features if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
            for g, m in zip(grouped, own, strict=True):
                if isinstance(m, nn.Conv2d):
                    k = m.out_channels
                    m.weight.copy_(g.weight[i * k:(i + 1) * k])
                else:
                    k = m.num_features
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        getattr(m, name).copy_(getattr(g, name)[i * k:(i + 1) * k])
                    m.num_batches_tracked.copy_(g.num_batches_tracked)
            net.head.weight.copy_(self.head.weight[i])
            net.head.bias.copy_(self.head.bias[i])


__all__ = ["GroupedLinear", "GroupedNet"]
