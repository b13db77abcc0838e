"""``deploygym/DistillSource-v0``: choose, phase by phase, the data a student distils from."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from envs.distill_source.actions import Decision, decode_action, make_action_space
from envs.distill_source.config import AUGMENT_LEVELS, make_config
from envs.distill_source.costs import phase_cost_s, source_costs
from envs.distill_source.phase import PhaseRunner, PhaseTimes, ProbeResult, build_student, probe
from envs.distill_source.render import render_frame
from envs.distill_source.resources import get_resources
from envs.distill_source.teacher import check_classifier, student_builder
from models.datasets import DatasetSplits, as_splits
from models.device import intra_op_threads

OBS_CLIP = 10.0


class DistillSourceEnv(gym.Env):
    """Knowledge distillation as a sequence of data choices.

    ## Description
    Papers P2 (arXiv:2411.12817) and P4 (arXiv:2310.13782) ask which *transfer set* a student
    should be distilled from when the teacher's training data is missing: other real images,
    OpenGL shader images, dead leaves, fractals, noise. Here an agent decides it online. An
    episode is a short distillation run of ``phases`` phases from a freshly initialised
    student (seeded); at each step the agent picks the data of the next phase — one source,
    or a mixture — and the env runs ``updates_per_phase`` KD updates
    (``T²·KL(teacher‖student)``, Adam) on batches from it. Every source is a fixed pool of
    ``pool_size`` images whose teacher logits are cached on disk (:mod:`distill.logits`), so
    a phase costs only student updates unless augmentation or mixup makes the teacher label
    new images.

    ## Action Space
    ``S = len(sources)`` (default 6: digits, photos, opengl, leaves, fractals, noise).

    * ``action_mode="discrete"`` (default): ``Discrete(S)``, the source of the next phase.
      With ``control_augment`` / ``control_attack`` it becomes ``MultiDiscrete([S, 3, 2])``
      (augmentation level none / standard / heavy, then attack off / on; either may be absent).
    * ``action_mode="mixture"``: ``Box(-1, 1, (S [+1] [+1],))``; mixture weights
      ``softmax(4·a[:S])``; the optional augmentation dimension is cut into 3 equal bins,
      the optional attack dimension is on when > 0.

    With the attack on, half of each source's share of a batch comes from its *boundary
    pool* (adversarial samples near the teacher's decision boundaries, P2's bold-driver
    attack, :mod:`distill.attack`). Invalid actions raise ``TypeError`` / ``ValueError``.

    ## Observation Space
    ``Box(-10, 10, (4 + C + 5S [+2],), float32)``, ``C`` classes:

    * phase index ``/ phases`` and budget left ``(phases − phase) / phases``;
    * the student's agreement with the teacher on the probe set and ``log(1 + KD loss)``;
    * agreement per teacher-predicted class on the probe (``C`` values);
    * per source (``5S``, grouped by statistic), measured on ``stats_size`` images of its
      pool with the *current* student, so they move as it learns: the relative entropy of
      the student's predicted classes, ``log(1 + KD loss)``, the student's agreement with
      the teacher; then its *recent gain* (EMA of the phase gains in probe agreement,
      credited by its weight, × 10) and its share of the phases so far. (The teacher's own
      balance on each pool never changes within a run; it is in ``env.relative_entropy``.)
    * with ``control_augment`` / ``control_attack``: the last augmentation level ``/ 2`` and
      the last attack flag.

    ## Rewards
    ``reward_scale · (m_after − m_before)`` where ``m`` is measured on the held-out probe:
    the student's agreement with the teacher (``reward="agreement"``), its *class-balanced*
    agreement — the mean over the teacher's predicted classes of the per-class agreement
    (``"balanced_agreement"``) — or its accuracy on the labelled target probe
    (``"accuracy"``). The baseline is the student before the phase, so the return
    telescopes to ``reward_scale · (m_final − m_initial)``. With ``compute_cost = c > 0``
    every step also loses ``c · data_cost_s``: the seconds the phase's images (and their
    augmentation) take to generate on the reference machine, from a fixed per-source table
    (:mod:`envs.distill_source.costs`; OpenGL renders vs stored images vs dead leaves, ...).

    * ``probe="target"`` (default): ``probe_size`` images of the target *validation* split;
      default reward ``"agreement"``.
    * ``probe="sources"`` (data-free): ``probe_size`` images evenly from every source, drawn
      with another seed than the pools, so no target image is ever seen; default reward
      ``"balanced_agreement"``. Plain agreement on the source mix is a hackable proxy: the
      teacher labels most noise/leaves/fractals images with one or two classes, so a
      student that predicts those classes everywhere scores well there. With plain agreement
      (and the former 10-update phases, unbalanced pools) PPO learned to distil from noise
      for 9 of 10 phases (student at chance on the target,
      ``benchmarks/results/kd_source_policy_plain_agreement.json``); the balanced metric gives such
      students about ``1/C`` per class.

    ## Starting State
    A student (``student_arch`` ``cnn``, width ``student_width``, depth ``student_depth``;
    about 41k parameters by default, the ``kd_sources`` student) initialised from a seed drawn with ``self.np_random``;
    the same generator draws every batch, so the same seed and actions give the same episode.

    ## Episode End
    Terminates after ``phases`` steps; never truncated. ``info`` at every step holds
    ``phase``, ``source`` (index of the largest weight), ``source_name``, ``weights``,
    ``augment`` (level index), ``attack``, ``gain``, ``probe_agreement``, ``probe_loss``,
    ``probe_accuracy`` (target probe only), ``kd_loss``, ``data_cost_s`` and, only with ``record_timings=True``,
    the wall-clock ``time_phase`` and its parts ``time_data``, ``time_teacher``,
    ``time_update``, ``time_eval`` (seconds; they differ between identical runs, so they are
    off by default and ``info`` stays deterministic for Gymnasium's ``check_env``; the last
    step's timings are always in ``env.last_times``). ``target_agreement`` /
    ``target_accuracy`` (student vs teacher / labels on ``eval_size`` images of the target
    *test* split: reported, never observed or rewarded) come at the end, or at every step
    with ``eval_every_phase``. At the end also ``schedule`` (source per phase),
    ``mean_weights``, ``initial_probe_agreement``, ``final_accuracy``, ``final_agreement``,
    ``teacher_accuracy``, ``episode_data_cost_s``. ``teacher_sha256`` (the sha256 of the
    teacher's weights, :func:`models.cache.state_dict_sha256`) is in the first and the last
    ``info``.

    ## Arguments
    * ``dataset`` (``"fashion-mnist"``), ``teacher_arch`` (``"cnn"``) and any
      :class:`models.train.TrainConfig` field: the teacher. Fashion-MNIST/CNN has a pinned
      teacher (committed weights, :mod:`envs.distill_source.teacher`), the same on every
      machine; other pairs, or teacher options, use :func:`models.zoo.get_trained` (trained
      on first use) unless pinned with those options (``seed: 1``, the held-out teacher of
      ``benchmarks/kd_source_policy.py``). Or ``teacher=`` any ``nn.Module`` mapping images
      ``[N, C, H, W]`` in ``[0, 1]`` to logits ``[N, K]``, and ``data=`` its data: a
      :class:`models.datasets.DatasetSplits` or anything :func:`models.datasets.as_splits`
      takes (``(images, labels)``, a ``Dataset``, an ImageFolder or ``.npz``/``.pt`` path),
      else the ``dataset`` named; the ``target`` source, the probe and the evaluation read
      ``data``. Names shared by both (``lr``,
      ``batch_size``) are the student's here.
    * ``teacher_sha256`` (``"pinned"``): the default teacher whose weights differ from the
      pinned ones is refused (``TeacherMismatchError`` naming the fix); ``None`` accepts any
      teacher, a 64-digit sha256 pins another (also a ``teacher=`` one, which is otherwise
      not compared, only recorded). Teacher options select another teacher: checked against
      its own pinned entry if there is one, else not checked.
    * ``student``: an architecture name (same as ``student_arch``) or a builder, a callable
      returning a fresh ``nn.Module``, called under the episode's seed with whichever of
      ``num_classes``, ``in_channels``, ``image_size``, ``input_shape`` it names.
      A teacher or student that does not map the data's images to ``[N, K]`` logits is one
      ``ValueError``.
    * ``sources``: names from :func:`distill.sources.list_sources` (≥ 2), including those
      added with :func:`distill.sources.register_source`. Unknown names raise
      ``ValueError``; a source without data or without EGL raises ``SourceUnavailableError``.
    * ``probe`` (``"target"`` / ``"sources"``), ``reward`` (``None``: by probe, see Rewards;
      ``"agreement"``, ``"balanced_agreement"``, ``"accuracy"``), ``reward_scale`` (10),
      ``compute_cost`` (0: reward per second of image generation) and ``source_cost_ms``
      (``None``: the measured table; a dict overrides sources' ms per image).
    * ``action_mode`` (``"discrete"`` / ``"mixture"``), ``control_augment``,
      ``control_attack`` (False); fixed ``augment`` level (``"heavy"``) and ``attack`` (False)
      when not controlled; ``mixup_alpha`` (0).
    * ``phases`` (10), ``updates_per_phase`` (300), ``batch_size`` (64), ``lr`` (0.01),
      ``temperature`` (4).
    * ``student_arch`` (``"cnn"``), ``student_width`` (12), ``student_depth`` (2). These defaults come
      from ``benchmarks/kd_source_plateau.py`` (3000 updates, surrogate sources): the former
      6.3k-parameter default reaches 12–50 % without augmentation and 29–61 % with heavy
      augmentation; this one with heavy augmentation 67–79 %, still rising 1–5 points (noise 13)
      in the last quarter. An episode costs ~105 s on one core (``student_width=8,
      student_depth=1, augment="none"``, the former default, is ~4× cheaper per update).
    * ``pool_size`` (4096), ``probe_size`` (512), ``stats_size`` (32), ``eval_size`` (2000),
      ``eval_every_phase`` (False), ``attack_images`` (128 attacked images per source),
      ``balanced`` (True: P2's class-balanced filtering of each pool), ``pool_seed`` (0),
      ``gain_decay`` (0.5).
    * ``threads`` (1): intra-op torch threads while the env works (0: leave torch's
      setting); ``record_timings`` (False).
    * ``device`` (``"cpu"``), ``cache_dir``, ``progress``, ``render_mode``
      (``None`` / ``"rgb_array"``: sample images of the chosen source, the weights and the
      agreement curve).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, *, teacher: nn.Module | None = None, data: DatasetSplits | Any = None,
                 student: str | Callable[..., nn.Module] | None = None, **kwargs: Any) -> None:
        self.student_builder = None
        if isinstance(student, str):
            if "student_arch" in kwargs:
                raise ValueError("pass either student= or student_arch=, not both")
            kwargs["student_arch"] = student
        elif student is not None:
            self.student_builder = student_builder(student)
        self.cfg = make_config(kwargs, has_teacher=teacher is not None)
        data = as_splits(data) if data is not None else None
        self.render_mode = self.cfg.render_mode
        with intra_op_threads(self.cfg.threads):
            self.res = get_resources(self.cfg, teacher, data)
            shape, c = self.res.image_shape, self.res.num_classes
            check_classifier(build_student(self.cfg, self.res, 0, self.student_builder),
                             "student", shape, c, self.cfg.device)
        self.source_names = self.cfg.sources
        c, s = self.res.num_classes, self.cfg.n_sources
        self.n_control = int(self.cfg.control_augment) + int(self.cfg.control_attack)
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, (4 + c + 5 * s + 2 * bool(
            self.n_control),), dtype=np.float32)
        self.action_space = make_action_space(self.cfg)
        self.cost_ms = source_costs(self.cfg.sources, self.cfg.source_cost_ms)
        self.relative_entropy = np.array([p.relative_entropy for p in self.res.pools])
        self.teacher_accuracy = float(
            (self.res.eval_logits.argmax(1) == self.res.eval_labels).float().mean())
        self._runner: PhaseRunner | None = None
        self._needs_reset = True

    # --- evaluation ---------------------------------------------------------------------
    def _probe(self) -> ProbeResult:
        r = self.res
        return probe(self._runner.student, r.probe_images, r.probe_logits, r.num_classes,
                     self.cfg.temperature, r.probe_labels)

    def _metric(self, p: ProbeResult) -> float:
        if self.cfg.reward == "accuracy":
            return p.accuracy
        return p.balanced if self.cfg.reward == "balanced_agreement" else p.agreement

    def _source_stats(self) -> np.ndarray:
        """``[3, S]``: student prediction entropy, log(1 + KD loss), agreement per source."""
        r, n = self.res, self.cfg.stats_size
        res = [probe(self._runner.student, p.images[:n], p.logits[:n], r.num_classes,
                     self.cfg.temperature) for p in r.pools]
        return np.array([[x.student_entropy for x in res], [np.log1p(x.loss) for x in res],
                         [x.agreement for x in res]])

    def _target(self) -> ProbeResult:
        r = self.res
        return probe(self._runner.student, r.eval_images, r.eval_logits, r.num_classes,
                     self.cfg.temperature, r.eval_labels)

    def _obs(self) -> np.ndarray:
        cfg, p = self.cfg, self._last_probe
        parts = [[self._phase / cfg.phases, (cfg.phases - self._phase) / cfg.phases,
                  p.agreement, np.log1p(p.loss)], p.per_class, self._src_stats,
                 10.0 * self._recent_gain, self._usage / max(self._phase, 1)]
        if self.n_control:
            parts.append([AUGMENT_LEVELS.index(self._last.augment) / 2 if self._last else 0.0,
                          float(self._last.attack) if self._last else 0.0])
        obs = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in parts])
        return np.clip(obs, -OBS_CLIP, OBS_CLIP).astype(np.float32)

    # --- Gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        with intra_op_threads(self.cfg.threads):
            return self._reset()

    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        student_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._runner = PhaseRunner(self.cfg, self.res, student_seed, self.student_builder)
        s = self.cfg.n_sources
        self._phase = 0
        self._recent_gain = np.zeros(s)
        self._usage = np.zeros(s)
        self._last: Decision | None = None
        self._schedule: list[int] = []
        self._data_cost = 0.0
        self._last_probe = self._probe()
        self._initial = self._last_probe.agreement
        self._src_stats = self._source_stats()
        self._curve = [self._last_probe.agreement]
        self._needs_reset = False
        info = {"phase": 0, "probe_agreement": self._last_probe.agreement,
                "student_seed": student_seed, "teacher_accuracy": self.teacher_accuracy,
                "teacher_sha256": self.res.teacher_sha256}
        return self._obs(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        d = decode_action(action, self.cfg)
        with intra_op_threads(self.cfg.threads):
            return self._step(d)

    def _step(self, d: Decision) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        before = self._metric(self._last_probe)
        t0 = time.perf_counter()
        kd, times = self._runner.run(d.weights, d.augment, d.attack)
        return self._after_phase(d, before, kd, times, time.perf_counter() - t0)

    def _after_phase(self, d: Decision, before: float, kd: float, times: PhaseTimes,
                     t_phase: float) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Probe the student after a phase; the step's observation, reward and info."""
        t1 = time.perf_counter()
        self._last_probe = self._probe()
        self._src_stats = self._source_stats()
        done = self._phase + 1 >= self.cfg.phases
        target = self._target() if done or self.cfg.eval_every_phase else None
        t_eval = time.perf_counter() - t1
        gain = self._metric(self._last_probe) - before
        w = d.weights
        self._recent_gain += (1 - self.cfg.gain_decay) * w * (gain - self._recent_gain)
        self._usage += w
        self._phase += 1
        self._last = d
        self._schedule.append(d.source)
        self._curve.append(self._last_probe.agreement)
        self._needs_reset = done
        cost = phase_cost_s(w, self.cost_ms, d.augment,
                            self.cfg.updates_per_phase * self.cfg.batch_size)
        self._data_cost += cost
        reward = self.cfg.reward_scale * gain - self.cfg.compute_cost * cost
        info: dict[str, Any] = {
            "phase": self._phase, "source": d.source, "source_name": self.source_names[d.source],
            "weights": w.copy(), "augment": AUGMENT_LEVELS.index(d.augment),
            "attack": int(d.attack), "gain": gain, "probe_agreement": self._last_probe.agreement,
            "probe_loss": self._last_probe.loss,
            "probe_balanced_agreement": self._last_probe.balanced, "kd_loss": kd,
            "data_cost_s": cost}
        self.last_times = {"time_phase": t_phase + t_eval, "time_data": times.data,
                           "time_teacher": times.teacher, "time_update": times.update,
                           "time_eval": t_eval}
        if self.cfg.record_timings:
            info.update(self.last_times)
        if self._last_probe.accuracy is not None:
            info["probe_accuracy"] = self._last_probe.accuracy
        if target is not None:
            info.update({"target_agreement": target.agreement, "target_accuracy": target.accuracy})
        if done:
            info.update({"schedule": np.array(self._schedule), "mean_weights": self._usage / self._phase,
                         "initial_probe_agreement": self._initial,
                         "final_accuracy": target.accuracy,
                         "final_agreement": target.agreement,
                         "teacher_accuracy": self.teacher_accuracy,
                         "teacher_sha256": self.res.teacher_sha256,
                         "episode_data_cost_s": self._data_cost})
        return self._obs(), float(reward), done, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._runner is None:
            raise RuntimeError("call reset() before render()")
        names = self.source_names
        if self._last is None or self._runner.last_batch is None:  # before the first phase
            per = max(1, 32 // len(names))
            images = torch.cat([p.images[:per] for p in self.res.pools])[:32]
            title, weights = "sources: " + ", ".join(names), None
        else:
            order = torch.argsort(self._runner.last_sources, stable=True)[:32]
            images = self._runner.last_batch[order]
            d = self._last
            top = np.argsort(-d.weights)[:2]
            mix = " + ".join(f"{names[i]} {d.weights[i]:.2f}" for i in top if d.weights[i] > 0.01)
            title = (f"phase {self._phase}/{self.cfg.phases}: {mix}\naugment {d.augment}, "
                     f"attack {'on' if d.attack else 'off'}")
            weights = d.weights
        return render_frame(images, title, names, weights, self._curve, self.cfg.phases)
