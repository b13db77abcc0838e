"""Committed field artifacts, so the first SensorPlacement env on a fresh clone needs no solver
run and no training.

* **Processed fields** (``pinned_data/<dataset>-s<stride>-c<coarsen>.npz``): the simulated
  cylinder wake after the time stride and block-averaging the SensorPlacement recipes use
  (the full-resolution run takes minutes of the lattice-Boltzmann solver and ~130 MB). The
  file stores the source config with a sha256 of its arrays and is verified on load.
* **Reconstructors** (``pinned_models/<cache folder name>/``): Voronoi-CNN cache entries
  (``model.pt`` + ``meta.json``, the same files as under ``$DEPLOYGYM_CACHE/fields/models``),
  found by the same config hash, so only a network trained with exactly the requested config
  is used.

Re-pin after changing a recipe with ``python -m fields.pinned``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from fields.array_cache import load_arrays, save_arrays
from fields.field_data import FieldData

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / "pinned_data"
MODELS_DIR = ROOT / "pinned_models"
# Fields whose raw data is expensive to make (a solver run); others load in seconds.
PINNED_FIELDS = ("cylinder",)


def source_config(dataset: str) -> dict[str, Any]:
    """The config of the raw field ``dataset`` (the solver's, for simulated fields)."""
    if dataset == "cylinder":
        from fields.flow.cylinder import CylinderConfig

        return {"dataset": dataset, **asdict(CylinderConfig())}
    return {"dataset": dataset}


def _config(dataset: str, stride: int, coarsen: int) -> dict[str, Any]:
    return {"source": source_config(dataset), "stride": int(stride), "coarsen": int(coarsen)}


def data_path(dataset: str, stride: int, coarsen: int) -> Path:
    return DATA_DIR / f"{dataset}-s{int(stride)}-c{int(coarsen)}.npz"


def to_arrays(data: FieldData) -> dict[str, np.ndarray]:
    """``data`` as plain arrays (no objects, so it loads with ``allow_pickle=False``)."""
    meta = {"name": data.name, "sample_axis": data.sample_axis, "spherical": data.spherical,
            "units": data.units, "attrs": data.attrs, "coords": sorted(data.coords)}
    return {"values": data.values, "mask": data.mask, "meta_json": np.array(json.dumps(meta)),
            **{f"coord_{k}": np.asarray(v) for k, v in data.coords.items()}}


def from_arrays(arrays: dict[str, np.ndarray]) -> FieldData:
    meta = json.loads(str(arrays["meta_json"]))
    return FieldData(name=meta["name"], values=arrays["values"], mask=arrays["mask"],
                     coords={k: arrays[f"coord_{k}"] for k in meta["coords"]},
                     sample_axis=meta["sample_axis"], spherical=meta["spherical"],
                     units=meta["units"], attrs=meta["attrs"])


def pinned_field(dataset: str, stride: int, coarsen: int) -> FieldData | None:
    """The committed processed field, or ``None`` when none is pinned for these options.
    A pinned file that fails its checksum is an error naming the file and the fix."""
    path = data_path(dataset, stride, coarsen)
    if dataset not in PINNED_FIELDS or not path.exists():
        return None
    try:
        return from_arrays(load_arrays(path, _config(dataset, stride, coarsen)))
    except Exception as e:  # noqa: BLE001 - any failure: the committed file is damaged
        raise ValueError(f"the pinned field {path} is unusable ({e}); restore it with "
                         f"`git checkout -- fields/pinned_data/{path.name}`") from None


def processed_field(dataset: str, stride: int = 1, coarsen: int = 1, *,
                    progress: bool = True) -> FieldData:
    """``dataset`` after keeping every ``stride``-th snapshot and block-averaging by
    ``coarsen``: the pinned copy when there is one, else loaded (or simulated) and processed."""
    pinned = pinned_field(dataset, stride, coarsen)
    if pinned is not None:
        return pinned
    from fields.load import load_field

    return process(load_field(dataset, progress=progress), stride, coarsen)


def process(data: FieldData, stride: int, coarsen: int) -> FieldData:
    """Every ``stride``-th snapshot, block-averaged by ``coarsen``."""
    if stride > 1:
        data = data.subset(slice(0, None, stride))
    return data.coarsen(coarsen)


def pinned_model(name: str) -> Path | None:
    """The committed reconstructor folder named like its cache folder, if any."""
    d = MODELS_DIR / name
    return d if (d / "meta.json").exists() else None


def pin_field(dataset: str, stride: int, coarsen: int) -> Path:
    """Write the processed field as a pinned file (simulating it now if needed)."""
    from fields.load import load_field

    data = process(load_field(dataset), stride, coarsen)
    path = data_path(dataset, stride, coarsen)
    save_arrays(path, to_arrays(data), _config(dataset, stride, coarsen))
    return path


def pin_reconstructor(dataset: str, **overrides: Any) -> Path:
    """Copy the cached (trained now if needed) reconstructor of ``dataset`` to the pinned
    folder."""
    from fields.pretrained import get_reconstructor, model_dir, resolve_config

    get_reconstructor(dataset, use_pinned=False, **overrides)
    src = model_dir(resolve_config(dataset, **overrides))
    dst = MODELS_DIR / src.name
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.pt", "meta.json"):
        shutil.copyfile(src / name, dst / name)
    return dst


def main(argv: list[str] | None = None) -> None:
    from fields.pretrained import RECIPES

    p = argparse.ArgumentParser(prog="python -m fields.pinned",
                                description="Pin the processed fields and the reconstructors "
                                            "of the SensorPlacement recipes.")
    p.add_argument("--datasets", nargs="*", default=sorted(RECIPES))
    p.add_argument("--models", action="store_true", help="also pin the Voronoi-CNNs")
    args = p.parse_args(argv)
    for dataset in args.datasets:
        r = RECIPES[dataset]
        if dataset in PINNED_FIELDS:
            print("pinned", pin_field(dataset, r.get("stride", 1), r.get("coarsen", 1)))
        if args.models:
            print("pinned", pin_reconstructor(dataset))


if __name__ == "__main__":
    main()
