"""Pinned networks: the committed network of an exact recipe is returned without training."""

from __future__ import annotations

import shutil

import pytest

import models.zoo
from models.cache import state_dict_sha256, train_once
from models.zoo import PinnedFileError, entry_for_recipe, load_entry, pinned_entry


def _no_training(*a, **k):
    raise AssertionError("a pinned network must not be trained or read from the cache")


def test_get_trained_returns_the_pinned_network_of_its_recipe_without_training(monkeypatch):
    monkeypatch.setattr(models.zoo, "train_once", _no_training)
    net = models.zoo.get_trained("fashion-mnist", "cnn", progress=False)
    entry = pinned_entry("fashion-mnist", "cnn")
    assert net.meta["pinned"] and state_dict_sha256(net) == entry["weights_sha256"]
    assert net.meta["config"] == models.zoo.resolve_config("fashion-mnist", "cnn").result_key()
    held_out = models.zoo.get_trained("fashion-mnist", "cnn", seed=1, progress=False)
    assert state_dict_sha256(held_out) == pinned_entry("fashion-mnist", "cnn",
                                                       {"seed": 1})["weights_sha256"]


def test_another_recipe_or_use_pinned_false_goes_to_the_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(models.zoo, "train_once", lambda *a, **k: calls.append(k) or "trained")
    assert entry_for_recipe(models.zoo.resolve_config("fashion-mnist", "cnn", seed=7)
                            .result_key()) is None
    assert models.zoo.get_trained("fashion-mnist", "cnn", seed=7, progress=False) == "trained"
    assert models.zoo.get_trained("fashion-mnist", "cnn", use_pinned=False,
                                  progress=False) == "trained"
    assert len(calls) == 2 and "fashion-mnist/cnn" in calls[0]["what"]


def test_a_damaged_pinned_file_is_refused_with_its_name_and_the_fix(monkeypatch, tmp_path):
    entry = pinned_entry("fashion-mnist", "cnn")
    shutil.copyfile(models.zoo.DIR / entry["file"], tmp_path / entry["file"])
    with open(tmp_path / entry["file"], "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    monkeypatch.setattr(models.zoo, "DIR", tmp_path)
    with pytest.raises(PinnedFileError, match=f"{entry['file']}.*git checkout"):
        load_entry(entry)


def test_a_build_is_announced_with_its_typical_time_and_a_cached_load_is_silent(tmp_path,
                                                                               capsys):
    def fit(run, resume):
        run.mkdir(parents=True, exist_ok=True)
        (run / "best.pt").write_bytes(b"weights")
        return {"acc": 1.0}

    def load(d):
        return (d / "model.pt").read_bytes() if (d / "meta.json").exists() else None

    assert train_once(tmp_path / "e", load, fit, what="the toy network",
                      typical="2 min on 2 CPU cores") == b"weights"
    err = capsys.readouterr().err
    assert "first use: training the toy network (typically 2 min on 2 CPU cores)" in err
    assert str(tmp_path / "e") in err
    train_once(tmp_path / "e", load, _no_training, what="the toy network")
    assert "first use" not in capsys.readouterr().err
