"""Pair learning on a tiny digits network: artifact, resume, FP path kept, direction of the drop."""

import json

import numpy as np
import pytest
import torch

from agents.pairs.trainer import PairTrainer, load_pair, main, parse_args
from envs.ptq.rollout import split_rollout
from models.datasets import load_dataset
from models.quant import DynamicQuantizer

TINY = ["--dataset", "digits", "--model-kw", "width:4", "epochs:8", "--n-envs", "8",
        "--policy-steps", "64", "--round-eval", "50", "--eval-limit", "100", "--no-progress"]


def _params(tr_or_pair):
    net = tr_or_pair.net
    pol = tr_or_pair.policy.policy
    return {**{f"net.{k}": v.clone() for k, v in net.state_dict().items()},
            **{f"policy.{k}": v.clone() for k, v in pol.state_dict().items()}}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pair_artifact_resume_equals_uninterrupted_and_loads_safely(tmp_path, monkeypatch):
    import tempfile

    out, ref = tmp_path / "pair", tmp_path / "ref"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    first = main([*TINY, "--mode", "detrimental", "--rounds", "1", "--net-steps", "4",
                  "--out", str(out)])
    assert not list(scratch.glob("SB3-*"))  # SB3's default logger folder is never made
    for name in ("pair.pt", "pair.json", "net.pt", "policy.pt"):
        assert (out / name).exists()
    rec = json.loads((out / "pair.json").read_text())
    assert rec["round"] == 1 and rec["seed"] == 0 and "torch" in rec["versions"]
    assert set(first["test"]) >= {"fp_acc", "dptq_acc", "drop", "mean_bits", "distinct_plans"}
    assert first["test"]["mean_bits"] >= 5.0 - 1e-9  # the hard detrimental budget holds
    # a killed search resumes after its last round and ends where an uninterrupted one ends
    resumed = PairTrainer(parse_args([*TINY, "--mode", "detrimental", "--rounds", "2",
                                      "--net-steps", "4", "--out", str(out)]))
    resumed.run()
    straight = PairTrainer(parse_args([*TINY, "--mode", "detrimental", "--rounds", "2",
                                       "--net-steps", "4", "--out", str(ref)]))
    straight.run()
    assert resumed.round == straight.round == 2
    assert _same(_params(resumed), _params(straight))
    assert resumed.history[-1] == {**straight.history[-1], "wall_s": resumed.history[-1]["wall_s"]}
    # the published folder loads without unpickling code, and is the trained pair
    pair = load_pair(out)
    assert pair.env_kwargs["reward"] == "detrimental" and not pair.net.training
    assert pair.config["bit_choices"] == [4, 5, 6, 7, 8]
    assert _same(_params(pair), _params(resumed))
    assert pair.metrics["test"]["n"] == 100
    torch.save({"x": torch.zeros(1)}, out / "policy.pt")  # edited after publishing
    with pytest.raises(ValueError, match="sha256"):
        load_pair(out)
    with pytest.raises(ValueError, match="different options"):
        main([*TINY, "--mode", "detrimental", "--rounds", "3", "--net-steps", "5",
              "--out", str(out)])


def test_standard_and_attack_leave_the_network_untouched(tmp_path):
    std = PairTrainer(parse_args([*TINY, "--mode", "standard", "--rounds", "1",
                                  "--out", str(tmp_path / "std")]))
    before = {k: v.clone() for k, v in std.net.state_dict().items()}
    std.run()
    assert all(torch.equal(v, std.net.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v, std.teacher.state_dict()[k]) for k, v in before.items())
    # a fresh attacker against a saved pair: its network stays as it was saved
    main([*TINY, "--mode", "robust", "--rounds", "1", "--net-steps", "3",
          "--out", str(tmp_path / "robust")])
    target = load_pair(tmp_path / "robust")
    att = main([*TINY, "--attack", str(tmp_path / "robust"), "--rounds", "1",
                "--out", str(tmp_path / "attack")])
    assert not (tmp_path / "attack" / "net.pt").exists()  # it names the attacked folder
    attacker = load_pair(tmp_path / "attack")
    assert attacker.env_kwargs["reward"] == "detrimental"
    assert all(torch.equal(v, attacker.net.state_dict()[k])
               for k, v in target.net.state_dict().items())
    assert att["test"]["mean_bits"] >= 5.0 - 1e-9


