"""GroupedNet: N students trained as one grouped network equal N students trained one by one."""

from __future__ import annotations

import pytest
import torch

from distill.kd import kd_loss
from models.nets import build_model
from models.nets.grouped import GroupedNet


def _students(n: int) -> list:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(build_model("cnn", num_classes=10, in_channels=1, image_size=(8, 8), width=4,
                               mean=[0.3], std=[0.4]))
    return out


def test_batched_students_equal_sequential_students_after_k_updates():
    n, k, b = 3, 5, 16
    seq, batched = _students(n), _students(n)
    group = GroupedNet(batched)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.rand(n, b, 1, 8, 8, generator=gen), torch.randn(n, b, 10, generator=gen))
               for _ in range(k)]
    opts = [torch.optim.Adam(s.parameters(), 1e-2, weight_decay=1e-4) for s in seq]
    for x, t in batches:  # one by one: each student its own batch and optimiser
        for i, s in enumerate(seq):
            loss = kd_loss(s(x[i]), t[i], 4.0)
            opts[i].zero_grad()
            loss.backward()
            opts[i].step()
    opt = torch.optim.Adam(group.parameters(), 1e-2, weight_decay=1e-4)
    for x, t in batches:  # together: one forward/backward, the losses summed
        loss = sum(kd_loss(lg, tt, 4.0) for lg, tt in zip(group(x), t, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
    group.unstack_into(batched)
    for s, g in zip(seq, batched, strict=True):
        for (name, a), (_, c) in zip(s.state_dict().items(), g.state_dict().items(), strict=True):
            assert torch.allclose(a.float(), c.float(), atol=2e-5), name
    x = torch.rand(4, 1, 8, 8)
    group.eval()
    with torch.no_grad():
        shared = group(x)  # one batch for every student
        assert torch.allclose(shared, torch.stack([s.eval()(x) for s in seq]), atol=2e-5)
    assert not torch.equal(shared[0], shared[1])  # they are different students


def test_unsupported_networks_are_named():
    torch.manual_seed(0)
    res = build_model("resnet8", num_classes=10, in_channels=1, image_size=(8, 8), width=4)
    with pytest.raises(NotImplementedError, match="plain CNN|cannot group"):
        GroupedNet([res, res])
    with pytest.raises(ValueError, match="expected 2 batches"):
        GroupedNet(_students(2))(torch.rand(3, 2, 1, 8, 8))
