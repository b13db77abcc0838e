import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from models import datasets as D
from models.data_formats import KNOWN_MD5, CorruptDataError, md5sum


def test_digits_splits_are_stratified_seeded_and_in_range(digits):
    assert digits.info.num_classes == 10 and digits.info.image_size == (8, 8)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert 0.0 <= digits.train.images.min() and digits.train.images.max() <= 1.0
    train_counts = torch.bincount(digits.train.labels, minlength=10).float()
    val_counts = torch.bincount(digits.val.labels, minlength=10).float()
    ratio = val_counts / (train_counts + val_counts)
    assert torch.all((ratio - 0.1).abs() < 0.02), ratio
    again = D.load_dataset("digits")
    assert torch.equal(again.val.images, digits.val.images)
    other = D.load_dataset("digits", split_seed=1)
    assert not torch.equal(other.val.images, digits.val.images)
    assert torch.equal(other.test.labels, digits.test.labels)  # the test split never moves


def test_fashion_mnist_from_debian_package(fashion_small):
    full = D.load_dataset("fashion-mnist")
    assert full.source == str(D.DEBIAN_FASHION_DIR)
    assert len(full.train) + len(full.val) == 60000 and len(full.test) == 10000
    assert full.train.images.shape[1:] == (1, 28, 28)
    assert full.info.class_names[9] == "Ankle boot"
    assert abs(full.info.mean[0] - 0.286) < 0.002 and abs(full.info.std[0] - 0.353) < 0.002
    assert len(fashion_small.train) == 2000


def test_missing_fashion_mnist_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(D.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        D.load_dataset("fashion-mnist", root=tmp_path)


def _copy_fashion(tmp_path):
    dst = tmp_path / "fashion-mnist"
    shutil.copytree(D.DEBIAN_FASHION_DIR, dst)
    return dst


def test_truncated_file_is_named(tmp_path):
    dst = _copy_fashion(tmp_path)
    f = dst / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: 1_000_000])
    with pytest.raises(CorruptDataError, match="train-images-idx3-ubyte.gz"):
        D.load_dataset("fashion-mnist", root=tmp_path)


def test_payload_size_mismatch_is_detected_without_checksum(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    _write_idx(d, n=20, h=28)
    raw = gzip.decompress((d / "t10k-images-idx3-ubyte.gz").read_bytes())
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(CorruptDataError, match="header declares shape"):
        D.load_dataset("mnist", root=tmp_path)


def _write_idx(d, n, h, gz=True):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", n), ("t10k", n // 2)):
        imgs = rng.integers(0, 256, (count, h, h), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        for kind, arr, code in (("images-idx3-ubyte", imgs, 3), ("labels-idx1-ubyte", labels, 1)):
            header = bytes([0, 0, 8, code]) + b"".join(s.to_bytes(4, "big") for s in arr.shape)
            payload = header + arr.tobytes()
            name = f"{prefix}-{kind}"
            if gz:
                (d / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (d / name).write_bytes(payload)


def test_mnist_in_torchvision_raw_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw, n=100, h=28, gz=False)
    ds = D.load_dataset("mnist", root=tmp_path)
    assert len(ds.train) == 90 and len(ds.val) == 10 and len(ds.test) == 50
    assert ds.info.in_channels == 1


@pytest.fixture(autouse=True)
def _own_published_sums(monkeypatch):
    """Generated CIFAR files stand in for the real ones: their MD5s become the "published"
    sums for the test (the real sums stay in place for real files)."""
    for name in ("cifar10", "cifar100"):
        monkeypatch.setitem(KNOWN_MD5, name, dict(KNOWN_MD5[name]))


def _publish(path):
    KNOWN_MD5["cifar100" if path.parent.name == "cifar-100-python" else "cifar10"][path.name] = {
        md5sum(path)}


def _write_cifar(root, n_per_batch=20, hundred=False):
    rng = np.random.default_rng(0)
    if hundred:
        d = root / "cifar-100-python"
        d.mkdir()
        for name, n in (("train", 200), ("test", 100)):
            batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                     b"fine_labels": list(np.arange(n) % 100)}
            (d / name).write_bytes(pickle.dumps(batch))
        (d / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    else:
        d = root / "cifar-10-batches-py"
        d.mkdir()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                     b"labels": list(np.arange(n_per_batch) % 10)}
            (d / name).write_bytes(pickle.dumps(batch))
        (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in D.CIFAR10_CLASSES]}))
    for f in d.iterdir():
        _publish(f)
    return d


class _RunsCode:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_cifar_pickles_are_checksummed_and_cannot_run_code(tmp_path, capsys):
    d = _write_cifar(tmp_path)
    (d / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": [0]}))
    with pytest.raises(CorruptDataError, match="MD5 .* matches no published checksum"):
        D.load_dataset("cifar10", root=tmp_path)  # a tampered file never reaches pickle
    _publish(d / "test_batch")  # even with a matching sum, no global but numpy's loads
    with pytest.raises(CorruptDataError, match="refusing to unpickle the global builtins.print"):
        D.load_dataset("cifar10", root=tmp_path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_cifar10_fixture_in_torchvision_layout(tmp_path):
    d = _write_cifar(tmp_path)
    ds = D.load_dataset("cifar10", root=tmp_path)
    assert ds.info.in_channels == 3 and ds.info.image_size == (32, 32)
    assert ds.info.class_names == D.CIFAR10_CLASSES
    assert len(ds.train) == 90 and len(ds.val) == 10 and len(ds.test) == 20
    # pixel (row 0, col 0) of channel 0 is the first byte of the row
    first = pickle.loads((d / "test_batch").read_bytes())[b"data"][0]
    assert ds.test.images[0, 0, 0, 0].item() == pytest.approx(first[0] / 255)
    assert ds.test.images[0, 1, 0, 0].item() == pytest.approx(first[1024] / 255)


def test_cifar100_fixture(tmp_path):
    _write_cifar(tmp_path, hundred=True)
    ds = D.load_dataset("cifar100", root=tmp_path)
    assert ds.info.num_classes == 100 and len(ds.test) == 100


def test_corrupt_cifar_batch_is_named(tmp_path):
    d = _write_cifar(tmp_path)
    (d / "data_batch_3").write_bytes((d / "data_batch_3").read_bytes()[:500])
    _publish(d / "data_batch_3")  # a file whose sum matches but whose content is cut
    with pytest.raises(CorruptDataError, match="data_batch_3"):
        D.load_dataset("cifar10", root=tmp_path)


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(D.DatasetNotFoundError, match="download=True"):
        D.load_dataset("cifar10", root=tmp_path)


def test_svhn_mat_fixture(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", 50), ("test", 20)):
        savemat(tmp_path / f"{split}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                 "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})
    ds = D.load_dataset("svhn", root=tmp_path)
    assert ds.info.in_channels == 3 and len(ds.test) == 20
    assert set(ds.test.labels.tolist()) == set(range(10))  # label 10 means digit 0


def test_unknown_dataset_and_bad_fraction():
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset("imagenet")
    with pytest.raises(ValueError, match="val_fraction"):
        D.load_dataset("digits", val_fraction=0.0)


def test_result_files_follow_the_umask(tmp_path):
    import os
    import stat

    from models.io import atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json({"a": 1}, tmp_path / "r.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_an_explicit_data_root_is_not_silently_replaced_by_the_system_package(tmp_path):
    with pytest.raises(D.DatasetNotFoundError, match=str(tmp_path)):
        D.load_dataset("fashion-mnist", root=tmp_path)
    with pytest.raises(ValueError, match="--data-root is empty"):
        D.load_dataset("fashion-mnist", root="")
