"""Image classification datasets by name, as in-memory tensors with train/val/test splits.

Every dataset is returned as float32 images in ``[0, 1]`` (shape ``[N, C, H, W]``) and int64
labels. Normalisation is the network's job (a fixed dataset mean/std layer or an online input
batch norm, see :mod:`models.bn`), so the statistics travel as metadata in :class:`DatasetInfo`.

Sources, in the order they are tried:

* ``fashion-mnist``: ``--data-root``, then the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), then a torchvision download when allowed.
* ``digits``: scikit-learn's bundled 8×8 digits (no download ever).
* ``mnist``, ``cifar10``, ``cifar100``, ``svhn``: files in torchvision's layout under the data
  root, downloaded by torchvision when ``download=True`` and the network allows it.

The validation split is a fixed, seeded, stratified slice of the training split.

A user's own data (tensors, a ``torch.utils.data.Dataset``, an ImageFolder folder, a
``.npz``/``.pt`` file) becomes the same :class:`DatasetSplits` through :func:`as_splits`,
with the split rule stated there; :func:`data_sha256` is its content hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import data_formats as fmt

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset's files are absent; the message says how to get them."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static metadata of a dataset."""

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Split:
    """One split held in memory: images ``[N, C, H, W]`` float32 in [0, 1], labels int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int) -> Split:
        """The first ``n`` examples (a cheap, deterministic slice for tests)."""
        return Split(self.images[:n], self.labels[:n])


@dataclass
class DatasetSplits:
    """Train, validation and test splits of one dataset with its metadata."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    source: str = field(default="")


