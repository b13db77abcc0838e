"""Learn a network and a bit-width policy together: ``python -m agents.pairs``.

Paper P1's headline experiment. Each round alternates

(a) **policy updates**: SB3 PPO on the DynamicPTQ env (joint plans, batched vector env),
    built around the network being trained (``net=``), so rewards always reflect the
    current network;
(b) **network updates**: ``--net-steps`` Adam steps on training batches, each with the bit
    plans the *current* policy picks for that batch's inputs (sampled, budget-repaired by
    the env's own :class:`envs.ptq.budget.Budget`), minimising
    :func:`agents.pairs.loss.pair_loss`: KD from the frozen teacher on the FP path, plus a
    quantized-path term that maximises (detrimental) or minimises (robust) the failure. The
    quantized path runs :class:`models.quant.RangeAwareQuantizer`, which quantizes exactly as
    the deployment quantizer does (``--per-channel``, ``--weight-bits``).

``--attack standard|PAIR_FOLDER`` skips (b): a *fresh* detrimental policy, same PPO budget,
against a frozen network (the standard network of this seed, or a pair's network);
``--mode standard`` is ``--attack standard``. The protocol is the hard one by default: bit
choices 4..8 on every layer (the input included), detrimental budget mean bits ≥ 5, robust
budget MAC-weighted bits ≤ 5. Seed ``s`` uses the standard network trained with seed ``s``.

    python -m agents.pairs --mode detrimental --arch cnn --seed 0
    python -m agents.pairs --mode robust --arch cnn --seed 0
    python -m agents.pairs --attack runs/pairs/robust-fashion-mnist-cnn-s0 --seed 0
    python -m agents.evaluate --pair runs/pairs/detrimental-fashion-mnist-cnn-s0

**Your own network and data.** ``--net package.module:builder`` (or
``path/to/file.py:builder``) with ``--weights FILE`` and ``--data PATH`` replace ``--arch``
and ``--dataset`` (:mod:`agents.pairs.user_net`). One command gives the vulnerability report
of a network: a fresh detrimental attacker, then (``--report``) the ``agents.evaluate``
report of it in ``<out>/report``::

    python -m agents.pairs --attack standard --net mynets.py:build --weights mynet.pt \\
        --data my_images/ --report

The folder ``<out>/`` gets the published pair (``pair.json``, ``policy.pt``, ``net.pt``: see
:mod:`agents.pairs.artifact`, loaded safely by :func:`load_pair`), ``tb/`` with the curves,
and ``pair.pt``, the resume checkpoint written atomically after every round. Every round is
seeded from ``(seed, round)``, so re-running the same command after a kill resumes after the
last completed round and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from agents.pairs.artifact import load_pair, make_policy, net_folder, save_pair
from agents.pairs.loss import pair_loss
from agents.pairs.options import (  # noqa: F401 - HARD_BITS, MODES: the module's API
    HARD_BITS,
    MODES,
    PPO_HYPERPARAMS,
    PairArgs,
    config_diff,
    default_out,
    env_kwargs_for,
    pair_config,
    round_seed,
)
from agents.pairs.user_net import network_recipe, pair_data, standard_network, trainable_copy
from agents.vec import PTQVecEnv
from envs.ptq.core import PTQCore
from envs.ptq.rollout import headline, split_rollout
from models.cli import parse_config
from models.guards import check_loss, check_parameters
from models.io import atomic_torch_save, output_lock, provenance
from models.quant import FP_BITS, RangeAwareQuantizer
from models.readers import FRESH, load_weights, read_torch

ARTIFACT = "pair.pt"
RESUME_KEYS = ("net", "opt", "policy", "policy_opt", "num_timesteps", "round", "history",
               "wall_s", "config")


def parse_args(argv: list[str] | None = None) -> PairArgs:
    """Parse ``argv`` (default ``sys.argv[1:]``); ``args.command`` is the equivalent command line."""
    args, command = parse_config(PairArgs, argv, prog="python -m agents.pairs", doc=__doc__)
    args.command = command
    return args


class PairTrainer:
    """State of one pair search: teacher, network, policy, optimizer, metrics."""

    def __init__(self, args: PairArgs) -> None:
        self.args = args
        self.frozen = args.mode == "standard" or args.attack is not None
        self.out = Path(args.out or default_out(args))
        self.dev = torch.device(args.device)
        self.own, self.data = pair_data(args)
        self.recipe = network_recipe(args, self.own, self.data)
        self.net_source: str | None = None
        self.teacher = (standard_network(args, self.own, self.data)
                        if args.attack in (None, "standard") else None)
        if args.attack not in (None, "standard"):
            target = load_pair(args.attack, args.device, self.data, net=self.own.module)
            self.net = target.net
            rel = os.path.relpath(net_folder(target.path, target.record), self.out.resolve())
            # a pair may only reference a sibling folder; otherwise it keeps its own copy
            parts = Path(rel).parts
            self.net_source = rel if len(parts) == 2 and parts[0] == ".." else None
        elif self.frozen:
            self.net = self.teacher
        else:
            self.net = trainable_copy(self.teacher, args)  # BN statistics stay frozen
        for p in self.net.parameters():
            p.requires_grad_(not self.frozen)
        env_data = replace(self.data, train=self.data.train.subset(args.env_subset))
        self.env_kwargs = env_kwargs_for(args)
        self.venv = PTQVecEnv(args.n_envs, net=self.net, data=env_data, device=args.device,
                              **self.env_kwargs)
        self.cfg, self.res = self.venv.cfg, self.venv.res
        self.rq = RangeAwareQuantizer(self.net, per_channel=args.per_channel,
                                      weight_bits=args.weight_bits, zero_point=args.zero_point)
        knobs = [p for p in self.net.parameters() if p.ndim == 1]
        weights = [p for p in self.net.parameters() if p.ndim > 1]
        self.opt = torch.optim.Adam([{"params": weights, "lr": args.lr},
                                     {"params": knobs, "lr": args.knob_lr}])
        self.ppo_hyperparams = {**PPO_HYPERPARAMS,
                                "n_steps": max(args.policy_steps // args.n_envs // 4, 8)}
        set_random_seed(args.seed)
        self.policy = make_policy(self.venv, self.ppo_hyperparams, args.seed, args.device)
        self.rng = np.random.default_rng(args.seed)
        self.round, self.history, self.wall = 0, [], 0.0
        self.writer = SummaryWriter(str(self.out / "tb"))

    # -------------------------------------------------------------- artifact
    def config(self) -> dict[str, Any]:
        return pair_config(self.args)

    def record(self, final: dict[str, Any] | None) -> dict[str, Any]:
        """``pair.json``: config, network recipe, policy hyperparameters, metrics, provenance."""
        return {"config": self.config(), "env_kwargs": json.loads(json.dumps(self.env_kwargs)),
                "network": self.recipe, "net_source": self.net_source,
                "policy": self.ppo_hyperparams, "round": self.round,
                "metrics": {"history": self.history, "wall_s": self.wall,
                            **(final or {})},
                **provenance(self.args.seed, self.args.command)}

    def save(self, final: dict[str, Any] | None = None) -> None:
        pol = self.policy.policy
        state = {"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                 "policy": pol.state_dict(), "policy_opt": pol.optimizer.state_dict(),
                 "num_timesteps": self.policy.num_timesteps, "round": self.round,
                 "history": self.history, "wall_s": self.wall, "config": self.config()}
        atomic_torch_save(state, self.out / ARTIFACT)
        save_pair(self.out, self.record(final), self.policy,
                  None if self.net_source else self.net)

    def try_resume(self) -> bool:
        path = self.out / ARTIFACT
        if self.args.fresh or not path.exists():
            return False
        state = read_torch(path, FRESH, keys=RESUME_KEYS, kind="pair search checkpoint",
                           map_location=self.dev)
        diff = config_diff(state["config"], self.config())
        if diff:
            raise ValueError(f"{path} was made with different options {sorted(diff)}; use the "
                             f"same options to resume, --fresh to start over, or another --out")
        load_weights(self.net, state["net"], path, FRESH)
        load_weights(self.opt, state["opt"], path, FRESH)
        load_weights(self.policy.policy, state["policy"], path, FRESH)
        load_weights(self.policy.policy.optimizer, state["policy_opt"], path, FRESH)
        self.policy.num_timesteps = int(state["num_timesteps"])
        self.round, self.history, self.wall = state["round"], state["history"], state["wall_s"]
        return True

    # ------------------------------------------------------------- updates
    def start_round(self, rnd: int) -> None:
        """Seed everything random in round ``rnd`` from ``(seed, rnd)`` (so a resumed search
        repeats the uninterrupted one) and start the policy's episodes afresh."""
        s = round_seed(self.args.seed, rnd)
        set_random_seed(s)  # random, numpy (SB3's minibatches) and torch (action sampling)
        self.rng = np.random.default_rng(s)
        self.venv.seed(s)
        self.policy._last_obs = None  # learn() then resets the env with those seeds

    def plans_for(self, x: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Budget-repaired plans ``[B, L]`` the current policy picks for inputs ``x``."""
        core = PTQCore(self.cfg, self.res, len(x))
        obs = core.load_inputs(x)
        act, _ = self.policy.predict(obs, deterministic=deterministic)
        plan, _ = core.budget.repair(core.bits[np.asarray(act)], core.bits)
        return torch.as_tensor(plan, device=x.device)

    def network_round(self) -> dict[str, float]:
        a, imgs, labels = self.args, self.data.train.images, self.data.train.labels
        ramp = min(1.0, (self.round + 1) / max(a.warmup_rounds, 1e-9))
        bit_range = (min(a.bit_choices), max(b for b in a.bit_choices if b < FP_BITS))
        sums: dict[str, float] = {}
        fix = (f"lower --lr / --knob-lr or --range-weight (the last finished round is kept in "
               f"{self.out})")
        for _ in tqdm(range(a.net_steps), desc=f"network r{self.round}", leave=False,
                      disable=not a.progress):
            i = torch.as_tensor(self.rng.integers(len(labels), size=a.batch_size))
            x, y = imgs[i].to(self.dev), labels[i].to(self.dev)
            plan = self.plans_for(x)
            with torch.no_grad():
                t = self.teacher(x)
            fp = self.net(x)
            q, rho = self.rq(x, plan)
            loss, terms = pair_loss(a.mode, fp, q, rho, plan, t, y, a.loss, ramp, bit_range)
            check_loss(loss, f"in round {self.round}", fix)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
            self.opt.step()
            check_parameters(self.net, f"in round {self.round}", fix)
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
            self.start_round(r)
            self.policy.learn(a.policy_steps, reset_num_timesteps=False, progress_bar=False)
            terms = self.network_round() if not self.frozen and a.net_steps else {}
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
        final = {"test": self.evaluate("test", a.eval_limit), "rounds": self.round}
        self.save(final)
        self.writer.add_hparams({"mode": a.mode, "arch": a.arch, "seed": a.seed,
                                 "attack": str(a.attack)},
                                {f"final/{k}": v for k, v in final["test"].items()}, run_name=".")
        self.writer.close()
        print(f"test: {final['test']}\nsaved {self.out}")
        return {**final, "wall_s": self.wall}


def report_argv(args: PairArgs, out: Path) -> list[str]:
    """The ``agents.evaluate`` flags of the report of the pair in ``out`` (``--report``)."""
    argv = ["--pair", str(out), "--episodes", str(args.report_episodes), "--device",
            args.device, "--out", str(out / "report")]
    for flag in ("net", "weights", "data"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag}", str(getattr(args, flag))]
    opts = [*([f"limit:{args.eval_limit}"] if args.eval_limit else []), *(args.report_opts or [])]
    if opts:
        argv += ["--hook-opts", *opts, "--verdict-opts", *opts]
    return argv + ([] if args.progress else ["--no-progress"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with output_lock(args.out or default_out(args)):  # one search per folder at a time
        trainer = PairTrainer(args)
        try:
            result = trainer.run()
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; the last finished round is in "
                                    f"{trainer.out / ARTIFACT}: re-run the same command to "
                                    f"resume from it") from None
    if args.report:
        from agents.evaluate import main as evaluate

        result["report"] = evaluate(report_argv(args, trainer.out))
    return result
