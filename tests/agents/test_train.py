import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.train import main
from agents.zoo_hyperparams import load_hyperparams, parse_kv

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
