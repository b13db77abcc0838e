"""Speed of the transfer-set sources, above all the OpenGL shader renderer.

Measured in one run, interleaved repeats, medians kept:

* ``opengl`` images/s at 28×28 (grey and RGB) and 32×32 (grey and RGB) through
  ``OpenGLSource.sample`` (batched: one instanced draw per shader, one framebuffer read per
  batch), and the GL part alone;
* the reference: the same renderer driven one image per call (draw + read per image), so the
  ratio says what batching buys on this machine;
* images/s of every other source and of the augmentation policies.

Also writes sample grids of every source as PNG.

    python benchmarks/speed/kd_sources_render.py                  # default
    python benchmarks/speed/kd_sources_render.py --scale smoke    # seconds

Writes ``benchmarks/results/kd_sources_render.json`` (or ``..._<scale>.json``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from distill.augment import get_policy  # noqa: E402
from distill.sources import get_source  # noqa: E402
from distill.sources.opengl import OpenGLSource, gl_info  # noqa: E402
from distill.sources.shaders import LIBRARY  # noqa: E402
from models.io import atomic_write_json, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def rate(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def bench_opengl(size: int, ch: int, batch: int, single: int, repeats: int) -> dict:
    src = OpenGLSource(size, ch)
    src.renderer.compile_all()
    src.sample(batch, 0)  # warm: framebuffers, buffers
    idx, params = src.draw_params(batch, 1)
    one = [(idx[i:i + 1], params[i:i + 1]) for i in range(single)]
    for a, b in one[:4]:
        src.renderer.render(a, b, (size, size))
    sample, gl_only, per_image = [], [], []
    for r in range(repeats):
        sample.append(rate(lambda r=r: src.sample(batch, 100 + r), batch))
        gl_only.append(rate(lambda: src.renderer.render(idx, params, (size, size)), batch))
        per_image.append(rate(lambda: [src.renderer.render(a, b, (size, size)) for a, b in one],
                              single))
    out = {"size": f"{size}x{size}", "channels": ch, "batch": batch,
           "sample_images_per_s": statistics.median(sample),
           "gl_only_images_per_s": statistics.median(gl_only),
           "one_image_per_call_images_per_s": statistics.median(per_image)}
    out["batched_vs_one_per_call"] = out["sample_images_per_s"] / out["one_image_per_call_images_per_s"]
    return out


def bench_others(size: int, ch: int, batch: int, repeats: int) -> dict:
    out = {}
    for name, kw in [("target", {"dataset": "fashion-mnist"}), ("digits", {}), ("photos", {}),
                     ("leaves", {}), ("fractals", {}), ("noise", {"dataset": "fashion-mnist"}),
                     ("uniform", {})]:
        src = get_source(name, image_size=size, channels=ch, **kw)
        src.sample(8, 0)
        out[name] = statistics.median(rate(lambda r=r, s=src: s.sample(batch, r), batch)
                                      for r in range(repeats))
    x = get_source("opengl", image_size=size, channels=ch).sample(batch, 0)
    for pol in ("standard", "heavy"):
        p = get_policy(pol, size)
        p(x[:8], torch.Generator().manual_seed(0))
        out[f"augment_{pol}"] = statistics.median(
            rate(lambda r=r, p=p: p(x, torch.Generator().manual_seed(r)), batch) for r in range(repeats))
    return out


def save_grids(size: int, ch: int, results_dir: Path = RESULTS) -> str:
    from torchvision.utils import save_image

    rows = []
    for name, kw in [("target", {"dataset": "fashion-mnist"}), ("digits", {}), ("photos", {}),
                     ("opengl", {}), ("leaves", {}), ("fractals", {}),
                     ("noise", {"dataset": "fashion-mnist"}), ("uniform", {})]:
        rows.append(get_source(name, image_size=size, channels=ch, **kw).sample(16, 0))
    heavy = get_policy("heavy", size)(rows[3], torch.Generator().manual_seed(0))
    grid = torch.nn.functional.interpolate(torch.cat(rows + [heavy]), scale_factor=2)
    path = Path(results_dir) / f"kd_sources_grid_{size}x{size}x{ch}.png"
    save_image(grid, str(path), nrow=16, padding=2, pad_value=1.0)
    return path.name


SCALES = {"smoke": (512, 64, 3), "default": (2048, 256, 5), "paper": (8192, 512, 9)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=tuple(SCALES), default="default",
                    help="smoke: seconds; default: the committed result; paper: larger batches")
    ap.add_argument("--quick", action="store_true", help="alias of --scale smoke")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    scale = "smoke" if args.quick else args.scale
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    batch, single, repeats = SCALES[scale]
    load0 = os.getloadavg()
    info = gl_info()
    results = {"gl_renderer": info["GL_RENDERER"], "gl_version": info["GL_VERSION"],
               "num_shaders": len(LIBRARY), "torch_threads": torch.get_num_threads(),
               "scale": scale, "opengl": [], "other_sources_images_per_s": {}}
    for size, ch in [(28, 1), (28, 3), (32, 1), (32, 3)]:
        r = bench_opengl(size, ch, batch, single, repeats)
        results["opengl"].append(r)
        print(f"opengl {r['size']}x{ch}: {r['sample_images_per_s']:9.0f} img/s sampled, "
              f"{r['gl_only_images_per_s']:9.0f} GL only, "
              f"{r['one_image_per_call_images_per_s']:7.0f} one-per-call "
              f"(batched ×{r['batched_vs_one_per_call']:.1f})")
    for size, ch in [(28, 1), (32, 3)]:
        o = bench_others(size, ch, 512, repeats)
        results["other_sources_images_per_s"][f"{size}x{size}x{ch}"] = o
        print(f"{size}x{size}x{ch}: " + ", ".join(f"{k} {v:.0f}" for k, v in o.items()))
        results.setdefault("grids", []).append(save_grids(size, ch, results_dir))
    results["table"] = results["opengl"]
    results["load_average_start_end"] = [load0, os.getloadavg()]
    results["note"] = ("2-core machine shared with other jobs: see load_average_start_end. "
                       "Images/s are medians of interleaved repeats; the ratio compares the "
                       "batched renderer with the same renderer driven one image per call.")
    prov = provenance()
    results.update(command=prov["command"], seeds=[0], versions=prov["versions"], provenance=prov)
    name = "kd_sources_render.json" if scale == "default" else f"kd_sources_render_{scale}.json"
    atomic_write_json(results, results_dir / name)
    print(f"wrote {results_dir / name}")
    return results


if __name__ == "__main__":
    main()
