"""The DistillSource env's pinned teachers: trained once by a committed recipe, weights committed
with their checksum, so every machine distils from the same teacher.

A network retrained on another machine differs in its last bits (and its results by points),
so the env loads ``teachers/<dataset>-<arch>.pt`` instead of training, and refuses a teacher
whose weights differ from the pinned ones unless told otherwise (``teacher_sha256=None``, or
the other teacher's own checksum). A teacher with options (e.g. the held-out ``seed: 1`` teacher
of ``benchmarks/kd_source_policy.py``) is pinned under ``<dataset>/<arch>?<options>``. Re-pin
with ``python -m envs.distill_source.teacher [--teacher-kw seed:1]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.cache import file_digest
from models.cache import state_dict_sha256 as weights_sha256
from models.cli import parse_kv
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.nets import DeployNet, build_model

DIR = Path(__file__).resolve().parent / "teachers"
INDEX = DIR / "pinned.json"


class TeacherMismatchError(ValueError):
    """The teacher's weights are not the ones the env was told to expect."""


def pinned_index() -> dict[str, Any]:
    return json.loads(INDEX.read_text()) if INDEX.exists() else {}


def pin_key(dataset: str, arch: str, options: dict[str, Any] | None = None) -> str:
    """``fashion-mnist/cnn``, or with training options ``fashion-mnist/cnn?seed=1``."""
    opts = "&".join(f"{k}={options[k]}" for k in sorted(options or {}))
    return f"{dataset}/{arch}" + (f"?{opts}" if opts else "")


def pinned_entry(dataset: str, arch: str,
                 options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    return pinned_index().get(pin_key(dataset, arch, options))


def load_pinned(dataset: str, arch: str, device: str = "cpu",
                options: dict[str, Any] | None = None) -> DeployNet | None:
    """The committed teacher of ``(dataset, arch)`` trained with ``options`` (``None`` if none
    is pinned), after checking the file's sha256."""
    entry = pinned_entry(dataset, arch, options)
    if entry is None:
        return None
    path = DIR / entry["file"]
    if not path.exists() or file_digest(path) != entry["file_sha256"]:
        raise TeacherMismatchError(
            f"the pinned teacher {path} is missing or its sha256 differs from {INDEX.name}; "
            f"restore it with `git checkout -- {path.relative_to(DIR.parents[2])}`")
    a = entry["architecture"]
    net = build_model(arch, num_classes=a["num_classes"], in_channels=a["in_channels"],
                      image_size=tuple(a["image_size"]), width=a["width"], mean=a["mean"],
                      std=a["std"])
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.meta = {**entry["metrics"], "sha256": entry["file_sha256"], "pinned": True}
    return net.to(device).eval()


def check_teacher(net: nn.Module, dataset: str, arch: str, expected: str | None,
                  options: dict[str, Any] | None = None) -> str:
    """The teacher's weights sha256, after checking it against ``expected`` (``"pinned"``: the
    pinned one of ``(dataset, arch, options)`` if any; ``None``: no check; else a sha256)."""
    actual = weights_sha256(net)
    if expected == "pinned":
        entry = pinned_entry(dataset, arch, options)
        expected = entry["weights_sha256"] if entry else None
    if expected is not None and actual != expected:
        raise TeacherMismatchError(
            f"the teacher's weights (sha256 {actual[:16]}…) are not the pinned "
            f"{pin_key(dataset, arch, options)} "
            f"teacher ({expected[:16]}…); results with another teacher are not comparable. Pass "
            f"teacher_sha256=None to use it anyway, or teacher_sha256='{actual}' to pin it")
    return actual


def pin(dataset: str, arch: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the model-cache network of ``(dataset, arch)`` trained with ``options`` (trained now
    if needed) as a pinned teacher, with its recipe, checksums and accuracy."""
    from models.datasets import load_dataset
    from models.zoo import get_trained, resolve_config

    options = dict(options or {})
    net = get_trained(dataset, arch, **options).cpu().eval()
    info = load_dataset(dataset).info
    DIR.mkdir(parents=True, exist_ok=True)
    suffix = "".join(f"-{k}{options[k]}" for k in sorted(options))
    path = DIR / f"{dataset}-{arch}{suffix}.pt"
    atomic_torch_save(net.state_dict(), path)
    recipe = resolve_config(dataset, arch, progress=False, **options)
    entry = {"file": path.name, "file_sha256": file_digest(path),
             "weights_sha256": weights_sha256(net), "recipe": recipe.result_key(),
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
    p = argparse.ArgumentParser(description="Pin the model-cache network as the env's teacher.")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--teacher-kw", nargs="*", default=[], metavar="KEY:VALUE",
                   help="training options of a teacher other than the recipe's, e.g. seed:1")
    args = p.parse_args(argv)
    try:
        options = parse_kv(args.teacher_kw, "--teacher-kw")
    except ValueError as e:
        p.error(str(e))
    entry = pin(args.dataset, args.arch, options)
    print(f"pinned {pin_key(args.dataset, args.arch, options)}: test acc "
          f"{entry['metrics'].get('test_acc')}, "
          f"weights sha256 {entry['weights_sha256']}")


if __name__ == "__main__":
    main()
