"""Every registered id: Gymnasium's and SB3's env checkers pass, and it renders a frame."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from fields.flow.cylinder import CylinderConfig, load_cylinder
from fields.netcdf import load_ferret
from fields.pretrained import get_reconstructor

ALL_IDS = envs.ALL_IDS
PTQ_KW = dict(dataset="digits", width=4, epochs=8, progress=False)
KD_KW = dict(pool_size=256, probe_size=96, stats_size=32, eval_size=300, phases=3,
             updates_per_phase=3, batch_size=32, attack_images=8, progress=False,
             student_width=8, student_depth=1)
FIELD_TINY = {"width": 4, "depth": 2, "kernel": 3, "out_kernel": 3, "epochs": 1,
              "steps_per_epoch": 2, "batch_size": 4, "sensors": (1, 5, 8), "train_layouts": 3,
              "eval_layouts": 1, "max_eval": 2}
# A small simulated wake (the default one takes minutes to simulate on first use).
CYLINDER = CylinderConfig(nx=48, ny=32, diameter=6.0, center_x=14.0, warmup_steps=40,
                          sample_every=5, n_snapshots=30)


def test_every_deploygym_id_is_listed():
    registered = {i for i in gym.registry if i.startswith("deploygym/")}
    assert registered == set(ALL_IDS) and len(ALL_IDS) == len(set(ALL_IDS))


@pytest.fixture(scope="module")
def reconstructors(tmp_path_factory):
    cache = tmp_path_factory.mktemp("registry-fields")
    made = {}

    def get(dataset: str):
        if dataset not in made:
            data = (load_cylinder(CYLINDER, compile=False, progress=False) if dataset == "cylinder"
                    else load_ferret(dataset))
            made[dataset] = get_reconstructor(dataset, cache_root=cache, progress=False,
                                              data=data, **FIELD_TINY)
        return made[dataset]
    return get


def _kwargs(env_id: str, request) -> dict:
    spec = gym.spec(env_id)
    if env_id in envs.PTQ_IDS:
        return PTQ_KW
    if env_id in envs.DISTILL_SOURCE_IDS:
        free = spec.kwargs.get("probe") == "sources"
        return {"teacher": request.getfixturevalue("tiny_digits_net"),
                "data": request.getfixturevalue("digits"), "dataset": "digits",
                "sources": ("opengl", "leaves", "noise") if free else ("target", "opengl", "noise"),
                **KD_KW}
    dataset = spec.kwargs.get("dataset", "cylinder")
    return {"pretrained": request.getfixturevalue("reconstructors")(dataset), "batch": 2,
            "progress": False}


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_checkers_pass_on_every_registered_id(env_id, request):
    env = gym.make(env_id, render_mode="rgb_array", **_kwargs(env_id, request)).unwrapped
    check_env(env)   # includes the determinism of step infos for the same seed and actions
    sb3_check_env(env, warn=True)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.close()


def test_registering_again_after_importing_envs_registry():
    """``envs.registry`` (our module) must not shadow Gymnasium's registry inside ``envs``:
    importing the submodule sets the package attribute of the same name."""
    import subprocess
    import sys

    code = ("import envs, envs.registry; envs.register_ptq(); "
            "assert envs.register_distill_source() == envs.DISTILL_SOURCE_IDS")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