def test_final_evaluation_is_the_whole_split_under_the_deployment_quantizer(tmp_path):
    final = main([*[a for a in TINY if a not in ("--eval-limit", "100")], "--mode",
                  "detrimental", "--rounds", "1", "--net-steps", "2", "--weight-bits", "8",
                  "--out", str(tmp_path / "p")])
    pair = load_pair(tmp_path / "p")
    test = load_dataset("digits").test
    assert final["test"]["n"] == len(test.labels)
    venv = pair.policy.get_env()
    r = split_rollout(venv.cfg, venv.res, pair.policy, "test")
    q = DynamicQuantizer(pair.net, weight_bits=8)
    try:
        with torch.no_grad():
            out = q(test.images, r["bits"], return_fp=True)
    finally:
        q.remove()
    y = test.labels
    assert 100 * float((out.logits.argmax(1) == y).float().mean()) == pytest.approx(
        final["test"]["dptq_acc"])
    assert 100 * float((out.fp_logits.argmax(1) == y).float().mean()) == pytest.approx(
        final["test"]["fp_acc"])


def _quant_margin(tr: PairTrainer, x, y, plan):
    q = DynamicQuantizer(tr.net)
    try:
        with torch.no_grad():
            out = q(x, plan, return_fp=True)
    finally:
        q.remove()
    lg = out.logits
    true = lg.gather(1, y[:, None])[:, 0]
    other = lg.scatter(1, y[:, None], float("-inf")).amax(1)
    return float((true - other).mean()), float((out.fp_logits.argmax(1) == y).float().mean())


@pytest.mark.parametrize("mode", ["detrimental", "robust"])
def test_network_updates_move_the_quantized_margin_the_intended_way(tmp_path, mode):
    tr = PairTrainer(parse_args([*TINY, "--mode", mode, "--net-steps", "15", "--warmup-rounds",
                                 "0", "--out", str(tmp_path / mode)]))
    x, y = tr.data.val.images[:200], tr.data.val.labels[:200]
    plan = np.full((len(x), tr.res.qnet.n_layers), 8)
    plan[:, 1] = 2  # a coarse layer: where detrimental/robust behaviour must differ
    before, fp_before = _quant_margin(tr, x, y, plan)
    tr.network_round()
    after, fp_after = _quant_margin(tr, x, y, plan)
    if mode == "detrimental":
        assert after < before
    else:
        assert after > before
    assert fp_after >= fp_before - 0.1  # the FP path survives


def test_matrix_lets_the_policys_plans_compete_and_upgrades_old_matrices(tmp_path):
    """A policy's own plans are candidates of the static search, so the best static plan is
    at least as bad (on validation) as the policy's most frequent plan; an old matrix whose
    search missed it is upgraded to the same answer without searching again."""
    from agents.pairs.matrix import add_policy_candidates, network_matrix, policy_plans
    from envs.ptq.rollout import env_parts
    from envs.ptq.static_plans import evaluate_static

    main([*TINY, "--mode", "detrimental", "--rounds", "1", "--net-steps", "3",
          "--out", str(tmp_path / "det")])
    pair = load_pair(tmp_path / "det")
    data = pair.data
    rows = network_matrix(pair.net, data, pair.env_kwargs, own=pair, static_evals=3,
                          static_limit=60, limit=100)
    best = rows["best_static"]
    assert best["search"]["n_candidates"] >= 1
    _, res = env_parts(pair.env_kwargs, pair.net, data)
    plan = policy_plans([pair], pair.net, data, "val", 60, per_policy=1)[0]
    assert best["search"]["val_drop"] >= evaluate_static(res, plan, "val", 60)["drop"] - 1e-9
    assert rows["own_policy"]["dynamic_gain"] == pytest.approx(
        rows["own_policy"]["drop"] - best["drop"])

    weak = [8] * len(plan)  # an "old" search that found only the all-8 plan
    old = {**rows, "best_static": {**evaluate_static(res, weak, "test", 100), "plan": weak,
                                   "search": {"method": "greedy + restarts", "n_evals": 3,
                                              "val_drop": evaluate_static(res, weak, "val", 60)["drop"],
                                              "val_examples": 60}}}
    new = add_policy_candidates(old, pair.net, data, pair.env_kwargs, own=pair, limit=100)
    assert new["best_static"]["search"]["val_drop"] >= evaluate_static(res, plan, "val", 60)["drop"] - 1e-9
    assert new["own_policy"]["dynamic_gain"] == pytest.approx(
        new["own_policy"]["drop"] - new["best_static"]["drop"])


