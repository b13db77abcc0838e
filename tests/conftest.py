"""Shared fixtures. Every test session gets its own empty cache and data root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="deploygym-tests-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["DEPLOYGYM_CACHE"] = str(_SESSION_TMP / "cache")
    os.environ["DEPLOYGYM_DATA"] = str(_SESSION_TMP / "data")
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def fashion_small():
    """Fashion-MNIST from the Debian package, cut to small slices for speed."""
    from models.datasets import load_dataset

    ds = load_dataset("fashion-mnist")
    ds.train, ds.val, ds.test = ds.train.subset(2000), ds.val.subset(500), ds.test.subset(1000)
    return ds


@pytest.fixture(scope="session")
def digits():
    from models.datasets import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_digits_net():
    """A small CNN trained on digits through the model cache (a few seconds)."""
    from models.zoo import get_trained

    return get_trained("digits", "cnn", progress=False)
