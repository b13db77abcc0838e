"""A run folder's ``run.json`` is the source of truth for how its agent was trained.

Continuing a run (``agents.train -i``) or evaluating its agent (``agents.evaluate --agent``)
takes the env id, its keyword arguments, the algorithm and the vec-env kind from the run,
not from the new command line. A value given on the command line that differs from the
run's is refused with the difference named, unless the user passes ``--override``; the
overrides are then recorded in the new record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.policy_io import run_folder_of

RUN_FILE = "run.json"
# The options a run fixes: what the agent was trained on and with.
RUN_KEYS = ("env", "env_kwargs", "algo", "vec_env")


class RunMismatchError(ValueError):
    """A command-line value contradicts the run's ``run.json`` (exit 2)."""


def read_run(path: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of the run folder ``path`` belongs to, or ``None`` if it has none."""
    f = run_folder_of(path) / RUN_FILE
    if not f.exists():
        return None
    try:
        record = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{f} is unreadable ({type(e).__name__}: {e}); restore it from the "
                         f"run's checkpoints or start a new run") from None
    if not isinstance(record, dict) or not isinstance(record.get("env"), str):
        raise ValueError(f"{f} does not describe a run (no 'env' entry); start a new run")
    return record


def reconcile(run: dict[str, Any], given: dict[str, Any], override: bool = False
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options, overrides)``: the run's value of each :data:`RUN_KEYS` key, unless ``given``
    sets it (``None`` means "not given"). A differing given value raises
    :class:`RunMismatchError` naming every difference, unless ``override``; then it wins and
    is listed in ``overrides`` as ``{key: {"run": old, "now": new}}``."""
    options = {k: run.get(k) for k in RUN_KEYS}
    options["env_kwargs"] = dict(options["env_kwargs"] or {})
    diffs: dict[str, Any] = {}
    for key, value in given.items():
        if key not in RUN_KEYS:
            raise KeyError(f"{key!r} is not a run option; run options: {RUN_KEYS}")
        if value is None:
            continue
        if key == "env_kwargs":
            merged = {**options["env_kwargs"], **value}
            if merged != options["env_kwargs"]:
                diffs[key] = {"run": options["env_kwargs"], "now": merged}
                options[key] = merged
        elif value != options[key]:
            diffs[key] = {"run": options[key], "now": value}
            options[key] = value
    if diffs and not override:
        said = "; ".join(_differences(k, d["run"], d["now"]) for k, d in diffs.items())
        raise RunMismatchError(f"the command line contradicts the run's {RUN_FILE} ({said}); "
                               f"drop those flags to continue the run as it was, or pass "
                               f"--override to change them (recorded in the run)")
    return options, diffs


def _differences(key: str, run: Any, now: Any) -> str:
    """``key: run has X, command line gives Y``; for ``env_kwargs``, one entry per differing
    option (``env_kwargs budget_bits: ...``)."""
    if key != "env_kwargs":
        return f"{key}: run has {run!r}, command line gives {now!r}"
    missing = object()
    return "; ".join(
        f"env_kwargs {k}: run has {'no value' if run.get(k, missing) is missing else repr(run[k])}"
        f", command line gives {now[k]!r}"
        for k in now if run.get(k, missing) != now[k])
