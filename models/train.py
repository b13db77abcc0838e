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

from models.augment import crop_flip
from models.bn import BN_KINDS, INPUT_NORMS, bn_layers, gamma_drift, param_groups
from models.cli import parse_config, run_cli
from models.datasets import DATASETS, DatasetSplits, Split, load_dataset
from models.guards import (
    DivergenceError,
    NonFiniteLossError,
    check_loss,
    check_not_exploding,
    check_parameters,
    config_differences,
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
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {allowed}")

    def result_key(self) -> dict[str, Any]:
        """The fields that determine the result (used for cache hashes)."""
        key = {k: v for k, v in asdict(self).items() if k not in self.NON_RESULT_FIELDS}
        if key["bn_no_decay"]:  # added later: at its default it keeps the older cache keys
            del key["bn_no_decay"]
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


def train(cfg: TrainConfig, data: DatasetSplits | None = None) -> dict[str, Any]:
    """Train ``cfg``; returns the metrics also written to ``<run_dir>/metrics.json``.

    The best-on-validation weights are in ``<run_dir>/best.pt``; ``last.pt`` holds the full
    state for ``resume``.
    """
    device = torch.device(cfg.device)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else cfg.default_run_dir()
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_root, download=cfg.download)
    train_split = data.train.subset(cfg.train_subset) if cfg.train_subset else data.train

    torch.manual_seed(cfg.seed)
    model = build_for(cfg, data).to(device)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    gamma0 = {n: float(m.weight.detach().mean()) for n, m in bn_layers(model)}
    opt = make_optimizer(cfg, model)
    steps_per_epoch = math.ceil(len(train_split) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, total_steps))

    start_epoch, history, best = 0, [], {"val_acc": -1.0, "epoch": -1}
    time_before = 0.0  # training time of earlier processes of this run (resumes add up)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if cfg.resume:
        if not last_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {last_path}; start without --resume")
        fix = "delete it to start over without --resume, or choose another --run-dir"
        state = read_torch(last_path, fix, keys=LAST_KEYS, map_location=device)
        if state["config"] != cfg.result_key():
            raise ValueError(f"--resume: {last_path} was written by a different configuration "
                             f"({config_differences(state['config'], cfg.result_key())}); "
                             f"resume with the same options or choose another --run-dir")
        load_weights(model, state["model"], last_path, fix)
        load_weights(opt, state["optimizer"], last_path, fix)
        sched.load_state_dict(state["scheduler"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
        time_before = float(state.get("train_time_s", 0.0))
    elif last_path.exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or "
                              f"choose another --run-dir")

    ensure_writable(run_dir)
    # epoch e logs at step (e + 1) · steps_per_epoch: purge what came after the checkpoint
    writer = SummaryWriter(str(run_dir), purge_step=start_epoch * steps_per_epoch + 1)
    t0 = time.perf_counter()

    def fix(epoch: int) -> str:
        kept = (f"the last good checkpoint is {last_path} (epoch {epoch - 1})" if epoch > 0
                else "no checkpoint was written")
        return f"lower --lr (now {cfg.lr}) or check the data; {kept}"

    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, disable=not cfg.progress,
               desc=f"{cfg.arch}/{cfg.dataset}", unit="step", dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            epoch_fix = fix(epoch)
            model.train()
            gen = _epoch_generator(cfg.seed, epoch)
            order = torch.randperm(len(train_split), generator=gen)
            loss_sum, correct, seen = 0.0, 0, 0
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                x, y = train_split.images[idx], train_split.labels[idx]
                if cfg.augment:
                    x = crop_flip(x, gen, pad=cfg.crop_pad, flip=cfg.hflip)
                x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
                y = y.to(device, non_blocking=True)
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                check_loss(loss, f"at epoch {epoch} step {i}", epoch_fix)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            check_parameters(model, f"after epoch {epoch}", epoch_fix)
            check_not_exploding(loss_sum / seen, data.info.num_classes, f"in epoch {epoch}",
                                epoch_fix)
            val_loss, val_acc = evaluate(model, data.val, device)
            row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                   "val_loss": val_loss, "val_acc": val_acc, "lr": opt.param_groups[0]["lr"],
                   **gamma_drift(model, gamma0)}
            history.append(row)
            step = (epoch + 1) * steps_per_epoch
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(f"{k.split('_')[0]}/{k}" if "_" in k else k, v, step)
            _log_bn(writer, model, step)
            if val_acc > best["val_acc"]:
                best = {"val_acc": val_acc, "epoch": epoch}
                atomic_torch_save(model.state_dict(), best_path)
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "epoch": epoch,
                               "history": history, "best": best, "config": cfg.result_key(),
                               "train_time_s": time_before + time.perf_counter() - t0},
                              last_path)
            bar.write(f"epoch {epoch + 1}/{cfg.epochs}: train_loss {row['train_loss']:.4f} "
                      f"val_acc {val_acc:.4f}")
    except KeyboardInterrupt:
        bar.close()
        writer.close()
        raise KeyboardInterrupt(f"interrupted; continue with --resume --run-dir {run_dir}") from None
    bar.close()

    best_fix = f"delete {run_dir} and train again"
    load_weights(model, read_torch(best_path, best_fix, kind="state dict", map_location=device),
                 best_path, best_fix)
    test_loss, test_acc = evaluate(model, data.test, device)
    metrics = {"test_acc": test_acc, "test_loss": test_loss, "best_val_acc": best["val_acc"],
               "best_epoch": best["epoch"],
               "train_time_s": time_before + time.perf_counter() - t0,
               "num_parameters": model.num_parameters(), **gamma_drift(model, gamma0)}
    writer.add_hparams({k: (v if isinstance(v, int | float | str | bool) else str(v))
                        for k, v in cfg.result_key().items()},
                       {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".",
                       global_step=total_steps)
    writer.close()
    result = {"config": asdict(cfg), "metrics": metrics, "history": history,
              **provenance(cfg.seed)}
    atomic_write_json(result, run_dir / "metrics.json")
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
