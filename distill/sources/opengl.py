"""The ``opengl`` source: procedural GLSL shaders rendered headless with moderngl on EGL.

A batch is rendered into one framebuffer tiled with one viewport-sized quad per image: images
are grouped by shader, each group is a single instanced draw whose per-instance attributes are
the tile position and the image's 16 random uniforms, and the whole framebuffer is read back
once. Greyscale teachers get the luminance written by the shader into a single-channel target.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from distill.sources.base import Source, derived_seed, rng_for
from distill.sources.shaders import Shader, get_shaders
from distill.sources.shaders.common import VERTEX

APT_HINT = "sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"
NUM_PARAMS = 16
GL_TRIANGLE_STRIP = 0x0005
_ATTRS = ("in_a", "in_b", "in_c", "in_t")
# A sampled image must span at least this many 8-bit levels: about 0.7 % of random renders are
# one flat colour (20 of 27 in 4 096 from rm_spheres), and a class-balanced filter picked such
# identical black images for 308 of a 4 096-image Fashion-MNIST pool.
MIN_LEVELS = 4.0
MAX_REDRAWS = 8
T = TypeVar("T")


def redraw_seed(seed: int, attempt: int) -> int:
    """Seed of the ``attempt``-th redraw of the flat images of ``sample(n, seed)``."""
    return derived_seed(seed, 0x0F1A7, attempt)


class OpenGLUnavailableError(RuntimeError):
    """Raised when no headless OpenGL (EGL) context can be created."""


class _GLThread:
    """The one thread of the process that owns the EGL context and every GL object.

    A context per rendering thread costs ~37 MB that EGL does not give back when the context is
    released (measured: ~6 MB per created-and-released context stays), so every GL call of the
    process runs here instead, and memory stays flat however many threads and sources render.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="deploygym-gl")
        self.ctx = None
        self.renderers: dict[tuple[tuple[str, ...], bool], ShaderRenderer] = {}
        self.thread: threading.Thread | None = self.pool.submit(threading.current_thread).result()


_gl: _GLThread | None = None
_gl_lock = threading.Lock()


def on_gl_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the process's GL thread and return its result (its exceptions are
    raised here). Calls made on the GL thread itself run directly."""
    global _gl
    with _gl_lock:
        if _gl is None or _gl.pid != os.getpid():  # a forked child starts its own thread
            _gl = _GLThread()
        gl = _gl
    if threading.current_thread() is gl.thread:
        return fn(*args)
    return gl.pool.submit(fn, *args).result()


def _state() -> _GLThread:
    assert _gl is not None and threading.current_thread() is _gl.thread, "GL thread only"
    return _gl


def gl_context():
    """The process's standalone EGL context (created on first use); use it on the GL thread
    only, i.e. inside :func:`on_gl_thread`."""
    return on_gl_thread(_context)


def _context():
    st = _state()
    if st.ctx is None:
        try:
            import moderngl
        except ImportError as e:  # pragma: no cover - dependency declared in pyproject
            raise OpenGLUnavailableError(
                "the opengl source needs moderngl: `pip install moderngl`") from e
        try:
            ctx = moderngl.create_context(standalone=True, backend="egl")
        except Exception as e:
            raise OpenGLUnavailableError(
                f"cannot create a headless OpenGL context through EGL ({e}). "
                f"Install the EGL/Mesa drivers: `{APT_HINT}`") from e
        if ctx.version_code < 330:
            ctx.release()
            raise OpenGLUnavailableError(
                f"OpenGL 3.3 needed, got {ctx.version_code}; install Mesa: `{APT_HINT}`")
        st.ctx = ctx
    return st.ctx


def gl_info() -> dict[str, Any]:
    """``GL_RENDERER``, ``GL_VERSION`` and the rest of moderngl's ``Context.info``."""
    return on_gl_thread(lambda: dict(_context().info))


def shared_renderer(shader_names: Sequence[str], gray: bool) -> ShaderRenderer:
    """The renderer for these shaders and colour mode, shared by every source that uses them
    (a new source reuses the compiled programs instead of compiling its own)."""
    key = (tuple(shader_names), bool(gray))

    def get() -> ShaderRenderer:
        st = _state()
        if key not in st.renderers:
            st.renderers[key] = ShaderRenderer(get_shaders(key[0]), gray=key[1])
        return st.renderers[key]

    return on_gl_thread(get)


def release_gl() -> None:
    """Free every shared renderer and the EGL context (the next render starts afresh)."""
    def release() -> None:
        st = _state()
        for r in st.renderers.values():
            r.release()
        st.renderers.clear()
        if st.ctx is not None:
            st.ctx.release()
            st.ctx = None

    on_gl_thread(release)


