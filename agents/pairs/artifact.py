"""The published form of a network–policy pair, safe to load from a folder you did not make.

A pair folder holds

* ``pair.json`` — the search's configuration, the network's build recipe, the policy's
  hyperparameters, the final metrics, provenance, and the sha256 of every weight file;
* ``policy.pt`` — the SB3 policy's ``state_dict`` (tensors only);
* ``net.pt`` — the network's ``state_dict`` (tensors only), or, for an attacker trained
  against a frozen network, ``net_source`` in ``pair.json`` names the sibling pair folder
  (``../<name>``) whose ``net.pt`` it attacked; that file's sha256 is recorded here too, as
  ``sha256["../<name>/net.pt"]``, so a swapped source is detected.

:func:`load_pair` requires and verifies every digest and reads the tensors with
``torch.load(weights_only=True)``: nothing in the folder is unpickled as code, only known PPO
hyperparameters and env options are taken from ``pair.json``, and a reference to another
folder cannot leave the parent folder. The resume checkpoint of a running search
(``pair.pt``) is a different, private file.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from torch import nn

from agents.pairs.extractors import InputCNN
from agents.vec import PTQVecEnv
from models.cache import file_digest
from models.datasets import DatasetSplits, data_sha256, load_dataset
from models.io import atomic_torch_save, atomic_write_json
from models.nets import as_deploy_net
from models.readers import (
    bad_file,
    check_digest,
    load_weights,
    read_json,
    read_torch,
    sibling_folder,
)

RECORD, NET, POLICY = "pair.json", "net.pt", "policy.pt"
FIX = "re-download or re-create the pair with python -m agents.pairs"
RECORD_KEYS = ("config", "env_kwargs", "network", "policy", "sha256")
# PPO keywords a pair.json may set (the search's hyperparameters), and env options it may not
# (where files go, the device): anything else is refused rather than passed on.
POLICY_KEYS = frozenset({"batch_size", "n_epochs", "learning_rate", "gamma", "ent_coef",
                         "net_arch", "n_steps", "gae_lambda", "clip_range", "vf_coef",
                         "max_grad_norm"})
ENV_KEYS_REFUSED = frozenset({"device", "cache_dir", "render_mode", "model_cfg"})


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


def build_network(recipe: dict[str, Any], data: DatasetSplits,
                  net: nn.Module | None = None) -> nn.Module:
    """The (untrained) architecture of ``recipe``: ``{"dataset", "arch", "model_kw"}`` of the
    model cache, or, for a user's network (``"net"`` in the recipe), ``net`` (the module
    ``--net`` built) wrapped for ``data``. A pair folder never names code that is run: a
    user's network must be given by the caller."""
    if "net" in recipe:
        if net is None:
            raise ValueError(f"this pair attacked your own network {recipe['net']}: pass --net "
                             f"{recipe['net']} (and --weights, --data) to load it; a pair "
                             f"folder never runs code by itself")
        info = data.info
        return as_deploy_net(net, (info.in_channels, *info.image_size), info.num_classes)
    from models.train import build_for
    from models.zoo import resolve_config

    return build_for(resolve_config(recipe["dataset"], recipe["arch"], **recipe["model_kw"]),
                     data)


def _pair_data(folder: Path, recipe: dict[str, Any], data: DatasetSplits | None) -> DatasetSplits:
    """``data``, checked against the content hash a pair made on a user's data records."""
    sha = recipe.get("data_sha256")
    if data is None:
        if sha:
            raise ValueError(f"{folder}: this pair was made on your own data "
                             f"({recipe.get('data')}); pass --data with that data")
        return load_dataset(str(recipe.get("dataset")))
    if sha and data_sha256(data) != sha:
        raise ValueError(f"{folder}: the data given is not the data this pair was made on "
                         f"({recipe.get('data')}, sha256 {str(sha)[:12]}…)")
    return data


def make_policy(venv: PTQVecEnv, hyperparams: dict[str, Any], seed: int, device: str) -> PPO:
    """The PPO model of a pair search (also used to rebuild it on load)."""
    kw = dict(hyperparams)
    policy_kwargs: dict[str, Any] = {"net_arch": list(kw.pop("net_arch"))}
    policy = "MlpPolicy"
    if isinstance(venv.observation_space, spaces.Dict):  # observation="image"
        policy = "MultiInputPolicy"
        policy_kwargs |= {"features_extractor_class": InputCNN, "normalize_images": False}
    model = PPO(policy, venv, policy_kwargs=policy_kwargs, seed=seed, device=device, verbose=0,
                **kw)
    # the pair search logs its own metrics; without a logger of its own SB3 would make an
    # empty /tmp/SB3-<time> folder at every learn()
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def net_file_key(record: dict[str, Any]) -> str:
    """The key of the network's digest in ``pair.json``'s ``sha256``: ``net.pt``, or
    ``../<name>/net.pt`` for a pair whose network is its sibling's."""
    src = record.get("net_source")
    return f"{src}/{NET}" if src else NET


