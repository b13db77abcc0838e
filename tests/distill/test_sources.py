"""Transfer-set sources: registry, shapes/ranges, determinism per seed, per-source behaviour."""

from __future__ import annotations

import pytest
import torch

from distill.sources import get_source, list_sources
from distill.sources.base import MixtureSource, TensorSource, batch_seed, fit_images
from distill.sources.synthetic import power_law

CHEAP = ["digits", "photos", "leaves", "fractals", "noise", "uniform"]


def test_registry_lists_and_rejects_unknown():
    names = list_sources()
    for n in ["target", "digits", "photos", "opengl", "leaves", "fractals", "noise", "uniform"]:
        assert n in names
    with pytest.raises(KeyError) as e:
        get_source("nope", image_size=28, channels=1)
    assert "opengl" in str(e.value) and "leaves" in str(e.value)


@pytest.mark.parametrize("name", CHEAP)
@pytest.mark.parametrize("shape", [(28, 1), (32, 3)])
def test_source_shape_range_determinism(name, shape):
    size, ch = shape
    src = get_source(name, image_size=size, channels=ch)
    a = src.sample(24, seed=7)
    assert a.shape == (24, ch, size, size) and a.dtype == torch.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert torch.equal(a, src.sample(24, seed=7))
    assert not torch.equal(a, src.sample(24, seed=8))
    # images within a batch differ from each other and are not flat
    flat = a.flatten(1)
    assert (flat.std(1) > 0.01).float().mean() > 0.9
    assert torch.cdist(flat, flat).add(torch.eye(24) * 1e3).min() > 0.0


def test_target_is_teacher_training_split_and_batches_cover_epoch():
    from models.datasets import load_dataset

    ds = load_dataset("digits")
    src = get_source("target", image_size=8, channels=1, dataset="digits")
    assert len(src) == len(ds.train)
    assert torch.equal(src.images, ds.train.images)
    seen = torch.cat(list(src.batches(100, seed=0, num_batches=len(src) // 100)))
    # one epoch without replacement: no image repeated (beyond duplicates already in the pool)
    pool_dups = len(src) - len(torch.unique(src.images.flatten(1), dim=0))
    assert len(torch.unique(seen.flatten(1), dim=0)) >= len(seen) - pool_dups
    again = torch.cat(list(src.batches(100, seed=0, num_batches=len(src) // 100)))
    assert torch.equal(seen, again)


def test_target_resized_for_other_teacher():
    src = get_source("target", image_size=32, channels=3, dataset="digits")
    x = src.sample(5, 0)
    assert x.shape == (5, 3, 32, 32)
    assert torch.allclose(x[:, 0], x[:, 1])  # grey replicated to RGB


def test_batches_stream_is_seeded():
    src = get_source("leaves", image_size=16, channels=3)
    b1 = list(src.batches(4, seed=3, num_batches=3))
    b2 = list(src.batches(4, seed=3, num_batches=3))
    assert all(torch.equal(x, y) for x, y in zip(b1, b2, strict=True))
    assert torch.equal(b1[1], src.sample(4, batch_seed(3, 1)))
    assert not torch.equal(b1[0], b1[1])


def test_gaussian_noise_matches_target_statistics():
    from models.datasets import load_dataset

    info = load_dataset("digits").info
    src = get_source("noise", image_size=8, channels=1, dataset="digits")
    x = src.sample(4000, 0)
    assert abs(x.mean().item() - info.mean[0]) < 0.06  # clipping at 0 shifts it slightly
    src2 = get_source("noise", image_size=16, channels=3, mean=0.5, std=0.1)
    y = src2.sample(500, 0)
    assert abs(y.mean().item() - 0.5) < 0.01 and abs(y.std().item() - 0.1) < 0.01


def test_power_law_radii():
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    r = power_law(u, 0.01, 1.0, 3.0)
    assert r.min() >= 0.01 and r.max() <= 1.0
    # p(r) ∝ r^-3: P(r > 2 rmin) = (1/4 - 1e-4)/(1 - 1e-4) ≈ 0.25
    assert abs((r > 0.02).float().mean().item() - 0.25) < 0.01


def test_leaves_are_piecewise_constant_occlusions():
    src = get_source("leaves", image_size=32, channels=3, supersample=1)
    x = src.sample(8, 0)
    for img in x:
        colours = torch.unique(img.flatten(1).T, dim=0)
        assert 5 <= len(colours) <= 161  # a handful of leaves visible, never more than drawn


def test_photos_are_natural_patches():
    x = get_source("photos", image_size=28, channels=3).sample(64, 0)
    # natural images: neighbouring pixels strongly correlated, unlike noise
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.8


def test_mixture_counts_and_determinism():
    src = get_source("leaves:3+uniform:1", image_size=16, channels=1)
    assert isinstance(src, MixtureSource)
    x = src.sample(400, 0)
    assert torch.equal(x, src.sample(400, 0))
    # uniform noise has high neighbour differences, leaves mostly none
    rough = (x[..., 1:] - x[..., :-1]).abs().mean(dim=(1, 2, 3)) > 0.2
    assert 60 < int(rough.sum()) < 140


def test_fit_images_and_tensor_source():
    x = torch.rand(10, 3, 64, 64)
    y = fit_images(x, (28, 28), 1)
    assert y.shape == (10, 1, 28, 28)
    s = TensorSource(x, 28, 3)
    assert s.sample(30, 0).shape == (30, 3, 28, 28)  # more than the pool: with replacement
    assert len(list(s.batches(4, 0, num_batches=7))) == 7
