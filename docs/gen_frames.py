"""Frames of one seeded episode per environment family, drawn by ``render_mode="rgb_array"``.

    python -m docs.gen_frames                 # strips for the docs: docs/_generated/frames/
    python -m docs.gen_frames --readme        # one frame per family: docs/_static/frames/
    python -m docs.gen_frames --profile tiny  # the fast options the tests use

``make docs`` calls :func:`write_strips` at build time; a strip is redrawn when its options
change (a sidecar JSON records them) or with ``--force``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from docs.catalog import Family, families

DOCS = Path(__file__).resolve().parent
STRIPS = DOCS / "_generated" / "frames"
README_FRAMES = DOCS / "_static" / "frames"
SEED = 0
# Options per family on top of its first registered id. "docs": the env's own defaults, which
# load in seconds (pinned networks, fields and pools), with a short DistillSource episode;
# "tiny": the tests' (no compile step, tiny pools, gappy POD on a small real field).
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "docs": {
        "DynamicPTQ": {},
        "DistillSource": {"phases": 4, "updates_per_phase": 30},  # the pinned default pools
        "SensorPlacement": {},
    },
    "tiny": {
        "DynamicPTQ": {"fused_quant": False},  # the pinned default network, eager quantizer
        "DistillSource": {"sources": ["opengl", "noise"], "pool_size": 64, "probe_size": 32,
                          "eval_size": 64, "phases": 2, "updates_per_phase": 2,
                          "augment": "none"},
        "SensorPlacement": {"dataset": "coads-sst", "n_sensors": 3, "estimator": "gappy_pod"},
    },
}


def profile_options(family: Family, profile: str) -> dict[str, Any]:
    """The options a family is rendered with (``KeyError`` for an unknown family/profile)."""
    if family.name not in PROFILES[profile]:
        raise KeyError(f"no frame options for the {family.name} family in profile {profile!r}: "
                       f"add them to docs/gen_frames.py")
    return dict(PROFILES[profile][family.name])


def _action(env: gym.Env, rng: np.random.Generator) -> Any:
    masks = getattr(env.unwrapped, "action_masks", None)
    if masks is not None and isinstance(env.action_space, gym.spaces.Discrete):
        return int(rng.choice(np.flatnonzero(masks())))
    return env.action_space.sample()


def render_episode(family: Family, options: dict[str, Any], seed: int = SEED,
                   max_steps: int = 50) -> list[np.ndarray]:
    """Every frame of one episode of the family's first id: after reset and after each step
    (seeded random actions within the action mask where there is one)."""
    env = gym.make(family.ids[0], render_mode="rgb_array", progress=False, **options)
    try:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        rng = np.random.default_rng(seed)
        frames = [env.render()]
        for _ in range(max_steps):
            _, _, terminated, truncated, _ = env.step(_action(env, rng))
            frames.append(env.render())
            if terminated or truncated:
                break
        return frames
    finally:
        env.close()


def is_blank(frame: np.ndarray) -> bool:
    """True for a frame without content: one colour, or nearly so."""
    flat = frame.reshape(-1, frame.shape[-1])
    return float(frame.std()) < 5.0 or len(np.unique(flat[::7], axis=0)) < 16


def strip(frames: list[np.ndarray], n: int = 4) -> np.ndarray:
    """Up to ``n`` frames spread over the episode: stacked for wide frames, else 2 columns."""
    idx = sorted({int(round(i)) for i in np.linspace(0, len(frames) - 1, min(n, len(frames)))})
    picked = [frames[i] for i in idx]
    h, w = picked[0].shape[:2]
    cols = 1 if w >= 3 * h else min(2, len(picked))
    rows = -(-len(picked) // cols)
    out = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for k, f in enumerate(picked):
        r, c = divmod(k, cols)
        out[r * h:(r + 1) * h, c * w:c * w + f.shape[1]] = f[:h, :w]
    return out


def _up_to_date(png: Path, meta: dict[str, Any]) -> bool:
    side, last = png.with_suffix(".json"), last_frame_path(png)
    return (png.exists() and last.exists() and side.exists()
            and json.loads(side.read_text()) == meta)


def last_frame_path(strip_png: Path) -> Path:
    """Where :func:`write_strips` keeps the episode's last frame beside its strip."""
    return strip_png.with_name(f"{strip_png.stem}_last.png")


def write_strips(out_dir: Path = STRIPS, profile: str = "docs", force: bool = False,
                 only: list[str] | None = None) -> dict[str, Path]:
    """One ``<family>.png`` strip and ``<family>_last.png`` frame per family (redrawn only
    when the options changed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for fam in families():
        if only and fam.name not in only:
            continue
        opts = profile_options(fam, profile)
        png = out_dir / f"{fam.slug}.png"
        meta = {"id": fam.ids[0], "options": opts, "seed": SEED, "profile": profile}
        if force or not _up_to_date(png, meta):
            frames = render_episode(fam, opts)
            if any(is_blank(f) for f in frames):
                raise RuntimeError(f"{fam.ids[0]} rendered a blank frame with {opts}")
            Image.fromarray(strip(frames)).save(png)
            Image.fromarray(frames[-1]).save(last_frame_path(png))
            png.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        written[fam.name] = png
    return written


def write_readme_frames(out_dir: Path = README_FRAMES, profile: str = "docs") -> dict[str, Path]:
    """The last frame of each family's seeded episode, for the README's picture grid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for fam in families():
        frame = render_episode(fam, profile_options(fam, profile))[-1]
        if is_blank(frame):
            raise RuntimeError(f"{fam.ids[0]} rendered a blank frame")
        path = out_dir / f"{fam.slug}.png"
        Image.fromarray(frame).save(path)
        written[fam.name] = path
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", action="store_true", help="write the README's frames instead")
    p.add_argument("--profile", choices=sorted(PROFILES), default="docs")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--force", action="store_true", help="redraw strips that are up to date")
    args = p.parse_args(argv)
    if args.readme:
        paths = write_readme_frames(Path(args.out or README_FRAMES), args.profile)
    else:
        paths = write_strips(Path(args.out or STRIPS), args.profile, args.force)
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
