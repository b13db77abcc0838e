"""Train a layout-general Voronoi-CNN: ``python -m fields.train``.

Each batch pairs snapshots of the training block (time-ordered split) with sensor layouts drawn
from a seeded pool that mixes the training sensor counts. Validation and test use layouts from
separate seed streams, so they are unseen during training. Writes to ``run_dir``:
TensorBoard scalars and truth/reconstruction/error/sensors images, ``last.pt`` / ``best.pt``
(atomic), ``metrics.json`` and ``reconstruction.png``.

Targets (``--target``): ``'raw'`` is the paper's (physical units for the faithful inputs, the
[−1, 1] scaling for the improved ones). ``'anomaly'`` (default) makes the network predict the
deviation from the training-mean field in units of its standard deviation, with a zero-initialised
output layer: the untrained network *is* the mean-field baseline, validation is measured before
the first epoch too, so early stopping can never return a network worse than that baseline on
validation data. Under small CPU budgets the raw target left every network worse than the mean
field (it spends its budget learning the mean); the anomaly target is the same for both input
variants, so it does not bias their comparison.

Example::

    python -m fields.train --dataset coads-sst --inputs improved --sensors 10 30 100 --seed 0
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from fields.field_data import FieldData, remove_climatology, split_sizes, time_split
from fields.figures import reconstruction_figure
from fields.pinned import process, processed_field
from fields.reconstructor import TARGETS, Reconstructor
from fields.voronoi import INPUT_KINDS, Layout, SensorGrid
from fields.voronoi_cnn import NORMS, masked_mse, relative_l2
from models.cli import parse_config, run_cli
from models.device import intra_op_threads
from models.guards import check_loss, check_parameters, config_differences
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.readers import load_weights, read_torch

SEED_STREAMS = {"train": 0, "val": 1, "test": 2, "fixed": 3}
LAYOUTS = ("general", "fixed")


@dataclass
class FieldTrainConfig:
    """Everything that determines a reconstruction training run."""

    dataset: str = "cylinder"
    inputs: str = field(default="improved", metadata={"choices": INPUT_KINDS})
    norm: str = field(default="none", metadata={"choices": NORMS})
    target: str = field(default="anomaly", metadata={"choices": TARGETS})
    width: int = 48
    depth: int = 7
    kernel: int = 7
    out_kernel: int = 0  # 0: 7 on spherical (SST-like) grids, else 3, as in the paper
    layouts: str = field(default="general", metadata={"choices": LAYOUTS})
    sensors: tuple[int, ...] = (8, 16)  # sensor counts mixed during training
    eval_sensors: tuple[int, ...] = ()  # default: same as sensors
    train_layouts: int = 64  # layouts per training count
    eval_layouts: int = 5  # unseen layouts per evaluation count
    stride: int = 1  # keep every stride-th snapshot (in time order)
    coarsen: int = 1  # block-average the grid by this factor (budget runs)
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    climatology: int = 0  # >1: reconstruct anomalies from this cycle (12: monthly data)
    gap: int = 0  # snapshots dropped between split blocks
    max_eval: int = 64  # evenly spaced val/test snapshots used per layout
    epochs: int = 50
    steps_per_epoch: int = 0  # 0: one pass over the training block
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 100  # linear learning-rate warm-up (Adam's first steps kill ReLUs)
    lr_patience: int = 0  # >0: multiply the lr by lr_decay after this many epochs without gain
    lr_decay: float = 0.5
    patience: int = 10  # early stopping on validation relative L2
    seed: int = 0
    device: str = "cpu"
    threads: int = 1  # CPU intra-op threads while training (0: keep torch's setting)
    run_dir: str = "runs/fields/default"
    resume: bool = False
    progress: bool = True

    HELP: ClassVar[dict[str, str]] = {
        "dataset": "'cylinder', a ferret field (coads-sst, navy-uwnd, ...) or oisst:FILE[:LSMASK]",
        "inputs": "faithful Voronoi-CNN inputs or the improved ones of arXiv:2408.12531",
        "norm": "batch norm after each hidden conv (revisited: γ₀ = 0.1, BN scales at lr/100)",
        "target": "anomaly: predict (q − training mean)/std from a zero-initialised output layer; "
                  "raw: the paper's target",
        "layouts": "general: random layouts, unseen ones at test (what the env needs); fixed: "
                   "one layout per sensor count for training and test (Fukami's protocol)",
        "climatology": "reconstruct anomalies from the cycle of this many snapshots (12 for "
                       "monthly data), fitted on the training block; 0: the raw field",
        "sensors": "sensor counts mixed during training",
        "eval_sensors": "sensor counts of the unseen test layouts (default: --sensors)",
        "coarsen": "block-average the grid by this factor",
        "out_kernel": "output conv size; 0 = 7 on lat/lon grids, 3 otherwise (as in the paper)",
        "patience": "early stopping: epochs without a better validation relative L2",
        "lr_patience": "reduce-on-plateau: epochs without a better validation error before the "
                       "lr is multiplied by --lr-decay (0: constant lr after warm-up)",
        "resume": "continue from RUN_DIR/last.pt",
        "threads": "CPU threads (1 is several times faster than 2 on a busy 2-core machine)",
    }

    def __post_init__(self) -> None:
        for name in ("width", "depth", "kernel", "train_layouts", "eval_layouts", "stride",
                     "coarsen", "max_eval", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("out_kernel", "climatology", "gap", "steps_per_epoch", "warmup_steps",
                     "lr_patience", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not (self.lr >= 0 and math.isfinite(self.lr)):  # 0 freezes the network (checks)
            raise ValueError(f"lr must be a finite number ≥ 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if any(k < 1 for k in (*self.sensors, *self.eval_sensors)):
            raise ValueError(f"sensor counts must be ≥ 1, got {self.sensors} / {self.eval_sensors}")


def seed_rng(cfg: FieldTrainConfig, stream: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, SEED_STREAMS[stream], *extra])


def make_layouts(grid: SensorGrid, counts: tuple[int, ...], n: int,
                 rng: np.random.Generator) -> list[Layout]:
    return [grid.random_layout(k, rng) for k in counts for _ in range(n)]


def protocol_layouts(cfg: FieldTrainConfig, grid: SensorGrid
                     ) -> tuple[list[Layout], list[Layout], dict[int, list[Layout]]]:
    """Training pool, validation layouts and test layouts per count of ``cfg``'s protocol.

    ``'general'``: seeded random pools; test layouts come from their own stream and exclude
    any training layout. ``'fixed'``: one layout per count, the same for all three.
    """
    eval_counts = tuple(cfg.eval_sensors) or tuple(cfg.sensors)
    if cfg.layouts not in LAYOUTS:
        raise ValueError(f"unknown layouts {cfg.layouts!r}; choose one of {LAYOUTS}")
    if cfg.layouts == "fixed":
        if set(eval_counts) - set(cfg.sensors):
            raise ValueError("with layouts='fixed' the evaluation counts must be training counts")
        fixed = {k: fixed_layout(grid, cfg, k) for k in cfg.sensors}
        return (list(fixed.values()), [fixed[k] for k in eval_counts],
                {k: [fixed[k]] for k in eval_counts})
    pool = make_layouts(grid, tuple(cfg.sensors), cfg.train_layouts, seed_rng(cfg, "train"))
    val_layouts = make_layouts(grid, eval_counts, 1, seed_rng(cfg, "val"))
    seen = {tuple(lay.sensors) for lay in pool}
    test_layouts = {k: [lay for lay in make_layouts(grid, (k,), cfg.eval_layouts,
                                                     seed_rng(cfg, "test", k))
                        if tuple(lay.sensors) not in seen] for k in eval_counts}
    return pool, val_layouts, test_layouts


def fixed_layout(grid: SensorGrid, cfg: FieldTrainConfig, k: int) -> Layout:
    """The one layout of ``k`` sensors of the fixed-layout protocol for ``cfg.seed``."""
    return grid.random_layout(k, seed_rng(cfg, "fixed", k))


def _even(data: FieldData, n: int) -> FieldData:
    return data if len(data) <= n else data.subset(np.linspace(0, len(data) - 1, n).round()
                                                   .astype(int))


def prepare(cfg: FieldTrainConfig, data: FieldData | None = None
            ) -> tuple[FieldData, FieldData, FieldData, FieldData]:
    """The field after ``stride``/``coarsen``/``climatology`` and its time-ordered
    train/val/test blocks."""
    if data is None:  # the committed copy when one is pinned (no solver run)
        data = processed_field(cfg.dataset, cfg.stride, cfg.coarsen, progress=cfg.progress)
    else:
        data = process(data, cfg.stride, cfg.coarsen)
    if cfg.climatology:
        n_train = split_sizes(len(data), tuple(cfg.split), cfg.gap)[0]
        data = remove_climatology(data, cfg.climatology, n_train)
    tr, va, te = time_split(data, tuple(cfg.split), gap=cfg.gap)  # type: ignore[arg-type]
    return data, tr, va, te


def train(cfg: FieldTrainConfig, data: FieldData | None = None) -> dict[str, Any]:
    """Run training, early stopping and the unseen-layout test; return ``metrics``."""
    with intra_op_threads(cfg.threads if cfg.device == "cpu" else None):
        return _train(cfg, data)


def _train(cfg: FieldTrainConfig, data: FieldData | None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    data, tr, va, te = prepare(cfg, data)
    va, te = _even(va, cfg.max_eval), _even(te, cfg.max_eval)
    grid = SensorGrid.from_field(data)
    rec = Reconstructor.from_training(cfg, grid, tr, data.spherical)
    pool, val_layouts, test_layouts = protocol_layouts(cfg, grid)
    opt = torch.optim.Adam(_param_groups(rec.net, cfg), lr=cfg.lr)
    base_lrs = [g["lr"] for g in opt.param_groups]  # before a resume loads the scaled ones
    run = Path(cfg.run_dir)
    state = _resume_state(cfg, rec, opt, run)
    writer = SummaryWriter(str(run), purge_step=state["epoch"] + 1)
    if state["epoch"] == 0 and not state["history"]:  # the untrained network counts too
        val = rec.evaluate(va, val_layouts)
        state["history"].append({"epoch": 0, "loss": None, **val})
        writer.add_scalar("val/rel_l2", val["rel_l2"], 0)
        state["best"] = val["rel_l2"]
        atomic_torch_save({"model": rec.net.state_dict(), "config": asdict(cfg),
                           **rec.state()}, run / "best.pt")
    _fit(cfg, rec, opt, base_lrs, tr, va, pool, val_layouts, state, writer, run)
    return _test(cfg, rec, tr, va, te, test_layouts, state, writer, run)


def _resume_state(cfg: FieldTrainConfig, rec: Reconstructor, opt: torch.optim.Optimizer,
                  run: Path) -> dict[str, Any]:
    """The training state to start from: a fresh one, or ``last.pt``'s with ``--resume``
    (same configuration only; weights and optimiser loaded into ``rec`` and ``opt``)."""
    state = {"epoch": 0, "best": math.inf, "bad_epochs": 0, "history": [], "train_time": 0.0,
             "train_images": 0, "updates": 0, "lr_scale": 1.0}
    if not (cfg.resume and (run / "last.pt").exists()):
        return state
    fix = "delete it to start over, or choose another --run-dir"
    ck = read_torch(run / "last.pt", fix, keys=("model", "optimizer", "config", "state"),
                    map_location=rec.device)
    if _identity(ck["config"]) != _identity(asdict(cfg)):
        raise ValueError(f"{run}/last.pt was written by a different config ("
                         f"{config_differences(_identity(ck['config']), _identity(asdict(cfg)))}"
                         f"); use another --run-dir or drop --resume")
    load_weights(rec.net, ck["model"], run / "last.pt", fix)
    load_weights(opt, ck["optimizer"], run / "last.pt", fix)
    return ck["state"]


def _fit(cfg: FieldTrainConfig, rec: Reconstructor, opt: torch.optim.Optimizer,
         base_lrs: list[float], tr: FieldData, va: FieldData, pool: list[Layout], val_layouts: list[Layout],
         state: dict[str, Any], writer: SummaryWriter, run: Path) -> None:
    """Epochs until ``cfg.epochs`` or early stopping; the best weights in ``best.pt``, the
    state after every epoch in ``last.pt``."""
    x_train = torch.from_numpy(tr.values).to(rec.device)
    steps = cfg.steps_per_epoch or max(1, math.ceil(len(tr) / cfg.batch_size))
    bar = tqdm(range(state["epoch"], cfg.epochs), desc=f"fields {cfg.dataset}/{cfg.inputs}",
               disable=not cfg.progress)
    fix = (f"lower --lr (now {cfg.lr}) or raise --warmup-steps; the last good checkpoint is "
           f"{run / 'last.pt'}")
    for epoch in bar:
        if state["bad_epochs"] >= cfg.patience:
            break
        rng = seed_rng(cfg, "train", 1, epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        rec.net.train()
        t0, losses = time.perf_counter(), []
        for _ in range(steps):
            idx = torch.from_numpy(rng.choice(len(tr), size=min(cfg.batch_size, len(tr)),
                                              replace=len(tr) < cfg.batch_size))
            lays = [pool[j] for j in rng.integers(len(pool), size=len(idx))]
            xb = x_train[idx.to(rec.device)]
            out = rec.net(rec.grid.inputs(xb, lays, cfg.inputs, rec.scaler))
            loss = masked_mse(out, rec.target(xb), rec.valid, rec.weight)
            check_loss(loss, f"at epoch {epoch + 1}", fix)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _set_lr(opt, base_lrs, cfg, state)
            opt.step()
            state["updates"] = state.get("updates", 0) + 1
            losses.append(loss.item())
        state["train_time"] += time.perf_counter() - t0
        state["train_images"] += steps * min(cfg.batch_size, len(tr))
        check_parameters(rec.net, f"after epoch {epoch + 1}", fix)
        _end_epoch(cfg, rec, opt, epoch, float(np.mean(losses)), rec.evaluate(va, val_layouts),
                   base_lrs[0], state, writer, run)
        bar.set_postfix(loss=f"{np.mean(losses):.4g}", val=f"{state['history'][-1]['rel_l2']:.4f}")
    bar.close()


def _end_epoch(cfg: FieldTrainConfig, rec: Reconstructor, opt: torch.optim.Optimizer,
               epoch: int, loss: float, val: dict[str, float], base_lr: float,
               state: dict[str, Any], writer: SummaryWriter, run: Path) -> None:
    """Record the epoch, keep the best weights, count epochs without improvement (lowering
    the learning rate every ``lr_patience`` of them) and write ``last.pt``."""
    state["epoch"] = epoch + 1
    state["history"].append({"epoch": epoch + 1, "loss": loss, **val})
    writer.add_scalar("train/loss", loss, epoch + 1)
    writer.add_scalar("val/rel_l2", val["rel_l2"], epoch + 1)
    writer.add_scalar("val/rmse", val["rmse"], epoch + 1)
    if val["rel_l2"] < state["best"]:
        state["best"], state["bad_epochs"], state["best_epoch"] = val["rel_l2"], 0, epoch + 1
        atomic_torch_save({"model": rec.net.state_dict(), "config": asdict(cfg),
                           **rec.state()}, run / "best.pt")
    else:
        state["bad_epochs"] += 1
        if cfg.lr_patience and state["bad_epochs"] % cfg.lr_patience == 0:
            state["lr_scale"] = state.get("lr_scale", 1.0) * cfg.lr_decay
    writer.add_scalar("train/lr", base_lr * state.get("lr_scale", 1.0), epoch + 1)
    atomic_torch_save({"model": rec.net.state_dict(), "optimizer": opt.state_dict(),
                       "config": asdict(cfg), "state": state}, run / "last.pt")


def _test(cfg: FieldTrainConfig, rec: Reconstructor, tr: FieldData, va: FieldData,
          te: FieldData, test_layouts: dict[int, list[Layout]], state: dict[str, Any],
          writer: SummaryWriter, run: Path) -> dict[str, Any]:
    """The best weights on unseen test layouts: ``metrics.json`` and the figure."""
    if (run / "best.pt").exists():
        best_fix = f"delete {run} and train again"
        best = read_torch(run / "best.pt", best_fix, keys=("model",), map_location=rec.device)
        load_weights(rec.net, best["model"], run / "best.pt", best_fix)
    test = {str(k): rec.evaluate(te, lays) for k, lays in test_layouts.items()}
    baseline = _mean_field_baseline(tr, te, rec.valid, rec.weight)
    for k, m in test.items():
        writer.add_scalar(f"test/rel_l2_k{k}", m["rel_l2"], state["epoch"])
    eval_counts = tuple(cfg.eval_sensors) or tuple(cfg.sensors)
    img = _log_figure(rec, te, test_layouts[eval_counts[0]][0], cfg, run)
    writer.add_image("test/truth_recon_error_sensors", img, state["epoch"], dataformats="HWC")
    writer.close()
    metrics = {"test": test, "mean_field_rel_l2": baseline, "best_val_rel_l2": state["best"],
               "best_epoch": state.get("best_epoch", 0),
               "updates": state.get("updates", 0), "train_time_s": state["train_time"],
               "layouts": {str(k): [lay.sensors.tolist() for lay in lays]
                           for k, lays in test_layouts.items()} if cfg.layouts == "fixed" else None,
               "epochs_run": state["epoch"],
               "train_images_per_s": state["train_images"] / max(state["train_time"], 1e-9),
               "history": state["history"], "n_snapshots": {"train": len(tr), "val": len(va),
                                                           "test": len(te)},
               "parameters": sum(p.numel() for p in rec.net.parameters())}
    result = {"config": asdict(cfg), "metrics": metrics, **provenance(cfg.seed)}
    atomic_write_json(result, run / "metrics.json")
    return result


def _set_lr(opt: torch.optim.Optimizer, base_lrs: list[float], cfg: FieldTrainConfig,
            state: dict[str, Any]) -> None:
    """Linear warm-up over ``warmup_steps`` updates, times the reduce-on-plateau scale."""
    step = state.get("updates", 0)
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    for g, lr in zip(opt.param_groups, base_lrs, strict=True):
        g["lr"] = lr * warm * state.get("lr_scale", 1.0)


def _mean_field_baseline(tr: FieldData, te: FieldData, valid: torch.Tensor,
                         weight: torch.Tensor | None = None) -> float:
    """Relative L2 error on the test block of predicting the training-mean field (no sensors)."""
    mean = torch.from_numpy(tr.values.mean(0)).to(valid.device)
    x = torch.from_numpy(te.values).to(valid.device)
    return relative_l2(mean.expand_as(x), x, valid, weight).mean().item()


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """The config entries that must match for ``--resume`` (all but device, progress, epochs)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()
            if k not in ("resume", "progress", "device", "epochs", "threads")}


