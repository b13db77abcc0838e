"""Fault cases about files the suite reads: artifacts that are not what they claim to be
(tampered, unverifiable, pointing elsewhere, naming code) and files that cannot be read
(truncated, invalid). Pairs are loaded with ``agents.evaluate --pair``, agents with
``agents.evaluate --agent``, checkpoints by resuming, YAML by the command that reads it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.common import (
    AGENT_TRAIN,
    TINY_PAIR,
    TRAIN_BASE,
    Case,
    cli,
    copy_fixture,
    run,
    truncate,
)

EVAL = ["--episodes", "1", "--baselines", "none", "--analysis", "off", "--no-progress",
        "--out", "eval"]
PAIR = ["-m", "agents.evaluate", "--pair", "det", *EVAL]
ATTACK = ["-m", "agents.evaluate", "--pair", "attack", *EVAL]
AGENT = ["-m", "agents.evaluate", "--agent", "agent", *EVAL]
MARKER = "code-ran"  # a file that would exist if anything in a tampered file had run


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record, indent=2))


def _pair(edit: Callable[[dict[str, Any]], None] | None = None,
          files: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """Setup: a copy of the tiny pair as ``tmp/det``, its files changed by ``files`` and its
    ``pair.json`` by ``edit``."""
    def setup(tmp: Path) -> None:
        d = copy_fixture("pair", tmp)
        if files is not None:
            files(d)
        if edit is not None:
            _edit_json(d / "pair.json", edit)
    return setup


def _attack(edit: Callable[[dict[str, Any]], None] | None = None,
            files: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """Setup: the tiny pair ``tmp/det`` and the attacker ``tmp/attack`` naming it."""
    def setup(tmp: Path) -> None:
        copy_fixture("pair", tmp)
        d = copy_fixture("attack", tmp)
        if files is not None:
            files(tmp)
        if edit is not None:
            _edit_json(d / "pair.json", edit)
    return setup


def _agent(edit: Callable[[dict[str, Any]], None] | None = None,
           files: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """Setup: a copy of the tiny agents.train run as ``tmp/agent``, changed."""
    def setup(tmp: Path) -> None:
        d = copy_fixture("agent", tmp)
        if files is not None:
            files(d)
        if edit is not None:
            _edit_json(d / "policy.json", edit)
    return setup


def _code_pickle(path: Path) -> None:
    """Replace ``path`` with a torch file whose unpickling would create the marker file."""
    import os

    import torch

    class RunsCode:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {path.parent.parent / MARKER}",))

    torch.save({"weight": RunsCode()}, path)


def _digest(record_key: str, file: str) -> Callable[[dict[str, Any]], None]:
    """A pair.json edit re-recording ``file``'s sha256 (an attacker who also edits the record)."""
    def edit(record: dict[str, Any]) -> None:
        from models.cache import file_digest

        record["sha256"][record_key] = file_digest(Path(file))
    return edit


def _other_net(folder: Path) -> None:
    """Write a network of another width as ``folder/net.pt`` (a wrong architecture)."""
    import torch

    from models.datasets import load_dataset
    from models.train import build_for
    from models.zoo import resolve_config

    data = load_dataset("digits")
    net = build_for(resolve_config("digits", "cnn", width=8), data)
    torch.save(net.state_dict(), folder / "net.pt")


def _resign(d: Path) -> None:
    """Replace ``d/net.pt`` by another architecture's and re-record its digest in
    ``d/pair.json`` (an attacker who edits the record too)."""
    _other_net(d)
    _edit_json(d / "pair.json", _digest("net.pt", str(d / "net.pt")))


def _no_marker(tmp: Path) -> bool:
    return not (tmp / MARKER).exists()


