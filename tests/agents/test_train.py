import json
import shlex
import warnings

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import agents.train as train_mod
from agents.train import main
from agents.zoo_hyperparams import load_hyperparams, parse_kv
from models.cli import run_cli

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]


def _run(tmp_path, *extra, algo="ppo", env="deploygym/DynamicPTQ-v0", n=128):
    return main(["--algo", algo, "--env", env, "--env-kwargs", *TINY_ENV, "-n", str(n),
                 "--seed", "0", "-f", str(tmp_path), "--eval-freq", "64", "--eval-episodes", "3",
                 "--save-freq", "64", "--no-progress-bar", "-v", "0", *extra])


class _RunEvents:
    """The event files of one TensorBoard run read in creation order.

    A directory loader sorts file names as text, so ``...<second>.<host>.<pid>.10`` (the
    resumed run) comes before ``....9`` when both start in the same second.
    """

    def __init__(self, run_dir):
        def created(path):
            _, _, _, second, *_, uid = path.name.split(".")
            return int(second), int(uid)

        files = sorted(run_dir.glob("events.out.tfevents.*"), key=created)
        self.accs = [EventAccumulator(str(f), size_guidance={"histograms": 0}).Reload()
                     for f in files]

    def Tags(self):
        tags = {}
        for acc in self.accs:
            for kind, names in acc.Tags().items():
                if isinstance(names, list):
                    tags.setdefault(kind, [])
                    tags[kind] += [n for n in names if n not in tags[kind]]
        return tags

    def Scalars(self, tag):
        return [e for acc in self.accs if tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]


def _tb(folder):
    return _RunEvents(next((folder / "tb").iterdir()))


def test_ppo_run_folder_tensorboard_and_resume(tmp_path):
    folder = _run(tmp_path, "--n-envs", "2", "--vec-env", "dummy", "--hyperparams",
                  "n_steps:32", "batch_size:32", "n_epochs:2")
    rec = json.loads((folder / "run.json").read_text())
    assert rec["seed"] == 0 and "torch" in rec["versions"] and "agents.train" in rec["command"]
    assert rec["env_kwargs"]["dataset"] == "digits" and rec["result"]["num_timesteps"] == 128
    assert (folder / "model.zip").exists() and (folder / "best_model.zip").exists()
    assert (folder / "checkpoints" / "latest.zip").exists()
    tb = _tb(folder)
    scalars = tb.Tags()["scalars"]
    for key in ("info/fp_correct", "info/q_correct", "info/mean_bits", "info/kl"):
        assert key in scalars, scalars
    assert "hist/bits" in tb.Tags()["histograms"] and "hist/actions" in tb.Tags()["histograms"]
    last_step = tb.Scalars("info/mean_bits")[-1].step

    first_evals = np.load(folder / "eval" / "evaluations.npz")["timesteps"].tolist()
    assert first_evals == [64, 128]
    resumed = main(["--algo", "ppo", "--env", "deploygym/DynamicPTQ-v0", "--env-kwargs", *TINY_ENV,
                    "-n", "64", "-i", str(folder), "--n-envs", "2",
                    "--vec-env", "dummy", "--eval-freq", "64", "--eval-episodes", "3",
                    "--save-freq", "0",
                    "--no-progress-bar", "-v", "0", "--hyperparams", "n_steps:32",
                    "batch_size:32", "n_epochs:2"])
    assert resumed == folder
    assert len(list((folder / "tb").iterdir())) == 1  # curves continue in the same TB run
    steps = [e.step for e in _tb(folder).Scalars("info/mean_bits")]
    assert steps[-1] > last_step and steps == sorted(steps)
    evals = np.load(folder / "eval" / "evaluations.npz")  # history kept across -i
    assert evals["timesteps"].tolist() == [64, 128, 192]
    assert not list((folder / "eval").glob(".*"))  # no partial file left behind


def test_continued_eval_keeps_the_best_score(tmp_path):
    from stable_baselines3.common.callbacks import EvalCallback

    from agents.callbacks import atomic_eval_callback
    from agents.vec import make_training_env

    (tmp_path / "eval").mkdir()
    np.savez(tmp_path / "eval" / "evaluations.npz", timesteps=[64, 128],
             results=[[0.2, 0.4], [0.9, 0.7]], ep_lengths=[[7, 7], [7, 7]])
    env = make_training_env("deploygym/DynamicPTQ-v0", 1, 0, dict(
        dataset="digits", width=4, epochs=8, progress=False), "dummy")
    cb = atomic_eval_callback(EvalCallback)(env, tmp_path, "ppo", n_eval_episodes=2, eval_freq=1)
    assert cb.best_mean_reward == pytest.approx(0.8)
    assert cb.evaluations_timesteps == [64, 128]