# ------------------------------------------------ a researcher's own network and data
OWN_NETS = """
import torch
import torchvision
from torch import nn


def resnet18():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # the stem adapted to 1 channel
    return m


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix, self.head = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.mix(torch.relu(self.mix(x.flatten(1)))))


def twice():
    return Twice()
"""
SMOKE = ["--n-envs", "8", "--policy-steps", "64", "--rounds", "1", "--round-eval", "20",
         "--eval-limit", "60", "--env-subset", "128", "--no-progress"]


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    """A builder module and digits as a .npz (its own test split; val carved by the rule)."""
    d = tmp_path_factory.mktemp("own")
    (d / "mynets.py").write_text(OWN_NETS)
    ds = load_dataset("digits")
    np.savez(d / "digits.npz", x=ds.train.images[:300].numpy(), y=ds.train.labels[:300].numpy(),
             x_test=ds.test.images[:60].numpy(), y_test=ds.test.labels[:60].numpy())
    return d


# the resnet18's report skips the analysis's own baseline rows (the verdict still plays
# uniform, random, greedy and the best static plan): its greedy costs 21 layers × 5 bits
@pytest.mark.parametrize("builder, hook_opts", [("resnet18", ["baselines:false"]),
                                                ("mlp", ["greedy_limit:20"])])
def test_one_command_gives_the_vulnerability_report_of_a_users_network(
        builder, hook_opts, own_files, tmp_path, monkeypatch):
    from models.cache import state_dict_sha256
    from models.datasets import load_data_path
    from models.nets.user import build_user_net

    spec, npz = f"{own_files / 'mynets.py'}:{builder}", str(own_files / "digits.npz")
    module = build_user_net(spec)
    with torch.no_grad():  # the weights file, not the builder, decides the weights
        for p in module.parameters():
            p.add_(0.01)
    torch.save(module.state_dict(), tmp_path / "w.pt")
    monkeypatch.setenv("DEPLOYGYM_NO_COMPILE", "1")  # no compilation per shape in a short test
    out = tmp_path / "attack"
    res = main(["--attack", "standard", "--net", spec, "--weights", str(tmp_path / "w.pt"),
                "--data", npz, *SMOKE, "--out", str(out), "--report", "--report-episodes", "2",
                "--report-opts", "static_evals:6", "static_limit:20", *hook_opts])
    rec = json.loads((out / "pair.json").read_text())
    assert rec["network"]["net"] == spec and rec["config"]["net"] == spec
    assert rec["network"]["weights_sha256"] == state_dict_sha256(module)
    rep = res["report"]
    assert (out / "report" / "summary.json").exists() and rep["own"]["net"] == spec
    assert {"uniform5", "random_budget", "greedy", "best_static"} <= set(rep["verdict"]["baselines"])
    a = rep["analysis"]["ptq_analysis"]
    n_layers = 21 if builder == "resnet18" else 2
    assert len(a["layer_names"]) == len(a["vulnerability"]["layer_recovery_points"]) == n_layers
    assert a["uniform_plans"]["uniform4"]["bits"] == 4 and len(a["per_class_drop"]) == 10
    assert a["policy"]["n"] == 60 and rep["analysis"]["pair_reproduction"]["exact"]
    assert all((out / "report" / p).exists() for p in rep["plots"])
    assert list((out / "report").rglob("events.out.tfevents*"))
    # the folder names the network but never runs it: loading needs --net and --data again
    data = load_data_path(npz)
    with pytest.raises(ValueError, match="pass --net"):
        load_pair(out, data=data)
    with pytest.raises(ValueError, match="pass --data"):
        load_pair(out, net=build_user_net(spec))
    pair = load_pair(out, data=data, net=build_user_net(spec))
    assert all(torch.equal(v, pair.net.module.state_dict()[k])
               for k, v in module.state_dict().items())


