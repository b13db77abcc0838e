"""KD loss, mixup helpers, the teacher-logit cache, pools, prefetcher and thread restore."""

from __future__ import annotations

import json
import threading

import pytest
import torch
import torch.nn.functional as F

from distill.kd import hard_targets, kd_kl, kd_loss, mix_targets, mixup_batch
from distill.logits import (
    cached_boundary_pool,
    cached_teacher_logits,
    teacher_fingerprint,
    transfer_config,
    transfer_dir,
)
from distill.pool import Pool, Prefetcher, boundary_pool
from distill.sources.base import single_threaded
from models.device import intra_op_threads


def test_kd_loss_is_t2_kl_and_zero_at_teacher():
    torch.manual_seed(0)
    s, t = torch.randn(16, 10), torch.randn(16, 10)
    assert kd_loss(t.clone(), t, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    ref = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(t / 3, 1), reduction="batchmean") * 9
    assert kd_loss(s, t, 3.0).item() == pytest.approx(ref.item(), rel=1e-5)
    assert kd_kl(s, t, 3.0, reduction="none").shape == (16,)


def test_kd_loss_gradient_reaches_only_student():
    s = torch.randn(4, 10, requires_grad=True)
    t = torch.randn(4, 10, requires_grad=True)
    kd_loss(s, t, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_hard_weight_mixes_one_hot_term():
    torch.manual_seed(1)
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    ce = F.cross_entropy(s, y)
    assert kd_loss(s, t, 4.0, labels=y, hard_weight=1.0).item() == pytest.approx(ce.item(), rel=1e-5)
    mixed = kd_loss(s, t, 4.0, labels=y, hard_weight=0.3).item()
    assert mixed == pytest.approx(0.7 * kd_loss(s, t, 4.0).item() + 0.3 * ce.item(), rel=1e-5)
    # without labels the one-hot term uses the teacher's argmax
    ce_t = F.cross_entropy(s, t.argmax(1))
    assert kd_loss(s, t, 4.0, hard_weight=1.0).item() == pytest.approx(ce_t.item(), rel=1e-5)


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"hard_weight": 1.5}])
def test_kd_loss_rejects_bad_arguments(bad):
    s = torch.randn(2, 3)
    kw = {"temperature": 2.0, **bad}
    with pytest.raises(ValueError, match="temperature|hard_weight"):
        kd_loss(s, s, kw.pop("temperature"), **kw)
    with pytest.raises(ValueError, match="classes"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 4), 2.0)


