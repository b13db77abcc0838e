"""Env pages are generated for every registered id; an id without docs fails."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.envs.registration import register, registry

import envs
from docs.catalog import families, id_table
from docs.gen_env_pages import write_pages


def test_every_id_is_on_its_family_page_with_its_gym_make_line(tmp_path):
    pages = {p.stem: p.read_text() for p in write_pages(tmp_path, None)}
    seen = set()
    for fam in families():
        page = pages[fam.slug]
        assert f'gym.make("{fam.ids[0]}"' in page
        for section in ("## Ids", "## Action Space", "## Observation Space", "## Rewards",
                        "## Episode End", "## Arguments"):
            assert section in page, (fam.name, section)
        for env_id in fam.ids:
            assert f"- `{env_id}`: " in page
            seen.add(env_id)
    assert seen == set(envs.ALL_IDS)


class _UndocumentedEnv(gym.Env):
    """An env family the docs know nothing about."""


def test_an_id_of_a_family_without_docs_fails(monkeypatch):
    env_id = "deploygym/Undocumented-v0"
    register(id=env_id, entry_point=f"{__name__}:_UndocumentedEnv")
    try:
        monkeypatch.setattr(envs, "ALL_IDS", [*envs.ALL_IDS, env_id])
        with pytest.raises(KeyError, match="Undocumented"):
            id_table()
    finally:
        del registry[env_id]