class _Program:
    """A compiled shader with its instance buffer and vertex array (grown on demand)."""

    def __init__(self, ctx, shader: Shader, gray: bool, quad) -> None:
        self.ctx, self.quad, self.name = ctx, quad, shader.name
        try:
            self.prog = ctx.program(vertex_shader=VERTEX, fragment_shader=shader.fragment(gray))
        except Exception as e:
            raise RuntimeError(f"shader {shader.name!r} failed to compile: {e}") from e
        fmt, names = ["2f"], ["in_tile"]
        for a in _ATTRS:  # the linker drops attributes a shader never reads: skip their bytes
            if a in self.prog:
                fmt.append("4f")
                names.append(a)
            else:
                fmt.append("16x")
        self.fmt, self.names = " ".join(fmt) + "/i", names
        self.capacity = 0
        self.buf = self.vao = None

    def release(self) -> None:
        for obj in (self.vao, self.buf, self.prog):
            if obj is not None:
                obj.release()
        self.vao = self.buf = None

    def draw(self, inst: np.ndarray, tile: tuple[float, float], fb: tuple[int, int],
             size: tuple[int, int]) -> None:
        if len(inst) > self.capacity:
            if self.vao is not None:
                self.vao.release()
                self.buf.release()
            self.capacity = max(64, 1 << int(np.ceil(np.log2(len(inst)))))
            self.buf = self.ctx.buffer(reserve=self.capacity * inst.shape[1] * 4)
            self.vao = self.ctx.vertex_array(
                self.prog, [(self.quad, "2f", "in_corner"), (self.buf, self.fmt, *self.names)])
        self.buf.write(inst.tobytes())
        self.prog["u_tile"].value = tile
        self.prog["u_fb"].value = fb
        self.prog["u_size"].value = size
        self.vao.render(GL_TRIANGLE_STRIP, vertices=4, instances=len(inst))