@pytest.mark.parametrize("vec_env", ["batched", "dummy"])
def test_training_env_keeps_the_variant_kwargs(vec_env):
    """DynamicPTQRobust-v0 is DynamicPTQ with reward='robust' in its spec: every vec env kind
    must build that reward (the batched one once silently trained the detrimental reward)."""
    from agents.vec import make_training_env

    kw = dict(dataset="digits", width=4, epochs=8, progress=False)
    env = make_training_env("deploygym/DynamicPTQRobust-v0", 2, 0, kw, vec_env)
    rewards = [cfg.reward for cfg in env.get_attr("cfg")]
    assert rewards == ["robust", "robust"]
    env.close()


@pytest.mark.parametrize("algo,env", [("a2c", "deploygym/DynamicPTQ-v0"),
                                      ("dqn", "deploygym/DynamicPTQ-v0"),
                                      ("maskable_ppo", "deploygym/DynamicPTQ-v0"),
                                      ("sac", "deploygym/DynamicPTQContinuous-v0")])
def test_every_algorithm_trains(tmp_path, algo, env):
    hp = {"a2c": ["n_steps:8"], "dqn": ["learning_starts:16", "buffer_size:500"],
          "maskable_ppo": ["n_steps:32", "batch_size:32", "n_epochs:1"],
          "sac": ["learning_starts:16", "buffer_size:500", "batch_size:16"]}[algo]
    folder = _run(tmp_path, "--n-envs", "1", "--vec-env", "dummy", "--hyperparams", *hp,
                  algo=algo, env=env, n=64)
    assert json.loads((folder / "run.json").read_text())["result"]["num_timesteps"] >= 64


def test_kv_values_read_as_yaml_with_scientific_floats():
    kv = parse_kv(["learning_rate:1e-3", "clip:0.2", "arch:[64, 64]", "n:8", "name:cnn",
                   "x:null", "w:[1e-4, 2]", "tag:1e3x"], "--hyperparams")
    assert kv == {"learning_rate": 1e-3, "clip": 0.2, "arch": [64, 64], "n": 8, "name": "cnn",
                  "x": None, "w": [1e-4, 2], "tag": "1e3x"}
    assert isinstance(kv["learning_rate"], float)


def test_zoo_files_read_scientific_floats(tmp_path):
    f = tmp_path / "ppo.yml"
    f.write_text("default:\n  learning_rate: 1e-3\n  policy_kwargs: {net_arch: [64, 64]}\n")
    hp = load_hyperparams("ppo", "deploygym/Any-v0", f)
    assert hp["learning_rate"] == 1e-3 and isinstance(hp["learning_rate"], float)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="key:value"):
        parse_kv(["lr=3"], "--hyperparams")
    with pytest.raises(TypeError, match="unknown options"):
        _run(tmp_path, "--env-kwargs", "colour:blue", "--vec-env", "dummy")
    with pytest.raises(FileNotFoundError, match="no such file"):
        _run(tmp_path, "-i", str(tmp_path / "missing.zip"), "--vec-env", "dummy")
    hp = load_hyperparams("ppo", "deploygym/Unknown-v0")  # falls back to the default entry
    assert hp["policy"] == "MlpPolicy"


def test_default_batched_env_logs_episode_statistics_and_zoo_schedules(tmp_path):
    """No --vec-env: the DynamicPTQ id gets its batched VecEnv, wrapped in VecMonitor, so
    rollout/ep_rew_mean and run.json's recent_ep_rew_mean exist; a zoo lin_ schedule trains."""
    folder = _run(tmp_path, "--n-envs", "4", "--eval-freq", "0", "--hyperparams",
                  "n_steps:32", "batch_size:64", "n_epochs:1", "learning_rate:lin_1e-3")
    rec = json.loads((folder / "run.json").read_text())
    assert rec["vec_env"] == "batched"
    assert isinstance(rec["result"]["recent_ep_rew_mean"], float)
    assert "rollout/ep_rew_mean" in _tb(folder).Tags()["scalars"]


