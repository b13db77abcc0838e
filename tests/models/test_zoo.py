import json
import warnings

import pytest

import models.zoo as Z
from models.cache import file_digest


def test_trains_once_then_loads_from_cache(tmp_path, monkeypatch):
    net = Z.get_trained("digits", "cnn", width=4, epochs=3, cache_dir=tmp_path, progress=False)
    assert net.meta["test_acc"] > 0.6 and not net.training
    d = Z.model_dir(Z.resolve_config("digits", "cnn", width=4, epochs=3), tmp_path)
    meta = json.loads((d / "meta.json").read_text())
    assert meta["sha256"] == file_digest(d / "model.pt") and "versions" in meta

    monkeypatch.setattr(Z, "train", lambda *a, **k: pytest.fail("should load from cache"))
    again = Z.get_trained("digits", "cnn", width=4, epochs=3, cache_dir=tmp_path, progress=False)
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert (a == b).all()


def test_corrupt_cache_is_retrained_with_warning(tmp_path):
    kw = dict(width=4, epochs=3, cache_dir=tmp_path, progress=False)
    Z.get_trained("digits", "cnn", **kw)
    d = Z.model_dir(Z.resolve_config("digits", "cnn", width=4, epochs=3), tmp_path)
    (d / "model.pt").write_bytes(b"garbage")
    (d / "run" / "last.pt").write_bytes(b"also garbage")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        net = Z.get_trained("digits", "cnn", **kw)
    assert any("retraining" in str(x.message) for x in w)
    assert json.loads((d / "meta.json").read_text())["sha256"] == file_digest(d / "model.pt")
    assert any("training from scratch" in str(x.message) for x in w)
    assert net.meta["test_acc"] > 0.6


def test_config_changes_the_key_but_device_does_not():
    a = Z.model_dir(Z.resolve_config("digits", "cnn", seed=0))
    assert a != Z.model_dir(Z.resolve_config("digits", "cnn", seed=1))
    assert a == Z.model_dir(Z.resolve_config("digits", "cnn", seed=0, device="cuda"))
    with pytest.raises(TypeError, match="unknown training options"):
        Z.resolve_config("digits", "cnn", wdith=3)


def test_unreadable_best_checkpoint_with_intact_last_does_not_wedge_the_entry(tmp_path):
    kw = dict(width=4, epochs=3, cache_dir=tmp_path, progress=False)
    Z.get_trained("digits", "cnn", **kw)
    d = Z.model_dir(Z.resolve_config("digits", "cnn", width=4, epochs=3), tmp_path)
    (d / "model.pt").unlink()
    best = d / "run" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])  # truncated; last.pt stays intact
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        net = Z.get_trained("digits", "cnn", **kw)
    assert any("best.pt is unreadable" in str(x.message) for x in w)
    assert json.loads((d / "meta.json").read_text())["sha256"] == file_digest(d / "model.pt")
    assert net.meta["test_acc"] > 0.5
    Z.get_trained("digits", "cnn", **kw)  # and it loads cleanly afterwards