class ShaderRenderer:
    """Renders batches of library shaders with given uniforms into uint8 arrays.

    Its GL objects live on the process's GL thread (:func:`on_gl_thread`); the public methods
    may be called from any thread. Prefer :func:`shared_renderer` to a new instance.
    """

    def __init__(self, shaders: Sequence[Shader] | None = None, gray: bool = False,
                 max_framebuffer: int = 2048) -> None:
        self.shaders = tuple(shaders) if shaders is not None else get_shaders()
        self.gray = gray
        self.components = 1 if gray else 3
        self.max_fb = int(max_framebuffer)
        self._programs: dict[int, _Program] = {}
        self._fbos: dict[tuple[int, int], object] = {}
        self.ctx, self.quad = on_gl_thread(self._setup)

    def _setup(self) -> tuple[Any, Any]:
        ctx = _context()
        return ctx, ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype="f4").tobytes())

    def program(self, i: int) -> _Program:
        """The compiled program of shader ``i`` (compiled on first use; GL thread)."""
        if i not in self._programs:
            self._programs[i] = _Program(self.ctx, self.shaders[i], self.gray, self.quad)
        return self._programs[i]

    def compile_all(self) -> None:
        on_gl_thread(lambda: [self.program(i) for i in range(len(self.shaders))])

    def release(self) -> None:
        """Free every GL object of this renderer (the context stays)."""
        def release() -> None:
            for prog in self._programs.values():
                prog.release()
            for fbo in self._fbos.values():
                for rb in fbo.color_attachments:
                    rb.release()
                fbo.release()
            self.quad.release()
            self._programs, self._fbos = {}, {}

        on_gl_thread(release)

    def _fbo(self, w: int, h: int):
        if (w, h) not in self._fbos:
            rb = self.ctx.renderbuffer((w, h), components=1 if self.gray else 4)
            self._fbos[(w, h)] = self.ctx.framebuffer(color_attachments=[rb])
        return self._fbos[(w, h)]

    def render(self, shader_idx: np.ndarray, params: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Images ``[n, H, W, C]`` uint8 for shader indices ``[n]`` and uniforms ``[n, 16]``."""
        shader_idx = np.asarray(shader_idx, dtype=np.int64)
        params = np.asarray(params, dtype=np.float32)
        if params.shape != (len(shader_idx), NUM_PARAMS):
            raise ValueError(f"params must be [{len(shader_idx)}, {NUM_PARAMS}], got {params.shape}")
        return on_gl_thread(self._render, shader_idx, params, size)

    def _render(self, shader_idx: np.ndarray, params: np.ndarray, size: tuple[int, int]
                ) -> np.ndarray:
        h, w = size
        cols_max, rows_max = max(1, self.max_fb // w), max(1, self.max_fb // h)
        chunk = cols_max * rows_max
        out = np.empty((len(shader_idx), h, w, self.components), dtype=np.uint8)
        for start in range(0, len(shader_idx), chunk):
            sl = slice(start, start + chunk)
            out[sl] = self._render_chunk(shader_idx[sl], params[sl], h, w, cols_max)
        return out

    def _render_chunk(self, idx: np.ndarray, params: np.ndarray, h: int, w: int,
                      cols_max: int) -> np.ndarray:
        n = len(idx)
        cols = min(n, cols_max)
        rows = -(-n // cols)
        fbw, fbh = cols * w, rows * h
        fbo = self._fbo(fbw, fbh)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 1.0)
        k = np.arange(n)
        tile = (2.0 * w / fbw, 2.0 * h / fbh)
        origin = np.stack([-1.0 + (k % cols) * tile[0], -1.0 + (k // cols) * tile[1]], 1)
        inst = np.concatenate([origin.astype(np.float32), params], 1)
        for s in np.unique(idx):
            self.program(int(s)).draw(np.ascontiguousarray(inst[idx == s]), tile, (fbw, fbh), (w, h))
        data = np.frombuffer(fbo.read(components=self.components, alignment=1), dtype=np.uint8)
        img = data.reshape(rows, h, cols, w, self.components).transpose(0, 2, 1, 3, 4)
        return img.reshape(rows * cols, h, w, self.components)[:n]


class OpenGLSource(Source):
    """Random images from the shader library: shader uniform over the library, uniforms U[0, 1).

    Args:
        shaders: library subset by name (default: all).
        supersample: render at ``s×`` resolution and average down (anti-aliasing, ``s²`` cost).
        autocontrast: stretch each image to the full ``[0, 1]`` range.
    """

    name = "opengl"

    def __init__(self, image_size: tuple[int, int] | int, channels: int,
                 shaders: Sequence[str] | None = None, supersample: int = 1,
                 autocontrast: bool = True) -> None:
        super().__init__(image_size, channels)
        self.shader_names = tuple(s.name for s in get_shaders(shaders))
        self.supersample = int(supersample)
        self.autocontrast = autocontrast

    @property
    def renderer(self) -> ShaderRenderer:
        """The process's renderer for this source's shaders and colour mode (shared)."""
        return shared_renderer(self.shader_names, self.channels == 1)

    def draw_params(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Shader indices and uniforms for ``sample(n, seed)``."""
        rng = rng_for(seed)
        idx = rng.integers(0, len(self.shader_names), n)
        return idx, rng.random((n, NUM_PARAMS), dtype=np.float32)

    def render(self, shader_idx: np.ndarray, params: np.ndarray) -> torch.Tensor:
        """Render given shader indices/uniforms to float ``[n, C, H, W]`` in ``[0, 1]``."""
        return self._finish(self._render_levels(shader_idx, params))

    def _render_levels(self, shader_idx: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``[n, H, W, C]`` float32 in 8-bit levels (0-255), supersampling averaged down."""
        s = self.supersample
        h, w = self.image_size
        arr = self.renderer.render(shader_idx, params, (h * s, w * s))
        # NumPy, not torch: small single-threaded ops do not fight llvmpipe's threads for cores.
        x = arr.astype(np.float32)
        if s > 1:
            x = x.reshape(len(x), h, s, w, s, -1).mean(axis=(2, 4))
        return x

    def _finish(self, x: np.ndarray) -> torch.Tensor:
        if self.autocontrast:
            lo = x.min(axis=(1, 2, 3), keepdims=True)
            span = x.max(axis=(1, 2, 3), keepdims=True) - lo
            x -= lo
            x *= 1.0 / np.maximum(span, 16.0)
        else:
            x *= 1.0 / 255.0
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` images; renders with fewer than ``MIN_LEVELS`` grey levels (e.g. a raymarched
        scene whose objects miss the view) are drawn again with new shaders and uniforms."""
        x = self._render_levels(*self.draw_params(n, seed))
        for attempt in range(1, MAX_REDRAWS + 1):
            flat = np.flatnonzero(np.ptp(x, axis=(1, 2, 3)) < MIN_LEVELS)
            if len(flat) == 0:
                break
            x[flat] = self._render_levels(*self.draw_params(len(flat), redraw_seed(seed, attempt)))
        return self._finish(x)
