"""Sphinx configuration of the deploygym docs (``make docs`` → ``docs/_build/html``).

At build start the generators write the env pages (``docs/envs/``, from each env class
docstring, with frames the envs render), the results tables (``docs/_generated/tables/``,
from ``benchmarks/results/*.json``) and the frames (``docs/_generated/frames/``). Set
``DEPLOYGYM_DOCS_FRAMES=tiny`` for the fast frame options the tests use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "deploygym"
author = "the deploygym authors"
copyright = "the deploygym authors"  # noqa: A001
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "_generated", "README.md", "_byo_*.md"]  # _byo_*: drafts merged into guides/bring-your-own.md
html_theme = "furo"
html_title = "deploygym"
html_static_path = ["_static"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_inherit_docstrings = False  # Gymnasium's own reset/step docstrings are not ours
napoleon_google_docstring = True
napoleon_use_ivar = True  # dataclass fields are documented once, not twice
# the envs build networks and data lazily; importing the modules is cheap
nitpicky = False


def generate(app) -> None:  # noqa: ANN001 (Sphinx application)
    """Write the generated pages, tables and frames before Sphinx reads the sources."""
    from docs.gen_env_pages import families_overview, write_pages
    from docs.gen_frames import write_strips
    from docs.gen_results import write_tables

    profile = os.environ.get("DEPLOYGYM_DOCS_FRAMES", "docs")
    frames = DOCS / "_generated" / "frames"
    write_strips(frames, profile=profile)
    write_pages(DOCS / "envs", frames)
    tables = DOCS / "_generated" / "tables"
    write_tables(tables)
    overview = tables / "families.md"
    text = families_overview(frames)
    if not overview.exists() or overview.read_text() != text:
        overview.write_text(text)


def env_docstring(app, what, name, obj, options, lines) -> None:  # noqa: ANN001
    """An env class docstring is Markdown in Gymnasium's layout; its full text is on the
    generated env page, so the API page keeps the summary line and links there."""
    if what == "class" and any(line.startswith("## Description") for line in lines):
        family = obj.__name__.removesuffix("Env")
        lines[:] = [lines[0], "", f"Spaces, rewards, episode end and arguments: "
                    f":doc:`/envs/{family.lower()}`.", ""]


def setup(app) -> dict[str, bool]:  # noqa: ANN001
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", env_docstring)
    return {"parallel_read_safe": True}