def _param_groups(net: torch.nn.Module, cfg: FieldTrainConfig) -> Any:
    if cfg.norm != "revisited":
        return net.parameters()
    from models.bn import param_groups

    return param_groups(net, cfg.lr, 0.0, bn_lr_div=100.0, no_decay_norm_bias=True)


def _log_figure(rec: Reconstructor, te: FieldData, lay: Layout, cfg: FieldTrainConfig,
                run: Path) -> np.ndarray:
    rec.net.eval()
    x = torch.from_numpy(te.values[:1]).to(rec.device)
    with torch.no_grad():
        pred = rec.predict(x, lay)[0].cpu().numpy()
    return reconstruction_figure(te.values[0], pred, rec.grid.valid_np, lay.sensors,
                                 title=f"{cfg.dataset} {cfg.inputs}, {lay.k} unseen sensors",
                                 path=run / "reconstruction.png")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, _ = parse_config(FieldTrainConfig, argv, prog="python -m fields.train", doc=__doc__)
    try:
        result = train(cfg)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted; the last finished epoch is in {cfg.run_dir}/"
                                f"last.pt: continue with --resume --run-dir {cfg.run_dir}") from None
    for k, m in result["metrics"]["test"].items():
        print(f"{cfg.dataset} {cfg.inputs} K={k}: rel L2 {m['rel_l2']:.4f} "
              f"(± {m['rel_l2_layout_std']:.4f} over layouts), RMSE {m['rmse']:.4g}")
    return result


if __name__ == "__main__":
    run_cli(main, prog="python -m fields.train")