def test_zoo_schedules_and_unsupported_zoo_keys():
    from agents.zoo_hyperparams import split_hyperparams

    run, algo = split_hyperparams({"n_envs": 2, "learning_rate": "lin_3e-4", "clip_range": 0.2})
    assert run == {"n_envs": 2} and algo["clip_range"] == 0.2
    assert algo["learning_rate"](1.0) == pytest.approx(3e-4)
    assert algo["learning_rate"](0.25) == pytest.approx(7.5e-5)
    for key in ("normalize", "frame_stack", "env_wrapper"):
        with pytest.raises(ValueError, match=f"unsupported hyperparameter '{key}'"):
            split_hyperparams({key: True})
    with pytest.raises(ValueError, match="lin_<number>"):
        split_hyperparams({"learning_rate": "lin_fast"})


def test_exploding_losses_stop_training_without_saving_a_result(tmp_path):
    from models.guards import DivergenceError

    with pytest.raises(DivergenceError, match="lower learning_rate"):
        _run(tmp_path, "--n-envs", "4", "--eval-freq", "0", "--save-freq", "0", "--hyperparams",
             "n_steps:64", "batch_size:64", "learning_rate:1000", n=2048)
    run = next((tmp_path / "ppo").iterdir())
    assert not (run / "model.zip").exists()
    assert "result" not in json.loads((run / "run.json").read_text())


@pytest.mark.parametrize(("flags", "message"), [(["-n", "-5"], "-n/--n-timesteps must be ≥ 1"),
                                                (["-n", "0"], "-n/--n-timesteps must be ≥ 1"),
                                                (["--n-envs", "0"], "--n-envs must be ≥ 1")])
