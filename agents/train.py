"""Train a Stable-Baselines3 agent on a deploygym environment: ``python -m agents.train``.

With no arguments: PPO on ``deploygym/DynamicPTQ-v0`` (detrimental bit-widths for the default
Fashion-MNIST network), logging to ``runs/``. Flags follow rl-baselines3-zoo where they overlap::

    python -m agents.train --algo ppo --env deploygym/DynamicPTQ-v0 -n 50000 --seed 0 \\
        --env-kwargs reward:robust budget_bits:4 --hyperparams learning_rate:1e-4
    python -m agents.train -i runs/agents/ppo/DynamicPTQ-v0_1 -n 20000   # resume

Your own network and data (DynamicPTQ ids): ``--net package.module:builder`` (or
``path/to/file.py:builder``), ``--weights FILE``, ``--data PATH`` (:mod:`models.nets.user`);
``run.json`` records them with their sha256, and ``-i`` / ``agents.evaluate`` need them again::

    python -m agents.train --env deploygym/DynamicPTQ-v0 --net mynets.py:build \\
        --weights mynet.pt --data my_images/ -n 20000

``-i`` continues a run with the env id, env kwargs, algorithm, vec-env kind, number of envs and
hyperparameters of its ``run.json``; a flag that contradicts them is refused unless
``--override`` (the changes are recorded in ``run-resume-<steps>.json``). ``--device`` places
the agent and the env's networks together (``auto``: CUDA when present; ``cuda`` without CUDA
is an error).

Network–policy pairs (network and policy learned together) run through their own module:
``python -m agents.pairs --mode detrimental|robust|standard`` (see :mod:`agents.pairs`).

A run folder ``<log-folder>/<algo>/<env>_<k>/`` holds ``run.json`` (command, seed, versions,
hyperparameters, env kwargs), TensorBoard logs under ``tb/``, ``checkpoints/``, the best
evaluated model (``best/``), and the final agent as the pickle-free ``policy.json`` +
``policy.pt`` (read by ``-i`` and ``agents.evaluate``) and SB3's ``model.zip`` (all written
atomically).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.utils import set_random_seed

from agents.callbacks import (
    DivergenceCallback,
    EpisodeInfoCallback,
    HParamCallback,
    atomic_eval_callback,
    atomic_save_model,
)
from agents.policy_io import (
    ALGOS,
    check_trusted,
    is_zip,
    load_policy,
    policy_meta,
    run_folder_of,
    save_policy,
)
from agents.train_options import TrainOptions, resolve_options, resume_command
from agents.vec import VEC_ENVS, make_training_env
from models.cli import parse_config, run_cli
from models.io import atomic_write_json, provenance


class AtomicCheckpointCallback(BaseCallback):
    """Every ``save_freq`` calls, save ``checkpoints/model_<steps>.zip``, ``latest.zip`` and
    the pickle-free ``checkpoints/latest/`` (``policy.json`` + ``policy.pt``)."""

    def __init__(self, save_freq: int, folder: Path, algo: str) -> None:
        super().__init__()
        self.save_freq, self.folder, self.algo = max(int(save_freq), 1), folder, algo

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            atomic_save_model(self.model, self.folder / f"model_{self.num_timesteps}_steps.zip")
            atomic_save_model(self.model, self.folder / "latest.zip")
            save_policy(self.model, self.algo, self.folder / "latest")
        return True


@dataclass
class TrainArgs:
    """Options of ``python -m agents.train`` (flags follow rl-baselines3-zoo where they overlap)."""

    algo: str | None = field(default=None, metadata={"choices": tuple(sorted(ALGOS))})
    """the Stable-Baselines3 algorithm (a new run: ppo; -i: the run's)"""
    env: str | None = None
    """environment id (a new run: deploygym/DynamicPTQ-v0; -i: the run's)"""
    env_kwargs: list[str] | None = field(default=None, metadata={"nargs": "*",
                                                                  "metavar": "KEY:VALUE"})
    """environment options (-i: the run's, updated by these)"""
    n_timesteps: int | None = field(default=None, metadata={"flags": ("-n",)})
    """environment steps (overrides the YAML value)"""
    seed: int = 0
    """seed of the agent, the envs (seed, seed + 1, ...) and the evaluation env (seed + 10000)"""
    n_envs: int | None = None
    """parallel environments (overrides the YAML value; -i: the run's)"""
    vec_env: str | None = field(default=None, metadata={"choices": VEC_ENVS})
    """batched (one forward for all envs; the default for ids that have one), dummy or subproc
    (-i: the run's)"""
    log_folder: str = field(default="runs/agents", metadata={"flags": ("-f",)})
    """runs go to <log-folder>/<algo>/<env>_<k>/"""
    tensorboard_log: str | None = field(default=None, metadata={"flags": ("-tb",)})
    """TensorBoard folder (default: <run folder>/tb)"""
    eval_freq: int = 10_000
    """evaluate every N steps (≤ 0: off)"""
    eval_episodes: int = 50
    """episodes per evaluation"""
    save_freq: int = 10_000
    """checkpoint every N steps (≤ 0: off)"""
    trained_agent: str | None = field(default=None, metadata={"flags": ("-i",)})
    """a run folder (or its checkpoints/latest, best) to continue training; a .zip needs
    --trust-zip"""
    trust_zip: bool = False
    """allow -i to load an SB3 .zip (its data section is unpickled and can run code)"""
    override: bool = False
    """with -i, let --algo/--env/--env-kwargs/--vec-env differ from the run's run.json
    (recorded in run-resume-<steps>.json)"""
    hyperparams: list[str] | None = field(default=None, metadata={"nargs": "*",
                                                                   "metavar": "KEY:VALUE"})
    """override YAML values"""
    conf_file: str | None = field(default=None, metadata={"flags": ("-conf",)})
    """a zoo-format YAML file of hyperparameters"""
    device: str = "auto"
    """torch device of the agent and of the env's networks: auto (CUDA when present), cpu,
    cuda or cuda:N"""
    net: str | None = None
    """your own classifier for a DynamicPTQ id: package.module:builder or
    path/to/file.py:builder (a function returning an nn.Module)"""
    weights: str | None = None
    """state dict of --net: .safetensors, or a torch.save'd dict of tensors (never a module)"""
    data: str | None = None
    """your own data: an ImageFolder folder or a .npz/.pt of x, y (val/test: given, or a
    seeded stratified 10% each); without --net the env trains its arch on it (cached)"""
    max_loss: float = 1e6
    """stop with an error when a logged training loss exceeds this (or is NaN/inf)"""
    progress_bar: bool = True
    """show SB3's progress bar"""
    verbose: int = field(default=1, metadata={"flags": ("-v",)})
    """SB3 verbosity"""
    command: str = field(default="", metadata={"cli": False})
    """the command line that started the run (set by :func:`parse_args`)"""


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    """Parse ``argv`` (default ``sys.argv[1:]``); ``args.command`` is the equivalent command line."""
    args, command = parse_config(TrainArgs, argv, prog="python -m agents.train", doc=__doc__)
    args.command = command
    return args


def run_folder(log_folder: str, algo: str, env_id: str, trained_agent: str | None) -> Path:
    """A run continued with ``-i`` stays in its folder; a new run gets ``<env>_<k+1>``."""
    if trained_agent:
        folder = run_folder_of(trained_agent)
        if (folder / "run.json").exists():
            return folder
    base = Path(log_folder) / algo
    name = env_id.split("/")[-1]
    k = 1 + max([int(p.name.rsplit("_", 1)[1]) for p in base.glob(f"{name}_*")
                 if p.name.rsplit("_", 1)[1].isdigit()] or [0])
    return base / f"{name}_{k}"


def _load_agent(args: TrainArgs, opts: TrainOptions, env: Any, tb_log: str) -> BaseAlgorithm:
    """The agent to train: continued from ``-i`` or new."""
    algo_cls = ALGOS[opts.algo]
    if not args.trained_agent:
        return algo_cls(opts.policy, env, seed=args.seed, device=opts.device,
                        tensorboard_log=tb_log, verbose=args.verbose, **opts.algo_kwargs)
    check_trusted(args.trained_agent, args.trust_zip)
    if is_zip(args.trained_agent):
        return algo_cls.load(args.trained_agent, env=env, device=opts.device,
                             tensorboard_log=tb_log)
    saved = policy_meta(args.trained_agent)[1]["algo"]
    if saved != opts.algo:
        raise ValueError(f"-i {args.trained_agent} holds a {saved} agent, not {opts.algo}")
    return load_policy(args.trained_agent, env, opts.device,
                       {"seed": args.seed, "tensorboard_log": tb_log, "verbose": args.verbose,
                        **opts.algo_kwargs})


def _callbacks(args: TrainArgs, opts: TrainOptions, folder: Path) -> list[BaseCallback]:
    checkpoint = (folder / "checkpoints" / "latest" if args.save_freq > 0
                  else args.trained_agent)
    n_envs = opts.n_envs
    callbacks: list[BaseCallback] = [
        DivergenceCallback(args.max_loss, checkpoint),
        EpisodeInfoCallback(),
        HParamCallback({"algo": opts.algo, "env": opts.env, "seed": args.seed, "n_envs": n_envs,
                        "device": opts.device,
                        **{f"env/{k}": v for k, v in opts.env_kwargs.items()},
                        **{f"hp/{k}": v for k, v in opts.algo_kwargs.items()}}),
    ]
    if args.save_freq > 0:
        callbacks.append(AtomicCheckpointCallback(args.save_freq // n_envs, folder / "checkpoints",
                                                  opts.algo))
    if args.eval_freq > 0:
        # the training env's own kind (e.g. VecMonitor around the batched env): the same
        # wrappers as training, so SB3 evaluates like it trains (and does not warn)
        eval_env = make_training_env(opts.env, 1, args.seed + 10_000, opts.env_make_kwargs,
                                     opts.vec_env)
        eval_cls = atomic_eval_callback(MaskableEvalCallback if opts.algo == "maskable_ppo"
                                        else EvalCallback)
        callbacks.append(eval_cls(eval_env, folder, opts.algo, n_eval_episodes=args.eval_episodes,
                                  eval_freq=max(args.eval_freq // n_envs, 1),
                                  deterministic=True, verbose=0))
    return callbacks


def _record(args: TrainArgs, opts: TrainOptions, resumed: bool) -> dict[str, Any]:
    """``run.json`` (a new run) or ``run-resume-<steps>.json``: the effective options."""
    record = {"algo": opts.algo, "env": opts.env, "env_kwargs": opts.env_kwargs,
              "n_envs": opts.n_envs, "vec_env": opts.vec_env, "device": opts.device,
              "n_timesteps": opts.n_timesteps, "hyperparams": opts.hyperparams,
              "eval_freq": args.eval_freq, "eval_episodes": args.eval_episodes,
              "save_freq": args.save_freq, "resumed_from": args.trained_agent, "own": opts.own}
    if resumed:
        record["overrides"] = opts.overrides
    return {**record, **provenance(args.seed, args.command)}


def train(args: TrainArgs) -> Path:
    """Train (or continue) an agent; returns the run folder."""
    opts = resolve_options(args)
    folder = run_folder(args.log_folder, opts.algo, opts.env, args.trained_agent)
    resumed = (folder / "run.json").exists()
    tb_log = args.tensorboard_log or str(folder / "tb")

    set_random_seed(args.seed)
    env = make_training_env(opts.env, opts.n_envs, args.seed, opts.env_make_kwargs, opts.vec_env)
    model = _load_agent(args, opts, env, tb_log)
    start = model.num_timesteps
    atomic_write_json(_record(args, opts, resumed), folder / (
        f"run-resume-{start}.json" if resumed else "run.json"))
    try:
        model.learn(opts.n_timesteps, callback=CallbackList(_callbacks(args, opts, folder)),
                    progress_bar=args.progress_bar, tb_log_name=opts.algo.upper(),
                    reset_num_timesteps=not args.trained_agent)
    except KeyboardInterrupt:
        atomic_save_model(model, folder / "model.zip")
        save_policy(model, opts.algo, folder)
        remaining = start + opts.n_timesteps - model.num_timesteps
        print(f"\ninterrupted at {model.num_timesteps} steps; saved {folder}\n"
              f"continue with: {resume_command(args, opts, folder, remaining)}")
        raise SystemExit(130) from None
    finally:
        env.close()
        if getattr(model, "_logger", None) is not None:  # flush TensorBoard for readers
            model.logger.close()
    atomic_save_model(model, folder / "model.zip")
    save_policy(model, opts.algo, folder)
    summary = {"num_timesteps": model.num_timesteps, "model": str(folder / "model.zip"),
               "policy": str(folder / "policy.json")}
    ep = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else []
    if ep:
        summary["recent_ep_rew_mean"] = float(sum(ep) / len(ep))
    atomic_write_json({**json.loads((folder / "run.json").read_text()), "result": summary},
                      folder / "run.json")
    print(f"saved {folder / 'policy.json'} (and model.zip)\ntensorboard --logdir {tb_log}")
    return folder


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv))


if __name__ == "__main__":
    run_cli(main, prog="python -m agents.train")
