"""User transfer sets: ``register_source`` (a function or a Source subclass), the checks on what
a function returns, and cache keys that follow the registered code and a user's images."""

from __future__ import annotations

import pytest
import torch

import distill.sources as sources
from distill.logits import cached_teacher_logits, teacher_fingerprint, transfer_config
from distill.sources import get_source, list_sources, register_source, source_fingerprint
from distill.sources.base import Source


def stripes(n, gen, image_size, channels):
    """Vertical stripes: every row of an image is the same."""
    h, w = image_size
    row = torch.rand(n, channels, 1, w, generator=gen)
    return row.expand(n, channels, h, w).clone()


class Checker(Source):
    name = "checker"

    def sample(self, n, seed):
        h, w = self.image_size
        board = ((torch.arange(h)[:, None] + torch.arange(w)[None]) % 2).float()
        return board.expand(n, self.channels, h, w).clone()


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so registrations do not leak into other tests."""
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))
    monkeypatch.setattr(sources, "_FINGERPRINTS", dict(sources._FINGERPRINTS))


def test_a_registered_function_is_a_seeded_source_of_the_requested_shape(registry):
    register_source("stripes", stripes)
    assert "stripes" in list_sources()
    src = get_source("stripes", image_size=(8, 10), channels=1)
    a = src.sample(5, seed=3)
    assert a.shape == (5, 1, 8, 10) and torch.equal(a, src.sample(5, seed=3))
    assert not torch.equal(a, src.sample(5, seed=4))
    assert torch.equal(a, a[:, :, :1].expand_as(a))  # the function's images, not another's
    rgb = get_source("stripes", image_size=16, channels=3).sample(2, seed=0)
    assert rgb.shape == (2, 3, 16, 16)
    mix = get_source("stripes:0.5+noise:0.5", image_size=8, channels=1).sample(64, seed=1)
    rows_equal = (mix == mix[:, :, :1]).flatten(1).all(1)
    assert 10 < int(rows_equal.sum()) < 54  # about half of the mixture is stripes


def test_a_source_subclass_registers_with_its_options(registry):
    register_source("checker", Checker)
    x = get_source("checker", image_size=4, channels=1).sample(2, seed=0)
    assert x[0, 0].tolist() == [[0, 1, 0, 1], [1, 0, 1, 0]] * 2


def test_bad_registrations_and_bad_images_fail_with_one_clear_line(registry):
    with pytest.raises(ValueError, match="already exists"):
        register_source("leaves", stripes)
    with pytest.raises(ValueError, match="without"):
        register_source("a+b", stripes)
    with pytest.raises(TypeError, match="needs a function"):
        register_source("thing", 3)
    register_source("stripes", stripes)
    with pytest.raises(ValueError, match="replace=True"):
        register_source("stripes", stripes)
    register_source("stripes", stripes, replace=True)
    register_source("flat", lambda n, gen, size, ch: torch.rand(n, size[0], size[1]))
    with pytest.raises(ValueError, match=r"'flat' returned \(3, 8, 8\) for n=3.*\[3, 1, 8, 8\]"):
        get_source("flat", image_size=8, channels=1).sample(3, seed=0)
    register_source("nan", lambda n, gen, size, ch: torch.full((n, ch, *size), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        get_source("nan", image_size=8, channels=1).sample(3, seed=0)


def test_cache_keys_follow_the_registered_code_and_the_users_images(registry):
    assert source_fingerprint("leaves") is None  # built-in keys (and pinned entries) unchanged
    assert "source_code" not in transfer_config("t", "leaves", 8, 0, (8, 8), 1, False, None)
    register_source("stripes", stripes)
    first = source_fingerprint("stripes")
    register_source("stripes", lambda n, gen, size, ch: stripes(n, gen, size, ch) * 0.5,
                    replace=True)
    assert first != source_fingerprint("stripes") is not None
    register_source("stripes", stripes, replace=True, key="v2")
    assert source_fingerprint("stripes") not in (first, None)
    assert source_fingerprint("noise+stripes:0.3").startswith("stripes=")
    a, b = torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8)
    key_a = transfer_config("t", "target", 8, 0, (8, 8), 1, False, {"images": a})
    key_b = transfer_config("t", "target", 8, 0, (8, 8), 1, False, {"images": b})
    assert key_a["source_kwargs"]["images"].startswith("sha256:") and key_a != key_b


def test_changed_code_builds_a_new_transfer_set_instead_of_reading_the_old(registry, tmp_path):
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    key = teacher_fingerprint(teacher)
    kw = dict(image_size=(8, 8), channels=1, cache_dir=tmp_path, progress=False)
    register_source("stripes", stripes)
    first = cached_teacher_logits(teacher, key, "stripes", 16, 0, **kw).images
    register_source("stripes", lambda n, gen, size, ch: 1 - stripes(n, gen, size, ch),
                    replace=True)
    second = cached_teacher_logits(teacher, key, "stripes", 16, 0, **kw).images
    assert torch.allclose(second, 1 - first, atol=1 / 255)
    assert len(list((tmp_path / "transfer").glob("stripes-*"))) == 2
