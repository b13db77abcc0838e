"""The OpenGL shader source: every shader compiles and renders, batching, determinism, diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.sources import get_source
from distill.sources.opengl import (
    MIN_LEVELS,
    NUM_PARAMS,
    OpenGLSource,
    OpenGLUnavailableError,
    ShaderRenderer,
)
from distill.sources.shaders import LIBRARY, SHADER_NAMES, get_shaders

PER_SHADER = 6


@pytest.fixture(scope="module", params=[1, 3], ids=["gray", "rgb"])
def rendered(request):
    """Every shader rendered ``PER_SHADER`` times with random uniforms, in one batched call."""
    src = OpenGLSource(28, request.param)
    idx = np.repeat(np.arange(len(LIBRARY)), PER_SHADER)
    params = np.random.default_rng(0).random((len(idx), NUM_PARAMS), dtype=np.float32)
    x = src.render(idx, params)
    return request.param, x.view(len(LIBRARY), PER_SHADER, request.param, 28, 28), params


def test_library_size_and_names():
    assert len(LIBRARY) >= 30
    assert len(set(SHADER_NAMES)) == len(SHADER_NAMES)
    assert len({s.family for s in LIBRARY}) >= 5
    with pytest.raises(KeyError, match="valid"):
        get_shaders(["not_a_shader"])


def test_every_shader_renders_non_constant_varied_images(rendered):
    ch, x, _ = rendered
    assert x.shape[2] == ch
    for i, name in enumerate(SHADER_NAMES):
        imgs = x[i].flatten(1)
        spread = imgs.std(1)
        assert (spread > 0.02).sum() >= PER_SHADER - 1, f"{name} renders flat images: {spread}"
        diff = torch.cdist(imgs, imgs) / imgs.shape[1] ** 0.5
        off = diff[~torch.eye(PER_SHADER, dtype=torch.bool)]
        assert off.min() > 0.01, f"{name} ignores its uniforms"


def test_shaders_differ_from_each_other(rendered):
    _, x, _ = rendered
    # same uniforms, different shaders: images must differ markedly
    flat = x.flatten(2)  # [S, K, D]
    d = (flat[:, None] - flat[None]).abs().mean(-1).mean(-1)  # [S, S]
    d = d + torch.eye(len(LIBRARY))
    assert d.min() > 0.05, "two shaders render (nearly) the same images"


def test_rgb_and_gray_agree_in_luminance():
    idx = np.arange(8)
    params = np.random.default_rng(1).random((8, NUM_PARAMS), dtype=np.float32)
    rgb = OpenGLSource(16, 3, autocontrast=False).render(idx, params)
    gray = OpenGLSource(16, 1, autocontrast=False).render(idx, params)
    lum = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert (lum - gray).abs().max() < 3 / 255


def test_sample_is_deterministic_and_in_range():
    src = get_source("opengl", image_size=32, channels=3)
    a = src.sample(50, seed=11)
    assert a.shape == (50, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, src.sample(50, seed=11))
    assert not torch.equal(a, src.sample(50, seed=12))
    b = list(src.batches(10, seed=11, num_batches=2))
    assert not torch.equal(b[0], b[1])


def test_chunked_framebuffer_matches_single_pass():
    idx = np.random.default_rng(2).integers(0, len(LIBRARY), 37)
    params = np.random.default_rng(3).random((37, NUM_PARAMS), dtype=np.float32)
    big = ShaderRenderer(gray=True).render(idx, params, (12, 12))
    small = ShaderRenderer(gray=True, max_framebuffer=40).render(idx, params, (12, 12))  # 3×3 tiles
    assert np.array_equal(big, small)


def test_supersample_and_shader_subset():
    src = OpenGLSource(16, 1, shaders=["plasma", "julia"], supersample=2)
    x = src.sample(6, 0)
    assert x.shape == (6, 1, 16, 16)
    assert set(src.draw_params(100, 0)[0].tolist()) == {0, 1}


def test_missing_egl_names_the_apt_packages(monkeypatch):
    import moderngl

    from distill.sources import opengl

    def fail(**kw):
        raise Exception("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_context", fail)
    monkeypatch.setattr(opengl, "_gl", None)  # a fresh GL thread, whose context creation fails
    with pytest.raises(OpenGLUnavailableError, match="libegl1 libegl-mesa0 libgl1-mesa-dri"):
        OpenGLSource(8, 1).sample(2, 0)


def test_sample_redraws_flat_renders():
    """Raymarched spheres often miss the view; sampled images are never one flat colour."""
    src = OpenGLSource(12, 1, shaders=["rm_spheres"], autocontrast=False)
    idx, params = src.draw_params(256, 5)
    raw = src.render(idx, params).flatten(1)
    assert ((raw.amax(1) - raw.amin(1)) * 255 < MIN_LEVELS).sum() > 10  # the problem exists
    x = src.sample(256, 5).flatten(1)
    assert ((x.amax(1) - x.amin(1)) * 255 >= MIN_LEVELS - 1e-3).all()
    assert torch.equal(x, src.sample(256, 5).flatten(1))


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_gl_memory_stays_flat_over_sources_and_threads():
    """One GL thread owns every GL object: new sources reuse the compiled programs, and new
    rendering threads (prefetchers) create no context (each used to keep ~37 MB)."""
    import threading

    from distill.pool import Prefetcher
    from distill.sources import opengl

    for ch in (1, 3):  # compile every shader in both colour modes first: paid once (~60 MB)
        OpenGLSource(16, ch).renderer.compile_all()
        OpenGLSource(16, ch).sample(2, 0)
    before, threads = _rss_mb(), threading.active_count()
    renderers = len(opengl._gl.renderers)
    for i in range(300):
        OpenGLSource(16, 1 + 2 * (i % 2)).sample(2, i)
    for _ in range(15):
        src = OpenGLSource(16, 1)
        with Prefetcher(lambda k, src=src: src.sample(2, k), 0, 2) as batches:
            assert len(list(batches)) == 2
    grown = _rss_mb() - before
    assert grown < 30, f"GL memory grew {grown:.0f} MB over 300 sources and 15 threads"
    assert threading.active_count() == threads
    assert len(opengl._gl.renderers) == renderers and opengl._gl.ctx is not None
    # the same image whichever thread asks for it
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("x", OpenGLSource(16, 3).sample(3, 9)))
    t.start()
    t.join()
    assert torch.equal(out["x"], OpenGLSource(16, 3).sample(3, 9))


def test_release_gl_frees_and_rendering_starts_afresh():
    from distill.sources import opengl

    before = OpenGLSource(12, 1).sample(3, 1)
    opengl.release_gl()
    assert opengl._gl.ctx is None and not opengl._gl.renderers
    assert torch.equal(OpenGLSource(12, 1).sample(3, 1), before)
