import torch

from models.bn import bn_layers, gamma_drift, param_groups
from models.nets import build_model


def _net(bn="revisited", input_norm="bn"):
    return build_model("resnet8", num_classes=10, in_channels=1, image_size=(8, 8), width=4,
                       bn=bn, input_norm=input_norm)


def test_param_groups_revisited():
    net = _net()
    groups = {g["name"]: g for g in param_groups(net, 0.1, 5e-4, bn_lr_div=100, no_decay_norm_bias=True)}
    scale_ids = {id(m.weight) for _, m in bn_layers(net)}
    assert {id(p) for p in groups["bn_scale"]["params"]} == scale_ids
    assert groups["bn_scale"]["lr"] == 0.1 / 100 and groups["bn_scale"]["weight_decay"] == 0
    bn_bias = {id(m.bias) for _, m in bn_layers(net) if m.bias.requires_grad}
    fc_bias = id(net.head.bias)
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    assert bn_bias | {fc_bias} == no_decay and groups["no_decay"]["weight_decay"] == 0
    decay = {id(p) for p in groups["decay"]["params"]}
    assert id(net.head.weight) in decay and not decay & (scale_ids | no_decay)
    # the frozen input-BN shift is in no group at all
    assert id(net.input_norm.bias) not in decay | no_decay | scale_ids
    n_trainable = sum(1 for p in net.parameters() if p.requires_grad)
    assert len(decay) + len(no_decay) + len(scale_ids) == n_trainable


def test_param_groups_standard_decays_everything_once():
    net = _net("standard", "dataset")
    groups = param_groups(net, 0.1, 5e-4)
    assert len(groups) == 1 and len(groups[0]["params"]) == len(list(net.parameters()))


def test_revisited_gamma_learns_100x_slower_and_input_shift_stays_zero():
    torch.manual_seed(0)
    results = {}
    for div in (1.0, 100.0):
        torch.manual_seed(0)
        net = _net()
        opt = torch.optim.SGD(param_groups(net, 0.1, 0.0, bn_lr_div=div, no_decay_norm_bias=True), lr=0.1)
        x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert torch.count_nonzero(net.input_norm.bias) == 0
        results[div] = gamma_drift(net, 0.1)["gamma_abs_drift"]
    assert 0 < results[100.0] < results[1.0] / 20


def test_bn_no_decay_switch_reaches_the_optimizer_and_keeps_old_cache_keys():
    from models.train import TrainConfig

    on, off = TrainConfig(bn="revisited"), TrainConfig(bn="revisited", bn_no_decay=False)
    assert "bn_no_decay" not in on.result_key()  # default: the keys of runs made before it
    assert off.result_key()["bn_no_decay"] is False
    from models.train import make_optimizer

    net = _net()
    decay_of = {c.bn_no_decay: {g["name"]: g["weight_decay"]
                                for g in make_optimizer(c, net).param_groups} for c in (on, off)}
    assert decay_of[True]["no_decay"] == 0 and decay_of[True]["bn_scale"] == 0
    assert "no_decay" not in decay_of[False] and decay_of[False]["bn_scale"] == 5e-4
    assert {g["name"]: g["lr"] for g in make_optimizer(off, net).param_groups}["bn_scale"] == (
        off.lr / 100)  # the other changes stay on
