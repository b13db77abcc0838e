"""Property: every kind of file the suite reads, cut short at any of several offsets, is
refused by the code that reads it with one line naming that file (never a bare
JSONDecodeError, zip error or ``OSError: [Errno 22]``). YAML may stay valid when cut at a line
end; then it loads, and an error, if any, still names the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym

import distill.logits
import fields.pinned
import fields.pretrained
import models.zoo
from agents.pairs.artifact import load_pair
from agents.policy_io import load_policy
from agents.sweep.config import load_config
from agents.sweep.run import _load, parse_args
from agents.sweep.trial import load_result
from agents.zoo_hyperparams import load_hyperparams
from models.cache import verified_meta
from models.train import TrainConfig, train

FRACTIONS = (0.0, 0.01, 0.3, 0.5, 0.9, 0.999)
SWEEP_YAML = "name: sw\ntarget: models.train\noptions: {dataset: digits}\ngrid: {lr: [0.05, 0.1]}\n"
CONF_YAML = "default:\n  n_steps: 32\n  learning_rate: 0.001\n  policy_kwargs: {net_arch: [8]}\n"


def _cut(path: Path, original: bytes, fraction: float) -> None:
    path.write_bytes(original[: min(int(len(original) * fraction), len(original) - 1)])


def _sweep_trial(a):
    from agents.sweep.config import Trial

    return Trial.from_dict({k: v for k, v in json.loads(
        (a.trial / "result.json").read_text()).items() if k in Trial.__dataclass_fields__})


def _pinned_copy(tmp: Path, monkeypatch, module, attr: str, src: Path) -> Path:
    dst = tmp / "pinned"
    shutil.copytree(src.parent, dst) if src.is_file() else shutil.copytree(src, dst / src.name)
    monkeypatch.setattr(module, attr, dst)
    return dst


def _cases(a, tmp: Path, monkeypatch) -> dict[str, tuple[Path, Callable[[], object]]]:
    """Artifact kind → (the file to cut, the call that reads it as the suite does)."""
    env = gym.make("CartPole-v1")
    run_cfg = TrainConfig(dataset="digits", arch="cnn", width=4, epochs=1, progress=False,
                          run_dir=str(a.run), resume=True)
    (tmp / "sweep.yaml").write_text(SWEEP_YAML)
    (tmp / "hp.yml").write_text(CONF_YAML)
    pin_w = _pinned_copy(tmp / "w", monkeypatch, models.zoo, "DIR",
                         models.zoo.DIR / "pinned.json")
    monkeypatch.setattr(models.zoo, "INDEX", pin_w / "pinned.json")
    entry = models.zoo.pinned_index()["fashion-mnist/cnn"]
    field = fields.pinned.data_path("cylinder", 3, 4)
    pin_f = _pinned_copy(tmp / "f", monkeypatch, fields.pinned, "DATA_DIR", field)
    model_dir = next(fields.pinned.MODELS_DIR.glob("cylinder-*"))
    pin_m = _pinned_copy(tmp / "m", monkeypatch, fields.pinned, "MODELS_DIR", model_dir)
    transfer = distill.logits.PINNED_DIR / "digits-9a09f7056895c880"
    pin_t = _pinned_copy(tmp / "t", monkeypatch, distill.logits, "PINNED_DIR", transfer)
    t_config = json.loads((transfer / "meta.json").read_text())["config"]

    trial = _sweep_trial(a)

    def read_transfer() -> object:
        return distill.logits._read(pin_t / transfer.name, t_config, "restore it")

    return {
        "pair.json": (a.pair / "pair.json", lambda: load_pair(a.pair)),
        "pair policy.pt": (a.pair / "policy.pt", lambda: load_pair(a.pair)),
        "pair net.pt": (a.pair / "net.pt", lambda: load_pair(a.pair)),
        "referenced net.pt": (a.pair / "net.pt", lambda: load_pair(a.attack)),
        "pair.pt (resume)": (a.pair / "pair.pt", a.trainer.try_resume),
        "last.pt (resume)": (a.run / "last.pt", lambda: train(run_cfg)),
        "policy.json": (a.agent / "policy.json", lambda: load_policy(a.agent, env)),
        "agent policy.pt": (a.agent / "policy.pt", lambda: load_policy(a.agent, env)),
        "sweep.json": (a.sweep / "sweep.json", lambda: _load(parse_args([str(a.sweep)]))),
        "trial result.json": (a.trial / "result.json",
                              lambda: load_result(a.sweep, trial)),
        "sweep YAML": (tmp / "sweep.yaml", lambda: load_config(tmp / "sweep.yaml")),
        "hyperparameter YAML": (tmp / "hp.yml",
                                lambda: load_hyperparams("ppo", "x", tmp / "hp.yml")),
        "pinned index": (pin_w / "pinned.json", models.zoo.pinned_index),
        "pinned weights": (pin_w / entry["file"], lambda: models.zoo.load_entry(entry)),
        "pinned field": (pin_f / field.name, lambda: fields.pinned.pinned_field("cylinder", 3, 4)),
        "pinned reconstructor": (pin_m / model_dir.name / "model.pt",
                                 lambda: fields.pretrained.get_reconstructor("cylinder",
                                                                             progress=False)),
        "pinned reconstructor meta": (pin_m / model_dir.name / "meta.json",
                                      lambda: fields.pretrained.get_reconstructor(
                                          "cylinder", progress=False)),
        "pinned transfer set": (pin_t / transfer.name / "data.pt", read_transfer),
        "pinned transfer meta": (pin_t / transfer.name / "meta.json", read_transfer),
        "cache meta.json": (a.pair / "cache-entry" / "meta.json",
                            lambda: verified_meta(a.pair / "cache-entry", "data.pt")),
    }


def test_every_artifact_cut_short_is_refused_with_one_line_naming_it(artifacts, tmp_path,
                                                                     monkeypatch):
    entry = artifacts.pair / "cache-entry"  # a cache entry as train_once writes it
    entry.mkdir(exist_ok=True)
    (entry / "data.pt").write_bytes(b"x" * 100)
    from models.cache import file_digest

    (entry / "meta.json").write_text(json.dumps({"sha256": file_digest(entry / "data.pt")}))
    failures = []
    for kind, (path, read) in _cases(artifacts, tmp_path, monkeypatch).items():
        original = path.read_bytes()
        read()  # the intact file loads
        try:
            for fraction in FRACTIONS:
                _cut(path, original, fraction)
                try:
                    read()
                except Exception as e:  # noqa: BLE001 - the message is what is checked
                    msg = str(e)
                    if path.name not in msg or "\n" in msg.strip():
                        failures.append(f"{kind} cut at {fraction}: {type(e).__name__}: {msg}")
                    continue
                if not kind.endswith("YAML"):  # YAML cut at a line end may stay valid
                    failures.append(f"{kind} cut at {fraction} loaded without an error")
        finally:
            path.write_bytes(original)
    assert not failures, "\n".join(failures)
