"""Supervised training of the suite's networks: ``python -m models.train``.

The loop reads top to bottom: build data and model, then for every epoch train, validate,
log to TensorBoard and write checkpoints atomically. ``--resume`` continues a killed run from
its last completed epoch with the same numbers it would have produced uninterrupted (data
order and augmentation are seeded per epoch, and the TensorBoard curves are purged back to the
checkpoint so they continue without duplicates).

Example::

    python -m models.train --dataset fashion-mnist --arch resnet20 --bn revisited \\
        --input-norm bn --epochs 10 --seed 0
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from models.bn import BN_KINDS, INPUT_NORMS, bn_layers, gamma_drift, param_groups
from models.cli import parse_config, run_cli
from models.datasets import DATASETS, DatasetSplits, Split, crop_flip, load_dataset
from models.guards import (
    RESUME_FIX,
    DivergenceError,
    NonFiniteLossError,
    check_loss,
    check_not_exploding,
    check_parameters,
    resume_checkpoint,
)
from models.io import atomic_torch_save, atomic_write_json, ensure_writable, provenance
from models.nets import MODELS, DeployNet, build_model
from models.readers import load_weights, read_torch

# What a resume checkpoint (``last.pt``) must hold.
LAST_KEYS = ("model", "optimizer", "scheduler", "epoch", "history", "best", "config")


@dataclass
class TrainConfig:
    """Everything that determines a supervised training run."""

    dataset: str = field(default="fashion-mnist", metadata={"choices": DATASETS})
    arch: str = field(default="cnn", metadata={"choices": MODELS})
    width: int | None = None
    bn: str = field(default="standard", metadata={"choices": BN_KINDS})
    input_norm: str = field(default="dataset", metadata={"choices": INPUT_NORMS})
    gamma_init: float = 0.1
    bn_lr_div: float = 100.0
    bn_no_decay: bool = True
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = field(default="sgd", metadata={"choices": ("sgd", "adam", "adamw")})
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = field(default="cosine", metadata={"choices": ("cosine", "constant")})
    warmup_epochs: float = 0.0
    augment: bool = True
    crop_pad: int = 2
    hflip: bool = True
    label_smoothing: float = 0.0
    train_subset: int | None = None
    seed: int = 0
    device: str = "cpu"
    data_root: str | None = None
    download: bool = False
    run_dir: str | None = None
    resume: bool = False
    channels_last: bool = True
    progress: bool = True
    data_sha256: str | None = field(default=None, metadata={"cli": False})
    """content hash of a user's data (:func:`models.datasets.data_sha256`): ``dataset`` is
    then only its name, and :func:`train` must be given that data"""

    HELP = {
        "bn": "standard BN, or revisited BN: γ₀=c_γ, γ at lr/c, no decay on BN params and biases",
        "input_norm": "fixed dataset mean/std, or an online input BN (γ₀=0.58·c_γ, β frozen)",
        "gamma_init": "c_γ, the initial BN scale of revisited BN",
        "bn_lr_div": "c, BN scales learn at lr/c (revisited BN only)",
        "bn_no_decay": "revisited BN only: no weight decay on BN parameters and biases",
        "train_subset": "use only the first N training examples (tests, smoke runs)",
        "run_dir": "output folder (default runs/train/<dataset>-<arch>-<bn>-s<seed>)",
        "resume": "continue from <run-dir>/last.pt",
        "channels_last": "NHWC memory format (about 30% faster convolutions on CPU)",
    }

    # Fields that change the trained weights; the others (device, paths, progress) do not.
    NON_RESULT_FIELDS = ("device", "data_root", "download", "run_dir", "resume", "progress",
                         "channels_last")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        for name, allowed in (("dataset", DATASETS), ("arch", MODELS), ("bn", BN_KINDS),
                              ("input_norm", INPUT_NORMS)):
            if name == "dataset" and self.data_sha256:  # a user's data: any name
                continue
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {allowed}")

    def result_key(self) -> dict[str, Any]:
        """The fields that determine the result (used for cache hashes)."""
        key = {k: v for k, v in asdict(self).items() if k not in self.NON_RESULT_FIELDS}
        if key["bn_no_decay"]:  # added later: at its default it keeps the older cache keys
            del key["bn_no_decay"]
        if key["data_sha256"] is None:  # the same: named datasets keep their keys
            del key["data_sha256"]
        return key

    def default_run_dir(self) -> Path:
        return Path("runs/train") / f"{self.dataset}-{self.arch}-{self.bn}-s{self.seed}"


def evaluate(model: nn.Module, split: Split, device: str | torch.device,
             batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split`` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            x = split.images[i:i + batch_size].to(device)
            y = split.labels[i:i + batch_size].to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    n = max(len(split), 1)
    return loss_sum / n, correct / n


def build_for(cfg: TrainConfig, data: DatasetSplits) -> DeployNet:
    """The network of ``cfg`` sized for ``data``."""
    i = data.info
    return build_model(cfg.arch, num_classes=i.num_classes, in_channels=i.in_channels,
                       image_size=i.image_size, width=cfg.width, bn=cfg.bn,
                       input_norm=cfg.input_norm, mean=i.mean, std=i.std,
                       gamma_init=cfg.gamma_init)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    revisited = cfg.bn == "revisited"
    groups = param_groups(model, cfg.lr, cfg.weight_decay,
                          bn_lr_div=cfg.bn_lr_div if revisited else None,
                          no_decay_norm_bias=revisited and cfg.bn_no_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    """Multiplier of every group's base lr at optimizer ``step`` of ``total`` (warmup, cosine)."""
    warm = int(cfg.warmup_epochs * total / cfg.epochs)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def _log_bn(writer: SummaryWriter, model: nn.Module, epoch: int) -> None:
    for name, m in bn_layers(model):
        writer.add_histogram(f"bn_gamma/{name}", m.weight.detach().cpu(), epoch)
        writer.add_histogram(f"bn_beta/{name}", m.bias.detach().cpu(), epoch)


