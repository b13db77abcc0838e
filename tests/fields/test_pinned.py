"""Committed field artifacts: the processed cylinder wake and the default reconstructors load
without a solver run or training, and a damaged copy is refused by name."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import fields.flow.cylinder
import fields.load
import fields.pinned
import fields.pretrained
from fields.netcdf import load_ferret
from fields.pinned import from_arrays, pinned_field, processed_field, to_arrays
from fields.pretrained import RECIPES


def _never(*a, **k):
    raise AssertionError("a pinned artifact must not be simulated, loaded raw or trained")


def test_the_cylinder_field_of_the_recipe_loads_without_the_solver(monkeypatch):
    monkeypatch.setattr(fields.flow.cylinder, "simulate", _never)
    monkeypatch.setattr(fields.load, "load_field", _never)
    r = RECIPES["cylinder"]
    data = processed_field("cylinder", r["stride"], r["coarsen"])
    assert data.values.shape == (500, 28, 48) and data.mask.shape == data.values.shape
    assert np.isfinite(data.values).all() and 0.1 < float(data.attrs["strouhal"]) < 0.25
    assert len(data.coords["time"]) == 500 and data.attrs["coarsened"] == "4"
    assert pinned_field("cylinder", 1, 1) is None  # only the recipe's processing is pinned


def test_field_arrays_round_trip_and_a_damaged_pinned_file_is_refused(monkeypatch, tmp_path):
    sst = load_ferret("coads-sst")
    back = from_arrays(to_arrays(sst))
    assert back.spherical and back.sample_axis == sst.sample_axis
    np.testing.assert_array_equal(back.values, sst.values)
    np.testing.assert_array_equal(back.coords["lat"], sst.coords["lat"])
    name = fields.pinned.data_path("cylinder", 3, 4).name
    shutil.copyfile(fields.pinned.DATA_DIR / name, tmp_path / name)
    raw = bytearray((tmp_path / name).read_bytes())
    raw[-5000] ^= 0xFF  # one flipped byte inside the arrays
    (tmp_path / name).write_bytes(bytes(raw))
    monkeypatch.setattr(fields.pinned, "DATA_DIR", tmp_path)
    with pytest.raises(ValueError, match=f"{name}.*git checkout"):
        pinned_field("cylinder", 3, 4)


@pytest.mark.parametrize("dataset", sorted(RECIPES))
def test_the_default_reconstructors_are_pinned_and_load_without_training(dataset, monkeypatch):
    monkeypatch.setattr(fields.pretrained, "train_once", _never)
    monkeypatch.setattr(fields.flow.cylinder, "simulate", _never)
    pre = fields.pretrained.get_reconstructor(dataset, progress=False)
    assert pre.rec is not None and pre.meta["sha256"]
    assert len(pre.test) > 0 and pre.grid.shape == pre.data.shape
