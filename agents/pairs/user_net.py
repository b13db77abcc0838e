"""The network and data of a pair search: the suite's standard network, or the researcher's own.

* ``--net`` (with ``--weights``): the user's module wrapped by :func:`models.nets.as_deploy_net`
  with the shape and classes of the data; the pair record keeps the builder, the weights'
  path and sha256, never code. Loading such a pair needs ``--net`` again
  (:func:`agents.pairs.artifact.load_pair` takes the module).
* ``--data`` without ``--net``: ``--arch`` trained on that data through the model cache,
  keyed by the data's content hash (:func:`models.zoo.get_trained`).
* Neither: the standard network of ``(--dataset, --arch, --seed)``.

Training a pair (``--mode detrimental|robust``) keeps a frozen copy of the network as the
teacher and trains the copy with BN statistics frozen (eval mode), quantizing each
quantizable layer once per forward; :func:`trainable_copy` says which of these a module
cannot do, and that ``--attack standard`` attacks it frozen instead.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from agents.pairs.options import PairArgs, model_kw
from models.datasets import DatasetSplits, load_dataset
from models.nets import as_deploy_net
from models.nets.user import OwnParts, own_parts
from models.quant import RangeAwareQuantizer


def pair_data(args: PairArgs) -> tuple[OwnParts, DatasetSplits]:
    """The user's parts (``--net``/``--weights``/``--data``) and the data of the search."""
    own = own_parts(args.net, args.weights, args.data, args.device)
    return own, own.data if own.data is not None else load_dataset(args.dataset)


def network_recipe(args: PairArgs, own: OwnParts, data: DatasetSplits) -> dict[str, Any]:
    """How to rebuild the attacked network: ``{"dataset", "arch", "model_kw"}`` of the model
    cache, or for ``--net`` the builder, the weights and their sha256 (and, with ``--data``,
    the data's path and sha256)."""
    data_part = {k: own.record[k] for k in ("data", "data_sha256") if k in own.record}
    if own.module is not None:
        info = data.info
        return {"net": args.net, "weights": own.record["weights"],
                "weights_sha256": own.record["weights_sha256"],
                "input_shape": [info.in_channels, *info.image_size],
                "num_classes": info.num_classes,
                **({"dataset": args.dataset} if not data_part else {}), **data_part}
    kw = {"seed": args.seed, **model_kw(args)}
    if data_part:
        kw["data_sha256"] = data_part["data_sha256"]
    return {"dataset": data.info.name, "arch": args.arch, "model_kw": kw, **data_part}


def standard_network(args: PairArgs, own: OwnParts, data: DatasetSplits) -> nn.Module:
    """The frozen network of the search (the teacher of a pair, the target of an attack)."""
    if own.module is not None:
        info = data.info
        net = as_deploy_net(own.module, (info.in_channels, *info.image_size), info.num_classes)
    else:
        from models.zoo import get_trained

        kw = network_recipe(args, own, data)["model_kw"]
        kw.pop("data_sha256", None)  # get_trained adds it from the data
        net = get_trained(data.info.name, args.arch, device=args.device, progress=args.progress,
                          data=data if args.data else None, **kw)
    net = net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def trainable_copy(teacher: nn.Module, args: PairArgs) -> nn.Module:
    """The network a pair trains: a copy of ``teacher`` in eval mode (BN statistics frozen),
    checked to quantize each layer once per forward. ``ValueError`` saying what is missing
    for a module that cannot be trained as a pair."""
    what = f"--net {args.net}" if args.net else f"the {args.arch} network"
    hint = "; attack it frozen with --attack standard instead"
    try:
        net = copy.deepcopy(teacher).eval()
    except Exception as e:  # noqa: BLE001 - the user's module: any failure is one line
        raise ValueError(f"{what} cannot be trained as a pair: a pair keeps a frozen copy as "
                         f"its teacher, and copy.deepcopy failed ({type(e).__name__}: {e})"
                         f"{hint}") from None
    rq = RangeAwareQuantizer(net)
    try:
        p = next(net.parameters())
        x = torch.zeros(2, *net.input_shape, device=p.device, dtype=p.dtype)
        _, rho = rq(x, torch.full((2, rq.n_layers), 8, dtype=torch.int64))
    finally:
        rq.remove()
    if rho.shape[1] != rq.n_layers:
        raise ValueError(f"{what} cannot be trained as a pair: some Conv2d/Linear layer runs "
                         f"more than once per forward ({rho.shape[1]} quantized inputs for "
                         f"{rq.n_layers} layers), and pair training quantizes each layer's "
                         f"input once{hint}")
    return net