def save_pair(folder: Path, record: dict[str, Any], policy: PPO,
              net: nn.Module | None = None) -> None:
    """Write ``policy.pt``, ``net.pt`` (unless ``net`` is None: then the sibling folder
    ``record["net_source"]`` holds it, and its digest is recorded) and ``pair.json``
    atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({k: v.detach().cpu() for k, v in policy.policy.state_dict().items()},
                      folder / POLICY)
    digests = {POLICY: file_digest(folder / POLICY)}
    if net is not None:
        atomic_torch_save({k: v.detach().cpu() for k, v in net.state_dict().items()},
                          folder / NET)
        digests[NET] = file_digest(folder / NET)
    else:
        src = net_folder(folder, record)
        digests[net_file_key(record)] = file_digest(src / NET)
    atomic_write_json({**record, "sha256": digests}, folder / RECORD)


def net_folder(folder: Path, record: dict[str, Any]) -> Path:
    """The folder whose ``net.pt`` this pair's network is: itself, or its ``net_source``,
    which may only name a sibling folder (``../<name>``)."""
    src = record.get("net_source")
    return folder if not src else sibling_folder(folder, src, folder / RECORD, FIX)


def read_record(folder: Path) -> dict[str, Any]:
    """``folder/pair.json``, checked: every part present, known PPO keywords, safe env
    options; one line naming the file otherwise."""
    path = folder / RECORD
    record = read_json(path, FIX, keys=RECORD_KEYS, kind="pair record")
    for key in ("config", "env_kwargs", "network", "policy", "sha256"):
        if not isinstance(record[key], dict):
            raise bad_file(path, f"its {key!r} entry is not a mapping", FIX)
    unknown = sorted(set(record["policy"]) - POLICY_KEYS)
    if unknown:
        raise bad_file(path, f"sets PPO keywords {unknown} that a pair does not use; known: "
                             f"{sorted(POLICY_KEYS)}", FIX)
    for key, v in record["policy"].items():
        ok = (isinstance(v, list) and all(isinstance(x, int) and x > 0 for x in v)
              if key == "net_arch" else
              isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v))
        if not ok:
            raise bad_file(path, f"its PPO keyword {key}={v!r} is not "
                                 f"{'a list of layer sizes' if key == 'net_arch' else 'a number'}",
                           FIX)
    refused = sorted(set(record["env_kwargs"]) & ENV_KEYS_REFUSED)
    if refused:
        raise bad_file(path, f"sets env options {refused}, which a pair file may not set", FIX)
    if not isinstance(record["config"].get("seed"), int):
        raise bad_file(path, "its config has no integer 'seed'", FIX)
    return record


def load_pair(path: str | Path, device: str = "cpu", data: DatasetSplits | None = None,
              net: nn.Module | None = None) -> Pair:
    """The pair in folder ``path`` (or its ``pair.json``), verified, on ``device``.

    A pair made on a user's network and data needs them again: ``net`` the module ``--net``
    builds (its weights are replaced by the pair's ``net.pt``), ``data`` the same data
    (checked against the recorded sha256)."""
    folder = Path(path)
    folder = folder.parent if folder.name == RECORD else folder
    if not (folder / RECORD).exists():
        raise FileNotFoundError(f"{folder}: no {RECORD}; create a pair with python -m "
                                f"agents.pairs (or pass its folder)")
    record = read_record(folder)
    src = net_folder(folder, record)
    digests = record["sha256"]
    check_digest(folder / POLICY, digests.get(POLICY), folder / RECORD, FIX)
    check_digest(src / NET, digests.get(net_file_key(record)), folder / RECORD, FIX)
    data = _pair_data(folder, record["network"], data)
    if "net" in record["network"] and net is None:
        build_network(record["network"], data)  # the error that says to pass --net
    try:
        net = build_network(record["network"], data, net)
    except (KeyError, TypeError, ValueError) as e:
        raise bad_file(folder / RECORD, f"its network recipe cannot be built "
                                        f"({type(e).__name__}: {e})", FIX) from None
    load_weights(net, read_torch(src / NET, FIX, kind="network"), src / NET, FIX)
    net = net.to(device).eval()
    env_kwargs = dict(record["env_kwargs"])
    try:
        venv = PTQVecEnv(1, net=net, data=data, device=device, **env_kwargs)
    except (TypeError, ValueError) as e:
        raise bad_file(folder / RECORD, f"its env options are invalid ({type(e).__name__}: "
                                        f"{e})", FIX) from None
    with warnings.catch_warnings():  # one env instead of the search's n_envs: SB3 warns that
        warnings.simplefilter("ignore", UserWarning)  # batch_size > n_steps (training only)
        try:
            policy = make_policy(venv, record["policy"], record["config"]["seed"], device)
        except (KeyError, TypeError, ValueError) as e:
            raise bad_file(folder / RECORD, f"its PPO hyperparameters are invalid "
                                            f"({type(e).__name__}: {e})", FIX) from None
    load_weights(policy.policy, read_torch(folder / POLICY, FIX, kind="policy"),
                 folder / POLICY, FIX)
    policy.policy.set_training_mode(False)
    return Pair(net, policy, record["config"], record.get("metrics", {}), env_kwargs, folder,
                record, data)
