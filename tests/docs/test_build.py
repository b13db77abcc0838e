"""``make docs`` end to end on a copy of docs/: Sphinx with warnings as errors, frames the envs
render at build time (the tests' tiny options), links and images that resolve."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docs.catalog import families
from docs.gen_frames import is_blank, profile_options, render_episode, write_strips

ROOT = Path(__file__).resolve().parents[2]
REF = re.compile(r"(?:href|src)=\"([^\"]+)\"")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A copy of docs/ (beside a link to benchmarks/) built into ``<copy>/_build/html``."""
    from sphinx.cmd.build import build_main

    base = tmp_path_factory.mktemp("site")
    src = base / "docs"
    shutil.copytree(ROOT / "docs", src, ignore=shutil.ignore_patterns(
        "_build", "_generated", "envs", "__pycache__"))
    (base / "benchmarks").symlink_to(ROOT / "benchmarks")
    write_strips(src / "_generated" / "frames", profile="tiny")  # what conf.py would render
    warnings = base / "warnings.txt"
    old = os.environ.get("DEPLOYGYM_DOCS_FRAMES")
    os.environ["DEPLOYGYM_DOCS_FRAMES"] = "tiny"
    try:
        code = build_main(["-W", "--keep-going", "-q", "-b", "html", "-w", str(warnings),
                           "-d", str(base / "doctrees"), str(src), str(src / "_build" / "html")])
    finally:
        if old is None:
            os.environ.pop("DEPLOYGYM_DOCS_FRAMES")
        else:
            os.environ["DEPLOYGYM_DOCS_FRAMES"] = old
    assert code == 0, warnings.read_text()
    return src


def test_docs_build_without_warnings_and_every_internal_link_resolves(site):
    html = site / "_build" / "html"
    pages = list(html.rglob("*.html"))
    assert len(pages) >= 20
    broken = []
    for page in pages:
        for ref in REF.findall(page.read_text()):
            target = ref.split("#")[0].split("?")[0]
            if not target or re.match(r"[a-z]+:", target):
                continue
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(html)} → {ref}")
    assert not broken, broken[:20]


def test_every_env_page_shows_its_ids_and_its_frames(site):
    html = site / "_build" / "html"
    for fam in families():
        page = (html / "envs" / f"{fam.slug}.html").read_text()
        for env_id in fam.ids:
            assert env_id in page, (fam.name, env_id)
        img = re.search(r"<img[^>]+src=\"([^\"]*" + fam.slug + r"[^\"]*\.png)\"", page)
        assert img, f"{fam.name} page has no frames"
        frame = np.asarray(Image.open((html / "envs" / img.group(1)).resolve()).convert("RGB"))
        assert not is_blank(frame)


def test_every_results_page_shows_a_figure(site):
    html = site / "_build" / "html"
    for page in [*(html / "results").glob("*.html"), *(html / "benchmarks").glob("*.html")]:
        if page.stem in ("ptq-env-speed", "distill-speed", "sweep-overhead", "fault-injection"):
            continue  # speed and reliability benchmarks report tables only
        assert re.search(r"<img[^>]+\.png", page.read_text()), page.name


def test_each_family_renders_a_non_blank_frame_after_reset_and_a_step():
    for fam in families():
        frames = render_episode(fam, profile_options(fam, "tiny"), max_steps=1)
        assert len(frames) == 2
        for f in frames:
            assert f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8
            assert not is_blank(f), fam.name
    assert is_blank(np.full_like(frames[0], 255))  # the check can fail
