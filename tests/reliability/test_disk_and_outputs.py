"""Writes and outputs: a full disk or a refused write is a ``WriteError`` naming the path (torch's
serializer included, the previous file kept); a read-only cache is usable for reading;
``DEPLOYGYM_CACHE``/``DEPLOYGYM_DATA`` empty or not a folder name the variable; an output folder
has one writer at a time; sweep names and benchmark targets cannot leave their folder."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
import torch

import models.cache
import models.io
from agents.sweep.config import SweepConfigError, parse_config
from models.cache import cache_root, train_once
from models.datasets import default_data_root
from models.io import OutputLockedError, WriteError, atomic_torch_save, output_lock


class _Full(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def _full_disk(monkeypatch, folder: Path) -> None:
    """Files opened for writing under ``folder`` answer ENOSPC: the fd goes to ``/dev/full``
    where there is one, else writes go to a raw file that refuses them."""
    real = os.fdopen

    def fdopen(fd, *a, **k):
        path = os.readlink(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").exists() else ""
        if not path.startswith(str(folder)):
            return real(fd, *a, **k)
        if Path("/dev/full").exists():
            dev = os.open("/dev/full", os.O_WRONLY)
            os.dup2(dev, fd)
            os.close(dev)
            return real(fd, *a, **k)
        os.close(fd)
        return io.BufferedWriter(_Full())
    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_full_disk_is_a_write_error_naming_the_file_and_the_old_file_survives(tmp_path,
                                                                                monkeypatch):
    path = tmp_path / "ckpt" / "last.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)
    _full_disk(monkeypatch, tmp_path.resolve())
    with pytest.raises(WriteError, match=str(path)) as e:
        atomic_torch_save({"w": torch.zeros(100_000)}, path)
    assert e.value.errno == errno.ENOSPC and "Free disk space" in str(e.value)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


def test_torch_serializer_and_folder_failures_become_write_errors(tmp_path, monkeypatch):
    def enforce_fail(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")
    monkeypatch.setattr(torch, "save", enforce_fail)
    with pytest.raises(WriteError, match=r"pair\.pt"):
        atomic_torch_save({}, tmp_path / "pair.pt")
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")  # a file where the folder should be
    with pytest.raises(WriteError, match=r"file/x\.pt"):
        atomic_torch_save({}, tmp_path / "file" / "x.pt")


def test_a_read_only_cache_serves_what_it_holds_and_names_the_variable_otherwise(tmp_path,
                                                                               monkeypatch):
    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    monkeypatch.setattr(models.cache, "file_lock", read_only)
    trained = []
    fit = lambda run, resume: trained.append(run) or {}  # noqa: E731
    assert train_once(tmp_path / "held", lambda d: "the model", fit) == "the model"
    with pytest.raises(WriteError, match="DEPLOYGYM_CACHE") as e:
        train_once(tmp_path / "missing", lambda d: None, fit, what="digits/cnn network")
    assert "missing" in str(e.value) and not trained  # nothing trained to be thrown away


@pytest.mark.parametrize("var", ["DEPLOYGYM_CACHE", "DEPLOYGYM_DATA"])
def test_cache_and_data_variables_empty_or_not_a_folder_name_the_variable(var, tmp_path,
                                                                         monkeypatch):
    read = cache_root if var == "DEPLOYGYM_CACHE" else default_data_root
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, "")
    with pytest.raises(ValueError, match=f"{var} is set but empty"):
        read()
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv(var, str(tmp_path / "f"))
    with pytest.raises(NotADirectoryError, match=f"{var}=.*not a folder"):
        read()
    monkeypatch.setenv(var, str(tmp_path / "new"))
    assert read() == tmp_path / "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # nothing written in the cwd


def test_an_output_folder_has_one_writer_at_a_time(tmp_path):
    out = tmp_path / "pair"
    with output_lock(out):
        with pytest.raises(OutputLockedError, match=f"{out} is in use by another run.*--out"):
            with output_lock(out):
                pass
    with output_lock(out):  # released when the first run ends
        pass


def test_an_output_folder_on_a_full_disk_is_refused_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(models.io.shutil, "disk_usage",
                        lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(WriteError, match=r"pair: 1000 bytes free"):
        with output_lock(tmp_path / "pair"):
            pass


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "../../x"}, "must be a plain folder name"),
    ({"name": "/tmp/x"}, "must be a plain folder name"),
    ({"name": ".hidden"}, "must be a plain folder name"),
    ({"target": "benchmark:../../tmp/evil"}, "must name a script under benchmarks/"),
    ({"target": "benchmark:/tmp/evil"}, "must name a script under benchmarks/"),
])
def test_sweep_names_and_benchmark_targets_cannot_leave_their_folder(raw, message):
    with pytest.raises(SweepConfigError, match=message):
        parse_config({"target": "models.train", "grid": {"lr": [1]}, **raw}, "s.yaml")
    assert parse_config({"target": "benchmark:speed/first_use", "grid": {"x": [1]},
                         "name": "ok-1"}, "s.yaml").name == "ok-1"
