"""``--net``/``--weights`` given wrong: a missing module, a builder that raises, weights of
another network, a weights file that would run code when unpickled. Each is one line and
exit 2 from agents.evaluate, agents.pairs and agents.train, and nothing in a weights file
is executed."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from agents import evaluate, train
from agents.pairs import trainer as pairs
from models.cli import run_cli

BUILDERS = """
from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def broken():
    raise RuntimeError("the builder is broken")
"""


class _RunsCode:
    """Unpickling this opens (creates) ``path``: what a malicious weights file would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def user_files(tmp_path):
    (tmp_path / "mynets.py").write_text(BUILDERS)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).state_dict(), tmp_path / "other.pt")
    marker = tmp_path / "EXECUTED"
    torch.save({"0.weight": _RunsCode(str(marker))}, tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"0.weight": _RunsCode(str(marker))}, f)
    return tmp_path, marker


def _run(main, argv, capsys, monkeypatch) -> str:
    monkeypatch.delenv("DEPLOYGYM_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        run_cli(main, argv, prog="python -m x")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2, err
    assert len(err) == 2 and err[1].startswith("(run with --debug")  # one line + the hint
    assert "Traceback" not in err[0]
    return err[0]


CASES = [
    ("no_such_package_xyz.nets:build", None, "no module named 'no_such_package_xyz'"),
    ("{d}/mynets.py:broken", None, "the builder raised RuntimeError: the builder is broken"),
    ("{d}/mynets.py:nothere", None, "has no attribute 'nothere'"),
    ("{d}/mynets.py:build", "{d}/other.pt", "weights of another architecture"),
    ("{d}/mynets.py:build", "{d}/evil.pt", "refused: unpickling them could run code"),
    ("{d}/mynets.py:build", "{d}/evil.pkl", "refused: unpickling them could run code"),
]


@pytest.mark.parametrize("net, weights, message", CASES)
def test_evaluate_refuses_a_bad_net_in_one_line(net, weights, message, user_files, capsys,
                                                monkeypatch):
    d, marker = user_files
    argv = ["--env", "deploygym/DynamicPTQ-v0", "--random", "--net", net.format(d=d),
            "--out", str(d / "ev"), "--no-progress"]
    argv += ["--weights", weights.format(d=d)] if weights else []
    line = _run(evaluate.main, argv, capsys, monkeypatch)
    assert message in line
    assert not marker.exists()  # nothing in the weights file ran
    assert not (d / "ev").exists()  # refused before anything was built or written


@pytest.mark.parametrize("tool", ["pairs", "train"])
def test_pairs_and_train_refuse_a_code_running_weights_file(tool, user_files, capsys,
                                                            monkeypatch):
    d, marker = user_files
    own = ["--net", f"{d}/mynets.py:build", "--weights", f"{d}/evil.pt"]
    if tool == "pairs":
        main, argv = pairs.main, [*own, "--attack", "standard", "--no-progress", "--out",
                                  str(d / "o")]
    else:
        main, argv = train.main, [*own, "--no-progress-bar", "-v", "0", "-f", str(d / "o")]
    line = _run(main, argv, capsys, monkeypatch)
    assert "refused" in line and "evil.pt" in line
    assert not marker.exists()
