"""``deploygym/DynamicPTQ-v0``: choose per-layer activation bit-widths for each input."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from torch import nn

from envs.ptq.config import PTQConfig, make_config
from envs.ptq.core import PTQCore
from envs.ptq.observations.extras import take_rows
from envs.ptq.render import render_frame
from envs.ptq.resources import get_resources
from models.datasets import DatasetSplits


def make_spaces(cfg: PTQConfig, core: PTQCore) -> tuple[spaces.Box, spaces.Space]:
    """Observation and action space of one episode."""
    obs = core.extras.space(core.obs_dim)
    n = len(cfg.bit_choices)
    if cfg.action_mode == "sequential":
        return obs, spaces.Discrete(n)
    if cfg.action_mode == "joint":
        return obs, spaces.MultiDiscrete(np.full(core.L, n, dtype=np.int64))
    if cfg.action_mode == "menu":
        return obs, spaces.Discrete(core.n_actions)
    return obs, spaces.Box(-1.0, 1.0, (core.L,), dtype=np.float32)


class DynamicPTQEnv(gym.Env):
    """Dynamic post-training quantization: pick activation bit-widths for one input at a time.

    ## Description
    Paper P1 (arXiv:2510.02457) shows that networks can keep their full-precision (FP)
    accuracy yet fail badly when each input's activations are quantized at bit-widths chosen
    for that input (*dynamic* PTQ). Each episode takes one example from a dataset split and a
    trained network (from the model cache, :func:`models.zoo.get_trained`); the agent chooses
    the bit-width of every quantizable layer's input activation. Activations are quantized
    uniformly and asymmetrically with a range measured on this example
    (:mod:`models.quant`). Reward ``'detrimental'`` seeks plans under which the quantized
    network fails where the FP network succeeds; ``'robust'`` seeks correct predictions with
    few bits.

    ## Action Space
    With ``n = len(bit_choices)`` (default 7: bits 2..8) and ``L`` quantizable layers
    (7 for the default CNN):

    * ``sequential`` (default): ``Discrete(n)``; step ``k`` picks ``bit_choices[a]`` for
      layer ``k``; ``L`` steps per episode.
    * ``joint``: ``MultiDiscrete([n] * L)``, the whole plan in one step.
    * ``continuous``: ``Box(-1, 1, (L,))``; value ``a`` selects choice
      ``min(floor((a + 1) / 2 · n), n - 1)`` (equal-width bins).
    * ``menu``: ``Discrete(K)``, one of the ``K`` query plans for the whole input in one step
      (needs ``observation="query"``, which reports how this input reacts to each of them).

    Invalid actions (wrong shape or dtype, NaN/inf, out of range) raise ``TypeError`` /
    ``ValueError``.

    ## Observation Space
    ``Box(-10, 10, float32)`` (a ``Dict`` with ``observation="image"``), values clipped. Per-layer features of a layer's input
    activation: ``log(1 + range)``, ``log(1 + std)``, the fraction of elements beyond 3 std
    of the mean, and ``log(range / FP range)``.

    * ``sequential`` (``4 + L + 5`` values): the 4 features of the current layer's input
      *under the bits chosen so far*; one-hot layer index; previous choice ``/ (n − 1)``;
      the mean bits the remaining layers must reach (detrimental) or may use (robust)
      ``/ max(bit_choices)``; the layer's cost weight ``· L``; FP max probability and margin
      (top-1 − top-2 probability). The terminal observation has zero layer features.
    * ``joint`` / ``continuous`` / ``menu`` (``3L + 2``): the first 3 features of every layer in FP,
      then FP max probability and margin.

    ``observation`` adds what this input is (:mod:`envs.ptq.observations.extras`):

    * ``"stats"`` (default): the above only.
    * ``"probe"``: ``3L`` more values in the same ``Box``, per layer how this input's
      prediction reacts when that layer alone is quantized at the lowest bit choice:
      ``log(1 + KL(FP‖Q_l))``, the probability lost on the FP class, and whether the class
      flips (label-free; the ``L`` variants share their common prefix, computed once per
      example and cached).
    * ``"query"``: the same three values for ``K`` whole plans within the budget instead of
      single layers (``query_plans``: ``K``, default ``L``, drawn from the budget alone; or
      the ``[K, L]`` bit-widths themselves, e.g. plans chosen on validation). A rule that
      plays it without learning is :class:`envs.ptq.baselines.QueryArgmaxAgent`: on the
      standard CNN with all 300 candidate plans of the budget it reaches 60 % of the
      per-input oracle's gain (P1 results page), at 134 FP forwards per input.
    * ``"image"``: ``Dict({"image": Box(-10, 10, (C, H, W)), "stats": <the Box above>})``,
      the network's normalised input, for ``MultiInputPolicy`` with a convolutional extractor
      such as :class:`agents.pairs.extractors.InputCNN` (``normalize_images=False``).

    ## Rewards
    Given only at the last step (0 before). The baseline is the FP network on the same input.

    * ``detrimental``: ``r_fail = 1[FP correct and quantized wrong]`` ∈ {0, 1}; with
      ``dense=True`` (default) also ``r_kl = kl_weight · min(KL(FP‖Q), kl_clip) / kl_clip``
      ∈ [0, 0.25] and ``r_drop = drop_weight · (p_FP(y) − p_Q(y))`` ∈ [−0.25, 0.25].
      Total in [−0.25, 1.5].
    * ``robust``: ``r_correct = 1[Q correct] − 1[FP correct]`` ∈ {−1, 0, 1};
      ``r_bits = −bits_weight · (cost − min bits) / (max bits − min bits)`` ∈ [−0.1, 0];
      with ``dense=True`` also ``r_kl = −kl_weight · min(KL, kl_clip) / kl_clip`` ∈ [−0.25, 0].

    **Budget.** The plan's cost is its mean bits, weighted uniformly (``budget_cost='mean'``,
    default for detrimental) or by each layer's MACs (``'macs'``, default for robust).
    Detrimental needs cost ≥ ``budget_bits`` (default 4; otherwise all-2-bit would trivially
    win), robust needs cost ≤ ``budget_bits``. It is enforced inside the env: sequential
    choices that would make the budget unreachable are moved to the nearest feasible choice,
    and joint/continuous/menu plans are repaired after the action HAQ-style (raise the lowest
    / lower the highest layer one choice at a time). ``action_masks()`` exposes the feasible
    choices for sb3-contrib's MaskablePPO (sequential; all True in joint and menu modes).

    ## Starting State
    An example drawn uniformly from ``split`` with ``self.np_random``; no layer chosen.
    ``reset(options={"index": i, "split": "test"})`` picks a specific example (evaluation).

    ## Episode End
    Terminates when all ``L`` layers have bits (``L`` steps sequential, 1 step otherwise);
    never truncated. ``info`` then holds ``fp_correct``, ``q_correct``, ``failure``,
    ``label``, ``fp_pred``, ``q_pred``, ``kl``, ``p_true_fp``, ``p_true_q``, ``bits`` (per
    layer), ``requested_bits``, ``mean_bits``, ``cost_bits``, ``budget_bits``, ``n_repaired``,
    ``index``, ``split``, every reward term and ``reward``.

    ## Arguments
    * ``dataset`` (``"fashion-mnist"``), ``arch`` (``"cnn"``) and any
      :class:`models.train.TrainConfig` field (``width``, ``epochs``, ``bn``,
      ``input_norm``, ``seed``, ...): which trained network to load from the cache (trained on
      first use). Or ``net=`` any classifier ``nn.Module`` (a :class:`models.nets.DeployNet`
      as it is, any other module wrapped by :func:`models.nets.as_deploy_net`: quantizable
      layers found by tracing, input shape and class count from the data), e.g. a network
      being trained or ``torchvision.models.resnet18``. ``data=`` the images it is evaluated
      on, in any form of :func:`models.datasets.as_splits`: ``(images, labels)`` tensors, a
      ``torch.utils.data.Dataset``, an ImageFolder folder or a ``.npz``/``.pt`` file (missing
      val/test splits: seeded stratified 10% each). ``data=`` without ``net=`` trains
      ``arch`` on that data once (cached under its content hash), never the named
      dataset's network.
    * ``split``: ``"train"`` (default), ``"val"`` or ``"test"``.
    * ``action_mode``: ``"sequential"``, ``"joint"``, ``"continuous"``, ``"menu"``.
    * ``observation``: ``"stats"`` (default), ``"probe"``, ``"query"`` or ``"image"``
      (above); ``query_plans`` (0: ``L`` plans from the budget; an int ``K``; or ``K`` plans).
    * ``reward``: ``"detrimental"`` or ``"robust"``; ``dense`` (True); ``kl_weight`` (0.25),
      ``drop_weight`` (0.25), ``kl_clip`` (5 nats), ``bits_weight`` (0.1).
    * ``bit_choices``: bit-widths from 2..8, plus 32 for full precision (default 2..8).
    * ``budget_bits`` (4.0), ``budget_cost`` (``"mean"``/``"macs"``).
    * ``zero_point`` (``"integer"``): the activation grid convention. ``"integer"``: the
      range stretched to include 0 with an integer zero point (PyTorch's); ``"float"``: the
      grid runs exactly from each example's min to its max; ``"symmetric"``: a signed grid
      scaled by max abs(x) (TensorRT-style). Detrimental pairs trained under one convention can
      lose almost nothing under another, so a result names its convention.
    * ``per_channel`` (False): activation ranges per channel; ``weight_bits`` (None):
      static symmetric per-channel weight quantization; ``fused_quant`` (None: on when a C++
      compiler is found and ``DEPLOYGYM_NO_COMPILE`` is unset): fuse the quantization
      arithmetic with ``torch.compile`` (same results up to float rounding, about 1.3× instead
      of 1.5× the FP forward; a few seconds of compilation on first use; falls back to the
      eager path with a warning if compiling fails).
    * ``prefix_reuse`` (True): in sequential mode each step continues the episode's forward
      from the activation kept at the previous step (one pass over the network per episode)
      instead of re-running the prefix; the same observations, rewards and logits.
    * ``device`` (``"cpu"``), ``cache_dir``, ``progress``, ``render_mode``
      (``None`` or ``"rgb_array"``: the input with its label/predictions and the bit plan).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, *, net: nn.Module | None = None, data: DatasetSplits | Any = None,
                 **kwargs: Any) -> None:
        self.cfg = make_config(kwargs, has_net=net is not None)
        self.render_mode = self.cfg.render_mode
        self.res = get_resources(self.cfg, net, data)
        self.core = PTQCore(self.cfg, self.res, 1)
        self.observation_space, self.action_space = make_spaces(self.cfg, self.core)
        self._ids = np.zeros(1, dtype=np.int64)
        self._needs_reset = True

    @property
    def n_layers(self) -> int:
        return self.core.L

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, infos = self.core.reset(self._ids, [self.np_random], [options])
        self._needs_reset = False
        return take_rows(obs, 0), infos[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        obs, reward, done, infos = self.core.step(action, self._ids)
        self._needs_reset = bool(done[0])
        return take_rows(obs, 0), float(reward[0]), bool(done[0]), False, infos[0]

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the choices that keep the budget reachable (sb3-contrib)."""
        return self.core.action_masks(self._ids)[0]

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        c, info = self.core, (self.core.last_info[0] if self._needs_reset else None)
        image = self.res.split(c.split[0]).images[c.idx[0]]
        return render_frame(image, c.plan[0], int(c.k[0]), self.cfg.bit_choices,
                            self.res.data.info.class_names, int(c.labels[0]),
                            int(c.fp_logits[0].argmax()), info)
