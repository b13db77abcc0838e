"""Every ``python -m`` entry point answers ``--help``; bad flag values exit with a usage error."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MODULES = sorted(set(re.findall(r"python -m ([\w.]+)", (ROOT / "README.md").read_text())))
# Every module of the project that runs as ``python -m``: a package with __main__.py, or a
# module with an ``if __name__ == "__main__"`` block.
PACKAGES = ("models", "distill", "fields", "envs", "agents")
OWN_MODULES = sorted(
    {".".join(p.relative_to(ROOT).parent.parts)
     for pkg in PACKAGES for p in (ROOT / pkg).rglob("__main__.py")}
    | {".".join(p.relative_to(ROOT).with_suffix("").parts)
       for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
       if '__name__ == "__main__"' in p.read_text()})


def test_readme_names_only_runnable_modules():
    own = [m for m in README_MODULES if m.split(".")[0] in PACKAGES]
    assert own and set(own) <= set(OWN_MODULES), set(own) - set(OWN_MODULES)
    assert {"agents.train", "agents.evaluate", "agents.pairs", "models.train"} <= set(own)


def _run_module(module: str, args: list[str], monkeypatch) -> int:
    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    return exc.value.code


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize("module", sorted(set(README_MODULES) | set(OWN_MODULES)))
def test_help_works(module, monkeypatch, capsys):
    assert _run_module(module, ["--help"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "usage:" in out and len(out.splitlines()) > 3


@pytest.mark.parametrize(("module", "args", "message"), [
    ("models.train", ["--epochs", "-1"], "epochs must be"),
    ("agents.pairs", ["--rounds", "0"], "--rounds must be ≥ 1"),
    ("agents.train", ["--algo", "nope"], "invalid choice"),
])
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
def test_bad_values_are_usage_errors(module, args, message, monkeypatch, capsys):
    assert _run_module(module, args, monkeypatch) == 2
    assert message in capsys.readouterr().err


def _fake_main(exc):
    def main(argv):
        raise exc
    return main


@pytest.mark.parametrize(("exc", "code"), [(ValueError("bad --lr\nuse a number"), 2),
                                           (FileNotFoundError("no such file x.zip"), 2),
                                           (FloatingPointError("loss is nan"), 1),
                                           (KeyboardInterrupt("continue with --resume"), 130)])
def test_run_cli_prints_one_line_and_exits_with_the_right_code(exc, code, capsys, monkeypatch):
    from models.cli import run_cli

    monkeypatch.delenv("DEPLOYGYM_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        run_cli(_fake_main(exc), [], prog="python -m x")
    err = capsys.readouterr().err
    assert e.value.code == code and "Traceback" not in err
    assert err.splitlines()[0].startswith("python -m x: ")
    assert str(exc).split("\n")[0] in err.splitlines()[0]
    with pytest.raises(type(exc)):  # --debug shows the real exception
        run_cli(_fake_main(exc), ["--debug"], prog="python -m x")


def test_cli_exit_codes_end_to_end(tmp_path):
    import subprocess

    bad = subprocess.run([sys.executable, "-m", "agents.train", "--env", "deploygym/Nope-v0",
                          "-f", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert "Nope" in bad.stderr