def default_data_root() -> Path:
    """``$DEPLOYGYM_DATA`` or ``~/.cache/deploygym/data`` (set but empty, or not a folder: an
    error naming the variable)."""
    from models.cache import env_folder

    return env_folder("DEPLOYGYM_DATA", Path.home() / ".cache" / "deploygym" / "data")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` with ``fraction`` of every class held out, seeded."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        held.append(idx[: int(round(fraction * len(idx)))])
    held_out = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(labels)), held_out)
    return keep, held_out


def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    """uint8 ``[N, H, W]`` / ``[N, H, W, C]`` or float in [0, 1] → :class:`Split`."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    x = x.float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2).contiguous()
    return Split(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def _finish(name: str, class_names: tuple[str, ...], train_x: np.ndarray, train_y: np.ndarray,
            test_x: np.ndarray, test_y: np.ndarray, val_fraction: float, split_seed: int,
            source: str) -> DatasetSplits:
    train_y = np.asarray(train_y, dtype=np.int64)
    keep, held = stratified_split(train_y, val_fraction, split_seed)
    train = _to_split(train_x[keep], train_y[keep])
    val = _to_split(train_x[held], train_y[held])
    test = _to_split(test_x, test_y)
    mean, std = _channel_stats(train.images)
    info = DatasetInfo(name=name, num_classes=len(class_names), in_channels=train.images.shape[1],
                       image_size=tuple(train.images.shape[2:]), class_names=class_names,
                       mean=mean, std=std)
    return DatasetSplits(info=info, train=train, val=val, test=test, source=source)


def _find_idx_dir(root: Path | None, sub: str, download: bool, tv_name: str,
                  explicit: bool = False) -> Path:
    """Directory holding the four MNIST-style IDX files (gzipped or not). With an
    ``explicit`` root (the user's ``--data-root``) the system package is not a silent
    fallback: the files must be under that root."""
    candidates = []
    if root is not None:
        candidates += [root, root / sub, root / tv_name / "raw"]
    if sub == "fashion-mnist" and not explicit:
        candidates.append(DEBIAN_FASHION_DIR)
    for d in candidates:
        if fmt.find_idx_files(d) is not None:
            return d
    if download:
        import torchvision

        dl_root = root or default_data_root()
        getattr(torchvision.datasets, tv_name)(str(dl_root), train=True, download=True)
        getattr(torchvision.datasets, tv_name)(str(dl_root), train=False, download=True)
        return dl_root / tv_name / "raw"
    hint = ("install the Debian package: `sudo apt-get install dataset-fashion-mnist`, or "
            if sub == "fashion-mnist" else "")
    if explicit and sub == "fashion-mnist" and fmt.find_idx_files(DEBIAN_FASHION_DIR) is not None:
        hint = f"omit --data-root to read the system package in {DEBIAN_FASHION_DIR}, or "
    raise DatasetNotFoundError(
        f"{sub}: no IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) found in "
        f"{[str(c) for c in candidates]}. To fix: {hint}place the files in "
        f"<data-root>/{sub}/, or pass download=True (--download) where the network allows it.")


def _load_idx_dataset(name: str, classes: tuple[str, ...], tv_name: str, root: Path | None,
                      download: bool, val_fraction: float, split_seed: int,
                      explicit: bool = False) -> DatasetSplits:
    d = _find_idx_dir(root, name, download, tv_name, explicit)
    files = fmt.find_idx_files(d)
    assert files is not None
    tr_x, tr_y, te_x, te_y = (fmt.read_idx(files[k], name) for k in fmt.IDX_KEYS)
    return _finish(name, classes, tr_x, tr_y, te_x, te_y, val_fraction, split_seed, str(d))


def _load_digits(val_fraction: float, split_seed: int) -> DatasetSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(y, 0.2, seed=1234)  # fixed test split, never reseeded
    return _finish("digits", tuple(str(i) for i in range(10)), x[train_idx], y[train_idx],
                   x[test_idx], y[test_idx], val_fraction, split_seed, "sklearn.datasets.load_digits")


def _load_cifar(name: str, root: Path | None, download: bool, val_fraction: float,
                split_seed: int) -> DatasetSplits:
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    base = root or default_data_root()
    d = base / folder
    if not d.is_dir() and download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(base), train=True, download=True)
    if not d.is_dir():
        raise DatasetNotFoundError(
            f"{name}: folder {d} not found. To fix: put the python-version archive extracted "
            f"there (torchvision layout), or pass download=True (--download) with internet access.")
    (tr_x, tr_y), (te_x, te_y), classes = fmt.read_cifar_folder(d, name)
    return _finish(name, classes, tr_x, tr_y, te_x, te_y, val_fraction, split_seed, str(d))


def _load_svhn(root: Path | None, download: bool, val_fraction: float,
               split_seed: int) -> DatasetSplits:
    base = root or default_data_root()
    paths = {s: base / f"{s}_32x32.mat" for s in ("train", "test")}
    if download and not all(p.exists() for p in paths.values()):
        import torchvision

        for s in paths:
            torchvision.datasets.SVHN(str(base), split=s, download=True)
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise DatasetNotFoundError(
            f"svhn: missing {missing}. To fix: place train_32x32.mat and test_32x32.mat "
            f"in {base}, or pass download=True (--download) with internet access.")
    tr_x, tr_y = fmt.read_svhn_mat(paths["train"])
    te_x, te_y = fmt.read_svhn_mat(paths["test"])
    return _finish("svhn", tuple(str(i) for i in range(10)), tr_x, tr_y, te_x, te_y,
                   val_fraction, split_seed, str(base))


DATASETS = ("fashion-mnist", "digits", "mnist", "cifar10", "cifar100", "svhn")


def load_dataset(name: str, root: str | Path | None = None, *, download: bool = False,
                 val_fraction: float = 0.1, split_seed: int = 0) -> DatasetSplits:
    """Load a dataset by name with train/val/test splits.

    Args:
        name: one of :data:`DATASETS`.
        root: data root searched first (``--data-root``); defaults to ``$DEPLOYGYM_DATA``.
        download: let torchvision download missing files (needs internet).
        val_fraction: share of each training class held out for validation.
        split_seed: seed of the stratified validation split.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if root is not None and str(root) == "":
        raise ValueError("--data-root is empty; give a folder, or omit it to use the default "
                         "locations ($DEPLOYGYM_DATA, then the system packages)")
    explicit = root is not None  # the user's folder: no silent fallback to the system package
    r = Path(root).expanduser() if root is not None else None
    if r is None and default_data_root().is_dir():
        r = default_data_root()
    if key == "fashion-mnist":
        return _load_idx_dataset(key, FASHION_CLASSES, "FashionMNIST", r, download,
                                 val_fraction, split_seed, explicit)
    if key == "mnist":
        return _load_idx_dataset(key, tuple(str(i) for i in range(10)), "MNIST", r, download,
                                 val_fraction, split_seed)
    if key == "digits":
        return _load_digits(val_fraction, split_seed)
    if key in ("cifar10", "cifar100"):
        return _load_cifar(key, r, download, val_fraction, split_seed)
    return _load_svhn(r, download, val_fraction, split_seed)


# ---------------------------- a user's own data: tensors, a Dataset, an ImageFolder, a file
USER_HELD_OUT = 0.1  # share of every class carved out for a missing val or test split


def _arrays(obj: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of an ``(x, y)`` pair or of a map-style dataset of ``(x, y)``."""
    if isinstance(obj, tuple | list) and len(obj) == 2:
        x, y = obj
    elif hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        items = [obj[i] for i in range(len(obj))]
        x = np.stack([np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a) for a, _ in items])
        y = np.asarray([int(b) for _, b in items])
    else:
        raise TypeError(f"{what} must be (images, labels), a torch Dataset of (image, label), "
                        f"a folder or a .npz/.pt file, got {type(obj).__name__}")
    x, y = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v) for v in (x, y))
    if x.ndim not in (3, 4) or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"{what}: need images [N, H, W], [N, C, H, W] or [N, H, W, C] and N "
                         f"labels, N ≥ 1; got images {x.shape} and labels {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or (y == np.round(y)).all()) or y.min() < 0:
        raise ValueError(f"{what}: labels must be class indices 0..K-1")
    return x, y.astype(np.int64)


def as_splits(data: Any, val: Any = None, test: Any = None, *, name: str = "custom",
              class_names: tuple[str, ...] | None = None, split_seed: int = 0) -> DatasetSplits:
    """The suite's :class:`DatasetSplits` of a user's data.

    ``data`` (and ``val``/``test`` when given) is an ``(images, labels)`` pair of tensors or
    arrays, a map-style ``torch.utils.data.Dataset`` of ``(image, label)``, or a path (an
    ImageFolder folder, a ``.npz``/``.pt`` file: :func:`load_data_path`). A
    :class:`DatasetSplits` is returned as it is. **Split rule:** a missing ``test`` split is
    a seeded (``split_seed``) stratified 10% of every class of ``data``; a missing ``val``
    another 10% (so 80/10/10 when neither is given); the rest is ``train``. uint8 images are
    scaled to [0, 1]; float images are used as given (the network normalises).
    """
    if isinstance(data, DatasetSplits) and val is None and test is None:
        return data
    if isinstance(data, str | Path):
        if val is not None or test is not None:
            raise ValueError("a --data path holds its own splits; pass val/test as arrays")
        return load_data_path(data, split_seed=split_seed)
    x, y = _arrays(data, "data")
    parts = {k: _arrays(v, k) for k, v in (("val", val), ("test", test)) if v is not None}
    given, n0 = sorted(parts), len(y)
    for k, seed in (("test", split_seed), ("val", split_seed + 1)):
        if k in parts:
            continue
        keep, held = stratified_split(y, USER_HELD_OUT * n0 / len(y), seed)
        if len(held) == 0 or len(keep) == 0:
            raise ValueError(f"data has too few examples per class to carve a {k} split "
                             f"(10% of every class); pass {k}= explicitly")
        parts[k], (x, y) = (x[held], y[held]), (x[keep], y[keep])
    splits = {"train": _to_split(x, y), **{k: _to_split(*v) for k, v in parts.items()}}
    shapes = {tuple(s.images.shape[1:]) for s in splits.values()}
    if len(shapes) != 1:
        raise ValueError(f"train, val and test images differ in shape: {sorted(shapes)}")
    k = max(int(s.labels.max()) for s in splits.values()) + 1
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
    if len(names) < max(k, 2):
        raise ValueError(f"labels run to {k - 1} but there are {len(names)} class names "
                         f"(need ≥ 2 classes)")
    mean, std = _channel_stats(splits["train"].images)
    t = splits["train"].images
    info = DatasetInfo(name=name, num_classes=len(names), in_channels=t.shape[1],
                       image_size=tuple(t.shape[2:]), class_names=names, mean=mean, std=std)
    rule = ", ".join(f"{s} " + ("given" if s in given else "a seeded stratified 10%")
                     for s in ("val", "test"))
    return DatasetSplits(info, splits["train"], splits["val"], splits["test"],
                         source=f"user data ({rule}, split seed {split_seed})")


def load_data_path(path: str | Path, *, split_seed: int = 0) -> DatasetSplits:
    """The splits of a ``--data`` path: a folder with ``train/`` and ``val/`` and/or ``test/``
    ImageFolders (each used as that split), a single ImageFolder folder, or a ``.npz``/``.pt``
    file with ``x``, ``y`` (and optionally ``x_val``/``y_val``, ``x_test``/``y_test``,
    ``class_names``); missing splits follow :func:`as_splits`' rule."""
    p = Path(path).expanduser()
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in p.stem) or "custom"
    f = fmt.read_data_path(p)
    pair = {s: (f[f"x_{s}"], f[f"y_{s}"]) for s in ("val", "test")
            if f"x_{s}" in f and f"y_{s}" in f}
    return as_splits((f["x"], f["y"]), pair.get("val"), pair.get("test"), name=name,
                     class_names=f.get("class_names"), split_seed=split_seed)


def data_sha256(data: DatasetSplits) -> str:
    """sha256 of a dataset's content (every split's images and labels, and the class names):
    the cache key of a network trained on it."""
    h = hashlib.sha256(json.dumps(list(data.info.class_names)).encode())
    for s in (data.train, data.val, data.test):
        for t in (s.images, s.labels):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------- batched training augmentation (crop with zero padding, flip)
def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Pad by ``pad`` pixels and crop back to the original size at a random offset per example."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])  # [B, H]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None])  # [B, W]
    bidx = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=gen) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """The usual small-image recipe: random crop after ``pad``-pixel padding, then random flip."""
    x = random_crop(x, pad, gen)
    return random_hflip(x, gen) if flip else x
