"""Learn a network and a bit-width policy together: ``python -m agents.pairs``.

Paper P1's headline experiment. Each round alternates

(a) **policy updates**: SB3 PPO on the DynamicPTQ env (joint plans, batched vector env),
    built around the network being trained (``net=``), so rewards always reflect the
    current network;
(b) **network updates**: ``--net-steps`` Adam steps on training batches, each with the bit
    plans the *current* policy picks for that batch's inputs (sampled, budget-repaired by
    the env's own :class:`envs.ptq.budget.Budget`), minimising
    :func:`agents.pairs.loss.pair_loss`: KD from the frozen teacher on the FP path, plus a
    quantized-path term that maximises (detrimental) or minimises (robust) the failure.

``--mode standard`` skips (b): the standard network with a learned detrimental policy.

    python -m agents.pairs --mode detrimental --arch cnn --seed 0
    python -m agents.pairs --mode robust --arch cnn --seed 0
    python -m agents.evaluate --pair runs/pairs/detrimental-fashion-mnist-cnn-s0

Output ``<out>/pair.pt`` is **one** artifact (written atomically after every round): the
network's state, the policy's ``.zip`` bytes, the optimizer state, the config, the per-round
metrics and the RNG states. Re-running the same command after a kill resumes after the last
completed round. ``pair.json`` repeats config + metrics for people; ``tb/`` has the curves.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from agents.pairs.loss import LossWeights, pair_loss
from agents.vec import PTQVecEnv
from envs.ptq.core import PTQCore
from envs.ptq.rollout import headline, split_rollout
from models.cli import parse_config
from models.datasets import load_dataset
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.quant import FP_BITS, RangeAwareQuantizer

MODES = ("detrimental", "robust", "standard")
ARTIFACT = "pair.pt"


@dataclass
class PairArgs:
    """Options of ``python -m agents.pairs``: one network–policy pair search."""

    mode: str = field(default="detrimental", metadata={"choices": MODES})
    """detrimental or robust pair; standard: the frozen network with a detrimental policy"""
    dataset: str = "fashion-mnist"
    """dataset of the network (models.datasets.load_dataset name)"""
    arch: str = "cnn"
    """architecture of the network (models.nets.build_model name)"""
    seed: int = 0
    """seed of the network updates, the policy and the env"""
    rounds: int = 6
    """alternating rounds of policy and network updates"""
    policy_steps: int = 4096
    """PPO env steps per round"""
    net_steps: int = 150
    """network steps per round"""
    batch_size: int = 128
    """network batch size"""
    lr: float = 5e-4
    """learning rate of the network weights (Adam)"""
    knob_lr: float = 0.01
    """learning rate of biases and BN affine parameters: the per-channel range knobs"""
    warmup_rounds: float = 1.0
    """ramp the quantized-path terms in over this many rounds"""
    budget_bits: float = 4.0
    """minimum mean bits (detrimental) or maximum MAC-weighted bits (robust)"""
    n_envs: int = 16
    """parallel episodes of the batched env"""
    env_subset: int = 4096
    """training examples the policy's env draws from (FP cache refreshes)"""
    eval_limit: int | None = None
    """test examples of the final evaluation (default: all)"""
    round_eval: int = 1000
    """validation examples after each round"""
    loss: LossWeights = field(default_factory=LossWeights)
    """weights of the network objective (one flag per field of LossWeights)"""
    model_kw: list[str] | None = field(default=None, metadata={"nargs": "*",
                                                                "metavar": "KEY:VALUE"})
    """options for models.zoo.get_trained (e.g. width:4 epochs:8)"""
    out: str | None = None
    """output folder (default runs/pairs/<mode>-<dataset>-<arch>-s<seed>)"""
    device: str = "cpu"
    """torch device"""
    fresh: bool = False
    """ignore an existing artifact instead of resuming it"""
    progress: bool = True
    """show progress bars"""
    command: str = field(default="", metadata={"cli": False})
    """the command line that started the search (set by :func:`parse_args`)"""

    def __post_init__(self) -> None:
        for name in ("rounds", "policy_steps", "batch_size", "n_envs", "env_subset"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if self.net_steps < 0:
            raise ValueError(f"--net-steps must be ≥ 0, got {self.net_steps}")


def parse_args(argv: list[str] | None = None) -> PairArgs:
    """Parse ``argv`` (default ``sys.argv[1:]``); ``args.command`` is the equivalent command line."""
    args, command = parse_config(PairArgs, argv, prog="python -m agents.pairs", doc=__doc__)
    args.command = command
    return args


def _model_kw(args: PairArgs) -> dict[str, Any]:
    from agents.zoo_hyperparams import parse_kv

    return parse_kv(args.model_kw, "--model-kw")


def env_kwargs_for(mode: str, budget_bits: float, dataset: str) -> dict[str, Any]:
    """Env options of a pair: joint plans; detrimental reward for ``standard``."""
    return {"dataset": dataset, "reward": "robust" if mode == "robust" else "detrimental",
            "action_mode": "joint",
            "budget_bits": float(budget_bits), "progress": False}


RESUMABLE_CHANGES = ("rounds", "progress", "fresh", "out", "eval_limit", "device")


def pair_config(args: PairArgs) -> dict[str, Any]:
    """Everything that determines a pair search (saved in ``pair.pt`` and ``pair.json``)."""
    a = asdict(args)
    a.pop("command")
    return {**a, "env_kwargs": env_kwargs_for(args.mode, args.budget_bits, args.dataset)}


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Options of ``new`` that differ from ``old``, except those a resume may change."""
    return {k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]}


class PairTrainer:
    """State of one pair search: teacher, network, policy, optimizer, metrics."""

    def __init__(self, args: PairArgs) -> None:
        from models.zoo import get_trained

        self.args = args
        self.out = Path(args.out or f"runs/pairs/{args.mode}-{args.dataset}-{args.arch}-s{args.seed}")
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        dev = torch.device(args.device)
        self.teacher = get_trained(args.dataset, args.arch, device=args.device,
                                   progress=args.progress, **_model_kw(args)).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.net = copy.deepcopy(self.teacher).eval()  # BN statistics stay frozen
        for p in self.net.parameters():
            p.requires_grad_(True)
        self.data = load_dataset(args.dataset)
        env_data = replace(self.data, train=self.data.train.subset(args.env_subset))
        self.env_kwargs = env_kwargs_for(args.mode, args.budget_bits, args.dataset)
        self.venv = PTQVecEnv(args.n_envs, net=self.net, data=env_data, device=args.device,
                              **self.env_kwargs)
        self.venv.seed(args.seed)
        self.cfg, self.res = self.venv.cfg, self.venv.res
        self.rq = RangeAwareQuantizer(self.net)
        knobs = [p for p in self.net.parameters() if p.ndim == 1]
        weights = [p for p in self.net.parameters() if p.ndim > 1]
        self.opt = torch.optim.Adam([{"params": weights, "lr": args.lr},
                                     {"params": knobs, "lr": args.knob_lr}])
        self.weights = args.loss
        self.policy = PPO("MlpPolicy", self.venv, n_steps=max(args.policy_steps // args.n_envs // 4, 8),
                          batch_size=256, n_epochs=5, learning_rate=3e-4, gamma=1.0, ent_coef=0.01,
                          policy_kwargs={"net_arch": [64, 64]}, seed=args.seed,
                          device=args.device, verbose=0)
        self.round, self.history, self.wall = 0, [], 0.0
        self.dev = dev
        self.writer = SummaryWriter(str(self.out / "tb"))

    # -------------------------------------------------------------- artifact
    def config(self) -> dict[str, Any]:
        return pair_config(self.args)

    def save(self, final: dict[str, Any] | None = None) -> None:
        buf = io.BytesIO()
        self.policy.save(buf)
        state = {"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                 "policy_zip": buf.getvalue(), "round": self.round, "history": self.history,
                 "wall_s": self.wall, "config": self.config(), "final": final,
                 "rng": {"torch": torch.get_rng_state(), "np": self.rng.bit_generator.state},
                 "arch": self.args.arch, "dataset": self.args.dataset,
                 "model_kw": _model_kw(self.args),
                 **provenance(self.args.seed, self.args.command)}
        atomic_torch_save(state, self.out / ARTIFACT)
        atomic_write_json({k: v for k, v in state.items()
                           if k not in ("net", "opt", "policy_zip", "rng")}, self.out / "pair.json")

    def try_resume(self) -> bool:
        path = self.out / ARTIFACT
        if self.args.fresh or not path.exists():
            return False
        state = torch.load(path, map_location=self.dev, weights_only=False)
        old, new = state["config"], self.config()
        diff = config_diff(old, new)
        if diff:
            raise ValueError(f"{path} was made with different options {sorted(diff)}; use the "
                             f"same options to resume, --fresh to start over, or another --out")
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.policy = PPO.load(io.BytesIO(state["policy_zip"]), env=self.venv, device=self.args.device)
        self.round, self.history, self.wall = state["round"], state["history"], state["wall_s"]
        torch.set_rng_state(state["rng"]["torch"])
        self.rng.bit_generator.state = state["rng"]["np"]
        return True

    # ------------------------------------------------------------- updates
    def plans_for(self, x: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Budget-repaired plans ``[B, L]`` the current policy picks for inputs ``x``."""
        core = PTQCore(self.cfg, self.res, len(x))
        with torch.no_grad():
            out = self.res.qnet(x, FP_BITS, return_stats=True)
        core.fp_logits[:] = out.logits.float().cpu().numpy()
        core.fp_stats[:] = out.stats.double().cpu().numpy()
        obs = core.observe(np.arange(len(x)))
        act, _ = self.policy.predict(obs, deterministic=deterministic)
        plan, _ = core.budget.repair(core.bits[np.asarray(act)], core.bits)
        return torch.as_tensor(plan, device=x.device)

    def network_round(self) -> dict[str, float]:
        a, imgs, labels = self.args, self.data.train.images, self.data.train.labels
        ramp = min(1.0, (self.round + 1) / max(a.warmup_rounds, 1e-9))
        sums: dict[str, float] = {}
        for _ in tqdm(range(a.net_steps), desc=f"network r{self.round}", leave=False,
                      disable=not a.progress):
            i = torch.as_tensor(self.rng.integers(len(labels), size=a.batch_size))
            x, y = imgs[i].to(self.dev), labels[i].to(self.dev)
            plan = self.plans_for(x)
            with torch.no_grad():
                t = self.teacher(x)
            fp = self.net(x)
            q, rho = self.rq(x, plan)
            loss, terms = pair_loss(a.mode, fp, q, rho, plan, t, y, self.weights, ramp)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
            self.opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v / a.net_steps
        return sums

    def evaluate(self, split: str, limit: int | None) -> dict[str, float]:
        r = split_rollout(self.cfg, self.res, self.policy, split, limit)
        return headline(r)

    def run(self) -> dict[str, Any]:
        resumed = self.try_resume()
        a = self.args
        if resumed:
            print(f"resuming {self.out / ARTIFACT} after round {self.round}")
        for r in range(self.round, a.rounds):
            t0 = time.perf_counter()
            self.policy.learn(a.policy_steps, reset_num_timesteps=False, progress_bar=False)
            terms = self.network_round() if a.mode != "standard" and a.net_steps else {}
            self.round = r + 1
            self.wall += time.perf_counter() - t0
            m = {"round": self.round, "wall_s": self.wall, **terms,
                 **self.evaluate("val", a.round_eval)}
            self.history.append(m)
            for k, v in m.items():
                self.writer.add_scalar(f"pair/{k}", v, self.round)
            self.writer.flush()
            self.save()
            print(f"round {self.round}/{a.rounds}: " + " ".join(
                f"{k} {v:.3g}" for k, v in m.items() if k != "round"), flush=True)
        final = {"test": self.evaluate("test", a.eval_limit), "wall_s": self.wall,
                 "rounds": self.round}
        self.save(final)
        self.writer.add_hparams({"mode": a.mode, "arch": a.arch, "seed": a.seed},
                                {f"final/{k}": v for k, v in final["test"].items()}, run_name=".")
        self.writer.close()
        print(f"test: {final['test']}\nsaved {self.out / ARTIFACT}")
        return final


def load_pair(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """A saved pair: ``{"net", "policy", "env_kwargs", "config", "history", "final", ...}``.

    ``path`` is the pair folder or its ``pair.pt``.
    """
    from models.zoo import get_trained

    p = Path(path)
    p = p / ARTIFACT if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{p}: no pair artifact; create one with python -m agents.pairs")
    state = torch.load(p, map_location=device, weights_only=False)
    net = copy.deepcopy(get_trained(state["dataset"], state["arch"], device=device,
                                    progress=False, **state.get("model_kw", {})))
    net.load_state_dict(state["net"])
    net.eval()
    policy = PPO.load(io.BytesIO(state["policy_zip"]), device=device)
    return {**state, "net": net, "policy": policy, "env_kwargs": state["config"]["env_kwargs"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return PairTrainer(parse_args(argv)).run()
