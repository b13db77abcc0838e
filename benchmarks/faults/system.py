"""Fault cases about the machine and the process: full disks, read-only caches, environment
variables, outputs that would escape their folder, interrupts, exit codes, two writers.

A full disk and a read-only filesystem are real where this process may mount (a small tmpfs,
a read-only bind mount: Linux as root); elsewhere the same cases run with a start-up shim that
makes the kernel answer ENOSPC (writes go to ``/dev/full``) or EROFS for that one folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.faults.common import (
    AGENT_TRAIN,
    TINY_PAIR,
    TINY_TRAIN,
    TRAIN_BASE,
    Case,
    Session,
    cli,
    env,
    kill_after,
    library,
    message,
    no_file,
    one_line,
    run,
)

# Loaded at start-up (PYTHONPATH) by a case's process: writes under $DEPLOYGYM_FAULT_FULL
# fail with the kernel's ENOSPC; creating files under $DEPLOYGYM_FAULT_READONLY fails EROFS.
SHIM = '''
import builtins, errno, os
_full, _ro = os.environ.get("DEPLOYGYM_FAULT_FULL"), os.environ.get("DEPLOYGYM_FAULT_READONLY")
def _under(p, root):
    return root and os.path.abspath(os.fsdecode(p)).startswith(os.path.abspath(root))
_fdopen, _open, _mkdir, _bopen = os.fdopen, os.open, os.mkdir, builtins.open
def fdopen(fd, *a, **k):
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        path = ""
    if _full and path and _under(path, _full):
        dev = _open("/dev/full", os.O_WRONLY); os.dup2(dev, fd); os.close(dev)
    return _fdopen(fd, *a, **k)
def _refuse(p):
    raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(p))
def open_(p, flags, *a, **k):
    if _under(p, _ro) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        _refuse(p)
    return _open(p, flags, *a, **k)
def mkdir(p, *a, **k):
    if _under(p, _ro) and not os.path.isdir(p):
        _refuse(p)
    return _mkdir(p, *a, **k)
def bopen(p, mode="r", *a, **k):
    if isinstance(p, (str, bytes, os.PathLike)) and _under(p, _ro) and set(mode) & set("wax+"):
        _refuse(p)
    return _bopen(p, mode, *a, **k)
os.fdopen, os.open, os.mkdir, builtins.open = fdopen, open_, mkdir, bopen
'''


def _shim_env(tmp: Path, **variables: str) -> dict[str, str | None]:
    shim = tmp / ".shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    return {"PYTHONPATH": f"{shim}{os.pathsep}{env()['PYTHONPATH']}", **variables}


def can_mount() -> bool:
    """Whether this process may mount (root on Linux with the mount tool)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    probe = Session.path() / ".mount-probe"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    return ok


@contextmanager
def _mounted(args: list[str], target: Path):
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *args, str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until its filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _full_disk(run_args: list[str], folder_flag_value: str, needle: str) -> Case:
    """A run whose output folder is full: a real tmpfs filled to the last byte, or the shim."""
    def case(tmp: Path) -> dict[str, Any]:
        out = tmp / "disk"
        argv = [a.replace("{out}", str(out / folder_flag_value)) for a in run_args]
        if can_mount():
            with _mounted(["-t", "tmpfs", "-o", "size=256k", "tmpfs"], out):
                _fill(out / "filler")
                rc, err = run(argv, tmp)
            how = "tmpfs filled to the last byte"
        else:
            out.mkdir()
            rc, err = run(argv, tmp, extra_env=_shim_env(tmp, DEPLOYGYM_FAULT_FULL=str(out)))
            how = "writes answered ENOSPC (shim)"
        ok = rc == 1 and one_line(err, "WriteError", needle)
        return {"expected": f"exit 1, one line: WriteError naming {needle!r} ({how})",
                "observed": f"exit {rc}: {message(err)}"[:400], "handled": ok}
    return case


