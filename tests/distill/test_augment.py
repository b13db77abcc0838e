"""Batched, seeded augmentation: RandAugment ops, elastic, invert, mixup and the policies."""

from __future__ import annotations

import pytest
import torch

from distill.augment import elastic, gaussian_blur, get_policy, invert, mixup, scaled_pad
from distill.randaugment import OPS, apply_op, rand_augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch():
    from distill.sources import get_source

    return get_source("leaves", image_size=28, channels=3, supersample=1).sample(64, 0)


@pytest.mark.parametrize("op", [o for o in OPS if o != "identity"])
def test_each_randaugment_op_changes_images_and_keeps_range(batch, op):
    sign = torch.where(torch.arange(len(batch)) % 2 == 0, 1.0, -1.0)
    y = apply_op(op, batch, 14 / 30, sign)
    assert y.shape == batch.shape and y.dtype == batch.dtype
    assert y.min() >= 0 and y.max() <= 1
    changed = (y - batch).abs().flatten(1).amax(1) > 1e-3
    assert changed.float().mean() > 0.5, f"{op} left most images unchanged"


def test_op_semantics():
    x = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    one = torch.ones(1)
    assert torch.allclose(apply_op("solarize", x, 0.5, one), torch.where(x >= 0.5, 1 - x, x))
    assert torch.allclose(apply_op("brightness", x, 0.0, one), x)
    post = apply_op("posterize", x, 1.0, one)  # 4 bits
    assert len(torch.unique(post)) <= 16 and (post <= x + 1e-6).all()
    rot = apply_op("rotate", torch.ones(1, 1, 9, 9), 1.0, one)  # 30°: corners fall outside
    assert rot[0, 0, 4, 4] > 0.99 and rot[0, 0, 0, 0] < 0.5


def test_rand_augment_seeded_and_per_image(batch):
    a = rand_augment(batch, gen(1), num_ops=4, magnitude=14)
    assert torch.equal(a, rand_augment(batch, gen(1), num_ops=4, magnitude=14))
    assert not torch.equal(a, rand_augment(batch, gen(2), num_ops=4, magnitude=14))
    with pytest.raises(ValueError):
        rand_augment(batch, gen(), magnitude=31)


def test_elastic_probability_and_strength(batch):
    assert torch.equal(elastic(batch, gen(), p=0.0), batch)
    y = elastic(batch, gen(), alpha=50.0, sigma=5.0, p=1.0)
    moved = (y - batch).abs().flatten(1).mean(1)
    assert (moved > 1e-3).all()
    half = elastic(batch, gen(3), p=0.5)
    frac = ((half - batch).abs().flatten(1).amax(1) > 0).float().mean().item()
    assert 0.25 < frac < 0.75


def test_gaussian_blur_preserves_constant_and_smooths():
    c = torch.full((2, 1, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(c, 5.0), c, atol=1e-6)
    n = torch.rand(2, 1, 20, 20, generator=gen())
    assert gaussian_blur(n, 2.0).std() < 0.5 * n.std()


def test_invert():
    x = torch.rand(200, 1, 4, 4, generator=gen())
    y = invert(x, gen(), p=1.0)
    assert torch.allclose(y, 1 - x)
    frac = (invert(x, gen(), p=0.1) != x).flatten(1).any(1).float().mean().item()
    assert 0.03 < frac < 0.2


def test_mixup_is_convex_combination():
    x = torch.rand(32, 3, 8, 8, generator=gen())
    m, perm, lam = mixup(x, gen(5), alpha=1.0)
    assert torch.allclose(m, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm])
    assert len(torch.unique(lam)) == 32 and ((0 <= lam) & (lam <= 1)).all()  # one λ per image
    _, _, lam2 = mixup(x, gen(5), alpha=1.0, per_example=False)
    assert (lam2 == lam2[0]).all()
    m2, _, _ = mixup(x, gen(5), alpha=1.0)
    assert torch.equal(m, m2)


@pytest.mark.parametrize("name", ["none", "standard", "heavy"])
def test_policies(batch, name):
    pol = get_policy(name, 28)
    y = pol(batch, gen(4))
    assert y.shape == batch.shape and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, pol(batch, gen(4)))
    if name == "none":
        assert torch.equal(y, batch)
    else:
        assert not torch.equal(y, batch)


def test_heavy_is_heavier_than_standard():
    smooth = torch.linspace(0.2, 0.8, 28).view(1, 1, 28, 1).expand(64, 3, 28, 28).contiguous()
    d_std = (get_policy("standard", 28, flip=False)(smooth, gen()) - smooth).abs().mean()
    d_heavy = (get_policy("heavy", 28, flip=False)(smooth, gen()) - smooth).abs().mean()
    assert d_heavy > 1.5 * d_std
    assert scaled_pad((32, 32), 12) == 12 and scaled_pad((28, 28), 12) == 10
    with pytest.raises(KeyError, match="heavy"):
        get_policy("nope", 28)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("op", [o for o in OPS if o != "identity"])
def test_each_op_equals_its_torchvision_functional(op, sign):
    """Every batched op against ``torchvision.transforms.v2.functional`` at the same magnitude:
    geometric ops are bilinear about the image centre (torchvision's RandAugment shears about
    the top-left corner, as PIL does; ours keeps the content centred), enhancement ops are the
    PIL blends, posterize works on 8-bit levels."""
    import math

    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    g = torch.Generator().manual_seed(0)
    x = TF.gaussian_blur(torch.rand(4, 3, 16, 16, generator=g), [5, 5], [1.5, 1.5])
    mag, s = 0.6, torch.full((4,), sign)
    f, bil = 1 + sign * 0.9 * mag, InterpolationMode.BILINEAR

    def aff(**kw):
        return TF.affine(x, **({"angle": 0.0, "translate": [0, 0], "scale": 1.0,
                                "shear": [0.0, 0.0], "interpolation": bil} | kw))

    shear = sign * math.degrees(math.atan(0.3 * mag))
    shift = -sign * 150 / 331 * mag * 16
    u8 = (x * 255).round().to(torch.uint8)
    ref = {"shear_x": lambda: aff(shear=[shear, 0.0]), "shear_y": lambda: aff(shear=[0.0, shear]),
           "translate_x": lambda: aff(translate=[shift, 0]),
           "translate_y": lambda: aff(translate=[0, shift]),
           "rotate": lambda: TF.rotate(x, sign * 30 * mag, interpolation=bil),
           "brightness": lambda: TF.adjust_brightness(x, f),
           "color": lambda: TF.adjust_saturation(x, f),
           "contrast": lambda: TF.adjust_contrast(x, f),
           "sharpness": lambda: TF.adjust_sharpness(x, f),
           "posterize": lambda: TF.posterize(u8, 8 - round(4 * mag)).float() / 255,
           "solarize": lambda: TF.solarize(x, 1 - mag),
           "autocontrast": lambda: TF.autocontrast(x), "equalize": lambda: TF.equalize(x)}[op]()
    ours = apply_op(op, u8.float() / 255 if op == "posterize" else x, mag, s)
    # colour/contrast: luminance weights 0.299 (PIL) against torchvision's 0.2989
    tol = 1e-4 if op in ("color", "contrast") else 1e-5
    assert (ours - ref).abs().max() <= tol
