"""The static-mixture black-box baseline: seeded, scored on the env's own return, Box only."""

from __future__ import annotations

import numpy as np
import pytest

from agents.blackbox import episode_return, static_mixture_search
from envs.distill_source.env import DistillSourceEnv

SMALL = dict(sources=("target", "opengl", "noise"), pool_size=128, probe_size=64,
             stats_size=16, eval_size=100, phases=2, updates_per_phase=3, batch_size=16,
             progress=False, dataset="digits", student_width=8, student_depth=1)


def test_static_mixture_search_is_seeded_and_returns_its_best_episode(tiny_digits_net, digits):
    def make(**kw):
        return DistillSourceEnv(teacher=tiny_digits_net, data=digits, **SMALL, **kw)

    a = static_mixture_search(lambda: make(action_mode="mixture"), n_trials=4, seed=3)
    b = static_mixture_search(lambda: make(action_mode="mixture"), n_trials=4, seed=3)
    assert [h["action"] for h in a["history"]] == [h["action"] for h in b["history"]]
    assert a["n_trials"] == 4 and len(a["history"]) == 4
    assert a["best_return"] == max(h["return"] for h in a["history"])
    best = a["history"][[h["return"] for h in a["history"]].index(a["best_return"])]
    k = a["history"].index(best)
    again, info = episode_return(make(action_mode="mixture"),
                                 np.array(best["action"], dtype=np.float32), k)
    assert again == pytest.approx(a["best_return"]) and len(info["mean_weights"]) == 3
    with pytest.raises(ValueError, match="Mixture env"):
        static_mixture_search(lambda: make(), n_trials=1)


def test_a_killed_search_resumes_from_its_saved_history(tiny_digits_net, digits, tmp_path):
    def make():
        return DistillSourceEnv(teacher=tiny_digits_net, data=digits, action_mode="mixture",
                                **SMALL)

    path = tmp_path / "search.json"
    first = static_mixture_search(make, n_trials=2, seed=3, history_path=path)
    assert path.exists() and first["resumed_trials"] == 0
    more = static_mixture_search(make, n_trials=4, seed=3, history_path=path)
    assert more["resumed_trials"] == 2 and len(more["history"]) == 4
    assert more["history"][:2] == first["history"]
    # the reseeded sampler proposes new actions, not the saved ones again
    assert not {tuple(h["action"]) for h in more["history"][2:]} & {
        tuple(h["action"]) for h in first["history"]}
    # trial k still trains with episode seed k after the resume
    again, _ = episode_return(make(), np.array(more["history"][3]["action"], dtype=np.float32), 3)
    assert again == pytest.approx(more["history"][3]["return"])
    with pytest.raises(ValueError, match="another search"):
        static_mixture_search(make, n_trials=4, seed=4, history_path=path)
