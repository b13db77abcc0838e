"""The options of ``python -m agents.pairs`` and what follows from them alone: the env
options of a pair, the recipe of its standard network, the search's configuration (what a
resume must match) and the default output folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.pairs.loss import LossWeights
from envs.ptq.config import OBSERVATIONS
from models.device import resolve_device
from models.quant import ZERO_POINTS

MODES = ("detrimental", "robust", "standard")
HARD_BITS = (4, 5, 6, 7, 8)


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
    bit_choices: tuple[int, ...] = HARD_BITS
    """bit-widths the policy may give each layer's input (the floor applies to every layer)"""
    budget_bits: float = 5.0
    """minimum mean bits (detrimental) or maximum MAC-weighted bits (robust)"""
    budget_cost: str | None = field(default=None, metadata={"choices": (None, "mean", "macs")})
    """cost of a plan: mean bits or MAC-weighted bits (default: mean for detrimental,
    macs for robust)"""
    weight_bits: int | None = None
    """static symmetric per-channel weight bits in training and deployment (None: float)"""
    per_channel: bool = False
    """activation ranges per (example, channel) instead of per example"""
    zero_point: str = field(default="integer", metadata={"choices": ZERO_POINTS})
    """activation grid convention in training and deployment: integer (PyTorch's zero point),
    float (each example's exact min..max) or symmetric (signed, scaled by max abs(x))"""
    observation: str = field(default="stats", metadata={"choices": OBSERVATIONS})
    """what the policy sees: stats (FP activation statistics), probe (plus how this input's
    prediction reacts to each layer alone at the lowest bits), query (the same for whole
    plans, see --query-plans) or image (plus the input, read by a small CNN)"""
    query_plans: str | None = None
    """observation=query: a JSON file with the plans the observation runs on each input, a
    list of K lists of bit-widths (one per quantized layer), e.g. chosen on validation;
    default: L plans drawn from the budget"""
    menu: bool = False
    """observation=query: the policy picks one of the query plans per input (a K-way choice)
    instead of a bit-width per layer"""
    attack: str | None = None
    """train a fresh detrimental policy against a frozen network: 'standard' or a pair folder"""
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
    net: str | None = None
    """your own classifier instead of --arch: package.module:builder or
    path/to/file.py:builder, a function returning an nn.Module (its code runs as yours)"""
    weights: str | None = None
    """the state dict of --net: .safetensors, or a torch.save'd dict of tensors read with
    weights_only=True (a pickled module or code is refused)"""
    data: str | None = None
    """your own data instead of --dataset: an ImageFolder folder (or one holding train/ and
    val/ and/or test/ ImageFolders), or a .npz/.pt with x, y (and x_val, y_val, x_test,
    y_test); a missing val or test split is a seeded stratified 10% of every class"""
    report: bool = False
    """afterwards, write the agents.evaluate report of the pair to <out>/report: the verdict
    against uniform, random, greedy and best-static-plan baselines, uniform plans at every
    bit-width (4 included), per-layer and per-class analysis, TensorBoard, JSON and PNGs"""
    report_episodes: int = 100
    """seeded episodes of the report's verdict"""
    report_opts: list[str] | None = field(default=None, metadata={"nargs": "*",
                                                                   "metavar": "KEY:VALUE"})
    """options of the report's baselines and analysis, e.g. static_evals:50 limit:1000"""
    device: str = "cpu"
    """torch device of the network, the env and the policy: cpu, cuda, cuda:N or auto
    (CUDA when present); CUDA without CUDA is an error"""
    fresh: bool = False
    """ignore an existing artifact instead of resuming it"""
    progress: bool = True
    """show progress bars"""
    command: str = field(default="", metadata={"cli": False})
    """the command line that started the search (set by :func:`parse_args`)"""

    def __post_init__(self) -> None:
        self.device = resolve_device(self.device)
        self.bit_choices = tuple(int(b) for b in self.bit_choices)
        if self.menu and self.observation != "query":
            raise ValueError("--menu picks one of the query plans per input; it needs "
                             f"--observation query, got --observation {self.observation}")
        if self.attack is not None and self.mode != "detrimental":
            raise ValueError("--attack trains a detrimental policy; use --mode detrimental")
        for name in ("rounds", "policy_steps", "batch_size", "n_envs", "env_subset"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if self.net_steps < 0:
            raise ValueError(f"--net-steps must be ≥ 0, got {self.net_steps}")
        if self.weights is not None and self.net is None:
            raise ValueError("--weights loads the state dict of --net; pass --net too")
        if self.report_episodes < 1:
            raise ValueError(f"--report-episodes must be ≥ 1, got {self.report_episodes}")


def model_kw(args: PairArgs) -> dict[str, Any]:
    """The ``--model-kw`` options as a dict."""
    from agents.zoo_hyperparams import parse_kv

    return parse_kv(args.model_kw, "--model-kw")


def env_kwargs_for(args: PairArgs) -> dict[str, Any]:
    """Env options of a pair: joint plans (or a menu of query plans) under the protocol;
    detrimental unless robust."""
    return {"dataset": args.dataset, "reward": "robust" if args.mode == "robust" else "detrimental",
            "action_mode": "menu" if args.menu else "joint",
            "bit_choices": tuple(args.bit_choices),
            "budget_bits": float(args.budget_bits), "budget_cost": args.budget_cost,
            "weight_bits": args.weight_bits, "per_channel": args.per_channel, "progress": False,
            # the default stays implicit, so pairs written before the option keep their config
            **({"zero_point": args.zero_point} if args.zero_point != "integer" else {}),
            **({"observation": args.observation} if args.observation != "stats" else {}),
            **({"query_plans": read_plans(args.query_plans)} if args.query_plans else {})}


def read_plans(path: str) -> list[list[int]]:
    """The plans of a ``--query-plans`` JSON file (a list of lists of ints)."""
    try:
        plans = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"--query-plans {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--query-plans {path}: not a JSON file ({e})") from None
    if not (isinstance(plans, list) and plans and all(
            isinstance(p, list) and p and all(isinstance(b, int) for b in p) for p in plans)):
        raise ValueError(f"--query-plans {path}: expected a list of plans, each a list of "
                         f"bit-widths (ints)")
    return plans


