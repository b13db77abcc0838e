"""Fault injection: bad input and failures, tried as a user would, each with its expected outcome.

Every case runs the real command line (a subprocess, so exit codes and what is printed are the
user's) or the real library call, and checks: the exit code, that the message names the
problem on one line without a traceback, and that nothing good is lost (no collapsed result
saved, the last good checkpoint kept, a cache entry rebuilt rather than wedged).

    python benchmarks/fault_injection.py                 # every case (a few minutes)
    python benchmarks/fault_injection.py --cases divergence_sgd bad_n

Writes ``benchmarks/results/fault_injection.json``: ``cases`` (name, expected, observed,
passed), ``passed`` and ``total``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.io import atomic_write_json, command_line, provenance  # noqa: E402

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]
TINY_TRAIN = ["--dataset", "digits", "--arch", "cnn", "--width", "4", "--epochs", "2",
              "--no-progress"]


def _run(args: list[str], cwd: Path, timeout: float = 300, interrupt_after: float | None = None
         ) -> tuple[int, str]:
    """Exit code and stderr of ``python -m ...`` (SIGINT after ``interrupt_after`` s)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEPLOYGYM_DEBUG": ""}
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _one_line(err: str, *needles: str) -> bool:
    """The error is one line (plus the --debug hint), has no traceback, names ``needles``."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errs = [ln for ln in lines if ": error: " in ln or ln.startswith("python -m")]
    return ("Traceback" not in err and len(errs) >= 1
            and all(n in errs[-1] for n in needles))


def _cli_case(args: list[str], code: int, *needles: str, check: Callable[[Path], bool] | None = None,
              interrupt_after: float | None = None) -> Callable[[Path], dict[str, Any]]:
    def case(tmp: Path) -> dict[str, Any]:
        rc, err = _run(args, tmp, interrupt_after=interrupt_after)
        last = err.strip().splitlines()[-2:] if err.strip() else []
        ok = rc == code and (_one_line(err, *needles) if code != 130 else True)
        extra = check(tmp) if check is not None else True
        return {"expected": f"exit {code}, one-line error naming {list(needles)}"
                            + (", nothing lost" if check else ""),
                "observed": f"exit {rc}: {' | '.join(last)}"[:400] + ("" if extra else " (check failed)"),
                "passed": bool(ok and extra)}
    return case


def _no_file(pattern: str) -> Callable[[Path], bool]:
    return lambda tmp: not list(tmp.rglob(pattern))


def _cache_wedge(tmp: Path) -> dict[str, Any]:
    import warnings

    import models.zoo as Z

    kw = dict(width=4, epochs=2, cache_dir=tmp / "cache", progress=False)
    Z.get_trained("digits", "cnn", **kw)
    d = Z.model_dir(Z.resolve_config("digits", "cnn", width=4, epochs=2), tmp / "cache")
    (d / "model.pt").unlink()
    best = d / "run" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            Z.get_trained("digits", "cnn", **kw)
            observed = "rebuilt; warning: " + "; ".join(str(x.message) for x in w)[:200]
            passed = any("unreadable" in str(x.message) for x in w)
        except Exception as e:  # noqa: BLE001 - the case reports any failure
            observed, passed = f"{type(e).__name__}: {e}", False
    return {"expected": "truncated run/best.pt next to an intact last.pt: reported, entry rebuilt",
            "observed": observed, "passed": passed}


def _umask(tmp: Path) -> dict[str, Any]:
    import stat

    from models.io import atomic_write_json as write

    old = os.umask(0o022)
    try:
        write({"a": 1}, tmp / "r.json")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp / "r.json").stat().st_mode)
    return {"expected": "result files follow the umask (0644 under 022)",
            "observed": oct(mode), "passed": mode == 0o644}


def _cifar_code(tmp: Path) -> dict[str, Any]:
    import pickle

    from models import data_formats as F
    from models.datasets import load_dataset

    class RunsCode:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pickled code ran",))

    d = tmp / "cifar-10-batches-py"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (d / name).write_bytes(pickle.dumps({b"data": RunsCode(), b"labels": [0]}))
    try:
        load_dataset("cifar10", root=tmp)
        observed, passed = "loaded", False
    except F.CorruptDataError as e:
        observed, passed = str(e)[:300], "checksum" in str(e)
    return {"expected": "a CIFAR batch that is not the published file is refused before "
                        "unpickling", "observed": observed, "passed": passed}


def cases() -> dict[str, Callable[[Path], dict[str, Any]]]:
    train = ["-m", "agents.train", "--env-kwargs", *TINY_ENV, "--no-progress-bar", "-v", "0",
             "-f", "runs"]
    return {
        "divergence_sgd": _cli_case(["-m", "models.train", *TINY_TRAIN, "--lr", "1000",
                                     "--run-dir", "r"], 1, "lower --lr",
                                    check=_no_file("metrics.json")),
        "divergence_adam": _cli_case(["-m", "models.train", *TINY_TRAIN, "--optimizer", "adam",
                                      "--lr", "1000", "--run-dir", "r"], 1, "diverged",
                                     check=_no_file("metrics.json")),
        "agent_divergence": _cli_case([*train, "-n", "2048", "--eval-freq", "0", "--save-freq",
                                       "0", "--hyperparams", "learning_rate:1000", "n_steps:64",
                                       "batch_size:64"], 1, "learning_rate",
                                      check=_no_file("model.zip")),
        "bad_n": _cli_case([*train, "-n", "-5"], 2, "-n/--n-timesteps must be ≥ 1",
                           check=_no_file("model.zip")),
        "zero_n": _cli_case([*train, "-n", "0"], 2, "must be ≥ 1"),
        "zero_envs": _cli_case([*train, "--n-envs", "0"], 2, "--n-envs must be ≥ 1"),
        "fields_epochs": _cli_case(["-m", "fields.train", "--epochs", "-1"], 2,
                                   "epochs must be ≥ 1"),
        "budget_negative": _cli_case([*train, "--env-kwargs", *TINY_ENV, "budget_bits:-3"], 2,
                                     "budget_bits"),
        "budget_text": _cli_case([*train, "--env-kwargs", *TINY_ENV, "budget_bits:abc"], 2,
                                 "budget_bits must be a number"),
        "kl_text": _cli_case([*train, "--env-kwargs", *TINY_ENV, "kl_weight:abc"], 2,
                             "kl_weight must be a number"),
        "bool_text": _cli_case([*train, "--env-kwargs", *TINY_ENV, "dense:abc"], 2,
                               "dense must be a boolean"),
        "unknown_env": _cli_case([*train, "--env", "deploygym/Nope-v0"], 2,
                                 "unknown environment id"),
        "unknown_option": _cli_case([*train, "--env-kwargs", *TINY_ENV, "colour:blue"], 2,
                                    "unknown options"),
        "yaml_typo": _cli_case([*train, "--hyperparams", "learning_rat:0.1"], 2, "learning_rat"),
        "zoo_normalize": _cli_case([*train, "--hyperparams", "normalize:true"], 2,
                                   "unsupported hyperparameter 'normalize'"),
        "missing_agent": _cli_case([*train, "-i", "missing.zip"], 2, "no such file"),
        "resume_missing": _cli_case(["-m", "models.train", *TINY_TRAIN, "--lr", "0.2",
                                      "--run-dir", "r", "--resume"], 2, "no checkpoint"),
        "ctrl_c": _cli_case(["-m", "models.train", "--dataset", "digits", "--arch", "cnn",
                             "--width", "4", "--epochs", "200", "--no-progress", "--run-dir",
                             "r"], 130, interrupt_after=12.0,
                            check=lambda tmp: (tmp / "r" / "last.pt").exists()),
        "cache_wedge": _cache_wedge,
        "umask": _umask,
        "cifar_code": _cifar_code,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="*", default=None, help="run only these cases")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fault_injection.json"))
    args = p.parse_args(argv)
    table = cases()
    names = args.cases or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {sorted(table)}")
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            row = {"name": name, **table[name](Path(tmp))}
            row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{'ok  ' if row['passed'] else 'FAIL'} {name:18s} {row['observed'][:110]}",
              flush=True)
    result = {"cases": rows, "passed": sum(r["passed"] for r in rows), "total": len(rows),
              **provenance(seed=None, command=command_line())}
    atomic_write_json(result, args.out)
    print(f"{result['passed']} / {result['total']} cases handled; wrote {args.out}")
    return result


if __name__ == "__main__":
    raise SystemExit(0 if (r := main())["passed"] == r["total"] else 1)