def test_mixup_batch_and_targets_agree():
    x = torch.rand(6, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    mb = mixup_batch(x, g, alpha=1.0)
    lam = mb.lam.view(-1, 1, 1, 1)
    assert torch.allclose(mb.images, lam * x + (1 - lam) * x[mb.perm])
    y = torch.arange(6) % 3
    mt = mix_targets(y, mb.perm, mb.lam, 3)
    assert torch.allclose(mt.sum(1), torch.ones(6))
    assert torch.allclose(mt, mb.lam[:, None] * hard_targets(y, 3) + (1 - mb.lam[:, None]) * hard_targets(y[mb.perm], 3))
    same = mixup_batch(x, torch.Generator().manual_seed(0), alpha=1.0)
    assert torch.equal(same.images, mb.images)
    off = mixup_batch(x, g, alpha=0.0)
    assert off.images is x and torch.all(off.lam == 1)


def test_teacher_logit_cache_builds_once_verifies_and_rebuilds(tmp_path, tiny_digits_net):
    t = tiny_digits_net
    key = teacher_fingerprint(t)
    x, lg = cached_teacher_logits(t, key, "leaves", 64, 3, cache_dir=tmp_path, progress=False)
    assert x.shape == (64, 1, 8, 8) and lg.shape == (64, 10)
    with torch.no_grad():
        assert torch.allclose(t(x), lg, atol=1e-5)  # logits belong to the (quantized) images
    d = transfer_dir(json.loads(json.dumps({**transfer_config(key, "leaves", 64, 3, (8, 8), 1,
                                                                 False, None), "uint8": True})),
                     tmp_path)
    assert (d / "data.pt").exists() and json.loads((d / "meta.json").read_text())["config"]["n"] == 64
    mtime = (d / "data.pt").stat().st_mtime_ns
    x2, lg2 = cached_teacher_logits(t, key, "leaves", 64, 3, cache_dir=tmp_path, progress=False)
    assert torch.equal(x, x2) and torch.equal(lg, lg2) and (d / "data.pt").stat().st_mtime_ns == mtime
    (d / "data.pt").write_bytes(b"corrupted")
    with pytest.warns(RuntimeWarning, match="unusable"):
        x3, lg3 = cached_teacher_logits(t, key, "leaves", 64, 3, cache_dir=tmp_path, progress=False)
    assert torch.equal(x, x3)
    other, _ = cached_teacher_logits(t, key, "leaves", 64, 4, cache_dir=tmp_path, progress=False)
    assert not torch.equal(other, x)  # another seed is another cache entry


def test_boundary_pool_cache_matches_a_fresh_attack_and_rebuilds(tmp_path, tiny_digits_net):
    t = tiny_digits_net
    key = teacher_fingerprint(t)
    x, _ = cached_teacher_logits(t, key, "leaves", 32, 0, cache_dir=tmp_path, progress=False)
    adv, lg = cached_boundary_pool(t, key, x, 0, cache_dir=tmp_path, max_iter=10)
    ref, ref_lg = boundary_pool(t, x, seed=0, max_iter=10)
    assert len(adv) > 0 and torch.equal(adv, ref) and torch.allclose(lg, ref_lg)
    (d,) = [p for p in (tmp_path / "boundary").iterdir() if p.is_dir()]
    mtime = (d / "data.pt").stat().st_mtime_ns
    again, _ = cached_boundary_pool(t, key, x, 0, cache_dir=tmp_path, max_iter=10)
    assert torch.equal(again, adv) and (d / "data.pt").stat().st_mtime_ns == mtime
    (d / "data.pt").write_bytes(b"corrupted")
    with pytest.warns(RuntimeWarning, match="unusable"):
        rebuilt, _ = cached_boundary_pool(t, key, x, 0, cache_dir=tmp_path, max_iter=10)
    assert torch.equal(rebuilt, adv)
    cached_boundary_pool(t, key, x, 0, cache_dir=tmp_path, max_iter=5)
    entries = [p for p in (tmp_path / "boundary").iterdir() if p.is_dir()]
    assert len(entries) == 2  # other attack options, other entry


def test_balanced_cached_set_has_uniform_teacher_classes(tmp_path, tiny_digits_net):
    t = tiny_digits_net
    _, lg = cached_teacher_logits(t, teacher_fingerprint(t), "target", 100, 0, balanced=True,
                                  cache_dir=tmp_path, source_kwargs={"dataset": "digits"},
                                  progress=False)
    assert torch.bincount(lg.argmax(1), minlength=10).tolist() == [10] * 10


def test_pool_batches_are_a_pure_function_of_seed_and_index():
    p = Pool(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10.0).view(10, 1))
    a = [p.batch(4, 7, k) for k in range(5)]
    b = list(p.batches(4, 7, start=2, stop=5))
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a[2:], b, strict=True))
    assert torch.equal(a[0][0].flatten(), a[0][1].flatten())  # images and logits stay paired
    first_epoch = torch.cat([a[0][0], a[1][0]]).flatten()
    assert len(set(first_epoch.tolist())) == 8  # without replacement within an epoch


def test_prefetcher_yields_in_order_and_reraises():
    assert list(Prefetcher(lambda k: k * k, start=1, stop=6, depth=2)) == [1, 4, 9, 16, 25]

    def boom(k):
        if k == 2:
            raise RuntimeError("render failed")
        return k

    with Prefetcher(boom, stop=5) as it, pytest.raises(RuntimeError, match="render failed"):
        list(it)


def test_thread_count_is_restored_and_untouched_from_background_threads():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with intra_op_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError), intra_op_threads(1):
            raise ValueError
        assert torch.get_num_threads() == 2
        seen = []
        f = single_threaded(lambda: seen.append(torch.get_num_threads()))
        th = threading.Thread(target=f)
        th.start()
        th.join()
        assert seen == [2]  # a background thread must not throttle the whole process
    finally:
        torch.set_num_threads(old)


def test_opengl_renders_from_successive_threads():
    """Thread idents are reused; each new thread must get its own current GL context."""
    from distill.sources import get_source

    src = get_source("opengl", image_size=8, channels=1)
    ref = src.sample(4, 0)
    for _ in range(3):
        assert torch.equal(next(iter(Prefetcher(lambda k: src.sample(4, 0), stop=1))), ref)
