"""DAFL (Chen et al., ICCV 2019): a generator trained against the teacher, jointly with the student.

At each step a batch ``x = G(z)`` is scored by the teacher; the generator minimises
``CE(t, argmax t)`` (confident, one-hot outputs) ``− α·mean |f(x)|`` (large activations of the
teacher's features before its classifier) ``− β·H(mean softmax)`` (classes balanced over the
batch); then the student takes a KD step on the detached batch. The student's update count is
the budget; the generator's compute is counted in ``compute_s``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from distill.datafree.hooks import PenultimateFeatures, frozen
from distill.kd import kd_loss
from models.guards import check_loss


class Generator(nn.Module):
    """DCGAN-style: ``z → Linear → (width·2, H/4, W/4) → 2 × (upsample, conv, BN, LeakyReLU) →
    conv → sigmoid`` images ``[B, C, H, W]`` in ``[0, 1]`` (H, W multiples of 4)."""

    def __init__(self, image_shape: tuple[int, int, int], latent: int = 100, width: int = 64
                 ) -> None:
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"the generator needs H and W divisible by 4, got {h}×{w}")
        self.latent, self.shape0 = latent, (2 * width, h // 4, w // 4)
        self.fc = nn.Linear(latent, 2 * width * (h // 4) * (w // 4))
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * width, width, 3, padding=1),
            nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
            nn.Conv2d(width, c, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(self.fc(z).view(len(z), *self.shape0)))


@dataclass
class DAFLConfig:
    """DAFL's losses and optimisers (the paper's MNIST/CIFAR values: α = 0.1, β = 5,
    generator Adam 0.2 → 1e-3 here for stability at small batch; student lr as the other runs)."""

    steps: int = 3000
    batch_size: int = 64
    latent: int = 100
    width: int = 64
    lr_generator: float = 1e-3
    lr_student: float = 0.05
    activation_weight: float = 0.1
    entropy_weight: float = 5.0
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be ≥ 1 and batch_size ≥ 2")


def generator_loss(logits: torch.Tensor, features: torch.Tensor, cfg: DAFLConfig
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    one_hot = F.cross_entropy(logits, logits.argmax(1))
    activation = features.abs().mean()
    p = logits.softmax(1).mean(0)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    loss = one_hot - cfg.activation_weight * activation - cfg.entropy_weight * entropy
    return loss, {"one_hot": one_hot.item(), "activation": activation.item(),
                  "entropy": entropy.item() / math.log(len(p))}


def train_dafl(teacher: nn.Module, student: nn.Module, cfg: DAFLConfig | None = None,
               seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
               on_step: Any = None) -> dict[str, Any]:
    """Train a DAFL generator and ``student`` together for ``cfg.steps`` student updates.

    ``on_step(step, student)`` is called after every update (evaluation, logging). Returns a
    report: config, compute seconds, the last loss terms and the generator itself.
    """
    cfg = cfg or DAFLConfig()
    dev = torch.device(device)
    torch.manual_seed(seed)
    gen_rng = torch.Generator().manual_seed(int(seed))
    g = Generator(tuple(teacher.input_shape), cfg.latent, cfg.width).to(dev)
    teacher = teacher.to(dev)
    student = student.to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_generator)
    opt_s = torch.optim.SGD(student.parameters(), lr=cfg.lr_student, momentum=0.9,
                            weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_s, cfg.steps)
    feats = PenultimateFeatures(teacher)
    t0 = time.perf_counter()
    terms: dict[str, float] = {}
    try:
        with frozen(teacher):
            for step in tqdm(range(cfg.steps), desc="DAFL", unit="step", disable=not progress,
                             leave=False):
                z = torch.randn(cfg.batch_size, cfg.latent, generator=gen_rng).to(dev)
                g.train()
                x = g(z)
                t = teacher(x)
                loss_g, terms = generator_loss(t, feats.value, cfg)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                # the frozen teacher's logits of this batch are the student's targets too
                xs, t = x.detach(), t.detach()
                student.train()
                loss_s = kd_loss(student(xs), t, cfg.temperature)
                check_loss(torch.stack([loss_s, loss_g.detach()]), f"at DAFL step {step} "
                           f"(student, generator)", "lower lr_generator or lr_student")
                opt_s.zero_grad(set_to_none=True)
                loss_s.backward()
                opt_s.step()
                sched.step()
                terms["student_kd"] = loss_s.item()
                if on_step is not None:
                    on_step(step + 1, student)
    finally:
        feats.close()
    return {"method": "dafl", "config": asdict(cfg), "seed": seed,
            "compute_s": time.perf_counter() - t0, "final_terms": terms, "generator": g}


__all__ = ["DAFLConfig", "Generator", "generator_loss", "train_dafl"]
