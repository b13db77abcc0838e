"""One Markdown page per environment family, generated from its class docstring at build time
(as Gymnasium's ``gen_mds.py`` does): frames, ids with their options, the docstring sections
(spaces, rewards, episode end, arguments) and the ``gym.make`` line."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from docs.catalog import PAPERS, Family, families, id_row, options

ROLE = re.compile(r":(mod|func|class|meth|attr|data|obj):`([^`]+)`")


def docstring_markdown(cls: type) -> tuple[str, str]:
    """The class docstring as (summary line, MyST body): ``## Section`` headings kept,
    reST roles turned into MyST roles."""
    doc = inspect.getdoc(cls) or ""
    summary, _, body = doc.partition("\n")
    return summary.strip(), ROLE.sub(r"{\1}`\2`", body.strip())


def _options_cell(env_id: str) -> str:
    opts = options(env_id)
    return ", ".join(f"`{k}={v!r}`" for k, v in opts.items()) or "(defaults)"


def _frames_caption(fam: Family, meta: dict) -> str:
    opts = ", ".join(f"`{k}={v!r}`" for k, v in meta.get("options", {}).items())
    return (f"One episode of `{meta.get('id', fam.ids[0])}` (seed {meta.get('seed', 0)}, "
            "seeded random actions, within the action mask where the env has one)"
            + (f" with {opts}" if opts else "")
            + "; each frame drawn by the env's `render_mode=\"rgb_array\"` at build time.")


def page(fam: Family, frames_rel: str | None, meta: dict | None = None) -> str:
    """The Markdown of one family's page."""
    summary, body = docstring_markdown(fam.env_class)
    first = fam.ids[0]
    lines = [f"# {fam.name}", "", f"{summary} Paper: {PAPERS.get(fam.name, 'none')}.", ""]
    if frames_rel:
        lines += [f"```{{figure}} {frames_rel}", f":alt: frames of one {fam.name} episode", "",
                  _frames_caption(fam, meta or {}), "```", ""]
    lines += ["## Ids", "",
              "Each id is the class with the options shown; any keyword of the class "
              "overrides them.", ""]
    for env_id in fam.ids:
        action, obs, reward = id_row(fam, env_id)
        lines += [f"- `{env_id}`: {_options_cell(env_id)}", f"  - action: {action}",
                  f"  - observation: {obs}", f"  - reward: {reward}"]
    lines += ["", "## Make it", "", "```python", "import gymnasium as gym",
              "import envs  # registers the deploygym ids", "",
              f'env = gym.make("{first}", render_mode="rgb_array")',
              "obs, info = env.reset(seed=0)", "frame = env.render()  # an RGB array", "```", ""]
    lines += [body, ""]  # the docstring's sections: Description, Action Space, ... Version History
    return "\n".join(lines)


def families_overview(frames_dir: Path | None) -> str:
    """The index's overview: per family its last frame, summary, paper and ids."""
    lines = []
    for fam in families():
        summary, _ = docstring_markdown(fam.env_class)
        lines += [f"### [{fam.name}](envs/{fam.slug}.md)", ""]
        if frames_dir is not None and (frames_dir / f"{fam.slug}_last.png").exists():
            lines += [f"![{fam.name} frame](_generated/frames/{fam.slug}_last.png)", ""]
        ids = ", ".join(f"`{i.split('/', 1)[1]}`" for i in fam.ids)
        lines += [f"{summary} Paper: {PAPERS.get(fam.name, 'none')}. Ids: {ids}.", ""]
    return "\n".join(lines)


def write_pages(out_dir: Path, frames_dir: Path | None) -> list[Path]:
    """Write ``<family>.md`` for every family into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fam in families():
        frames_rel, meta = None, {}
        if frames_dir is not None and (frames_dir / f"{fam.slug}.png").exists():
            frames_rel = Path("..", "_generated", "frames", f"{fam.slug}.png").as_posix()
            side = frames_dir / f"{fam.slug}.json"
            meta = json.loads(side.read_text()) if side.exists() else {}
        path = out_dir / f"{fam.slug}.md"
        text = page(fam, frames_rel, meta)
        if not path.exists() or path.read_text() != text:  # keep Sphinx's incremental build
            path.write_text(text)
        paths.append(path)
    return paths