def test_bad_numbers_are_refused_not_replaced_by_yaml_values(tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        main(["--env-kwargs", *TINY_ENV, "-f", str(tmp_path), "--no-progress-bar", *flags])
    assert not list(tmp_path.rglob("model.zip"))


@pytest.mark.parametrize("algo,env,hp", [
    ("ppo", "deploygym/DynamicPTQ-v0", ["n_steps:32", "batch_size:32", "n_epochs:1"]),
    ("sac", "deploygym/DynamicPTQContinuous-v0", ["learning_starts:16", "buffer_size:500",
                                                  "batch_size:16"])])
def test_pickle_free_policy_equals_the_sb3_zip(tmp_path, algo, env, hp):
    """policy.pt/policy.json hold every torch state SB3 saves (policy, optimizers, SAC's
    entropy coefficient) and load without unpickling anything."""
    from stable_baselines3.common.env_util import make_vec_env

    from agents.policy_io import ALGOS, load_policy

    folder = _run(tmp_path, "--n-envs", "1", "--vec-env", "dummy", "--eval-freq", "0",
                  "--hyperparams", *hp, algo=algo, env=env, n=64)
    venv = make_vec_env(env, n_envs=1, env_kwargs=dict(dataset="digits", width=4, epochs=8,
                                                       progress=False))
    safe = load_policy(folder, venv, "cpu")
    zipped = ALGOS[algo].load(folder / "model.zip", env=venv, device="cpu")
    assert safe.num_timesteps == zipped.num_timesteps
    for a, b in zip(safe.policy.state_dict().values(), zipped.policy.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    obs = venv.reset()
    assert np.array_equal(safe.predict(obs, deterministic=True)[0],
                          zipped.predict(obs, deterministic=True)[0])
    with pytest.raises(ValueError, match="can run code"):
        _run(tmp_path, "-i", str(folder / "model.zip"), algo=algo, env=env)


# run.json as the source of truth for -i, the Ctrl-C resume command, --device

FAST = ["--no-progress-bar", "-v", "0", "--hyperparams", "n_steps:16", "batch_size:32",
        "n_epochs:1"]


@pytest.fixture
def built_envs(monkeypatch):
    """Every training/eval env agents.train builds: ``(env_id, kwargs, vec_env, env)``."""
    built = []
    make = train_mod.make_training_env

    def spy(env_id, n_envs, seed, env_kwargs, vec_env=None):
        env = make(env_id, n_envs, seed, env_kwargs, vec_env)
        built.append((env_id, dict(env_kwargs), vec_env, env))
        return env

    monkeypatch.setattr(train_mod, "make_training_env", spy)
    return built


def _new_run(tmp_path, *extra, n=64):
    return main(["--env-kwargs", *TINY_ENV, "budget_bits:5", "-n", str(n), "-f", str(tmp_path),
                 "--n-envs", "2", "--eval-freq", "0", "--save-freq", "0", *FAST, *extra])


def _resume_record(folder):
    files = sorted(folder.glob("run-resume-*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_resume_without_flags_continues_with_the_runs_env_kwargs(tmp_path, built_envs):
    folder = _new_run(tmp_path, "--device", "cpu")
    run = json.loads((folder / "run.json").read_text())
    assert run["env_kwargs"]["budget_bits"] == 5 and run["device"] == "cpu"
    built_envs.clear()
    assert main(["-i", str(folder), "-n", "32", "--eval-freq", "0", "--save-freq", "0",
                 *FAST]) == folder
    env_id, kwargs, vec_env, env = built_envs[0]
    assert env_id == run["env"] and vec_env == run["vec_env"] == "batched"
    assert env.num_envs == 2 and env.get_attr("cfg")[0].budget_bits == 5.0
    rec = _resume_record(folder)
    assert rec["env_kwargs"] == run["env_kwargs"] and rec["overrides"] == {}
    assert (rec["algo"], rec["env"], rec["vec_env"], rec["n_envs"]) == (
        run["algo"], run["env"], run["vec_env"], run["n_envs"])
    assert rec["hyperparams"]["n_steps"] == 16  # the run's, not the YAML default


def test_a_differing_resume_value_is_refused_unless_overridden(tmp_path, built_envs, capsys):
    folder = _new_run(tmp_path)
    base = ["-i", str(folder), "-n", "32", "--eval-freq", "0", "--save-freq", "0", *FAST]
    with pytest.raises(SystemExit) as e:
        run_cli(main, [*base, "--env-kwargs", "budget_bits:4"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--override" in err
    assert "env_kwargs budget_bits: run has 5, command line gives 4" in err
    assert "Traceback" not in err and not list(folder.glob("run-resume-*.json"))
    with pytest.raises(SystemExit) as e:
        run_cli(main, [*base, "--algo", "a2c"])
    assert e.value.code == 2 and "algo: run has 'ppo'" in capsys.readouterr().err
    built_envs.clear()
    main([*base, "--env-kwargs", "budget_bits:4", "--override"])
    assert built_envs[0][3].get_attr("cfg")[0].budget_bits == 4.0
    rec = _resume_record(folder)
    assert rec["env_kwargs"]["budget_bits"] == 4 and rec["env_kwargs"]["dataset"] == "digits"
    assert rec["overrides"]["env_kwargs"]["run"]["budget_bits"] == 5
    assert json.loads((folder / "run.json").read_text())["env_kwargs"]["budget_bits"] == 5


def test_ctrl_c_hint_continues_the_run_with_the_same_options(tmp_path, monkeypatch, capsys):
    """Interrupt a run with non-default options; the printed command, run as is, trains the
    remaining steps with the run's env, kwargs, algorithm, vec env, envs, hyperparameters,
    seed and evaluation settings."""
    class Interrupt(train_mod.EpisodeInfoCallback):
        def _on_step(self):
            if self.num_timesteps >= 32:
                raise KeyboardInterrupt
            return super()._on_step()

    with monkeypatch.context() as m:
        m.setattr(train_mod, "EpisodeInfoCallback", Interrupt)
        with pytest.raises(SystemExit) as e:
            _new_run(tmp_path, "--seed", "3", "--eval-freq", "48", "--eval-episodes", "2",
                     "--vec-env", "dummy", n=96)
    assert e.value.code == 130
    hint = capsys.readouterr().out.split("continue with: ")[1].strip()
    argv = shlex.split(hint)
    assert argv[:3] == ["python", "-m", "agents.train"]
    folder = next((tmp_path / "ppo").iterdir())
    assert main([*argv[3:], "--no-progress-bar", "-v", "0"]) == folder
    run, rec = json.loads((folder / "run.json").read_text()), _resume_record(folder)
    for key in ("algo", "env", "env_kwargs", "vec_env", "n_envs", "hyperparams", "seed",
                "eval_freq", "eval_episodes", "save_freq", "device"):
        assert rec[key] == run[key], key
    assert rec["overrides"] == {}
    assert json.loads((folder / "run.json").read_text())["result"]["num_timesteps"] == 96


def test_device_cpu_puts_the_envs_network_on_the_cpu(tmp_path, built_envs):
    folder = _new_run(tmp_path, "--device", "cpu", "--eval-freq", "32", "--eval-episodes", "2",
                      n=32)
    assert json.loads((folder / "run.json").read_text())["device"] == "cpu"
    assert all(kw["device"] == "cpu" for _, kw, _, _ in built_envs) and len(built_envs) == 2
    net = built_envs[0][3].venv.res.net
    assert {p.device.type for p in net.parameters()} == {"cpu"}


def test_eval_env_has_the_training_envs_wrapper_type(tmp_path, built_envs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _new_run(tmp_path, "--eval-freq", "32", "--eval-episodes", "2", n=32)
    train_env, eval_env = built_envs[0][3], built_envs[1][3]
    assert type(train_env) is type(eval_env) and eval_env.num_envs == 1
    assert not [w for w in caught if "not of the same type" in str(w.message)]


def test_the_env_gets_the_agents_device(monkeypatch):
    """With CUDA present, --device cuda reaches the env too; a different device in the env
    kwargs is refused with both named (checked without a GPU by faking its presence)."""
    import envs
    from agents.train_options import accepts_device, place_env

    assert all(accepts_device(i) for i in envs.ALL_IDS)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert place_env("deploygym/DynamicPTQ-v0", {"width": 4}, "cuda") == (
        "cuda", {"width": 4, "device": "cuda"})
    assert place_env("deploygym/DistillSource-v0", {"device": "cuda"}, "auto")[0] == "cuda"
    with pytest.raises(ValueError, match="--device cuda contradicts --env-kwargs device:cpu"):
        place_env("deploygym/SensorPlacement-v0", {"device": "cpu"}, "cuda")


def test_an_env_without_a_device_option_is_left_alone():
    import gymnasium as gym

    from agents.train_options import accepts_device, place_env

    gym.register("deploygym-test/NoDevice-v0", entry_point="gymnasium.envs.classic_control:"
                 "CartPoleEnv")
    assert not accepts_device("deploygym-test/NoDevice-v0")
    assert place_env("deploygym-test/NoDevice-v0", {}, "cpu") == ("cpu", {})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("module", ["agents.train", "agents.reproduce", "agents.pairs"])
def test_device_cuda_without_cuda_exits_2_with_one_message(module, tmp_path, capsys):
    if module == "agents.train":
        from agents.train import main as entry
        argv = ["--device", "cuda", "-f", str(tmp_path), "--env-kwargs", *TINY_ENV]
    elif module == "agents.reproduce":
        from agents.reproduce.run import main as entry
        argv = ["bn-init", "--device", "cuda", "--out", str(tmp_path / "r")]
    else:
        from agents.pairs.trainer import main as entry
        argv = ["--device", "cuda", "--out", str(tmp_path / "p")]
    with pytest.raises(SystemExit) as e:
        run_cli(entry, argv, prog=f"python -m {module}")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "CUDA is not available" in line]
    assert not list(tmp_path.iterdir())  # nothing was built or written


@pytest.mark.parametrize("value", ["digits", "true", "4", "[", "a: b", 5, 4.5, [4, 5], None,
                                   True, {"net_arch": [64, 64]}])
def test_resume_command_values_read_back_as_written(value):
    from agents.train_options import kv_text
    from models.cli import parse_kv

    assert parse_kv([kv_text("k", value)], "--env-kwargs") == {"k": value}


def test_an_agent_trains_and_is_evaluated_on_a_users_network_and_data(tmp_path):
    """--net/--weights/--data reach the training env, run.json records them with their
    sha256, and the evaluation refuses to silently fall back to the named network."""
    from agents import evaluate
    from models.datasets import load_dataset

    (tmp_path / "mynets.py").write_text(
        "import torch\nfrom torch import nn\n\ndef build():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))\n")
    ds = load_dataset("digits")
    np.savez(tmp_path / "d.npz", x=ds.train.images.numpy(), y=ds.train.labels.numpy())
    torch.save({"state_dict": torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
        torch.nn.Linear(16, 10)).state_dict()}, tmp_path / "w.pt")
    own = ["--net", f"{tmp_path / 'mynets.py'}:build", "--weights", str(tmp_path / "w.pt"),
           "--data", str(tmp_path / "d.npz")]
    folder = main([*own, "--env", "deploygym/DynamicPTQJoint-v0", "-n", "32", "--n-envs", "2",
                   "-f", str(tmp_path / "runs"), "--eval-freq", "16", "--eval-episodes", "2",
                   "--save-freq", "0", "--no-progress-bar", "-v", "0",
                   "--hyperparams", "n_steps:16", "batch_size:16", "n_epochs:1"])
    run = json.loads((folder / "run.json").read_text())
    assert run["own"]["net"].endswith("mynets.py:build") and len(run["own"]["data_sha256"]) == 64
    with pytest.raises(ValueError, match="pass --data --net again"):
        evaluate.main(["--agent", str(folder), "--episodes", "2", "--out", str(tmp_path / "e")])
    rec = evaluate.main(["--agent", str(folder), *own, "--episodes", "3", "--render-every", "0",
                         "--baselines", "none", "--no-progress", "--out", str(tmp_path / "e")])
    assert rec["episodes"] == 3 and rec["own"] == run["own"]
    assert rec["summary"]["label"]["distinct"] >= 1
