"""Fault cases about what the user types: bad input, runs that fail, non-finite options."""

from __future__ import annotations

from benchmarks.faults.common import (
    AGENT_TRAIN,
    TINY_ENV,
    TINY_PAIR,
    TINY_TRAIN,
    Case,
    cli,
    library,
    no_file,
)


def bad_input() -> dict[str, Case]:
    """Wrong flags and option values: exit 2 naming the flag or option."""
    train = AGENT_TRAIN
    return {
        "bad_n": cli([*train, "-n", "-5"], 2, "-n/--n-timesteps must be ≥ 1",
                     check=no_file("model.zip"), what="no agent saved"),
        "zero_n": cli([*train, "-n", "0"], 2, "must be ≥ 1"),
        "zero_envs": cli([*train, "--n-envs", "0"], 2, "--n-envs must be ≥ 1"),
        "fields_epochs": cli(["-m", "fields.train", "--epochs", "-1"], 2, "epochs must be ≥ 1"),
        "budget_negative": cli([*train, "--env-kwargs", *TINY_ENV, "budget_bits:-3"], 2,
                               "budget_bits"),
        "budget_text": cli([*train, "--env-kwargs", *TINY_ENV, "budget_bits:abc"], 2,
                           "budget_bits must be a number"),
        "kl_text": cli([*train, "--env-kwargs", *TINY_ENV, "kl_weight:abc"], 2,
                       "kl_weight must be a number"),
        "bool_text": cli([*train, "--env-kwargs", *TINY_ENV, "dense:abc"], 2,
                         "dense must be a boolean"),
        "unknown_env": cli([*train, "--env", "deploygym/Nope-v0"], 2, "unknown environment id"),
        "unknown_option": cli([*train, "--env-kwargs", *TINY_ENV, "colour:blue"], 2,
                              "unknown options"),
        "yaml_typo": cli([*train, "--hyperparams", "learning_rat:0.1"], 2, "learning_rat"),
        "zoo_normalize": cli([*train, "--hyperparams", "normalize:true"], 2,
                             "unsupported hyperparameter 'normalize'"),
        "missing_agent": cli([*train, "-i", "missing.zip"], 2, "no such file"),
        "resume_missing": cli(["-m", "models.train", *TINY_TRAIN, "--run-dir", "r",
                               "--resume"], 2, "no checkpoint"),
    }


def failed_runs() -> dict[str, Case]:
    """Runs that diverge: exit 1 naming the fix, no result recorded."""
    return {
        "divergence_sgd": cli(["-m", "models.train", *TINY_TRAIN, "--lr", "1000", "--run-dir",
                               "r"], 1, "lower --lr", check=no_file("metrics.json"),
                              what="no metrics.json"),
        "divergence_adam": cli(["-m", "models.train", *TINY_TRAIN, "--optimizer", "adam",
                                "--lr", "1000", "--run-dir", "r"], 1, "diverged",
                               check=no_file("metrics.json"), what="no metrics.json"),
        "agent_divergence": cli([*AGENT_TRAIN, "-n", "2048", "--eval-freq", "0", "--save-freq",
                                 "0", "--hyperparams", "learning_rate:1000", "n_steps:64",
                                 "batch_size:64"], 1, "learning_rate",
                                check=no_file("model.zip"), what="no agent saved"),
    }


def non_finite() -> dict[str, Case]:
    """NaN or ±inf where a reward or a loss would use it: refused before anything runs."""
    train = AGENT_TRAIN
    return {
        "kl_weight_inf": cli([*train, "--env-kwargs", *TINY_ENV, "kl_weight:inf"], 2,
                             "kl_weight must be a finite number"),
        "drop_weight_nan": cli([*train, "--env-kwargs", *TINY_ENV, "drop_weight:nan"], 2,
                               "drop_weight must be a finite number"),
        "budget_bits_inf": cli([*train, "--env-kwargs", *TINY_ENV, "budget_bits:inf"], 2,
                               "budget_bits must be a finite number"),
        "lr_nan": cli(["-m", "models.train", *TINY_TRAIN, "--lr", "nan", "--run-dir", "r"], 2,
                      "--lr", "finite", check=no_file("last.pt"), what="nothing trained"),
        "pair_loss_inf": cli(["-m", "agents.pairs", *TINY_PAIR, "--fp-weight", "inf", "--out",
                              "p"], 2, "--fp-weight", "finite"),
        "gym_make_inf": library(
            "import gymnasium as gym, envs\n"
            "gym.make('deploygym/DynamicPTQ-v0', dataset='digits', width=4, epochs=1,\n"
            "         progress=False, kl_weight=float('inf'))",
            "kl_weight must be a finite number",
            "gym.make(..., kl_weight=inf) raises ValueError naming kl_weight"),
    }