PPO_HYPERPARAMS = {"batch_size": 256, "n_epochs": 5, "learning_rate": 3e-4, "gamma": 1.0,
                   "ent_coef": 0.01, "net_arch": [64, 64]}


def round_seed(seed: int, rnd: int) -> int:
    """The seed of round ``rnd`` of a search with ``seed`` (resumed rounds get the same)."""
    return int(np.random.SeedSequence([seed, rnd]).generate_state(1)[0])


RESUMABLE_CHANGES = ("rounds", "progress", "fresh", "out", "eval_limit", "device")


def pair_config(args: PairArgs) -> dict[str, Any]:
    """Everything that determines a pair search (saved in ``pair.pt`` and ``pair.json``)."""
    a = asdict(args)
    for k in ("command", "report", "report_episodes", "report_opts"):  # not the search's
        a.pop(k)
    for k in ("net", "weights", "data", "query_plans"):  # implicit when unset, as before
        if a[k] is None:
            a.pop(k)
    for key, default in (("zero_point", "integer"), ("observation", "stats"), ("menu", False)):
        if a[key] == default:  # implicit at its default, as in searches before it existed
            a.pop(key)
    return json.loads(json.dumps({**a, "env_kwargs": env_kwargs_for(args)}))


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Options of ``new`` that differ from ``old``, except those a resume may change."""
    return {k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]}


def default_out(args: PairArgs) -> str:
    """``runs/pairs/<mode>-<dataset>-<arch>-s<seed>`` (``attack-<target>-...`` for attacks;
    the ``--data`` and ``--net`` names in place of dataset and arch)."""
    kind = args.mode if args.attack is None else f"attack-{Path(args.attack).name}"
    return f"runs/pairs/{kind}-{data_label(args)}-{arch_label(args)}-s{args.seed}"


def data_label(args: PairArgs) -> str:
    """The data's name in folders: ``--dataset``, or the ``--data`` file's or folder's name."""
    return args.dataset if args.data is None else Path(args.data).expanduser().stem


def arch_label(args: PairArgs) -> str:
    """The network's name in folders: ``--arch``, or the ``--net`` builder's name."""
    return args.arch if args.net is None else args.net.rpartition(":")[2]

