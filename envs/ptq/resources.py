"""The expensive parts of a DynamicPTQ environment, built once per process and shared.

* the trained network (from :func:`models.zoo.get_trained`, cached on disk) and its
  :class:`models.quant.DynamicQuantizer`;
* the dataset splits;
* an :class:`FPCache` per split: full-precision logits and per-layer statistics of every
  example, filled lazily in fixed chunks (so values never depend on which examples were asked
  for first) and dropped automatically when the network's parameters change in place
  (e.g. by an optimizer step during quantization-aware training);
* a :class:`envs.ptq.observations.probe.ProbeCache` per split and plan set when the ``probe`` or
  ``query`` observation asks for one, kept the same way.

All environments (single or vectorized) built with the same options share one set of
resources, so N environments cost one network, one dataset and one cache.

A caller's own network and data are accepted as they are: a plain ``nn.Module`` classifier
is wrapped once by :func:`models.nets.as_deploy_net` (input shape and class count from the
data), and ``data`` in any form :func:`models.datasets.as_splits` reads is converted once.
``data`` without ``net`` trains (once, then from the model cache) the configured ``arch``
on that data, keyed by its content hash; it never falls back to the named dataset's network.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.ptq.config import PTQConfig
from envs.ptq.observations.chunks import ChunkCache
from envs.ptq.observations.probe import ProbeCache
from models.datasets import DatasetSplits, Split, as_splits, load_dataset
from models.nets import DeployNet, as_deploy_net
from models.quant import FP_BITS, DynamicQuantizer
from models.quant.fake import fused_available


class FPCache(ChunkCache):
    """Full-precision logits ``[N, classes]`` and statistics ``[N, layers, 4]`` of one split."""

    def _allocate(self, n: int, dtype: torch.dtype) -> None:
        classes = self.qnet.net.num_classes
        self.logits = torch.zeros(n, classes, dtype=dtype, device=self.device)
        self.stats = torch.zeros(n, self.qnet.n_layers, 4, dtype=dtype, device=self.device)

    def _fill(self, rows: np.ndarray) -> None:
        sl = slice(int(rows[0]), int(rows[-1]) + 1)
        out = self.qnet(self.split.images[sl].to(self.device), FP_BITS, return_stats=True)
        self.logits[sl], self.stats[sl] = out.logits, out.stats

    def get(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """FP logits and statistics of examples ``idx`` (computed now if missing)."""
        t = self._ready(idx)
        return self.logits[t], self.stats[t]


@dataclass
class PTQResources:
    """Network, quantizer, data and FP caches shared by environments with the same options."""

    net: nn.Module
    qnet: DynamicQuantizer
    data: DatasetSplits
    device: torch.device
    caches: dict[str, FPCache] = field(default_factory=dict)
    probes: dict[tuple, ProbeCache] = field(default_factory=dict)
    labels_np: dict[str, np.ndarray] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        return getattr(self.data, name)

    def labels(self, name: str) -> np.ndarray:
        """The labels of split ``name`` as a numpy array (cached)."""
        if name not in self.labels_np:
            self.labels_np[name] = self.split(name).labels.numpy().astype(np.int64)
        return self.labels_np[name]

    def cache(self, name: str) -> FPCache:
        if name not in self.caches:
            self.caches[name] = FPCache(self.qnet, self.split(name), self.device)
        return self.caches[name]

    def probe(self, name: str, idx: np.ndarray, plans: np.ndarray) -> torch.Tensor:
        """Features ``[len(idx), K, 3]`` of examples ``idx`` of split ``name`` under probe
        ``plans`` ``[K, L]`` (:mod:`envs.ptq.observations.probe`), computed once per example."""
        plans = np.asarray(plans, dtype=np.int64)
        key = (name, plans.tobytes(), plans.shape)
        if key not in self.probes:
            self.probes[key] = ProbeCache(self.qnet, self.split(name), self.device, plans,
                                          lambda rows: self.cache(name).get(rows)[0])
        return self.probes[key].get(idx)


_BY_CONFIG: dict[tuple, PTQResources] = {}
# resources built around a caller's network; they keep it alive until release_resources(net)
_BY_NET: weakref.WeakKeyDictionary[nn.Module, dict[tuple, PTQResources]] = weakref.WeakKeyDictionary()
_DATA: dict[tuple, DatasetSplits] = {}
# a caller's plain module -> its wrappers by (input shape, classes); data objects by id
_WRAPPED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, DeployNet]] = weakref.WeakKeyDictionary()
_USER_DATA: dict[int, tuple[Any, DatasetSplits]] = {}


def as_env_data(data: Any) -> DatasetSplits | None:
    """``data`` as :class:`DatasetSplits` (converted once per object; see
    :func:`models.datasets.as_splits` for the forms and the split rule)."""
    if data is None or isinstance(data, DatasetSplits):
        return data
    if id(data) not in _USER_DATA:  # the entry keeps the object alive, so its id stays its own
        _USER_DATA[id(data)] = (data, as_splits(data))
    return _USER_DATA[id(data)][1]


def as_env_net(net: nn.Module, data: DatasetSplits) -> nn.Module:
    """``net``, or for a module without ``quantizable_layers()`` its
    :func:`models.nets.as_deploy_net` wrapper for ``data``'s images (made once)."""
    if hasattr(net, "quantizable_layers"):
        return net
    info = data.info
    key = ((info.in_channels, *info.image_size), info.num_classes)
    per_module = _WRAPPED.setdefault(net, {})
    if key not in per_module:
        per_module[key] = as_deploy_net(net, *key)
    return per_module[key]