class _Run:
    """One training's state between its stages: network, optimiser, schedule, progress."""

    def __init__(self, cfg: TrainConfig, data: DatasetSplits) -> None:
        self.cfg, self.data = cfg, data
        self.device = torch.device(cfg.device)
        self.run_dir = Path(cfg.run_dir) if cfg.run_dir else cfg.default_run_dir()
        self.last_path, self.best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        self.train_split = data.train.subset(cfg.train_subset) if cfg.train_subset else data.train
        torch.manual_seed(cfg.seed)
        self.fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = build_for(cfg, data).to(self.device).to(memory_format=self.fmt)
        self.gamma0 = {n: float(m.weight.detach().mean()) for n, m in bn_layers(self.model)}
        self.opt = make_optimizer(cfg, self.model)
        self.steps_per_epoch = math.ceil(len(self.train_split) / cfg.batch_size)
        self.total_steps = total = self.steps_per_epoch * cfg.epochs
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt,
                                                       lambda s: lr_factor(cfg, s, total))
        self.start_epoch, self.history = 0, []
        self.best = {"val_acc": -1.0, "epoch": -1}
        self.time_before = 0.0  # training time of earlier processes of this run (resumes add up)

    def resume(self) -> None:
        """Continue from ``last.pt`` when ``cfg.resume`` (same configuration only)."""
        state = resume_checkpoint(self.last_path, self.cfg.resume, self.cfg.result_key(),
                                  keys=LAST_KEYS, map_location=self.device)
        if state is None:
            return
        load_weights(self.model, state["model"], self.last_path, RESUME_FIX)
        load_weights(self.opt, state["optimizer"], self.last_path, RESUME_FIX)
        self.sched.load_state_dict(state["scheduler"])
        self.start_epoch, self.history = state["epoch"] + 1, state["history"]
        self.best = state["best"]
        self.time_before = float(state.get("train_time_s", 0.0))

    def fix(self, epoch: int) -> str:
        """What to do when epoch ``epoch`` diverges."""
        kept = (f"the last good checkpoint is {self.last_path} (epoch {epoch - 1})" if epoch > 0
                else "no checkpoint was written")
        return f"lower --lr (now {self.cfg.lr}) or check the data; {kept}"

    def epoch(self, epoch: int, bar: Any) -> dict[str, Any]:
        """One pass over the training split, checked for divergence, then validation."""
        cfg, model, split, fix = self.cfg, self.model, self.train_split, self.fix(epoch)
        model.train()
        gen = _epoch_generator(cfg.seed, epoch)
        order = torch.randperm(len(split), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(self.steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x, y = split.images[idx], split.labels[idx]
            if cfg.augment:
                x = crop_flip(x, gen, pad=cfg.crop_pad, flip=cfg.hflip)
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)
            y = y.to(self.device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            check_loss(loss, f"at epoch {epoch} step {i}", fix)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        check_parameters(model, f"after epoch {epoch}", fix)
        check_not_exploding(loss_sum / seen, self.data.info.num_classes, f"in epoch {epoch}", fix)
        val_loss, val_acc = evaluate(model, self.data.val, self.device)
        return {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                "val_loss": val_loss, "val_acc": val_acc, "lr": self.opt.param_groups[0]["lr"],
                **gamma_drift(model, self.gamma0)}

    def record(self, row: dict[str, Any], writer: SummaryWriter, t0: float) -> None:
        """Log the epoch's row, keep the best weights and write the resume checkpoint."""
        self.history.append(row)
        epoch = row["epoch"]
        step = (epoch + 1) * self.steps_per_epoch
        for k, v in row.items():
            if k != "epoch":
                writer.add_scalar(f"{k.split('_')[0]}/{k}" if "_" in k else k, v, step)
        _log_bn(writer, self.model, step)
        if row["val_acc"] > self.best["val_acc"]:
            self.best = {"val_acc": row["val_acc"], "epoch": epoch}
            atomic_torch_save(self.model.state_dict(), self.best_path)
        atomic_torch_save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                           "scheduler": self.sched.state_dict(), "epoch": epoch,
                           "history": self.history, "best": self.best,
                           "config": self.cfg.result_key(),
                           "train_time_s": self.time_before + time.perf_counter() - t0},
                          self.last_path)

    def test(self, writer: SummaryWriter, t0: float) -> dict[str, Any]:
        """The best-on-validation weights on the test split: the run's metrics."""
        best_fix = f"delete {self.run_dir} and train again"
        load_weights(self.model, read_torch(self.best_path, best_fix, kind="state dict",
                                            map_location=self.device), self.best_path, best_fix)
        test_loss, test_acc = evaluate(self.model, self.data.test, self.device)
        metrics = {"test_acc": test_acc, "test_loss": test_loss,
                   "best_val_acc": self.best["val_acc"], "best_epoch": self.best["epoch"],
                   "train_time_s": self.time_before + time.perf_counter() - t0,
                   "num_parameters": self.model.num_parameters(),
                   **gamma_drift(self.model, self.gamma0)}
        writer.add_hparams({k: (v if isinstance(v, int | float | str | bool) else str(v))
                            for k, v in self.cfg.result_key().items()},
                           {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".",
                           global_step=self.total_steps)
        return metrics


def train(cfg: TrainConfig, data: DatasetSplits | None = None) -> dict[str, Any]:
    """Train ``cfg``; returns the metrics also written to ``<run_dir>/metrics.json``.

    The best-on-validation weights are in ``<run_dir>/best.pt``; ``last.pt`` holds the full
    state for ``resume``.
    """
    if data is None:
        if cfg.data_sha256:
            raise ValueError(f"this configuration trains on a user's data (sha256 "
                             f"{cfg.data_sha256[:12]}…): pass that data to train()")
        data = load_dataset(cfg.dataset, cfg.data_root, download=cfg.download)
    run = _Run(cfg, data)
    run.resume()
    ensure_writable(run.run_dir)
    # epoch e logs at step (e + 1) · steps_per_epoch: purge what came after the checkpoint
    writer = SummaryWriter(str(run.run_dir),
                           purge_step=run.start_epoch * run.steps_per_epoch + 1)
    t0 = time.perf_counter()
    bar = tqdm(total=run.total_steps, initial=run.start_epoch * run.steps_per_epoch,
               disable=not cfg.progress, desc=f"{cfg.arch}/{cfg.dataset}", unit="step",
               dynamic_ncols=True)
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            row = run.epoch(epoch, bar)
            run.record(row, writer, t0)
            bar.write(f"epoch {epoch + 1}/{cfg.epochs}: train_loss {row['train_loss']:.4f} "
                      f"val_acc {row['val_acc']:.4f}")
    except KeyboardInterrupt:
        bar.close()
        writer.close()
        raise KeyboardInterrupt(f"interrupted; continue with --resume --run-dir {run.run_dir}"
                                ) from None
    bar.close()
    metrics = run.test(writer, t0)
    writer.close()
    result = {"config": asdict(cfg), "metrics": metrics, "history": run.history,
              **provenance(cfg.seed)}
    atomic_write_json(result, run.run_dir / "metrics.json")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, _ = parse_config(TrainConfig, argv, prog="python -m models.train", doc=__doc__)
    result = train(cfg)
    m = result["metrics"]
    run_dir = cfg.run_dir or cfg.default_run_dir()
    print(f"test accuracy {m['test_acc']:.4f} (best val {m['best_val_acc']:.4f} at epoch "
          f"{m['best_epoch'] + 1}), {m['train_time_s']:.0f} s\n"
          f"tensorboard --logdir {run_dir}")
    return result


if __name__ == "__main__":
    run_cli(main, prog="python -m models.train")

__all__ = ["DivergenceError", "NonFiniteLossError", "TrainConfig", "build_for", "evaluate",
           "train"]
