import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import models.train as T
from models.io import WriteError


def _cfg(tmp_path, **kw):
    base = dict(dataset="digits", arch="cnn", width=8, epochs=4, batch_size=64, lr=0.05,
                hflip=False, run_dir=str(tmp_path / "run"), progress=False)
    return T.TrainConfig(**{**base, **kw})


def _scalar_steps(run_dir, tag):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_trains_digits_and_records_provenance(tmp_path, digits):
    res = T.train(_cfg(tmp_path, epochs=5), digits)
    assert res["metrics"]["test_acc"] > 0.85
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["seed"] == 0 and "torch" in saved["versions"] and saved["command"]
    assert len(saved["history"]) == 5
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    tags = acc.Tags()
    assert "val/val_acc" in tags["scalars"] and "lr" in tags["scalars"]
    assert any(t.startswith("bn_gamma/") for t in tags["histograms"])


def test_same_seed_same_numbers(tmp_path, digits):
    a = T.train(_cfg(tmp_path / "a", epochs=2), digits)
    b = T.train(_cfg(tmp_path / "b", epochs=2), digits)
    c = T.train(_cfg(tmp_path / "c", epochs=2, seed=1), digits)
    assert a["history"] == b["history"]
    assert a["history"] != c["history"]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, digits, monkeypatch):
    full = T.train(_cfg(tmp_path / "full"), digits)
    calls = {"n": 0}
    real_eval = T.evaluate

    def dying_eval(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_eval(*a, **k)

    cfg = _cfg(tmp_path / "killed")
    monkeypatch.setattr(T, "evaluate", dying_eval)
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        T.train(cfg, digits)
    monkeypatch.setattr(T, "evaluate", real_eval)
    assert torch.load(tmp_path / "killed" / "run" / "last.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        T.train(cfg, digits)
    cfg.resume = True
    resumed = T.train(cfg, digits)
    assert resumed["history"] == full["history"]
    assert resumed["metrics"]["test_acc"] == full["metrics"]["test_acc"]
    steps = [s for s, _ in _scalar_steps(tmp_path / "killed" / "run", "val/val_acc")]
    assert steps == sorted(set(steps)) and len(steps) == 4


def test_resume_refuses_other_config_naming_only_the_differing_keys(tmp_path, digits):
    T.train(_cfg(tmp_path, epochs=1), digits)
    with pytest.raises(ValueError, match=r"different configuration \(lr: 0.05 → 0.1\);"):
        T.train(_cfg(tmp_path, epochs=1, lr=0.1, resume=True), digits)


def test_train_time_adds_up_across_resumes(tmp_path, digits, monkeypatch):
    cfg = _cfg(tmp_path, epochs=2)
    real_eval, calls = T.evaluate, {"n": 0}

    def dying_eval(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_eval(*a, **k)

    monkeypatch.setattr(T, "evaluate", dying_eval)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, digits)
    monkeypatch.setattr(T, "evaluate", real_eval)
    first = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_time_s"]
    assert first > 0
    cfg.resume = True
    assert T.train(cfg, digits)["metrics"]["train_time_s"] > first


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_divergence_stops_the_run_with_a_fix_and_no_result(tmp_path, digits, optimizer):
    with pytest.raises((T.DivergenceError, T.NonFiniteLossError), match="lower --lr") as e:
        T.train(_cfg(tmp_path, lr=1e3, optimizer=optimizer, epochs=2), digits)
    assert "no checkpoint was written" in str(e.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_nan_loss_is_reported_with_a_fix(tmp_path, digits):
    digits_nan = type(digits)(digits.info, T.Split(digits.train.images.clone(), digits.train.labels),
                              digits.val, digits.test)
    digits_nan.train.images[:] = float("nan")
    with pytest.raises(T.NonFiniteLossError, match="lower --lr"):
        T.train(_cfg(tmp_path), digits_nan)


def test_write_failure_keeps_previous_checkpoint(tmp_path, digits, monkeypatch):
    cfg = _cfg(tmp_path, epochs=2)
    T.train(_cfg(tmp_path, epochs=2, run_dir=str(tmp_path / "ok")), digits)
    import models.io as io

    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 0 writes best+last; epoch 1 hits a full disk
            raise OSError(28, "No space left on device")
        return real_save(obj, f)

    monkeypatch.setattr(io.torch, "save", failing_save)
    with pytest.raises(WriteError, match="No space left"):
        T.train(cfg, digits)
    monkeypatch.setattr(io.torch, "save", real_save)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["epoch"] == 0
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_cli_flags_from_dataclass(tmp_path):
    res = T.main(["--dataset", "digits", "--width", "4", "--epochs", "1", "--no-hflip",
                  "--bn", "revisited", "--input-norm", "bn", "--run-dir", str(tmp_path / "cli"),
                  "--no-progress"])
    assert res["config"]["bn"] == "revisited" and res["config"]["hflip"] is False
    with pytest.raises(SystemExit):
        T.main(["--bn", "weird"])
    with pytest.raises(ValueError, match="epochs"):
        T.TrainConfig(epochs=0)