def unverified() -> dict[str, Case]:
    """Artifacts that are not what they claim: refused (exit 2), nothing run from them."""
    def drop(key: str) -> Callable[[dict[str, Any]], None]:
        return lambda r: r.pop(key)

    def setpath(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def edit(r: dict[str, Any]) -> None:
            for k in keys[:-1]:
                r = r[k]
            r[keys[-1]] = value
        return edit

    def pickle_policy(d: Path) -> None:
        _code_pickle(d / "policy.pt")
        _edit_json(d / "pair.json", _digest("policy.pt", str(d / "policy.pt")))

    def swap_source(tmp: Path) -> None:  # the attacked network replaced and re-signed
        _resign(tmp / "det")

    def agent_pickle(d: Path) -> None:
        _code_pickle(d / "policy.pt")
        _edit_json(d / "policy.json", setpath("sha256", value=_file_digest(d / "policy.pt")))

    return {
        "pair_without_sha256": cli(PAIR, 2, "pair.json", "sha256", setup=_pair(drop("sha256"))),
        "pair_digest_missing": cli(PAIR, 2, "pair.json", "no sha256 for policy.pt",
                                   setup=_pair(setpath("sha256", value={}))),
        "pair_net_edited": cli(PAIR, 2, "net.pt", "does not match the sha256",
                               setup=_pair(files=_other_net)),
        "pair_source_escapes": cli(ATTACK, 2, "pair.json", "sibling",
                                   setup=_attack(setpath("net_source", value="../../elsewhere"))),
        "pair_source_absolute": cli(ATTACK, 2, "pair.json", "sibling",
                                    setup=_attack(setpath("net_source", value="/tmp"))),
        "pair_source_swapped": cli(ATTACK, 2, "net.pt", "does not match the sha256",
                                   setup=_attack(files=swap_source)),
        "pair_unknown_ppo_keyword": cli(PAIR, 2, "pair.json", "tensorboard_log",
                                        setup=_pair(setpath("policy", "tensorboard_log",
                                                            value="/tmp/anywhere")),
                                        check=lambda tmp: not Path("/tmp/anywhere").exists(),
                                        what="nothing written there"),
        "pair_env_cache_dir": cli(PAIR, 2, "pair.json", "cache_dir",
                                  setup=_pair(setpath("env_kwargs", "cache_dir",
                                                      value="/tmp/elsewhere"))),
        "pair_policy_pickle": cli(PAIR, 2, "policy.pt", "refused", setup=_pair(
            files=pickle_policy), check=_no_marker, what="nothing unpickled ran"),
        "policy_class_prefix": cli(AGENT, 2, "policy.json", "torch.nn_evil.X", setup=_agent(
            setpath("policy_kwargs", "activation_fn", value={"class": "torch.nn_evil.X"}))),
        "policy_module_object": cli(AGENT, 2, "policy.json", "torch.nn.functional",
                                    setup=_agent(setpath("policy_kwargs", "activation_fn",
                                                         value={"class": "torch.nn.functional"}))),
        "policy_unknown_kwarg": cli(AGENT, 2, "policy.json", "unknown policy arguments",
                                    setup=_agent(setpath("policy_kwargs", "features_extractor"
                                                         "_class", value={"class": "os.system"}))),
        "policy_without_sha256": cli(AGENT, 2, "policy.json", "sha256",
                                     setup=_agent(drop("sha256"))),
        "policy_pt_replaced": cli(AGENT, 2, "policy.pt", "does not match the sha256",
                                  setup=_agent(files=lambda d: truncate(d / "policy.pt", 0.9))),
        "policy_pickle": cli(AGENT, 2, "policy.pt", "refused", setup=_agent(files=agent_pickle),
                             check=_no_marker, what="nothing unpickled ran"),
        "zip_untrusted": cli(["-m", "agents.evaluate", "--agent", "agent/model.zip", *EVAL], 2,
                             "--trust-zip", setup=_agent()),
        "sweep_benchmark_escape": cli(["-m", "agents.sweep", "s.yaml"], 2, "s.yaml",
                                      "benchmarks/", setup=_yaml(
                                          "s.yaml", "target: benchmark:../../tmp/evil\n"
                                                    "grid: {x: [1]}\n")),
        "cifar_code": _cifar_code,
    }


def _file_digest(path: Path) -> str:
    from models.cache import file_digest

    return file_digest(path)


def _yaml(name: str, text: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text(text)


def _cifar_code(tmp: Path) -> dict[str, Any]:
    code = ("import os, pickle, sys\nfrom pathlib import Path\n"
            "from models import data_formats as F\nfrom models.datasets import load_dataset\n"
            "class RunsCode:\n    def __reduce__(self):\n"
            f"        return (os.system, ('touch {tmp / MARKER}',))\n"
            "d = Path('cifar-10-batches-py'); d.mkdir()\n"
            "for n in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch', 'batches.meta']:\n"
            "    (d / n).write_bytes(pickle.dumps({b'data': RunsCode(), b'labels': [0]}))\n"
            "try:\n    load_dataset('cifar10', root='.')\n    print('loaded', file=sys.stderr)\n"
            "except F.CorruptDataError as e:\n    print(e, file=sys.stderr)\n")
    rc, err = run(["-c", code], tmp)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return {"expected": "a CIFAR batch that is not the published file is refused before "
                        "unpickling (nothing runs)",
            "observed": last[:300], "handled": "checksum" in last and _no_marker(tmp)}


def unreadable() -> dict[str, Case]:
    """Files cut short or invalid: one line naming the file and the fix, exit 2."""
    resume = ["-m", "models.train", *TRAIN_BASE, "--epochs", "2", "--run-dir", "train",
              "--resume"]

    def train_copy(cut: float) -> Callable[[Path], None]:
        return lambda tmp: truncate(copy_fixture("train", tmp) / "last.pt", cut)

    def pair_pt(tmp: Path) -> None:
        truncate(copy_fixture("pair", tmp) / "pair.pt", 0.5)

    def sweep_folder(tmp: Path) -> None:
        (tmp / "sw").mkdir()
        (tmp / "sw" / "sweep.json").write_text('{"config": {"target": "models.tr')

    bad_conf = "default:\n  n_steps: 32\n  learning_rate: [0.1\n"
    return {
        "truncated_last_pt": cli(resume, 2, "train/last.pt", "--run-dir",
                                 setup=train_copy(0.5)),
        "empty_last_pt": cli(resume, 2, "train/last.pt", "truncated", setup=train_copy(0.0)),
        "truncated_pair_pt": cli(["-m", "agents.pairs", *TINY_PAIR, "--rounds", "2", "--out",
                                  "det"], 2, "det/pair.pt", "--fresh", setup=pair_pt),
        "truncated_pair_json": cli(PAIR, 2, "det/pair.json", "not valid JSON",
                                   setup=_pair(files=lambda d: truncate(d / "pair.json"))),
        "truncated_pair_policy": cli(PAIR, 2, "det/policy.pt", "sha256",
                                     setup=_pair(files=lambda d: truncate(d / "policy.pt"))),
        "truncated_policy_json": cli(AGENT, 2, "agent/policy.json", "not valid JSON",
                                     setup=_agent(files=lambda d: truncate(d / "policy.json"))),
        "wrong_architecture": cli(PAIR, 2, "det/net.pt", "another architecture",
                                  setup=_pair(files=_resign)),
        "yaml_conf_syntax": cli([*AGENT_TRAIN, "-conf", "hp.yml", "-n", "64"], 2, "hp.yml",
                                "line 3", setup=_yaml("hp.yml", bad_conf)),
        "sweep_yaml_syntax": cli(["-m", "agents.sweep", "s.yaml"], 2, "s.yaml", "line 2",
                                 setup=_yaml("s.yaml", "target: models.train\ngrid: {lr: [1\n")),
        "sweep_json_truncated": cli(["-m", "agents.sweep", "sw"], 2, "sw/sweep.json",
                                    "not valid JSON", setup=sweep_folder),
        "cache_meta_truncated": _cache_damage(
            "m = d / 'meta.json'; m.write_text(m.read_text()[:40])", ("meta.json", "not valid"),
            "a truncated cache meta.json is named in a warning, the entry rebuilt (exit 0)"),
        "cache_wedge": _cache_damage(
            "(d / 'model.pt').unlink(); b = d / 'run' / 'best.pt'; "
            "b.write_bytes(b.read_bytes()[:100])", ("best.pt", "unreadable"),
            "a truncated run/best.pt next to an intact last.pt: named in a warning, the entry "
            "rebuilt (exit 0)"),
    }


def _cache_damage(damage: str, needles: tuple[str, ...], expected: str) -> Case:
    """A cache entry damaged by ``damage`` (code with ``d``, the entry folder): the next use
    names the problem in a warning and rebuilds the entry (exit 0)."""
    code = ("import warnings, sys\nfrom pathlib import Path\nimport models.zoo as Z\n"
            "kw = dict(width=4, epochs=1, cache_dir='cache', progress=False)\n"
            "Z.get_trained('digits', 'cnn', **kw)\n"
            "d = Z.model_dir(Z.resolve_config('digits', 'cnn', width=4, epochs=1), Path('cache'))\n"
            f"{damage}\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n    Z.get_trained('digits', 'cnn', **kw)\n"
            "print(' | '.join(str(x.message) for x in w), file=sys.stderr)\n")

    def case(tmp: Path) -> dict[str, Any]:
        rc, err = run(["-c", code], tmp)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        ok = rc == 0 and all(n in last for n in needles)
        return {"expected": expected, "observed": f"exit {rc}: {last}"[:400], "handled": ok}
    return case
