"""The first ``gym.make`` of every registered id builds nothing: networks, the cylinder field,
transfer sets and boundary pools all come from committed, verified artifacts."""

from __future__ import annotations

import gymnasium as gym
import pytest

import distill.logits
import envs
import envs.distill_source.resources
import fields.flow.cylinder
import fields.pretrained
import models.train
import models.zoo


def _never(what: str):
    def fail(*a, **k):
        raise AssertionError(f"first use of a registered id must not call {what}")
    return fail


@pytest.mark.parametrize("env_id", envs.ALL_IDS)
def test_first_make_of_every_id_loads_committed_artifacts(env_id, monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYGYM_CACHE", str(tmp_path))  # an empty cache, as on a fresh clone
    for module, name in ((models.zoo, "train_once"), (models.train, "train"),
                         (fields.pretrained, "train_once"), (fields.flow.cylinder, "simulate"),
                         (distill.logits, "build_transfer_set"),
                         (envs.distill_source.resources, "boundary_attack")):
        monkeypatch.setattr(module, name, _never(f"{module.__name__}.{name}"))
    env = gym.make(env_id, progress=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()