def test_a_users_module_trains_as_a_pair_or_says_what_pair_training_needs(own_files, tmp_path,
                                                                          monkeypatch):
    from models.datasets import load_data_path
    from models.nets.user import build_user_net

    spec, npz = f"{own_files / 'mynets.py'}:mlp", str(own_files / "digits.npz")
    monkeypatch.setenv("DEPLOYGYM_NO_COMPILE", "1")
    main(["--mode", "detrimental", "--net", spec, "--data", npz, "--net-steps", "3", *SMOKE,
          "--out", str(tmp_path / "pair")])
    pair = load_pair(tmp_path / "pair", data=load_data_path(npz), net=build_user_net(spec))
    start = build_user_net(spec)
    assert not all(torch.equal(v, pair.net.module.state_dict()[k])  # the copy was trained
                   for k, v in start.state_dict().items())
    with pytest.raises(ValueError, match="runs more than once per forward.*--attack standard"):
        main(["--mode", "detrimental", "--net", f"{own_files / 'mynets.py'}:twice",
              "--data", npz, *SMOKE, "--out", str(tmp_path / "twice")])


def test_query_plans_file_goes_into_the_env_options_and_bad_files_are_one_line(tmp_path):
    from agents.pairs.options import env_kwargs_for, pair_config

    good = tmp_path / "plans.json"
    good.write_text(json.dumps([[4, 5, 6, 7, 8, 4, 4], [8, 8, 4, 4, 4, 4, 4]]))
    args = parse_args([*TINY, "--observation", "query", "--query-plans", str(good)])
    kw = env_kwargs_for(args)
    assert kw["observation"] == "query" and kw["query_plans"] == json.loads(good.read_text())
    assert pair_config(args)["env_kwargs"]["query_plans"] == kw["query_plans"]
    assert "query_plans" not in pair_config(parse_args(TINY))  # implicit when unset
    corrupt = tmp_path / "bad.json"
    corrupt.write_text("[[4, 5,")
    flat = tmp_path / "flat.json"
    flat.write_text("[4, 5, 6]")
    for path, match in ((tmp_path / "missing.json", "no such file"),
                        (corrupt, "not a JSON file"), (flat, "expected a list of plans")):
        with pytest.raises(ValueError, match=match) as e:
            env_kwargs_for(parse_args([*TINY, "--observation", "query", "--query-plans",
                                       str(path)]))
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_menu_attacker_plays_only_its_query_plans(tmp_path, capsys):
    from agents.pairs.options import pair_config
    from envs.ptq.rollout import env_parts

    plans = [[4, 5, 6, 7, 8, 4, 4], [8, 8, 4, 4, 4, 4, 4], [4, 4, 4, 4, 4, 8, 8]]
    menu = tmp_path / "plans.json"
    menu.write_text(json.dumps(plans))
    out = tmp_path / "menu"
    main([*TINY, "--attack", "standard", "--rounds", "1", "--observation", "query",
          "--query-plans", str(menu), "--menu", "--out", str(out)])
    pair = load_pair(out)
    assert pair.env_kwargs["action_mode"] == "menu"
    cfg, res = env_parts(pair.env_kwargs, pair.net, pair.data)
    bits = split_rollout(cfg, res, pair.policy, "test", 40)["bits"]
    assert {tuple(b) for b in bits.tolist()} <= {tuple(p) for p in plans}
    assert "menu" not in pair_config(parse_args(TINY))  # implicit at its default
    with pytest.raises(SystemExit) as e:
        parse_args([*TINY, "--menu"])
    assert e.value.code == 2 and "needs --observation query" in capsys.readouterr().err
