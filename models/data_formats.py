"""Readers for the on-disk dataset formats (IDX, CIFAR pickles, SVHN .mat), with integrity checks.

Each reader validates before it returns, so a truncated or corrupt file raises
:class:`CorruptDataError` naming the file and nothing is half-loaded:

* IDX: the header's declared shape must match the payload size exactly (gzip's CRC is
  checked on the way), and files with a published MD5 must match it;
* CIFAR: every batch must unpickle to ``10000 × 3072`` uint8 rows with one label each;
* SVHN: the ``X``/``y`` arrays must exist with matching lengths.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np

IDX_KEYS = ("train-images", "train-labels", "t10k-images", "t10k-labels")
IDX_SUFFIX = {"train-images": "idx3-ubyte", "train-labels": "idx1-ubyte",
              "t10k-images": "idx3-ubyte", "t10k-labels": "idx1-ubyte"}

# Published MD5 sums of the gzipped files: upstream (as torchvision checks them) and the
# Debian package `dataset-fashion-mnist`, which recompressed them.
KNOWN_MD5 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": {"8d4fb7e6c68d591d4c3dfef9ec88bf0d", "cf8536b0aa1a6ac5fa3f23001093305c"},
        "train-labels-idx1-ubyte.gz": {"25c81989df183df01b3e8a0aad5dffbe", "10bea18fdb374794d4bb42e356e600c9"},
        "t10k-images-idx3-ubyte.gz": {"bef4ecab320f06d8554ea6380940ec79", "f78720b4224f21cce2f2ccf2d7a94c9a"},
        "t10k-labels-idx1-ubyte.gz": {"bb300cfdad3c16e7a12a480ee83cd310", "0d30e22e447f3c33dab9ed536400ac01"},
    },
    # the python-pickle CIFAR batches (the same sums torchvision checks)
    "cifar10": {
        "data_batch_1": {"c99cafc152244af753f735de768cd75f"},
        "data_batch_2": {"d4bba439e000b95fd0a9bffe97cbabec"},
        "data_batch_3": {"54ebc095f3ab1f0389bbae665268c751"},
        "data_batch_4": {"634d18415352ddfa80567beed471001a"},
        "data_batch_5": {"482c414d41f54cd18b22e5b47cb7c3cb"},
        "test_batch": {"40351d587109b95175f43aff81a1287e"},
        "batches.meta": {"5ff9c542aee3614f3951f8cda6e48888"},
    },
    "cifar100": {
        "train": {"16019d7e3df5f24257cddd939b257f8d"},
        "test": {"f0ef6b0ae62326f3e7ffdfab6717acfc"},
        "meta": {"7973b15100ade9c7d40fb424638fde48"},
    },
}
# The only globals a CIFAR batch may name: numpy's array reconstruction (anything else in a
# pickle could run code on load).
_PICKLE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                   ("numpy._core.multiarray", "scalar")}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle the global {module}.{name} "
                                         f"(a data batch holds only arrays, lists and bytes)")
        return super().find_class(module, name)


class CorruptDataError(ValueError):
    """A data file exists but is truncated or corrupt; the message names it."""


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_idx_files(d: Path) -> dict[str, Path] | None:
    """The four MNIST-style files in ``d`` (``.gz`` preferred), or ``None`` if any is missing."""
    if not d.is_dir():
        return None
    found = {}
    for key in IDX_KEYS:
        stem = f"{key}-{IDX_SUFFIX[key]}"
        for cand in (d / f"{stem}.gz", d / stem):
            if cand.exists():
                found[key] = cand
                break
        else:
            return None
    return found


def _corrupt(path: Path, why: str) -> CorruptDataError:
    return CorruptDataError(f"{path}: {why}. The file is truncated or corrupt: delete it and "
                            f"reinstall/re-download it (for Fashion-MNIST: "
                            f"`sudo apt-get install --reinstall dataset-fashion-mnist`).")


def verify_known_md5(path: Path, dataset: str | None) -> None:
    """Check ``path`` against the published MD5s of ``dataset`` when its file name has one."""
    known = KNOWN_MD5.get(dataset or "", {}).get(path.name)
    if known is not None and (digest := md5sum(path)) not in known:
        raise _corrupt(path, f"MD5 {digest} matches no published checksum")


def read_idx(path: Path, dataset: str | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array, validating size and MD5."""
    verify_known_md5(path, dataset)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, OSError, zlib.error) as e:
        raise _corrupt(path, f"cannot decompress ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise _corrupt(path, "not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, "header cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise _corrupt(path, f"header declares shape {shape} ({expected} bytes) but the payload "
                             f"has {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _unpickle(path: Path, dataset: str) -> dict:
    """A CIFAR pickle, after its published MD5 is checked, through an unpickler that refuses
    every global but numpy's array reconstruction."""
    verify_known_md5(path, dataset)
    try:
        with open(path, "rb") as f:
            return _DataOnlyUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise _corrupt(path, f"cannot unpickle ({type(e).__name__}: {e})") from e


def _cifar_batch(path: Path, label_key: bytes, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path, dataset)
    if b"data" not in d or label_key not in d:
        raise _corrupt(path, f"missing keys (has {sorted(d)})")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise _corrupt(path, f"data {data.shape} / labels {labels.shape} are not N×3072 / N")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_cifar_folder(d: Path, name: str):
    """Read a torchvision-layout CIFAR folder → ``((train_x, train_y), (test_x, test_y), classes)``.

    Images come back as uint8 ``[N, 32, 32, 3]``.
    """
    if name == "cifar10":
        train_files = [d / f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file, label_key, names_key = [d / "test_batch"], d / "batches.meta", b"labels", b"label_names"
    else:
        train_files, test_files = [d / "train"], [d / "test"]
        meta_file, label_key, names_key = d / "meta", b"fine_labels", b"fine_label_names"
    missing = [str(p) for p in [*train_files, *test_files, meta_file] if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{name}: missing files {missing}; re-extract the archive into {d}")
    meta = _unpickle(meta_file, name)
    if names_key not in meta:
        raise _corrupt(meta_file, f"no {names_key!r} entry")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key])

    def load(files):
        parts = [_cifar_batch(p, label_key, name) for p in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return load(train_files), load(test_files), classes


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat`` file → uint8 ``[N, 32, 32, 3]`` and labels 0–9."""
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
    except Exception as e:  # noqa: BLE001
        raise _corrupt(path, f"cannot read .mat ({type(e).__name__}: {e})") from e
    if "X" not in m or "y" not in m:
        raise _corrupt(path, "missing X or y")
    x = np.asarray(m["X"], dtype=np.uint8).transpose(3, 0, 1, 2)
    y = np.asarray(m["y"], dtype=np.int64).reshape(-1) % 10  # SVHN stores digit 0 as label 10
    if len(x) != len(y):
        raise _corrupt(path, f"{len(x)} images but {len(y)} labels")
    return x, y


# ------------------------------------------------- a user's own data (``--data``)
def _bad_data(path: Path, why: str) -> CorruptDataError:
    return CorruptDataError(f"--data {path}: {why}")


TENSOR_KEYS = {"x": ("x", "images", "data"), "y": ("y", "labels", "targets")}


def read_tensor_file(path: Path) -> dict[str, Any]:
    """Arrays of a ``.npz`` (``allow_pickle=False``) or ``.pt`` (``torch.load(weights_only=
    True)``, a dict of tensors or an ``(x, y)`` pair) file, keyed ``x``, ``y`` and, when the
    file has them, ``x_val``, ``y_val``, ``x_test``, ``y_test`` and ``class_names``
    (``images``/``labels``/``data``/``targets`` are read as ``x``/``y``). Nothing in the
    file is unpickled as code."""
    fix = "save the images and labels as arrays x, y (and x_val, y_val, x_test, y_test)"
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                raw: Any = {k: f[k] for k in f.files}
        except ValueError as e:  # object arrays need pickle: refused
            raise _bad_data(path, f"holds arrays that need unpickling (refused: {e}); {fix}"
                           ) from None
        except Exception as e:  # noqa: BLE001 - not a zip / truncated
            raise _bad_data(path, f"is not a readable .npz ({type(e).__name__}: {e})") from None
    elif path.suffix in (".pt", ".pth"):
        from models.readers import read_torch

        raw = read_torch(path, fix, kind="data file")
        if isinstance(raw, tuple | list) and len(raw) == 2:
            raw = {"x": raw[0], "y": raw[1]}
    else:
        raise ValueError(f"--data {path}: expected a folder of images (ImageFolder layout), a "
                         f".npz or a .pt file")
    if not isinstance(raw, dict):
        raise _bad_data(path, f"holds a {type(raw).__name__}, not arrays x and y; {fix}")
    out: dict[str, Any] = {}
    for suffix in ("", "_val", "_test"):
        for key, aliases in TENSOR_KEYS.items():
            found = next((raw[a + suffix] for a in aliases if a + suffix in raw), None)
            if found is not None:
                out[key + suffix] = np.asarray(found)
    if "x" not in out or "y" not in out:
        raise _bad_data(path, f"has no images and labels (keys {sorted(raw)}); {fix}")
    if "class_names" in raw:
        out["class_names"] = tuple(str(c) for c in np.asarray(raw["class_names"]).tolist())
    return out


def _open_image(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im if im.mode in ("L", "RGB") else im.convert("RGB"))


def read_image_folder(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images ``[N, H, W(, C)]`` uint8, labels and class names of a folder in torchvision's
    ``ImageFolder`` layout (``root/<class>/<image>``); every image must have one size."""
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(root), loader=_open_image)
    except (FileNotFoundError, RuntimeError) as e:
        raise FileNotFoundError(f"--data {root}: not an ImageFolder (root/<class>/<image>): "
                                f"{e}") from None
    images = [ds[i][0] for i in range(len(ds))]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"--data {root}: images of {len(shapes)} sizes {sorted(shapes)[:3]}; "
                         f"resize them to one size first")
    return np.stack(images), np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes)


def read_data_path(p: Path) -> dict[str, Any]:
    """:func:`read_tensor_file`'s keys for a ``--data`` path: a ``.npz``/``.pt`` file, a
    folder with ``train/`` and ``val/`` and/or ``test/`` ImageFolders, or one ImageFolder."""
    if not p.exists():
        raise FileNotFoundError(f"--data {p}: no such file or folder")
    if not p.is_dir():
        return read_tensor_file(p)
    sub = {s: p / s for s in ("train", "val", "test") if (p / s).is_dir()}
    if "train" not in sub or len(sub) == 1:
        x, y, classes = read_image_folder(p)
        return {"x": x, "y": y, "class_names": classes}
    parts = {s: read_image_folder(d) for s, d in sub.items()}
    if any(v[2] != parts["train"][2] for v in parts.values()):
        raise ValueError(f"--data {p}: train/, val/ and test/ must hold the same class folders")
    out: dict[str, Any] = {"class_names": parts["train"][2]}
    for s, (x, y, _) in parts.items():
        out["x" + ("" if s == "train" else f"_{s}")] = x
        out["y" + ("" if s == "train" else f"_{s}")] = y
    return out
