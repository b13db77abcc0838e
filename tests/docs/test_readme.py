"""The README: small, every id of the registry in its table, every path it names present."""

from __future__ import annotations

import re
from pathlib import Path

import envs
from docs.catalog import id_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"")


def _local_targets(text: str) -> list[str]:
    targets = [a or b for a, b in LINK.findall(text)]
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t.split("#")[0]]


def test_readme_is_at_most_15000_bytes():
    assert len(README.read_bytes()) <= 15_000


def test_every_path_and_image_the_readme_references_exists():
    targets = _local_targets(README.read_text())
    assert any(t.endswith(".png") for t in targets), "the README shows no frame"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_id_table_lists_every_registered_id_as_the_catalog_describes_it():
    text = README.read_text()
    assert id_table() in text, ("README's id table differs from `python -m docs.catalog`; "
                                "paste its output into the README")
    rows = [line for line in text.splitlines() if line.startswith("| `deploygym/")]
    listed = {re.match(r"\| `([^`]+)`", r).group(1) for r in rows}
    assert listed == set(envs.ALL_IDS)


def test_results_table_cells_stay_short():
    text = README.read_text()
    section = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    cells = [c.strip() for line in section.splitlines() if line.startswith("|")
             for c in line.strip("|").split("|")]
    assert cells and max(len(c) for c in cells) <= 300


def _paragraphs(text: str) -> list[str]:
    """Prose paragraphs outside code fences and tables; each list item counts as one."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    blocks = [p.strip() for b in text.split("\n\n") for p in re.split(r"\n(?=- )", b)]
    return [b for b in blocks if b and not b.startswith(("|", "#", "<"))]


def test_no_paragraph_of_the_readme_or_the_docs_runs_past_150_words():
    pages = [README, *sorted((ROOT / "docs").glob("[a-z]*/*.md")), *(ROOT / "docs").glob("*.md")]
    long = {}
    for page in pages:
        if "_build" in page.parts or page.parent.name == "envs":
            continue
        for para in _paragraphs(page.read_text()):
            if len(para.split()) > 150:
                long[str(page.relative_to(ROOT))] = para[:80]
    assert not long, long
