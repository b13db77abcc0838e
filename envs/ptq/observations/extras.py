"""What a DynamicPTQ agent sees: the ``observation`` option.

* ``"stats"`` (default): a ``Box`` of FP activation statistics and FP confidence
  (:meth:`envs.ptq.core.PTQCore.observe`); nothing about the input itself.
* ``"probe"``: the same ``Box`` with ``3L`` more values, how *this* input's prediction reacts
  when each layer alone is quantized at the lowest bit choice (:mod:`envs.ptq.observations.probe`).
* ``"query"``: the same ``Box`` with ``3K`` more values (``K = query_plans``, default ``L``;
  or the ``K`` plans given as ``query_plans`` themselves),
  how this input's prediction reacts to each of ``K`` whole plans that meet the budget
  (:func:`query_plans`): the same compute per input as the probe, spent on plans the agent
  could actually choose.
* ``"image"``: a ``Dict`` with ``"stats"`` (the default ``Box``) and ``"image"``, the
  network's normalised input ``[C, H, W]`` (float32, clipped to ±10), for a policy with a
  convolutional feature extractor (SB3 ``MultiInputPolicy``;
  :class:`agents.pairs.extractors.InputCNN`).

:class:`ObservationExtras` holds the per-episode part (probe values or the image), filled at
reset, and turns the core's ``Box`` rows into the option's observation. The helpers
:func:`take_rows`, :func:`put_rows` and :func:`copy_obs` index batches of either form.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.ptq.budget import Budget
from envs.ptq.config import PTQConfig
from envs.ptq.observations.probe import N_FEATURES, layer_plans, probe_features
from envs.ptq.resources import PTQResources

OBS_CLIP = 10.0
Obs = np.ndarray | dict[str, np.ndarray]


def query_plans(budget: Budget, n_layers: int, k: int) -> np.ndarray:
    """The ``query`` observation's ``k`` plans ``[k, L]``: from the budget alone (seed 0), the
    uniform plan at the budget and random plans on its frontier (detrimental), or the
    uniform plans that fit and random plans spending it (robust)."""
    from envs.ptq.oracle import candidate_plans, robust_candidates

    pick = candidate_plans if budget.kind == "min" else robust_candidates
    return pick(budget, n_layers, n=k, seed=0)


def given_plans(plans: tuple[tuple[int, ...], ...], bit_choices: tuple[int, ...],
                n_layers: int) -> np.ndarray:
    """A caller's query plans ``[K, L]``, checked against the network and the bit choices."""
    arr = np.asarray(plans, dtype=np.int64)
    if arr.shape[1] != n_layers:
        raise ValueError(f"query_plans: each plan needs one bit-width per quantized layer "
                         f"({n_layers}), got {arr.shape[1]}")
    bad = sorted(set(arr.ravel().tolist()) - set(int(b) for b in bit_choices))
    if bad:
        raise ValueError(f"query_plans: bit-widths {bad} are not in bit_choices "
                         f"{tuple(bit_choices)}")
    return arr


class ObservationExtras:
    """The per-episode inputs of the ``probe`` / ``query`` / ``image`` observations of ``n``
    episodes."""

    def __init__(self, cfg: PTQConfig, res: PTQResources, n: int, n_layers: int,
                 budget: Budget) -> None:
        self.kind, self.res, self.L = cfg.observation, res, n_layers
        self.plans = np.zeros((0, n_layers), dtype=np.int64)
        if self.kind == "probe":
            self.plans = layer_plans(n_layers, min(cfg.bit_choices))
        elif self.kind == "query":
            self.plans = given_plans(cfg.query_plans, cfg.bit_choices, n_layers) \
                if isinstance(cfg.query_plans, tuple) \
                else query_plans(budget, n_layers, cfg.query_plans or n_layers)
        info = res.data.info
        self.image_shape = (info.in_channels, *info.image_size)
        self.probe = np.zeros((n, N_FEATURES * len(self.plans)), dtype=np.float32)
        self.image = (np.zeros((n, *self.image_shape), dtype=np.float32)
                      if self.kind == "image" else None)

    @property
    def flat_dim(self) -> int:
        """Values this option adds to the ``Box`` part."""
        return N_FEATURES * len(self.plans)

    def space(self, box_dim: int) -> spaces.Space:
        """The observation space, given the ``Box`` part's size (extras included)."""
        box = spaces.Box(-OBS_CLIP, OBS_CLIP, (box_dim,), dtype=np.float32)
        if self.kind != "image":
            return box
        image = spaces.Box(-OBS_CLIP, OBS_CLIP, self.image_shape, dtype=np.float32)
        return spaces.Dict({"image": image, "stats": box})

    def fill(self, rows: np.ndarray, split: str, idx: np.ndarray) -> None:
        """Episodes ``rows`` now show examples ``idx`` of ``split``."""
        if len(self.plans):
            p = self.res.probe(split, idx, self.plans)
            self.probe[rows] = p.reshape(len(rows), -1).float().cpu().numpy()
        elif self.kind == "image":
            x = self.res.split(split).images[torch.as_tensor(idx)]
            self.image[rows] = x.float().cpu().numpy()

    def fill_inputs(self, x: torch.Tensor, fp_logits: torch.Tensor) -> None:
        """Episodes ``0..len(x)-1`` show the inputs ``x`` themselves (no dataset index)."""
        if len(self.plans):
            p = probe_features(self.res.qnet, x, fp_logits, self.plans)
            self.probe[: len(x)] = p.reshape(len(x), -1).float().cpu().numpy()
        elif self.kind == "image":
            self.image[: len(x)] = x.detach().float().cpu().numpy()

    def present(self, ids: np.ndarray, box: np.ndarray) -> Obs:
        """The observation of episodes ``ids`` whose core ``Box`` part (without extras) is
        ``box``."""
        if len(self.plans):
            box = np.concatenate((box, self.probe[ids]), axis=1)
        box = np.clip(box, -OBS_CLIP, OBS_CLIP).astype(np.float32)
        if self.kind != "image":
            return box
        return {"image": np.clip(self.image[ids], -OBS_CLIP, OBS_CLIP), "stats": box}


def take_rows(obs: Any, rows: Any) -> Any:
    """Rows (or one row) of a batch of observations, array or dict of arrays."""
    if isinstance(obs, dict):
        return {k: v[rows] for k, v in obs.items()}
    return obs[rows]


def put_rows(obs: Any, rows: Any, new: Any) -> None:
    """Write ``new`` into rows ``rows`` of ``obs`` in place."""
    if isinstance(obs, dict):
        for k, v in obs.items():
            v[rows] = new[k]
    else:
        obs[rows] = new


def copy_obs(obs: Any) -> Any:
    """A copy of a batch of observations."""
    if isinstance(obs, dict):
        return {k: v.copy() for k, v in obs.items()}
    return obs.copy()
