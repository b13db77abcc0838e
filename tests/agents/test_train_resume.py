"""agents.train: run.json is the source of truth for -i, the Ctrl-C hint continues the run with
the same options, and --device places the agent and the env's networks together."""

import json
import shlex
import warnings

import pytest
import torch

import agents.train as train_mod
from agents.train import main
from models.cli import run_cli

TINY_ENV = ["dataset:digits", "width:4", "epochs:8", "progress:false"]
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
    from agents.env_device import accepts_device, place_env

    assert all(accepts_device(i) for i in envs.ALL_IDS)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert place_env("deploygym/DynamicPTQ-v0", {"width": 4}, "cuda") == (
        "cuda", {"width": 4, "device": "cuda"})
    assert place_env("deploygym/DistillSource-v0", {"device": "cuda"}, "auto")[0] == "cuda"
    with pytest.raises(ValueError, match="--device cuda contradicts --env-kwargs device:cpu"):
        place_env("deploygym/SensorPlacement-v0", {"device": "cpu"}, "cuda")


def test_an_env_without_a_device_option_is_left_alone():
    import gymnasium as gym

    from agents.env_device import accepts_device, place_env

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
