"""The published form of a network–policy pair, safe to load from a folder you did not make.

A pair folder holds

* ``pair.json`` — the search's configuration, the network's build recipe, the policy's
  hyperparameters, the final metrics, provenance, and the sha256 of every weight file;
* ``policy.pt`` — the SB3 policy's ``state_dict`` (tensors only);
* ``net.pt`` — the network's ``state_dict`` (tensors only), or, for an attacker trained
  against a frozen network, ``net_source`` in ``pair.json`` names the folder (relative to
  this one) whose ``net.pt`` it attacked.

:func:`load_pair` verifies the digests and reads the tensors with
``torch.load(weights_only=True)``: nothing in the folder is unpickled as code. The resume
checkpoint of a running search (``pair.pt``) is a different, private file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from torch import nn

from agents.vec import PTQVecEnv
from models.cache import file_digest
from models.datasets import DatasetSplits, load_dataset
from models.io import atomic_torch_save, atomic_write_json

RECORD, NET, POLICY = "pair.json", "net.pt", "policy.pt"


@dataclass
class Pair:
    """A loaded pair: ``net`` (eval mode), ``policy`` (an SB3 ``PPO`` whose env is a batched
    DynamicPTQ env around ``net``), ``config`` (the search's options), ``metrics`` (what the
    search measured: ``test``, ``history``, ...), ``env_kwargs``, the folder, the whole
    ``pair.json`` and the dataset splits."""

    net: nn.Module
    policy: PPO
    config: dict[str, Any]
    metrics: dict[str, Any]
    env_kwargs: dict[str, Any]
    path: Path
    record: dict[str, Any]
    data: DatasetSplits


def build_network(recipe: dict[str, Any], data: DatasetSplits) -> nn.Module:
    """The (untrained) architecture of ``recipe`` = ``{"dataset", "arch", "model_kw"}``."""
    from models.train import build_for
    from models.zoo import resolve_config

    return build_for(resolve_config(recipe["dataset"], recipe["arch"], **recipe["model_kw"]),
                     data)


def make_policy(venv: PTQVecEnv, hyperparams: dict[str, Any], seed: int, device: str) -> PPO:
    """The PPO model of a pair search (also used to rebuild it on load)."""
    kw = dict(hyperparams)
    policy_kwargs = {"net_arch": list(kw.pop("net_arch"))}
    return PPO("MlpPolicy", venv, policy_kwargs=policy_kwargs, seed=seed, device=device,
               verbose=0, **kw)


def save_pair(folder: Path, record: dict[str, Any], policy: PPO,
              net: nn.Module | None = None) -> None:
    """Write ``policy.pt``, ``net.pt`` (unless ``net`` is None) and ``pair.json`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({k: v.detach().cpu() for k, v in policy.policy.state_dict().items()},
                      folder / POLICY)
    digests = {POLICY: file_digest(folder / POLICY)}
    if net is not None:
        atomic_torch_save({k: v.detach().cpu() for k, v in net.state_dict().items()},
                          folder / NET)
        digests[NET] = file_digest(folder / NET)
    atomic_write_json({**record, "sha256": digests}, folder / RECORD)


def _tensors(path: Path, digest: str | None) -> dict[str, torch.Tensor]:
    if digest is not None and file_digest(path) != digest:
        raise ValueError(f"{path} does not match the sha256 in its pair.json (corrupt or "
                         f"edited); re-download or re-create the pair")
    return torch.load(path, map_location="cpu", weights_only=True)


def net_folder(folder: Path, record: dict[str, Any]) -> Path:
    """The folder whose ``net.pt`` this pair's network is (itself, or its ``net_source``)."""
    src = record.get("net_source")
    return folder if not src else (folder / src).resolve()


def load_pair(path: str | Path, device: str = "cpu", data: DatasetSplits | None = None) -> Pair:
    """The pair in folder ``path`` (or its ``pair.json``), verified, on ``device``."""
    folder = Path(path)
    folder = folder.parent if folder.name == RECORD else folder
    if not (folder / RECORD).exists():
        raise FileNotFoundError(f"{folder}: no {RECORD}; create a pair with python -m "
                                f"agents.pairs (or pass its folder)")
    record = json.loads((folder / RECORD).read_text())
    src = net_folder(folder, record)
    src_record = record if src == folder else json.loads((src / RECORD).read_text())
    if not (src / NET).exists():
        raise FileNotFoundError(f"{src / NET}: the network of {folder} is missing")
    data = data if data is not None else load_dataset(record["network"]["dataset"])
    net = build_network(record["network"], data)
    net.load_state_dict(_tensors(src / NET, src_record.get("sha256", {}).get(NET)))
    net = net.to(device).eval()
    env_kwargs = dict(record["env_kwargs"])
    venv = PTQVecEnv(1, net=net, data=data, device=device, **env_kwargs)
    with warnings.catch_warnings():  # one env instead of the search's n_envs: SB3 warns that
        warnings.simplefilter("ignore", UserWarning)  # batch_size > n_steps (training only)
        policy = make_policy(venv, record["policy"], record["config"]["seed"], device)
    policy.policy.load_state_dict(_tensors(folder / POLICY, record.get("sha256", {}).get(POLICY)))
    policy.policy.set_training_mode(False)
    return Pair(net, policy, record["config"], record.get("metrics", {}), env_kwargs, folder,
                record, data)