def _checkpoint_enospc(args: list[str], needle: str) -> Case:
    """The checkpoint write itself fails with ENOSPC (the shim on the run folder ``out``)."""
    return cli(args, 1, "WriteError", needle, what="no half-written file left",
               setup=lambda tmp: (tmp / "out").mkdir(),
               extra_env=lambda tmp: _shim_env(tmp, DEPLOYGYM_FAULT_FULL=str(tmp / "out")),
               check=no_file("*.tmp"))


def _readonly_cache(hit: bool) -> Case:
    """A read-only cache: usable when it holds the verified network, else a WriteError."""
    def case(tmp: Path) -> dict[str, Any]:
        cache = tmp / "cache"
        width = "4" if hit else "5"
        if hit:  # fill it first, writable
            rc, err = run(["-c", "from models.zoo import get_trained\nget_trained('digits', "
                                 "'cnn', width=4, epochs=1, progress=False)"], tmp,
                          extra_env={"DEPLOYGYM_CACHE": str(cache)})
            if rc != 0:
                return {"expected": "", "observed": err[-300:], "handled": False}
        cache.mkdir(exist_ok=True)
        argv = [*AGENT_TRAIN, "--env-kwargs", "dataset:digits", f"width:{width}", "epochs:1",
                "progress:false", "-n", "32", "--hyperparams", "n_steps:32", "batch_size:32",
                "--eval-freq", "0", "--save-freq", "0"]
        extra: dict[str, str | None] = {"DEPLOYGYM_CACHE": str(cache)}
        if can_mount():
            with _mounted(["--bind", str(cache)], cache), _remount_ro(cache):
                rc, err = run(argv, tmp, extra_env=extra)
            how = "read-only bind mount"
        else:
            rc, err = run(argv, tmp, extra_env={**extra, **_shim_env(
                tmp, DEPLOYGYM_FAULT_READONLY=str(cache))})
            how = "EROFS shim"
        ok = (rc == 0 and "Traceback" not in err) if hit else (
            rc == 1 and one_line(err, "WriteError", "DEPLOYGYM_CACHE"))
        expected = ("the cached network is read, the run succeeds (exit 0)" if hit else
                    "exit 1, one line: WriteError naming the entry and DEPLOYGYM_CACHE")
        return {"expected": f"{expected} ({how})",
                "observed": f"exit {rc}: {message(err)}"[:400], "handled": ok}
    return case


@contextmanager
def _remount_ro(target: Path):
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True,
                   capture_output=True)
    yield


