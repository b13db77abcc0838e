"""Committed networks: trained once by a recorded recipe, weights committed with their checksum.

A network retrained on another machine differs in its last bits (and results built on it by
points), and the first use of an env would otherwise train for minutes. So the networks the
environments need by default live in ``models/pinned_weights/`` with an index
(``pinned.json``) holding, per entry, the training recipe (a :class:`models.train.TrainConfig`
result key), the architecture, the file's and the weights' sha256 and the accuracy.

:func:`models.zoo.get_trained` returns the pinned network whenever the requested recipe equals
a pinned one exactly, so nothing is trained. Entries are keyed ``<dataset>/<arch>`` or, with
training options, ``<dataset>/<arch>?seed=1``. Pin (or re-pin) one with::

    python -m models.pinned --dataset fashion-mnist --arch cnn [--kw seed:1]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from models.cache import file_digest, state_dict_sha256
from models.cli import parse_kv
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.nets import DeployNet, build_model
from models.readers import load_weights, read_json, read_torch

DIR = Path(__file__).resolve().parent / "pinned_weights"
INDEX = DIR / "pinned.json"
RESTORE_INDEX = "restore it with `git checkout -- models/pinned_weights/pinned.json`"


class PinnedFileError(ValueError):
    """A pinned weights file is missing or does not match its recorded checksum."""


def pinned_index() -> dict[str, Any]:
    """Every pinned entry by key (empty if the index is absent)."""
    return read_json(INDEX, RESTORE_INDEX, kind="pinned index") if INDEX.exists() else {}


def pin_key(dataset: str, arch: str, options: dict[str, Any] | None = None) -> str:
    """``fashion-mnist/cnn``, or with training options ``fashion-mnist/cnn?seed=1``."""
    opts = "&".join(f"{k}={options[k]}" for k in sorted(options or {}))
    return f"{dataset}/{arch}" + (f"?{opts}" if opts else "")


def pinned_entry(dataset: str, arch: str,
                 options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The entry of ``(dataset, arch)`` trained with ``options``, or ``None``."""
    return pinned_index().get(pin_key(dataset, arch, options))


def entry_for_recipe(recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The entry trained with exactly ``recipe`` (a ``TrainConfig.result_key()``), or ``None``."""
    return next((e for e in pinned_index().values() if e["recipe"] == recipe), None)


def load_entry(entry: dict[str, Any], device: str = "cpu") -> DeployNet:
    """The network of ``entry`` after checking its file's sha256 (``PinnedFileError`` if not)."""
    path = DIR / entry["file"]
    if not path.exists() or file_digest(path) != entry["file_sha256"]:
        raise PinnedFileError(
            f"the pinned network {path} is missing or its sha256 differs from {INDEX.name}; "
            f"restore it with `git checkout -- models/pinned_weights/{entry['file']}`")
    a = entry["architecture"]
    net = build_model(entry["recipe"]["arch"], num_classes=a["num_classes"],
                      in_channels=a["in_channels"], image_size=tuple(a["image_size"]),
                      width=a["width"], mean=a["mean"], std=a["std"])
    fix = f"restore it with `git checkout -- models/pinned_weights/{entry['file']}`"
    load_weights(net, read_torch(path, fix, kind="state dict"), path, fix)
    net.meta = {**entry["metrics"], "config": entry["recipe"], "sha256": entry["file_sha256"],
                "pinned": True}
    return net.to(device).eval()


def load_pinned(dataset: str, arch: str, device: str = "cpu",
                options: dict[str, Any] | None = None) -> DeployNet | None:
    """The pinned network of ``(dataset, arch)`` trained with ``options`` (``None`` if none)."""
    entry = pinned_entry(dataset, arch, options)
    return None if entry is None else load_entry(entry, device)


def pin(dataset: str, arch: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the model-cache network of ``(dataset, arch)`` trained with ``options`` (trained now
    if needed) as a pinned network, with its recipe, checksums and accuracy."""
    from models.datasets import load_dataset
    from models.zoo import get_trained, resolve_config

    options = dict(options or {})
    net = get_trained(dataset, arch, use_pinned=False, **options).cpu().eval()
    info = load_dataset(dataset).info
    DIR.mkdir(parents=True, exist_ok=True)
    suffix = "".join(f"-{k}{options[k]}" for k in sorted(options))
    path = DIR / f"{dataset}-{arch}{suffix}.pt"
    atomic_torch_save(net.state_dict(), path)
    recipe = resolve_config(dataset, arch, progress=False, **options)
    entry = {"file": path.name, "file_sha256": file_digest(path),
             "weights_sha256": state_dict_sha256(net), "recipe": recipe.result_key(),
             "architecture": {"num_classes": info.num_classes, "in_channels": info.in_channels,
                              "image_size": list(info.image_size), "width": recipe.width,
                              "mean": list(info.mean), "std": list(info.std)},
             "metrics": {k: net.meta[k] for k in ("test_acc", "best_val_acc") if k in net.meta},
             **provenance(recipe.seed)}
    index = pinned_index()
    index[pin_key(dataset, arch, options)] = entry
    atomic_write_json(index, INDEX)
    return entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.pinned",
                                description="Pin the model-cache network of a recipe.")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--kw", "--teacher-kw", nargs="*", default=[], metavar="KEY:VALUE",
                   dest="kw", help="training options other than the recipe's, e.g. seed:1")
    args = p.parse_args(argv)
    try:
        options = parse_kv(args.kw, "--kw")
    except ValueError as e:
        p.error(str(e))
    entry = pin(args.dataset, args.arch, options)
    print(f"pinned {pin_key(args.dataset, args.arch, options)}: test acc "
          f"{entry['metrics'].get('test_acc')}, weights sha256 {entry['weights_sha256']}")


if __name__ == "__main__":
    main()