def release_resources(net: nn.Module | None = None) -> None:
    """Forget the shared resources of ``net`` (or of every network) and detach their
    quantization hooks. Call it once no environment built on them is used any more (their
    quantizers stop quantizing); environments built afterwards rebuild what they need."""
    nets = [net, *_WRAPPED.pop(net, {}).values()] if net is not None else []
    groups = ([_BY_NET.pop(n, {}) for n in nets] if net is not None
              else [*_BY_NET.values(), _BY_CONFIG])
    for group in groups:
        for res in group.values():
            res.qnet.remove()
        group.clear()
    if net is None:
        _BY_NET.clear()
        _WRAPPED.clear()
        _USER_DATA.clear()


def _dataset(name: str, cfg: PTQConfig) -> DatasetSplits:
    key = (name, cfg.model_cfg.get("data_root"))
    if key not in _DATA:
        _DATA[key] = load_dataset(name, cfg.model_cfg.get("data_root"),
                                  download=bool(cfg.model_cfg.get("download", False)))
    return _DATA[key]


def _check_match(net: nn.Module, data: DatasetSplits) -> None:
    info = data.info
    shape = (info.in_channels, *info.image_size)
    if tuple(getattr(net, "input_shape", shape)) != shape:
        raise ValueError(f"net expects inputs {tuple(net.input_shape)} but dataset "
                         f"{info.name!r} has images {shape}")
    if getattr(net, "num_classes", info.num_classes) != info.num_classes:
        raise ValueError(f"net has {net.num_classes} classes but dataset {info.name!r} has "
                         f"{info.num_classes}")
    if not hasattr(net, "quantizable_layers"):
        raise TypeError("net must provide quantizable_layers() (any models.nets.DeployNet does)")


def get_resources(cfg: PTQConfig, net: nn.Module | None = None,
                  data: Any = None) -> PTQResources:
    """Shared resources for ``cfg`` (and the given ``net``/``data``, when passed; see the
    module docstring for what they may be)."""
    fused = cfg.fused_quant if cfg.fused_quant is not None else fused_available()
    qkey: tuple[Any, ...] = (cfg.per_channel, cfg.weight_bits, fused, cfg.zero_point)
    data = as_env_data(data)
    if net is not None:
        data = data if data is not None else _dataset(cfg.dataset, cfg)
        net = as_env_net(net, data)
        _check_match(net, data)
        per_net = _BY_NET.setdefault(net, {})
        key = (*qkey, id(data))
        if key not in per_net:
            dev = next(net.parameters()).device
            qnet = DynamicQuantizer(net, per_channel=cfg.per_channel,
                                    weight_bits=cfg.weight_bits, fused=fused,
                                    zero_point=cfg.zero_point)
            per_net[key] = PTQResources(net, qnet, data, dev)
        return per_net[key]
    key = (cfg.dataset, cfg.arch, tuple(sorted(cfg.model_cfg.items())), cfg.device,
           cfg.cache_dir, *qkey, id(data) if data is not None else None)
    if key not in _BY_CONFIG:
        from models.zoo import get_trained

        net = get_trained(cfg.dataset if data is None else data.info.name, cfg.arch,
                          device=cfg.device, cache_dir=cfg.cache_dir, progress=cfg.progress,
                          data=data, **cfg.model_cfg)
        net = net.to(memory_format=torch.channels_last)  # ~30% faster CPU convolutions
        data = data if data is not None else _dataset(cfg.dataset, cfg)
        _check_match(net, data)
        qnet = DynamicQuantizer(net, per_channel=cfg.per_channel, weight_bits=cfg.weight_bits,
                                fused=fused, zero_point=cfg.zero_point)
        _BY_CONFIG[key] = PTQResources(net, qnet, data, torch.device(cfg.device))
    return _BY_CONFIG[key]
