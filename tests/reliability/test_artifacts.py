"""Unverified artifacts are refused: a missing digest is an error, a pair may reference only a
sibling folder whose network's digest it records, and only exact allowlisted classes and known
keywords are taken from a file (nothing from a file runs or reaches PPO)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from agents.pairs.artifact import POLICY_KEYS, load_pair
from agents.pairs.trainer import PPO_HYPERPARAMS
from agents.policy_io import load_policy
from models.cache import file_digest
from models.readers import BadFileError


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def _set(*keys, value=None, drop=False):
    """A change of the record: set (or ``drop``) the entry at ``keys``."""
    def change(record):
        for k in keys[:-1]:
            record = record[k]
        if drop:
            record.pop(keys[-1])
        else:
            record[keys[-1]] = value
    return change


@pytest.fixture
def pairs(artifacts, tmp_path):
    """Fresh copies of the pair (``det``) and its attacker (``attack``), siblings."""
    return (_copy(artifacts.pair, tmp_path / "det"), _copy(artifacts.attack, tmp_path / "attack"))


def test_intact_pairs_load_and_the_attacker_records_its_sources_digest(pairs):
    det, attack = pairs
    rec = json.loads((attack / "pair.json").read_text())
    assert rec["net_source"] == "../det" and not (attack / "net.pt").exists()
    assert rec["sha256"]["../det/net.pt"] == file_digest(det / "net.pt")
    a, d = load_pair(attack), load_pair(det)
    assert all(torch.equal(v, d.net.state_dict()[k]) for k, v in a.net.state_dict().items())


@pytest.mark.parametrize(("where", "change", "message"), [
    ("det", _set("sha256", drop=True), "no 'sha256'"),
    ("det", _set("sha256", value={}), "records no sha256 for policy.pt"),
    ("attack", _set("sha256", "../det/net.pt", drop=True), "records no sha256 for net.pt"),
    ("attack", _set("net_source", value="../../elsewhere"), "only a sibling folder"),
    ("attack", _set("net_source", value="/tmp"), "only a sibling folder"),
    ("attack", _set("net_source", value="../det/../det"), "only a sibling folder"),
    ("det", _set("policy", "tensorboard_log", value="/tmp/anywhere"), "tensorboard_log"),
    ("det", _set("policy", "learning_rate", value="lin_0.1"), "learning_rate"),
    ("det", _set("env_kwargs", "cache_dir", value="/tmp/elsewhere"), "cache_dir"),
    ("det", _set("env_kwargs", "colour", value="blue"), "env options are invalid"),
    ("det", _set("network", "model_kw", "bogus", value=1), "network recipe"),
])
def test_a_pair_file_that_is_unverifiable_or_asks_for_more_is_refused(pairs, where, change,
                                                                     message):
    folder = dict(zip(("det", "attack"), pairs, strict=True))[where]
    _edit(folder / "pair.json", change)
    with pytest.raises(BadFileError, match="pair.json") as e:
        load_pair(folder)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_swapped_source_network_is_detected_by_the_pair_that_references_it(pairs):
    det, attack = pairs
    sd = torch.load(det / "net.pt", weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}, det / "net.pt")
    # the attacker re-signs the source too
    _edit(det / "pair.json", _set("sha256", "net.pt", value=file_digest(det / "net.pt")))
    load_pair(det)  # the source alone now looks consistent
    with pytest.raises(BadFileError, match=r"det/net.pt: does not match the sha256"):
        load_pair(attack)


def test_a_pickled_object_in_a_pair_never_runs(pairs, tmp_path):
    det, _ = pairs
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"weight": RunsCode()}, det / "policy.pt")
    _edit(det / "pair.json", _set("sha256", "policy.pt", value=file_digest(det / "policy.pt")))
    with pytest.raises(BadFileError, match="refused"):
        load_pair(det)
    assert not marker.exists()


def test_the_pair_keyword_allowlist_covers_what_the_search_writes():
    assert set(PPO_HYPERPARAMS) | {"n_steps"} <= POLICY_KEYS


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"activation_fn": {"class": "torch.nn_evil.X"}}, "torch.nn_evil.X"),
    ({"activation_fn": {"class": "torch.nn.functional"}}, "torch.nn.functional"),
    ({"activation_fn": {"class": "os.system"}}, "os.system"),
    ({"optimizer_class": {"class": "torch.nn.ReLU"}}, "torch.nn.ReLU"),  # not an optimizer
    ({"activation_fn": {"class": "torch.nn.modules.module._addindent"}}, "_addindent"),
    ({"features_extractor_class": {"class": "torch.nn.Identity"}}, "unknown policy arguments"),
])
def test_policy_json_names_only_exact_torch_classes_and_known_arguments(artifacts, tmp_path,
                                                                        kwargs, message):
    agent = _copy(artifacts.agent, tmp_path / "agent")
    rec = json.loads((agent / "policy.json").read_text())
    rec["policy_kwargs"] = {**rec["policy_kwargs"], **kwargs}
    (agent / "policy.json").write_text(json.dumps(rec))
    with pytest.raises(BadFileError, match="policy.json") as e:
        load_policy(agent, gym.make("CartPole-v1"))
    assert message in str(e.value)


def test_policy_json_allows_the_torch_classes_a_run_records(artifacts, tmp_path):
    agent = _copy(artifacts.agent, tmp_path / "agent")
    rec = json.loads((agent / "policy.json").read_text())
    rec["policy_kwargs"]["activation_fn"] = {"class": "torch.nn.modules.activation.Tanh"}
    rec["policy_kwargs"]["optimizer_class"] = {"class": "torch.optim.adam.Adam"}
    (agent / "policy.json").write_text(json.dumps(rec))
    model = load_policy(agent, gym.make("CartPole-v1"))
    assert model.policy.activation_fn is torch.nn.Tanh


def test_policy_json_without_its_digest_is_refused(artifacts, tmp_path):
    agent = _copy(artifacts.agent, tmp_path / "agent")
    _edit(agent / "policy.json", _set("sha256", drop=True))
    with pytest.raises(BadFileError, match=r"policy.json: is not a complete .*'sha256'"):
        load_policy(agent, gym.make("CartPole-v1"))
