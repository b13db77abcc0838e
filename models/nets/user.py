"""A researcher's own network from the command line: ``--net`` and ``--weights``.

* ``--net package.module:builder`` imports ``package.module`` (from the current folder or the
  installed packages) and calls ``builder()``; ``--net path/to/file.py:builder`` loads that
  file. Either way it is the user's own code and runs as such. The builder returns an
  ``nn.Module`` classifier (see :func:`models.nets.as_deploy_net`).
* ``--weights FILE`` is a state dict: a ``.safetensors`` file (needs the ``safetensors``
  package), or a ``torch.save``-d dict of tensors read with ``torch.load(weights_only=True)``
  (a ``{"state_dict": ...}`` checkpoint too). Nothing in it is unpickled as code: a pickled
  module, or any file that would run code when loaded, is refused.

* ``--data PATH`` is read by :func:`models.datasets.load_data_path` (ImageFolder folders,
  ``.npz`` with ``allow_pickle=False``, ``.pt`` with ``weights_only=True``).

:func:`own_parts` reads all three for ``agents.pairs``, ``agents.evaluate`` and
``agents.train``, with a record of what was read (paths and sha256 of weights and data).
Every failure is one ``ValueError`` / ``TypeError`` / ``FileNotFoundError`` naming the flag
and what to fix (exit 2 through :func:`models.cli.run_cli`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.readers import bad_file, load_weights, read_torch

WEIGHTS_FIX = "pass a state dict saved with torch.save(model.state_dict(), FILE) or safetensors"


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"--net {spec}: no file {path}")
    name = "deploygym_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ValueError(f"--net {spec}: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's code: any failure is one line
        sys.modules.pop(name, None)
        raise ValueError(f"--net {spec}: importing {path} failed: {type(e).__name__}: "
                         f"{e}") from None
    return module


def import_builder(spec: str) -> Callable[[], Any]:
    """The callable ``spec`` names: ``package.module:builder`` or ``path/to/file.py:builder``."""
    target, sep, attr = str(spec).rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ValueError(f"--net expects package.module:builder or path/to/file.py:builder, "
                         f"got {spec!r}")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(Path(target).expanduser(), spec)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise ValueError(f"--net {spec}: no module named {e.name!r} (run from the folder "
                             f"that holds it, install it, or give path/to/file.py:{attr})"
                             ) from None
        except Exception as e:  # noqa: BLE001 - the user's code: any failure is one line
            raise ValueError(f"--net {spec}: importing {target} failed: {type(e).__name__}: "
                             f"{e}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"--net {spec}: {target} has no attribute {attr!r}")
    if not callable(fn):
        raise TypeError(f"--net {spec}: {attr} is a {type(fn).__name__}, not a callable builder")
    return fn


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (safetensors, or ``torch.load(weights_only=True)``)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--weights {path}: no such file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError(f"--weights {path}: reading .safetensors needs the safetensors "
                             f"package (pip install safetensors), or save a state dict with "
                             f"torch.save") from None
        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - a damaged file is one line
            raise bad_file(path, f"is not a readable safetensors file ({type(e).__name__})",
                           WEIGHTS_FIX) from None
    state = read_torch(path, WEIGHTS_FIX, kind="state dict")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise bad_file(path, "is not a state dict (a mapping of names to tensors)", WEIGHTS_FIX)
    return state


def build_user_net(spec: str, weights: str | Path | None = None) -> nn.Module:
    """``builder()`` of ``spec`` (see :func:`import_builder`) with ``weights`` loaded, in eval
    mode."""
    fn = import_builder(spec)
    try:
        module = fn()
    except Exception as e:  # noqa: BLE001 - the user's code: any failure is one line
        raise ValueError(f"--net {spec}: the builder raised {type(e).__name__}: {e}") from None
    if not isinstance(module, nn.Module):
        raise TypeError(f"--net {spec}: the builder returned a {type(module).__name__}, not a "
                        f"torch.nn.Module")
    if weights is not None:
        path = Path(weights).expanduser()
        load_weights(module, read_state_dict(path), path,
                     f"give the weights of the network {spec} builds")
    return module.eval()


@dataclass
class OwnParts:
    """What ``--net``/``--weights``/``--data`` gave: the module (weights loaded, eval mode,
    not yet wrapped), the data splits, and ``record`` (the flags with the sha256 of the
    weights and of the data; empty when none was given)."""

    module: nn.Module | None = None
    data: Any = None
    record: dict[str, Any] = field(default_factory=dict)


def own_parts(net: str | None = None, weights: str | None = None, data: str | None = None,
              device: str = "cpu") -> OwnParts:
    """Read ``--net``, ``--weights`` and ``--data`` (each optional; ``--weights`` needs
    ``--net``)."""
    from models.cache import state_dict_sha256
    from models.datasets import data_sha256, load_data_path

    if weights is not None and net is None:
        raise ValueError("--weights loads the state dict of --net; pass --net too")
    out = OwnParts()
    if net is not None:
        out.module = build_user_net(net, weights).to(device)
        out.record.update(net=net, weights=None if weights is None else str(weights),
                          weights_sha256=state_dict_sha256(out.module))
    if data is not None:
        out.data = load_data_path(data)
        out.record.update(data=str(data), data_sha256=data_sha256(out.data))
    return out


__all__ = ["OwnParts", "build_user_net", "import_builder", "own_parts", "read_state_dict"]
