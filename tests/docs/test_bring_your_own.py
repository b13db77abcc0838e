"""The "Bring your own" guide runs: every Python block of docs/guides/bring-your-own.md is
executed, section by section (one namespace per section, in a scratch folder), so the page
cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import distill.sources as sources

PAGE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "bring-your-own.md"
ENVS = ("DynamicPTQ", "DistillSource", "SensorPlacement")


def sections() -> dict[str, list[str]]:
    """``{section heading: [python blocks]}`` of the page."""
    out: dict[str, list[str]] = {}
    for part in re.split(r"^## ", PAGE.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        out[title.strip()] = re.findall(r"^```python\n(.*?)^```", body, flags=re.M | re.S)
    return out


def test_every_environment_has_a_runnable_example():
    found = {env: [t for t, blocks in sections().items() if env in t and blocks] for env in ENVS}
    assert all(found.values()), f"sections without a python example: {found}"


@pytest.mark.parametrize("env", ENVS)
def test_the_examples_run(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))  # registrations stay local
    monkeypatch.setattr(sources, "_FINGERPRINTS", dict(sources._FINGERPRINTS))
    (title, blocks), = [(t, b) for t, b in sections().items() if env in t]
    namespace: dict = {"__name__": f"bring_your_own_{env}"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{PAGE.name}[{title}][{i}]", "exec"), namespace)  # noqa: S102
    assert "env" in namespace, f"the {env} example builds no env"
    namespace["env"].close()
