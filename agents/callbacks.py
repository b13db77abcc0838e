"""Callbacks of ``agents.train``: what the environments report into TensorBoard, divergence
stops, and SB3 writers made atomic."""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from numbers import Number
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import HParam

from agents.policy_io import save_policy
from models.guards import DivergenceError, check_parameters
from models.io import follow_umask, write_error

# Keys SB3 itself puts into info dicts.
_SB3_KEYS = {"episode", "terminal_observation", "TimeLimit.truncated", "_final_info", "final_info",
             "final_obs", "action_mask"}


def numeric_items(info: dict[str, Any]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Split an info dict into scalars and arrays (lists/arrays of numbers), skipping SB3's keys."""
    scalars, arrays = {}, {}
    for k, v in info.items():
        if k in _SB3_KEYS:
            continue
        if isinstance(v, bool | np.bool_ | Number | np.number):
            scalars[k] = float(v)
        elif isinstance(v, list | tuple | np.ndarray) and len(v) and np.issubdtype(
                np.asarray(v).dtype, np.number):
            arrays[k] = np.asarray(v, dtype=np.float64).ravel()
    return scalars, arrays


class EpisodeInfoCallback(BaseCallback):
    """At every episode end, collect each numeric ``info`` entry; at each log step, write the
    scalars' means as ``info/<key>`` and histograms of the arrays (e.g. per-layer ``bits``) and of
    the actions as ``hist/<key>``."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._scalars: dict[str, list[float]] = defaultdict(list)
        self._arrays: dict[str, list[np.ndarray]] = defaultdict(list)
        self._actions: list[np.ndarray] = []

    def _on_step(self) -> bool:
        self._actions.append(np.asarray(self.locals["actions"]).ravel())
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if not done:
                continue
            scalars, arrays = numeric_items(info)
            for k, v in scalars.items():
                self._scalars[k].append(v)
            for k, v in arrays.items():
                self._arrays[k].append(v)
        return True

    def _on_rollout_end(self) -> None:
        for k, vals in self._scalars.items():
            self.logger.record(f"info/{k}", float(np.mean(vals)))
        hist_only = ("stdout", "log", "json", "csv")
        for k, vals in self._arrays.items():
            self.logger.record(f"hist/{k}", torch.as_tensor(np.concatenate(vals)), exclude=hist_only)
        if self._actions:
            self.logger.record("hist/actions", torch.as_tensor(np.concatenate(self._actions)),
                               exclude=hist_only)
        self._scalars.clear()
        self._arrays.clear()
        self._actions.clear()


class HParamCallback(BaseCallback):
    """Write the run's hyperparameters to TensorBoard's HParams tab once, at the start."""

    def __init__(self, hparams: dict[str, Any], metrics: tuple[str, ...] = ("rollout/ep_rew_mean",)) -> None:
        super().__init__()
        self.hparams = {k: v if isinstance(v, int | float | str | bool) else str(v)
                        for k, v in hparams.items()}
        self.metrics = metrics

    def _on_training_start(self) -> None:
        self.logger.record("hparams", HParam(self.hparams, {m: 0.0 for m in self.metrics}),
                           exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


class DivergenceCallback(BaseCallback):
    """Stop training with :class:`models.guards.DivergenceError` /
    :class:`~models.guards.NonFiniteLossError` when the policy's parameters become NaN/inf
    or a training loss SB3 logged is non-finite or above ``max_loss`` — instead of saving a
    collapsed policy as the result. Checked at every rollout start, i.e. after each update.

    Args:
        max_loss: largest believable absolute value of any ``train/*loss`` (the deploygym
            rewards are bounded, so a value loss of 1e6 means the critic blew up).
        checkpoint: the file the last good model is saved to (named in the message if it
            exists).
    """

    def __init__(self, max_loss: float = 1e6, checkpoint: str | Path | None = None) -> None:
        super().__init__()
        self.max_loss, self.checkpoint = float(max_loss), checkpoint

    def _fix(self) -> str:
        lr = getattr(self.model, "learning_rate", "?")
        kept = (f"the last good checkpoint is {self.checkpoint}"
                if self.checkpoint and Path(self.checkpoint).exists()
                else "no checkpoint was written before it")
        return f"lower learning_rate (now {lr}) with --hyperparams learning_rate:<smaller>; {kept}"

    def _on_rollout_start(self) -> None:
        check_parameters(self.model.policy, f"after {self.num_timesteps} steps", self._fix())
        for key, v in self.model.logger.name_to_value.items():
            if key.startswith("train/") and key.endswith("loss"):
                if not np.isfinite(v) or abs(v) > self.max_loss:
                    raise DivergenceError(f"training diverged after {self.num_timesteps} steps: "
                                          f"{key} = {v:.3g} (limit {self.max_loss:g}); "
                                          f"{self._fix()}")

    def _on_step(self) -> bool:
        return True


def atomic_save_model(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` into a temporary file next to ``path``, then rename it over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".zip", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from e
    follow_umask(fd)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as e:  # a full disk, permissions: WriteError naming the file
        raise write_error(path, e) from e
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_eval_callback(base: type[EvalCallback]) -> type[EvalCallback]:
    """``base`` (SB3's ``EvalCallback`` or sb3-contrib's ``MaskableEvalCallback``) writing
    ``eval/evaluations.npz``, ``best_model.zip`` and the pickle-free ``best/`` atomically, and
    continuing the history and the best score of an earlier process of the run (``-i``): a
    worse model never replaces the best one, and the evaluation curve keeps its earlier
    points."""

    class AtomicEval(base):  # type: ignore[valid-type, misc]
        def __init__(self, eval_env: Any, run_folder: str | Path, algo: str,
                     **kwargs: Any) -> None:
            folder = Path(run_folder)
            self.algo = algo
            (folder / "eval").mkdir(parents=True, exist_ok=True)
            super().__init__(eval_env, log_path=str(folder / "eval"), best_model_save_path=None,
                             **kwargs)
            self.final_npz = folder / "eval" / "evaluations.npz"
            self.log_path = str(folder / "eval" / ".evaluations.partial")  # np.savez adds .npz
            self.best_path = folder / "best_model.zip"
            self.best_folder = folder / "best"
            if self.final_npz.exists():
                with np.load(self.final_npz) as d:
                    self.evaluations_timesteps = d["timesteps"].tolist()
                    self.evaluations_results = d["results"].tolist()
                    self.evaluations_length = d["ep_lengths"].tolist()
                if self.evaluations_results:
                    self.best_mean_reward = max(float(np.mean(r))
                                                for r in self.evaluations_results)

        def _on_step(self) -> bool:
            n, best = len(self.evaluations_results), self.best_mean_reward
            go_on = super()._on_step()
            if len(self.evaluations_results) > n:
                partial = Path(self.log_path + ".npz")
                with open(partial, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(partial, self.final_npz)
            if self.best_mean_reward > best:
                atomic_save_model(self.model, self.best_path)
                save_policy(self.model, self.algo, self.best_folder)
            return go_on

    AtomicEval.__name__ = AtomicEval.__qualname__ = f"Atomic{base.__name__}"
    return AtomicEval
