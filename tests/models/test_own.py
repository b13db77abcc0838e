"""A researcher's own network and data: any classifier module traced into a DeployNet, any
dataset form converted to splits by a stated rule, weights read without unpickling code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from models.datasets import as_splits, data_sha256, load_data_path
from models.nets import WrappedNet, as_deploy_net
from models.nets.user import build_user_net, read_state_dict
from models.quant import DynamicQuantizer


def resnet18_1ch(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=classes)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # the stem adapted to 1 channel
    return m


class MLP(nn.Module):
    def __init__(self, d: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, 16), nn.Linear(16, classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def test_resnet18_and_an_mlp_are_traced_in_forward_order():
    net = as_deploy_net(resnet18_1ch(), (1, 8, 8), 10)
    names = [n for n, _ in net.quantizable_layers()]
    assert len(names) == 21 and names[0] == "features.conv1" and names[-1] == "features.fc"
    # a downsample conv runs after the block's two convs' inputs are seen: forward order
    assert names.index("features.layer2.0.conv1") < names.index("features.layer2.0.downsample.0")
    assert isinstance(net, WrappedNet) and net.module.fc is net.features.fc
    mlp = as_deploy_net(MLP(), (1, 8, 8), 10)
    assert [n for n, _ in mlp.quantizable_layers()] == ["features.fc1", "features.fc2"]
    x = torch.rand(5, 1, 8, 8)
    out = DynamicQuantizer(mlp)(x, 32, return_fp=True)
    assert torch.allclose(out.logits, mlp.module(x)) and torch.allclose(out.fp_logits, out.logits)
    assert not torch.allclose(DynamicQuantizer(mlp)(x, 2).logits, out.logits)


@pytest.mark.parametrize("module, shape, classes, match", [
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (1, 8, 8), 3, r"logits \[batch, 3\]"),
    (nn.Sequential(nn.Flatten(), nn.Linear(10, 10)), (1, 8, 8), 10, "fails on an input"),
    (nn.Sequential(nn.Flatten(), nn.PReLU()), (1, 8, 8), 64, "no Conv2d or Linear"),
    (nn.Flatten(), (1, 8, 8), 64, "no parameters"),
])
def test_a_module_that_cannot_be_wrapped_says_why(module, shape, classes, match):
    with pytest.raises(ValueError, match=match):
        as_deploy_net(module, shape, classes)


def test_tensors_follow_the_stated_split_rule_and_are_hashed_by_content():
    rng = np.random.default_rng(0)
    x, y = rng.random((200, 8, 8), dtype=np.float32), np.repeat(np.arange(4), 50)
    ds = as_splits((torch.from_numpy(x), torch.from_numpy(y)), name="mine")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (160, 20, 20)  # 80/10/10
    assert all(np.bincount(s.labels.numpy()).tolist() == [5] * 4 for s in (ds.val, ds.test))
    assert ds.info.image_size == (8, 8) and ds.info.in_channels == 1 and ds.info.num_classes == 4
    assert "seeded stratified 10%" in ds.source
    again = as_splits((x, y), name="mine")
    assert torch.equal(again.test.images, ds.test.images)
    assert data_sha256(again) == data_sha256(ds)
    given = as_splits((x, y), test=(x[:7], y[:7]))  # a given test split is used as it is
    assert len(given.test) == 7 and len(given.val) == 20 and len(given.train) == 180
    assert data_sha256(as_splits((x * 0.5, y))) != data_sha256(ds)
    with pytest.raises(ValueError, match="class indices"):
        as_splits((x, y - 1))


def test_a_torch_dataset_an_image_folder_and_files_are_read(tmp_path):
    from PIL import Image

    tds = torch.utils.data.TensorDataset(torch.rand(40, 1, 6, 6), torch.arange(40) % 2)
    assert len(as_splits(tds).train) == 32
    for split, n in (("train", 20), ("test", 4)):
        for c in ("cat", "dog"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((5, 7), 10 * i, np.uint8)).save(
                    tmp_path / "imgs" / split / c / f"{i}.png")
    ds = load_data_path(tmp_path / "imgs")
    assert ds.info.class_names == ("cat", "dog") and ds.info.image_size == (5, 7)
    assert len(ds.test) == 8 and len(ds.val) == 4 and len(ds.train) == 36  # val carved
    assert float(ds.train.images.max()) <= 1.0  # uint8 scaled to [0, 1]
    x, y = np.random.default_rng(1).random((30, 3, 4, 4)), np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:6], y_test=y[:6])
    npz = load_data_path(tmp_path / "d.npz")
    assert len(npz.test) == 6 and npz.info.in_channels == 3 and npz.info.name == "d"
    torch.save({"images": torch.from_numpy(x), "labels": torch.from_numpy(y)}, tmp_path / "d.pt")
    assert data_sha256(load_data_path(tmp_path / "d.pt")) != data_sha256(npz)
    np.savez(tmp_path / "obj.npz", x=np.array([object()] * 3), y=np.arange(3))
    with pytest.raises(ValueError, match="unpickling"):
        load_data_path(tmp_path / "obj.npz")


def test_weights_are_loaded_from_a_state_dict_and_never_from_a_pickled_module(tmp_path):
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Flatten(), "
        "nn.Linear(64, 10))\n")
    ref = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "w.pt")
    net = build_user_net(f"{tmp_path / 'nets.py'}:build", tmp_path / "w.pt")
    assert torch.equal(net[1].weight, ref[1].weight) and not net.training
    torch.save(ref, tmp_path / "module.pt")  # a whole pickled module: refused
    with pytest.raises(ValueError, match="refused"):
        read_state_dict(tmp_path / "module.pt")


def test_a_builder_is_found_by_module_path_or_file_path(tmp_path, monkeypatch):
    from models.nets.user import import_builder

    (tmp_path / "labnets").mkdir()
    (tmp_path / "labnets" / "__init__.py").write_text("")
    (tmp_path / "labnets" / "small.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Linear(4, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` run from that folder
    assert isinstance(import_builder("labnets.small:build")(), nn.Linear)
    assert isinstance(import_builder(f"{tmp_path / 'labnets' / 'small.py'}:build")(), nn.Linear)
    for bad in ("labnets.small", "labnets.small:", ":build"):
        with pytest.raises(ValueError, match="package.module:builder"):
            import_builder(bad)
    with pytest.raises(TypeError, match="not a callable"):
        import_builder("labnets.small:nn")
