"""Teacher-guided pieces: relative entropy, class-balanced filtering, boundary-sample attack.

A tiny MLP teacher is trained here on scikit-learn's 8×8 digits (about a second).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from distill.attack import KINDS, boundary_attack
from distill.guided import (
    balanced_filter,
    class_histogram,
    relative_entropy,
    source_relative_entropy,
    teacher_logits,
)
from distill.sources import get_source

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_teacher(one_thread):
    from models.datasets import load_dataset

    ds = load_dataset("digits")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = ds.train.images, ds.train.labels
    for _ in range(120):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    acc = (teacher_logits(net, ds.test.images).argmax(1) == ds.test.labels).float().mean().item()
    assert acc > 0.9
    return net, ds


def test_relative_entropy_bounds():
    assert relative_entropy(torch.arange(10).repeat(5), 10) == pytest.approx(1.0)
    assert relative_entropy(torch.zeros(50, dtype=torch.long), 10) == pytest.approx(0.0)
    two = torch.tensor([0, 1] * 10)
    assert relative_entropy(two, 10) == pytest.approx(math.log(2) / math.log(10))
    assert class_histogram(two, 4).tolist() == [10, 10, 0, 0]


def test_source_relative_entropy_orders_real_above_flat(digits_teacher):
    net, _ = digits_teacher
    real = source_relative_entropy(net, get_source("target", image_size=8, channels=1,
                                                   dataset="digits"), 10, n=600)
    flat = source_relative_entropy(net, get_source("noise", image_size=8, channels=1,
                                                   mean=0.0, std=0.01), 10, n=600)
    assert real > 0.95 and flat < 0.5


@pytest.mark.parametrize("source", ["leaves", "uniform"])
def test_balanced_filter_gives_uniform_classes(digits_teacher, source):
    net, _ = digits_teacher
    src = get_source(source, image_size=8, channels=1)
    raw = teacher_logits(net, src.sample(1000, 0)).argmax(1)
    out = balanced_filter(net, src, n=205, num_classes=10, seed=0, batch_size=256, max_draw=2048)
    assert out.images.shape == (205, 1, 8, 8)
    assert out.counts.tolist() == [21] * 5 + [20] * 5
    assert relative_entropy(out.classes, 10) > relative_entropy(raw, 10)
    # images kept by argmax really are predicted as the class they fill
    pred = teacher_logits(net, out.images).argmax(1)
    assert (pred == out.classes).sum() >= out.filled_by_argmax
    assert torch.allclose(teacher_logits(net, out.images), out.logits, atol=1e-5)
    again = balanced_filter(net, src, n=205, num_classes=10, seed=0, batch_size=256, max_draw=2048)
    assert torch.equal(again.images, out.images)


def test_pool_balance_is_measured_not_assumed(digits_teacher, tmp_path):
    """Surrogate sources are far from balanced under the digits teacher (8192 dead-leaves images:
    classes 0, 6 and 8 never predicted): a short draw must report its fallback honestly, and
    shrink must give a pool whose teacher top-class histogram is uniform (tolerance 0: every
    class keeps the shortest class's count) or say that it cannot."""
    from distill.logits import cached_teacher_logits, teacher_fingerprint

    net, _ = digits_teacher
    src = get_source("leaves", image_size=8, channels=1)
    short = balanced_filter(net, src, n=300, num_classes=10, seed=1, batch_size=256, max_draw=512)
    b = short.balance()
    top = teacher_logits(net, short.images).argmax(1)
    assert b["teacher_class_counts"] == torch.bincount(top, minlength=10).tolist()
    assert b["fallback_filled"] == 300 - short.filled_by_argmax > 0
    assert b["fallback_fraction"] == pytest.approx(b["fallback_filled"] / 300)
    assert b["top_class_is_assigned"] == pytest.approx(float((top == short.classes).float().mean()))
    assert b["top_class_is_assigned"] < 1 and b["relative_entropy"] < 0.999
    with pytest.raises(ValueError, match="never predicted classes"):
        balanced_filter(net, src, n=300, num_classes=10, seed=1, max_draw=512, fallback="shrink")
    gl = get_source("opengl", image_size=8, channels=1)  # reaches every class within 8192
    shrunk = balanced_filter(net, gl, n=300, num_classes=10, seed=1, batch_size=1024,
                             max_draw=8192, fallback="shrink")
    sb = shrunk.balance()
    counts = torch.bincount(teacher_logits(net, shrunk.images).argmax(1), minlength=10)
    assert len(set(counts.tolist())) == 1 and 0 < len(shrunk.images) < 300
    assert sb["fallback_filled"] == 0 and sb["relative_entropy"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fallback"):
        balanced_filter(net, src, n=30, num_classes=10, fallback="guess")
    # the cache stores the balance with the pool and returns it on reload
    key = teacher_fingerprint(net)
    kw = dict(balanced=True, num_classes=10, cache_dir=tmp_path, progress=False,
              max_draw_factor=28, fallback="shrink", image_size=8, channels=1, batch_size=1024)
    built = cached_teacher_logits(net, key, "opengl", 300, 1, **kw)
    again = cached_teacher_logits(net, key, "opengl", 300, 1, **kw)
    assert again.balance == json.loads(json.dumps(built.balance)) and again.balance["n"] < 300
    assert torch.equal(again.images, built.images)


def test_boundary_attack_straddles_the_boundary(digits_teacher):
    net, ds = digits_teacher
    x = ds.test.images[:64]
    res = boundary_attack(net, x, torch.Generator().manual_seed(0), step=2 / 255, max_iter=80)
    ok = torch.nonzero(res.success).flatten()
    assert len(ok) >= 0.8 * len(x)
    assert res.images.shape == (4 * len(ok), 1, 8, 8)
    assert res.images.min() >= 0 and res.images.max() <= 1
    with torch.no_grad():
        p = net(res.images).softmax(1)
    conf, pred = p.max(1)
    k = {name: res.kind == i for i, name in enumerate(KINDS)}
    tgt = res.classes[k["target_side"]]
    src_cls = res.classes[k["source_side"]]
    # the pair sits on both sides of a boundary, the crossing one below the confidence bound
    assert (tgt != src_cls).all()
    assert (conf[k["target_side"]] < 0.9).all()
    assert torch.equal(pred[k["target_side"]], tgt)
    # pushing deeper raises confidence in each member's own class
    assert conf[k["target_deep"]].mean() > conf[k["target_side"]].mean() + 0.1
    assert conf[k["source_deep"]].mean() > conf[k["source_side"]].mean()
    assert (res.classes[k["target_deep"]] == tgt).float().mean() > 0.9
    # close to the source image: an attack, not a replacement
    assert (res.images[k["target_side"]] - x[res.origin[k["target_side"]]]).abs().mean() < 0.2
    again = boundary_attack(net, x, torch.Generator().manual_seed(0), step=2 / 255, max_iter=80)
    assert torch.equal(again.images, res.images)


def test_boundary_attack_respects_eps_and_targets(digits_teacher):
    net, ds = digits_teacher
    x = ds.test.images[:32]
    pred = teacher_logits(net, x).argmax(1)
    targets = (pred + 1) % 10
    res = boundary_attack(net, x, torch.Generator().manual_seed(0), targets=targets, eps=0.3,
                          deep_steps=0, max_iter=60)
    side = res.kind <= 1
    assert ((res.images[side] - x[res.origin[side]]).abs().amax(dim=(1, 2, 3)) <= 0.3 + 1e-6).all()
    tside = res.kind == 1
    assert torch.equal(res.classes[tside], targets[res.origin[tside]])


def test_stratified_order_prefixes_are_class_balanced():
    from distill.boundary import stratified_order

    classes = torch.tensor([0] * 50 + [1] * 30 + [2] * 5 + [3] * 15)[torch.randperm(100)]
    order = stratified_order(classes, seed=3)
    assert sorted(order.tolist()) == list(range(100))
    for m in (4, 8, 20):  # while every class still has images, counts differ by at most one
        counts = torch.bincount(classes[order[:m]], minlength=4)
        assert counts.max() - counts.min() <= 1
    assert torch.equal(order, stratified_order(classes, seed=3))
    assert not torch.equal(order, stratified_order(classes, seed=4))


def test_boundary_share_is_exact_stratified_and_reported(digits_teacher):
    from distill.boundary import confidence_after, with_boundary_share

    net, ds = digits_teacher
    x = ds.train.images[:400]
    lg = teacher_logits(net, x)
    for share in (0.25, 0.5):
        px, pl, rep = with_boundary_share(net, x, lg, share, seed=0)
        assert len(px) == len(pl) == 400 and rep["boundary_samples"] == round(share * 400)
        assert rep["share"] == pytest.approx(share)
        att = torch.tensor(rep["attacked_class_counts"])
        assert att.max() - att.min() <= 1  # class-stratified, not the first images of the pool
        assert torch.allclose(teacher_logits(net, px), pl, atol=1e-4)
        conf = rep["sample_confidence"]
        assert conf["mean"] < rep["original_confidence"]["mean"] and 0 < conf["below_0.9"] <= 1
    none_x, _, rep0 = with_boundary_share(net, x, lg, 0.0, seed=0)
    assert rep0["boundary_samples"] == 0 and torch.equal(none_x.sort(0).values, x.sort(0).values)
    with pytest.raises(ValueError, match="share"):
        with_boundary_share(net, x, lg, 1.0, seed=0)
    # augmentation after the attack moves samples: the report can say how far
    adv = px[-200:]
    after = confidence_after(net, adv, lambda im, g: (im + 0.3 * torch.rand(im.shape, generator=g)
                                                       ).clamp(0, 1))
    assert after["mean"] != pytest.approx(_mean_confidence(net, adv))


def _mean_confidence(net, x):
    return float(teacher_logits(net, x).softmax(1).amax(1).mean())
