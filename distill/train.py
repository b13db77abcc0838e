"""Distil a student from a trained teacher on a transfer set: ``python -m distill.train``.

The teacher comes from the model cache (:func:`models.zoo.get_trained`); the student is any
:func:`models.nets.build_model` architecture. Images come either from a fixed pool (``--pool N``:
N images drawn once, optionally class-balanced through the teacher, cached on disk with their
teacher logits; ``--attack`` then adds boundary samples of a quarter of the pool, also cached) or on the
fly from the source (``--pool 0``: rendered in a background thread; ``--attack`` then replaces a
quarter of every batch by boundary samples). Loss: T²·KL(teacher ‖ student) (+ one-hot term),
after the augmentation policy and mixup. The test accuracy of the student, its agreement with
the teacher and sample grids of every source go to TensorBoard; checkpoints are atomic and
``--resume`` continues a killed run with the numbers of an uninterrupted one.

Example::

    python -m distill.train --source opengl --pool 20000 --balanced --augment heavy \\
        --mixup 1.0 --attack --steps 2000 --seed 0
    tensorboard --logdir runs/distill
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from distill.augment import POLICIES
from distill.boundary import with_boundary_share
from distill.logits import cached_boundary_pool, cached_teacher_logits, teacher_fingerprint
from distill.loop import AttackSettings, KDTrainer, cosine_schedule, evaluate
from distill.pool import Pool, Prefetcher
from distill.sources import MixtureSource, get_source
from distill.sources.base import batch_seed
from models.cache import state_dict_sha256
from models.cli import parse_config, run_cli
from models.datasets import DATASETS, DatasetSplits, load_dataset
from models.device import intra_op_threads
from models.guards import resume_checkpoint
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.nets import MODELS, DeployNet, build_model
from models.zoo import get_trained


@dataclass
class DistillConfig:
    """Everything that determines a distillation run."""

    dataset: str = field(default="fashion-mnist", metadata={"choices": DATASETS})
    teacher_arch: str = field(default="cnn", metadata={"choices": MODELS})
    student: str = field(default="cnn", metadata={"choices": MODELS})
    student_width: int | None = 8
    source: str = "opengl"
    pool: int = 0
    balanced: bool = False
    augment: str = field(default="heavy", metadata={"choices": tuple(POLICIES)})
    mixup: float = 1.0
    attack: bool = False
    attack_iter: int = 30
    boundary_share: float = 0.25
    temperature: float = 4.0
    hard_weight: float = 0.0
    epochs: int = 5
    steps: int | None = None
    steps_per_epoch: int = 200
    batch_size: int = 128
    optimizer: str = field(default="sgd", metadata={"choices": ("sgd", "adam")})
    lr: float = 0.05
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    prefetch: int = 4
    eval_every: int | None = None
    eval_subset: int | None = None
    run_dir: str | None = None
    resume: bool = False
    progress: bool = True

    HELP = {
        "source": "transfer set: a name (target, digits, photos, opengl, leaves, fractals, noise, "
                  "uniform, ...) or a mixture such as 'opengl:0.7+leaves:0.3'",
        "pool": "draw a fixed pool of N images once (cached with teacher logits); 0 = sample "
                "the source on the fly",
        "balanced": "class-balance the pool through the teacher (P2's filter)",
        "mixup": "mixup Beta(α, α) parameter; 0 disables mixup",
        "attack": "add bold-driver boundary samples (pool: --boundary-share of it, attacked once "
                  "from a class-stratified subset; on the fly: a quarter of every batch)",
        "boundary_share": "with --attack and --pool: the share of the pool that is boundary "
                          "samples (the pool keeps its size)",
        "hard_weight": "weight of the one-hot (teacher argmax) cross-entropy term",
        "steps": "total student updates (overrides --epochs × steps per epoch)",
        "steps_per_epoch": "updates between evaluations when sampling on the fly",
        "threads": "torch intra-op threads (default: torch's); 1 is fastest on a busy CPU",
        "prefetch": "batches rendered ahead in a background thread (on-the-fly sources); 0 = none",
        "eval_every": "evaluate and checkpoint every N updates (default: once per epoch)",
        "eval_subset": "evaluate on the first N validation/test images only (tests, smoke runs)",
        "run_dir": "output folder (default runs/distill/<dataset>-<source>-s<seed>)",
    }
    NON_RESULT_FIELDS = ("device", "threads", "prefetch", "run_dir", "resume", "progress")

    def __post_init__(self) -> None:
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"--eval-every must be ≥ 1, got {self.eval_every}")
        for name in ("epochs", "batch_size", "steps_per_epoch", "attack_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be ≥ 1, got {self.steps}")
        if self.pool < 0:
            raise ValueError(f"--pool must be ≥ 0 (0 = on the fly), got {self.pool}")
        if self.balanced and self.pool == 0:
            raise ValueError("--balanced filters a fixed pool: also pass --pool N")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive finite number, got {self.lr}")
        if not 0 <= self.boundary_share < 1:
            raise ValueError(f"--boundary-share must be in [0, 1), got {self.boundary_share}")
        if self.augment not in POLICIES:
            raise ValueError(f"unknown --augment {self.augment!r}; choose one of {tuple(POLICIES)}")

    def result_key(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.NON_RESULT_FIELDS}

    def default_run_dir(self) -> Path:
        safe = self.source.replace("+", "_").replace(":", "-")
        return Path("runs/distill") / f"{self.dataset}-{safe}-s{self.seed}"

    def per_epoch(self, pool_size: int) -> int:
        return max(pool_size // self.batch_size, 1) if self.pool else self.steps_per_epoch

    def total_steps(self, pool_size: int) -> int:
        return self.steps if self.steps is not None else self.epochs * self.per_epoch(pool_size)


def build_student(cfg: DistillConfig, data: DatasetSplits) -> DeployNet:
    i = data.info
    torch.manual_seed(cfg.seed)
    return build_model(cfg.student, num_classes=i.num_classes, in_channels=i.in_channels,
                       image_size=i.image_size, width=cfg.student_width, mean=i.mean, std=i.std)


def make_pool(cfg: DistillConfig, teacher: torch.nn.Module, data: DatasetSplits) -> Pool:
    """The fixed transfer set of ``cfg`` (cached), ``boundary_share`` of it boundary samples
    when ``attack``."""
    i, key = data.info, teacher_fingerprint(teacher)
    images, logits = cached_teacher_logits(
        teacher, key, cfg.source, cfg.pool, cfg.seed,
        image_size=i.image_size, channels=i.in_channels, balanced=cfg.balanced,
        num_classes=i.num_classes, source_kwargs={"dataset": cfg.dataset}, progress=cfg.progress)
    if cfg.attack and cfg.boundary_share > 0:
        with tqdm(desc="boundary samples", unit="img", disable=not cfg.progress,
                  leave=False) as bar:
            images, logits, _ = with_boundary_share(
                teacher, images, logits, cfg.boundary_share, cfg.seed,
                attack=lambda x: cached_boundary_pool(teacher, key, x, cfg.seed,
                                                      progress=bar.update,
                                                      max_iter=cfg.attack_iter))
    return Pool(images, logits)


def _log_grids(writer: SummaryWriter, cfg: DistillConfig, data: DatasetSplits,
               trainer: KDTrainer, sample: torch.Tensor, pool: Pool | None) -> None:
    i = data.info
    if pool is not None:  # a given pool may come from no named source (e.g. DeepInversion)
        writer.add_image(f"source/{cfg.source}", make_grid(pool.images[:64], nrow=8), 0)
    else:
        src = get_source(cfg.source, image_size=i.image_size, channels=i.in_channels,
                         dataset=cfg.dataset)
        for m in src.sources if isinstance(src, MixtureSource) else [src]:
            writer.add_image(f"source/{m.name}", make_grid(m.sample(64, cfg.seed), nrow=8), 0)
    gen_state = trainer.gen.get_state()
    x = trainer.prepare(sample[:64])[0].clamp(0, 1)
    trainer.gen.set_state(gen_state)  # logging must not change the run
    writer.add_image("batch/trained_on", make_grid(x.cpu(), nrow=8), 0)


def distill(cfg: DistillConfig, data: DatasetSplits | None = None,
            teacher: torch.nn.Module | None = None, pool: Pool | None = None,
            command: str | None = None) -> dict[str, Any]:
    """Run ``cfg``; returns (and writes to ``<run_dir>/metrics.json``) the final metrics.

    ``data``, ``teacher`` and ``pool`` may be passed in to share them between runs (the
    benchmark does); otherwise they are loaded or built from ``cfg``. ``command`` is recorded
    in the result (default: this process's command line).
    """
    with intra_op_threads(cfg.threads) if cfg.threads else nullcontext():
        return _distill(cfg, data, teacher, pool, command)


def _trainer(cfg: DistillConfig, teacher: torch.nn.Module, student: DeployNet, total: int,
             device: torch.device) -> KDTrainer:
    """The student's optimiser, cosine schedule and KD step (online attack without a pool)."""
    params = student.parameters()
    opt = (torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True,
                           weight_decay=cfg.weight_decay) if cfg.optimizer == "sgd"
           else torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
    online_attack = AttackSettings(max_iter=cfg.attack_iter) if cfg.attack and not cfg.pool else None
    return KDTrainer(teacher, student, opt, temperature=cfg.temperature,
                     hard_weight=cfg.hard_weight, augment=cfg.augment, mixup_alpha=cfg.mixup,
                     attack=online_attack, scheduler=cosine_schedule(opt, total),
                     device=device, seed=cfg.seed)


def _batch_maker(cfg: DistillConfig, data: DatasetSplits, pool: Pool | None):
    """``make(k)``: batch ``k`` of the transfer stream (the pool's, else the source's)."""
    i = data.info
    src = None if pool else get_source(cfg.source, image_size=i.image_size,
                                       channels=i.in_channels, dataset=cfg.dataset)
    stream_seed = batch_seed(cfg.seed, 1_000_003)  # data order independent of init/augmentation

    def make(k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if pool is not None:
            return pool.batch(cfg.batch_size, stream_seed, k)
        return src.sample(cfg.batch_size, batch_seed(stream_seed, k)), None

    return make


def _train_loop(cfg: DistillConfig, trainer: KDTrainer, make: Any, pool: Pool | None,
                start: int, total: int, interval: int, val: Any, history: list[dict[str, Any]],
                writer: SummaryWriter, last_path: Path) -> float:
    """Steps ``start .. total``, validated and checkpointed every ``interval`` steps; returns
    the seconds spent in training steps (validation excluded)."""
    student, teacher, device = trainer.student, trainer.teacher, trainer.device
    bar = tqdm(total=total, initial=start, desc=f"KD {cfg.source}", unit="step",
               disable=not cfg.progress, dynamic_ncols=True)
    loop_time, loss_sum, agree_sum, seen = 0.0, 0.0, 0.0, 0
    with ExitStack() as stack:
        batches = (stack.enter_context(Prefetcher(make, start, total, cfg.prefetch))
                   if pool is None and cfg.prefetch > 0 else map(make, range(start, total)))
        t0 = time.perf_counter()
        try:
            for k, (x, logits) in zip(range(start, total), batches, strict=False):
                st = trainer.step(x, logits)
                loss_sum, agree_sum, seen = loss_sum + st.loss, agree_sum + st.agreement, seen + 1
                bar.update(1)
                if (k + 1) % 10 == 0:
                    bar.set_postfix(loss=f"{st.loss:.3f}", agree=f"{st.agreement:.2f}", refresh=False)
                    writer.add_scalar("train/loss", st.loss, k + 1)
                    writer.add_scalar("train/agreement", st.agreement, k + 1)
                    writer.add_scalar("train/lr", st.lr, k + 1)
                if (k + 1) % interval == 0 or k + 1 == total:
                    loop_time += time.perf_counter() - t0
                    ev = evaluate(student, val, teacher, device)  # the test split: once, at the end
                    row = {"step": k + 1, "train_loss": loss_sum / max(seen, 1),
                           "train_agreement": agree_sum / max(seen, 1), "val_acc": ev["acc"],
                           "val_agreement": ev["agreement"]}
                    history.append(row)
                    loss_sum, agree_sum, seen = 0.0, 0.0, 0
                    writer.add_scalar("val/acc", ev["acc"], k + 1)
                    writer.add_scalar("val/agreement", ev["agreement"], k + 1)
                    atomic_torch_save({"trainer": trainer.state_dict(), "history": history,
                                       "config": cfg.result_key()}, last_path)
                    bar.write(f"step {k + 1}/{total}: loss {row['train_loss']:.4f} "
                              f"val_acc {ev['acc']:.4f} agreement {ev['agreement']:.4f}")
                    t0 = time.perf_counter()
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; continue with --resume --run-dir "
                                    f"{last_path.parent}") from None
        finally:
            bar.close()
    return loop_time


def _distill(cfg, data, teacher, pool, command=None) -> dict[str, Any]:
    device = torch.device(cfg.device)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else cfg.default_run_dir()
    data = data or load_dataset(cfg.dataset)
    test = data.test.subset(cfg.eval_subset) if cfg.eval_subset else data.test
    val = data.val.subset(cfg.eval_subset) if cfg.eval_subset else data.val
    teacher = (teacher or get_trained(cfg.dataset, cfg.teacher_arch, progress=cfg.progress)).to(device)
    if pool is None and cfg.pool:
        pool = make_pool(cfg, teacher, data)
    total = cfg.total_steps(len(pool) if pool else 0)
    interval = cfg.eval_every or cfg.per_epoch(len(pool) if pool else 0)
    student = build_student(cfg, data)
    trainer = _trainer(cfg, teacher, student, total, device)

    last_path = run_dir / "last.pt"
    state = resume_checkpoint(last_path, cfg.resume, cfg.result_key(),
                              keys=("config", "trainer", "history"), map_location=device)
    history: list[dict[str, Any]] = []
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        history = state["history"]
    start = trainer.steps

    make = _batch_maker(cfg, data, pool)
    writer = SummaryWriter(str(run_dir), purge_step=start + 1)
    if start == 0:
        _log_grids(writer, cfg, data, trainer, make(0)[0], pool)
    loop_time = _train_loop(cfg, trainer, make, pool, start, total, interval, val, history,
                            writer, last_path)
    ev_val = history[-1] if history and history[-1]["step"] == total else None
    val_acc = ev_val["val_acc"] if ev_val else evaluate(student, val, teacher, device)["acc"]
    ev = evaluate(student, test, teacher, device)
    metrics = {"test_acc": ev["acc"], "test_agreement": ev["agreement"], "val_acc": val_acc,
               "teacher_acc": ev["teacher_acc"], "steps": total,
               "pool_size": len(pool) if pool else 0,
               "images_per_s": (total - start) * cfg.batch_size / loop_time if loop_time else None,
               "num_parameters": student.num_parameters(),
               "teacher_sha256": state_dict_sha256(teacher)}
    writer.add_hparams({k: (v if isinstance(v, int | float | str | bool) else str(v))
                        for k, v in cfg.result_key().items()},
                       {f"hparam/{k}": v for k, v in metrics.items() if isinstance(v, float)},
                       run_name=".", global_step=total)
    writer.close()
    atomic_torch_save(student.state_dict(), run_dir / "student.pt")
    result = {"config": asdict(cfg), "metrics": metrics, "history": history, **provenance(cfg.seed, command)}
    atomic_write_json(result, run_dir / "metrics.json")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, command = parse_config(DistillConfig, argv, prog="python -m distill.train", doc=__doc__)
    result = distill(cfg, command=command)
    m = result["metrics"]
    print(f"student test accuracy {m['test_acc']:.4f} (teacher {m['teacher_acc']:.4f}, "
          f"agreement {m['test_agreement']:.4f}) after {m['steps']} steps\n"
          f"tensorboard --logdir {cfg.run_dir or cfg.default_run_dir()}")
    return result


if __name__ == "__main__":
    run_cli(main, prog="python -m distill.train")

__all__ = ["DistillConfig", "build_student", "distill", "main", "make_pool"]