def disk_and_environment() -> dict[str, Case]:
    """Full disks, read-only caches, bad environment variables, escaping outputs."""
    train = [*AGENT_TRAIN, "-n", "32"]
    pair_out = ["-m", "agents.pairs", *TINY_PAIR, "--rounds", "1", "--out", "out/p"]
    sweep = ("name: ../../x\ntarget: models.train\noptions: {dataset: digits, width: 4, "
             "epochs: 1}\ngrid: {lr: [0.05]}\n")
    return {
        "full_disk_pair_checkpoint": _checkpoint_enospc(pair_out, "out/p/pair.pt"),
        "full_disk_train_checkpoint": _checkpoint_enospc(
            ["-m", "models.train", *TINY_TRAIN, "--run-dir", "out/r"], "out/r/best.pt"),
        "full_disk_pairs_out": _full_disk(["-m", "agents.pairs", *TINY_PAIR, "--rounds", "1",
                                           "--out", "{out}"], "p", "disk/p"),
        "full_disk_models_train": _full_disk(["-m", "models.train", *TINY_TRAIN, "--run-dir",
                                              "{out}"], "r", "disk/r"),
        "readonly_cache_holds_model": _readonly_cache(hit=True),
        "readonly_cache_misses": _readonly_cache(hit=False),
        "cache_env_empty": cli(train, 2, "DEPLOYGYM_CACHE", extra_env={"DEPLOYGYM_CACHE": ""},
                               check=lambda tmp: not (tmp / "models").exists(),
                               what="no models/ folder in the current directory"),
        "cache_env_file": cli(train, 2, "DEPLOYGYM_CACHE=", "not a folder",
                              setup=lambda tmp: (tmp / "f").write_text("x"),
                              extra_env=lambda tmp: {"DEPLOYGYM_CACHE": str(tmp / "f")}),
        "data_env_empty": cli(["-m", "models.train", *TINY_TRAIN, "--run-dir", "r"], 2,
                              "DEPLOYGYM_DATA", extra_env={"DEPLOYGYM_DATA": ""}),
        "data_env_file": cli(["-m", "models.train", *TINY_TRAIN, "--run-dir", "r"], 2,
                             "DEPLOYGYM_DATA=", setup=lambda tmp: (tmp / "f").write_text("x"),
                             extra_env=lambda tmp: {"DEPLOYGYM_DATA": str(tmp / "f")}),
        "umask": library("import os, stat\nos.umask(0o022)\n"
                         "from models.io import atomic_write_json\n"
                         "atomic_write_json({'a': 1}, 'r.json')\n"
                         "raise RuntimeError(oct(stat.S_IMODE(os.stat('r.json').st_mode)))",
                         "0o644", "result files follow the umask (0644 under 022)"),
        "sweep_name_escapes": cli(["-m", "agents.sweep", "s.yaml"], 2, "s.yaml", "name",
                                  setup=lambda tmp: (tmp / "s.yaml").write_text(sweep),
                                  check=lambda tmp: not (tmp / "x").exists()
                                  and not (tmp / "runs").exists(),
                                  what="nothing written outside runs/sweeps/"),
    }


def _sweep_file(tmp: Path, lr: str, epochs: int, name: str = "sw") -> None:
    (tmp / "s.yaml").write_text(
        f"name: {name}\ntarget: models.train\noptions: {{dataset: digits, arch: cnn, width: 4, "
        f"epochs: {epochs}}}\ngrid: {{lr: [{lr}]}}\nretries: 0\nmax_concurrent: 1\n")


def _sweep_stopped(tmp: Path) -> bool:
    """After SIGTERM: the trial kept its checkpoint and its process is gone."""
    trials = list((tmp / "runs" / "sweeps" / "sw" / "trials").glob("*"))
    if not trials or not (trials[0] / "last.pt").exists():
        return False
    running = trials[0] / "running.json"
    if running.exists():
        pid = json.loads(running.read_text())["pid"]
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    return True


def _kill9_resume(tmp: Path) -> dict[str, Any]:
    """``kill -9`` mid-training, then ``--resume``: the run finishes from its checkpoint."""
    args = ["-m", "models.train", *TRAIN_BASE, "--epochs", "6", "--run-dir", "r"]
    rc1, _ = run(args, tmp, send=signal.SIGKILL, when=lambda: (tmp / "r" / "last.pt").exists())
    rc2, err = run([*args, "--resume"], tmp)
    ok = rc1 == -signal.SIGKILL and rc2 == 0 and (tmp / "r" / "metrics.json").exists()
    return {"expected": "killed (-9) after a checkpoint, --resume finishes the run (exit 0)",
            "observed": f"killed: {rc1}; resumed: exit {rc2} {message(err)[:200]}",
            "handled": ok}


