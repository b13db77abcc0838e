"""What every fault case shares: running a command as a user would, checking what it printed,
and the small artifacts (a trained pair, a trained agent) the tampering cases start from.

A case is a function ``case(tmp) -> {"expected", "observed", "handled"}`` run in its own empty
folder ``tmp``; :func:`cli` builds the usual one: run ``python ARGS`` in ``tmp`` (after an
optional ``setup``), expect an exit code and a one-line message naming some words, and
optionally ``check`` what is left on disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
Case = Callable[[Path], dict[str, Any]]

TINY_ENV = ["dataset:digits", "width:4", "epochs:1", "progress:false"]
TRAIN_BASE = ["--dataset", "digits", "--arch", "cnn", "--width", "4", "--no-progress"]
TINY_TRAIN = [*TRAIN_BASE, "--epochs", "1"]
TINY_PAIR = ["--dataset", "digits", "--model-kw", "width:4", "epochs:1", "--n-envs", "4",
             "--policy-steps", "32", "--round-eval", "20", "--eval-limit", "20",
             "--net-steps", "2", "--no-progress"]
AGENT_TRAIN = ["-m", "agents.train", "--env-kwargs", *TINY_ENV, "--no-progress-bar", "-v", "0",
               "-f", "runs"]


class Session:
    """The folder shared by every case of one benchmark run: the model cache (so the tiny
    network trains once) and the fixtures built from it."""

    dir: Path | None = None

    @classmethod
    def path(cls) -> Path:
        if cls.dir is None:
            cls.dir = Path(tempfile.mkdtemp(prefix="deploygym-faults-"))
        return cls.dir

    @classmethod
    def close(cls) -> None:
        if cls.dir is not None:
            shutil.rmtree(cls.dir, ignore_errors=True)
            cls.dir = None


def env(extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a case's process: this repository importable, the session cache,
    no debug tracebacks; ``extra`` overrides (``None`` removes a variable)."""
    out = {**os.environ, "PYTHONPATH": str(ROOT), "DEPLOYGYM_DEBUG": "", "MPLBACKEND": "Agg",
           "DEPLOYGYM_CACHE": str(Session.path() / "cache")}
    for k, v in (extra or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def run(args: list[str], cwd: Path, *, extra_env: dict[str, str | None] | None = None,
        timeout: float = 600, send: int | None = None, when: Callable[[], bool] | None = None
        ) -> tuple[int, str]:
    """Exit code and stderr of ``python ARGS`` in ``cwd``; with ``send``, that signal is sent
    once ``when()`` holds (polled every 0.2 s)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env(extra_env), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if send is not None:
        t0 = time.monotonic()
        while proc.poll() is None and not (when is None or when()):
            if time.monotonic() - t0 > timeout:
                break
            time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(send)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        err += "\n(timed out)"
    return proc.returncode, err


def message(err: str) -> str:
    """The line a tool printed about the failure (its ``python -m X: ...`` line)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    mine = [ln for ln in lines if ln.startswith(("python -m", "benchmarks/")) or ": error: " in ln]
    return mine[-1] if mine else (lines[-1] if lines else "")


def one_line(err: str, *needles: str) -> bool:
    """No traceback, and the tool's one line names every needle."""
    return "Traceback" not in err and all(n in message(err) for n in needles)


def cli(args: list[str], code: int, *needles: str, setup: Callable[[Path], Any] | None = None,
        check: Callable[[Path], bool] | None = None, what: str = "",
        extra_env: dict[str, str | None] | Callable[[Path], dict[str, str | None]] | None = None,
        send: int | None = None, when: Callable[[Path], bool] | None = None) -> Case:
    """A case: ``setup(tmp)``, run ``python ARGS`` in ``tmp``, expect exit ``code`` and a
    one-line message naming ``needles``, then ``check(tmp)`` (``what`` describes it).
    Arguments may hold ``{tmp}``, replaced by the case folder."""
    def case(tmp: Path) -> dict[str, Any]:
        if setup is not None:
            setup(tmp)
        argv = [a.replace("{tmp}", str(tmp)) for a in args]
        extra = extra_env(tmp) if callable(extra_env) else extra_env
        rc, err = run(argv, tmp, extra_env=extra, send=send,
                      when=(lambda: when(tmp)) if when is not None else None)
        ok = rc == code and one_line(err, *needles)
        extra_ok = check(tmp) if check is not None else True
        return {"expected": f"exit {code}, one line naming {list(needles)}"
                            + (f"; {what}" if what else ""),
                "observed": (f"exit {rc}: {message(err)}"[:400]
                             + ("" if extra_ok else f" (check failed: {what})")),
                "handled": bool(ok and extra_ok)}
    return case


def library(code: str, needle: str, expected: str) -> Case:
    """A case run as library code in a fresh process: ``code`` must raise an exception whose
    message names ``needle`` (the process prints ``type: message`` on its last line)."""
    wrapper = ("import sys\ntry:\n" + "".join(f"    {ln}\n" for ln in code.splitlines())
               + "    print('no error', file=sys.stderr)\nexcept Exception as e:\n"
                 "    print(f'{type(e).__name__}: {e}', file=sys.stderr)\n")

    def case(tmp: Path) -> dict[str, Any]:
        rc, err = run(["-c", wrapper], tmp)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        return {"expected": expected, "observed": last[:400],
                "handled": rc == 0 and needle in last and not last.startswith("no error")}
    return case


def no_file(pattern: str) -> Callable[[Path], bool]:
    """A check: nothing matching ``pattern`` was written under the case folder."""
    return lambda tmp: not list(tmp.rglob(pattern))


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut ``path`` to ``keep`` of its bytes (a copy killed mid-write, a partial download)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def copy_fixture(name: str, tmp: Path) -> Path:
    """A fresh copy of the fixture folder ``name`` (see :func:`fixture`) in ``tmp``."""
    src = fixture(name)
    dst = tmp / src.name
    shutil.copytree(src, dst)
    return dst


def _build(args: list[str], cwd: Path) -> None:
    rc, err = run(args, cwd)
    if rc != 0:
        raise RuntimeError(f"building a fault fixture failed (exit {rc}): {err[-2000:]}")


def fixture(name: str) -> Path:
    """Fixture folders, built once per session: ``pairs/det`` (a tiny detrimental pair),
    ``pairs/attack`` (an attacker naming ``../det``), ``agent`` (an agents.train run),
    ``train`` (a models.train run that finished)."""
    base = Session.path() / "fixtures"
    base.mkdir(parents=True, exist_ok=True)
    path = {"pair": base / "pairs" / "det", "attack": base / "pairs" / "attack",
            "agent": base / "agent", "train": base / "train"}[name]
    if path.exists():
        return path
    if name == "pair":
        _build(["-m", "agents.pairs", *TINY_PAIR, "--rounds", "1", "--out", str(path)], base)
    elif name == "attack":
        _build(["-m", "agents.pairs", *TINY_PAIR, "--rounds", "1", "--attack",
                str(fixture("pair")), "--out", str(path)], base)
    elif name == "agent":
        _build(["-m", "agents.train", "--env-kwargs", *TINY_ENV, "--no-progress-bar", "-v", "0",
                "-n", "64", "--hyperparams", "n_steps:32", "batch_size:32", "--eval-freq", "0",
                "--save-freq", "0", "-f", str(base / "agents")], base)
        run_json = next((base / "agents").rglob("run.json"))
        shutil.copytree(run_json.parent, path)
    else:
        _build(["-m", "models.train", *TINY_TRAIN, "--run-dir", str(path)], base)
    return path


def kill_after(path: str, sig: int = signal.SIGTERM) -> dict[str, Any]:
    """``send``/``when`` arguments of :func:`cli`: ``sig`` once ``tmp/path`` exists."""
    return {"send": sig, "when": lambda tmp: (tmp / path).exists()}
