from pathlib import Path

import pytest
import torch
from torch import nn

from models.bn import InputBatchNorm, RevisitedBatchNorm2d, bn_layers
from models.nets import MODELS, build_model

SMALL_WIDTH = {"cnn": 4, "resnet8": 4, "resnet20": 4, "resnet56": 2, "resnet18": 4, "resnet34": 2}


def _build(name, **kw):
    return build_model(name, num_classes=7, in_channels=3, image_size=(16, 16),
                       width=SMALL_WIDTH[name], **kw)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_quantizable_layers_in_forward_order(name):
    net = _build(name)
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 7)
    layers = net.quantizable_layers()
    assert all(isinstance(m, nn.Conv2d | nn.Linear) for _, m in layers)
    assert len(layers) == sum(isinstance(m, nn.Conv2d | nn.Linear) for m in net.modules())
    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, _i, n=n: calls.append(n)) for n, m in layers]
    net(torch.rand(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert calls == [n for n, _ in layers]
    assert layers[0][0] == "features.0" and isinstance(layers[-1][1], nn.Linear)


def test_resnet_depths_follow_the_papers():
    convs = {n: sum(isinstance(m, nn.Conv2d) for m in _build(n).modules()) for n in MODELS}
    # depth = convs on the main path + final linear; projection shortcuts add 1×1 convs
    assert convs["resnet20"] - 2 == 19 and convs["resnet56"] - 2 == 55 and convs["resnet8"] - 2 == 7
    assert convs["resnet18"] - 3 == 17 and convs["resnet34"] - 3 == 33
    assert build_model("cnn", num_classes=10, in_channels=1, image_size=(28, 28)).num_parameters() < 80_000


@pytest.mark.parametrize("name", MODELS)
def test_revisited_gamma_init_survives_model_construction(name):
    net = _build(name, bn="revisited", input_norm="bn", gamma_init=0.1)
    layers = bn_layers(net)
    assert len(layers) > 1
    for lname, m in layers:
        expected = 0.1 * 0.58 if isinstance(m, InputBatchNorm) else 0.1
        assert isinstance(m, RevisitedBatchNorm2d), lname
        assert torch.allclose(m.weight, torch.full_like(m.weight, expected)), lname
        assert torch.count_nonzero(m.bias) == 0
    # re-initialising layers (as many libraries do) keeps γ₀
    for _, m in layers:
        m.reset_parameters()
    assert all(torch.allclose(m.weight, torch.full_like(m.weight, 0.1))
               for _, m in layers if not isinstance(m, InputBatchNorm))
    assert not net.input_norm.bias.requires_grad


def test_standard_bn_starts_at_one_and_dataset_norm_uses_stats():
    net = build_model("cnn", num_classes=10, in_channels=1, image_size=(28, 28), width=4,
                      mean=[0.3], std=[0.2])
    assert all(torch.all(m.weight == 1) for _, m in bn_layers(net))
    x = torch.full((1, 1, 28, 28), 0.5)
    assert torch.allclose(net.input_norm(x), torch.full_like(x, 1.0))


def test_bad_names_raise():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg", num_classes=10, in_channels=1, image_size=(8, 8))
    with pytest.raises(ValueError, match="unknown BN kind"):
        build_model("cnn", num_classes=10, in_channels=1, image_size=(8, 8), bn="group")
    with pytest.raises(ValueError, match="6n\\+2"):
        from models.nets.resnet import cifar_resnet
        cifar_resnet(21)


def test_strided_pointwise_shortcut_equals_a_strided_conv():
    from models.nets.resnet import StridedPointwise

    torch.manual_seed(0)
    sp = StridedPointwise(4, 8, 2)
    ref = torch.nn.Conv2d(4, 8, 1, stride=2, bias=False)
    ref.weight.data.copy_(sp.weight.data)
    x = torch.randn(3, 4, 9, 8).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(sp(x), ref(x))
    assert set(sp.state_dict()) == set(ref.state_dict()) == {"weight"}


def test_narrow_resnet_trains_channels_last_on_one_thread():
    """PyTorch's one-thread oneDNN weight gradient of a strided 1×1 conv with 4 input channels
    corrupts the heap (the process aborts); the ResNet shortcut must not reach it."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from models.nets import build_model\n"
        "net = build_model('resnet8', num_classes=10, in_channels=1, width=4, image_size=(8, 8))\n"
        "net = net.to(memory_format=torch.channels_last)\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "for bs in (128, 64, 256, 512):\n"
        "    for _ in range(10):\n"
        "        x = torch.randn(bs, 1, 8, 8).contiguous(memory_format=torch.channels_last)\n"
        "        loss = net(x).logsumexp(1).mean()\n"
        "        opt.zero_grad(); loss.backward(); opt.step()\n"
        "print('trained')\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and "trained" in run.stdout, run.stderr[-500:]