def interrupts_and_exit_codes() -> dict[str, Case]:
    """Ctrl-C and SIGTERM (130/143, a line saying where to resume), failures that must not
    exit 0."""
    long_train = ["-m", "models.train", *TRAIN_BASE, "--epochs", "300", "--run-dir", "r"]
    long_pair = ["-m", "agents.pairs", *TINY_PAIR, "--rounds", "100", "--out", "p"]
    kept = lambda *parts: lambda tmp: tmp.joinpath(*parts).exists()  # noqa: E731
    return {
        "ctrl_c": cli(long_train, 130, "--resume", **kill_after("r/last.pt", signal.SIGINT),
                      check=kept("r", "last.pt"), what="last.pt kept"),
        "sigterm_models_train": cli(long_train, 143, "SIGTERM", "--resume --run-dir r",
                                    **kill_after("r/last.pt"), check=kept("r", "last.pt"),
                                    what="last.pt kept"),
        "sigterm_pairs": cli(long_pair, 143, "SIGTERM", "p/pair.pt", **kill_after("p/pair.pt"),
                             check=kept("p", "pair.pt"), what="pair.pt kept"),
        "sigterm_agents_train": cli([*AGENT_TRAIN, "-n", "100000", "--save-freq", "64",
                                     "--eval-freq", "0", "--hyperparams", "n_steps:32",
                                     "batch_size:32"], 143, "SIGTERM",
                                    send=signal.SIGTERM,
                                    when=lambda tmp: bool(list(tmp.rglob("model_*_steps.zip")))),
        "sigterm_sweep": cli(["-m", "agents.sweep", "s.yaml", "--no-progress"], 143, "SIGTERM",
                             "--resume", setup=lambda tmp: _sweep_file(tmp, "0.05", 300),
                             send=signal.SIGTERM,
                             when=lambda tmp: bool(list(tmp.rglob("trials/*/last.pt"))),
                             check=_sweep_stopped, what="trial stopped, its checkpoint kept"),
        "kill9_resume": _kill9_resume,
        "sweep_trial_fails": cli(["-m", "agents.sweep", "s.yaml", "--no-progress"], 1,
                                 "failed after retries", "lr=1000",
                                 setup=lambda tmp: _sweep_file(tmp, "1000", 1),
                                 check=lambda tmp: (tmp / "runs/sweeps/sw/results.json").exists(),
                                 what="results.json written for the rest"),
        "sweep_unknown_key": cli(["-m", "agents.sweep", "s.yaml"], 2, "unknown key",
                                 setup=lambda tmp: (tmp / "s.yaml").write_text(
                                     "target: models.train\ngrid: {lr: [1]}\nepochs: 3\n")),
        "evaluate_missing_pair": cli(["-m", "agents.evaluate", "--pair", "nowhere"], 2,
                                     "nowhere", "no pair.json"),
    }


def _second_writer(first: list[str], second: list[str], lock: str, needle: str) -> Case:
    """Start ``first``; once it holds ``lock``, run ``second`` on the same output: it must
    stop at once (exit 2) while the first goes on."""
    def case(tmp: Path) -> dict[str, Any]:
        proc = subprocess.Popen([sys.executable, *first], cwd=tmp, env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            while not (tmp / lock).exists() and proc.poll() is None \
                    and time.monotonic() - t0 < 300:
                time.sleep(0.2)
            time.sleep(1.0)
            rc, err = run(second, tmp)
            alive = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait()
        ok = rc == 2 and one_line(err, needle, "in use by another run") and alive
        return {"expected": f"exit 2, one line naming {needle!r} in use; the first run goes on",
                "observed": f"exit {rc}: {message(err)}"[:400]
                            + ("" if alive else " (first run stopped)"), "handled": ok}
    return case


def locks() -> dict[str, Case]:
    """Two runs writing to the same output folder."""
    pair = ["-m", "agents.pairs", *TINY_PAIR, "--rounds", "100", "--out", "p"]

    def sweep(tmp: Path) -> None:
        _sweep_file(tmp, "0.05", 300)

    sweep_args = ["-m", "agents.sweep", "s.yaml", "--no-progress"]

    def sweep_case(tmp: Path) -> dict[str, Any]:
        sweep(tmp)
        return _second_writer(sweep_args, [*sweep_args, "--resume"],
                              "runs/sweeps/sw/.lock", "runs/sweeps/sw")(tmp)
    return {
        "pairs_same_out": _second_writer(pair, pair, "p/.lock", "p"),
        "sweep_same_folder": sweep_case,
    }


CLASSES: dict[str, Callable[[], dict[str, Case]]] = {
    "disk and environment": disk_and_environment,
    "interrupts and exit codes": interrupts_and_exit_codes,
    "locks on outputs": locks,
}
