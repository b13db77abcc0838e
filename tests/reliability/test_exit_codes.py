"""Exit codes as documented: 0 only when everything asked for succeeded (a sweep with a failed
trial exits 1 and lists it), 2 for bad input, 143 for SIGTERM with one line saying where to
resume; NaN or ±inf is refused wherever a reward or a loss would use it."""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time

import gymnasium as gym
import pytest
import yaml

from agents.pairs.loss import LossWeights
from agents.pairs.trainer import PairArgs
from agents.sweep.run import main
from envs.options import coerce_options
from envs.ptq.config import PTQConfig
from models.cli import parse_config, run_cli


def _terminated(argv):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives here
    except KeyboardInterrupt:
        raise KeyboardInterrupt("interrupted; continue with --resume --run-dir r") from None
    raise AssertionError("SIGTERM did not stop the run")


def test_sigterm_exits_143_with_one_line_saying_where_to_resume(capsys, monkeypatch):
    monkeypatch.delenv("DEPLOYGYM_DEBUG", raising=False)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e:
        run_cli(_terminated, [], prog="python -m x")
    err = capsys.readouterr().err.strip()
    assert e.value.code == 143
    assert err == "python -m x: terminated (SIGTERM); continue with --resume --run-dir r"
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


def test_a_main_that_exits_130_itself_after_sigterm_exits_143(capsys, monkeypatch):
    def own_exit(argv):  # agents.train prints its resume command and exits 130 itself
        try:
            _terminated(argv)
        except KeyboardInterrupt:
            print("continue with: python -m agents.train -i ...")
            raise SystemExit(130) from None
    monkeypatch.delenv("DEPLOYGYM_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        run_cli(own_exit, [], prog="python -m x")
    assert e.value.code == 143 and "terminated (SIGTERM)" in capsys.readouterr().err


def test_a_background_thread_failure_is_one_line_not_a_traceback(capsys, monkeypatch):
    monkeypatch.delenv("DEPLOYGYM_DEBUG", raising=False)

    def main_(argv):
        t = threading.Thread(target=lambda: (_ for _ in ()).throw(OSError(28, "No space")))
        t.start()
        t.join()
    run_cli(main_, [], prog="python -m x")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "background thread failed: OSError" in err


def test_a_sweep_with_a_failed_trial_exits_1_listing_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPLOYGYM_DEBUG", raising=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "fails", "target": "models.train", "retries": 0,
        "options": {"dataset": "digits", "epochs": 1}, "grid": {"width": [-4]}}))
    with pytest.raises(SystemExit) as code:  # what the command line returns
        run_cli(main, ["s.yaml", "--no-progress"], prog="python -m agents.sweep")
    err = capsys.readouterr().err.splitlines()
    assert code.value.code == 1
    assert re.fullmatch(r"python -m agents\.sweep: error: TrialsFailedError: 1 of 1 trial\(s\) "
                        r"failed after retries: width=-4-s0-\w+; .*--resume to try them again",
                        err[-2]), err
    assert (tmp_path / "runs" / "sweeps" / "fails" / "results.json").exists()


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "inf", "nan"])
def test_non_finite_env_options_are_refused_by_name(bad):
    for name in ("kl_weight", "drop_weight", "budget_bits"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            coerce_options({name: bad}, PTQConfig)
    with pytest.raises(ValueError, match="kl_weight must be a finite number"):
        gym.make("deploygym/DynamicPTQ-v0", dataset="digits", kl_weight=bad)


def test_non_finite_float_flags_and_loss_weights_are_refused(capsys):
    for flag in ("--lr", "--fp-weight", "--margin", "--budget-bits"):
        with pytest.raises(SystemExit) as e:
            parse_config(PairArgs, [flag, "nan"], prog="python -m agents.pairs", doc="")
        assert e.value.code == 2
        assert f"argument {flag}: must be a finite number" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--rho-cap must be a finite number"):
        LossWeights(rho_cap=math.inf)
