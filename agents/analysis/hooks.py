"""Env-specific analyses for ``python -m agents.evaluate``, keyed by env-id prefix.

The evaluator stays generic: after its seeded episodes it asks :func:`find_hooks` for the
hooks whose prefix matches the env id and calls each one. A hook receives a
:class:`HookContext` (env id and kwargs, the agent, output folder, TensorBoard writer, seed,
device, extra options) and returns a JSON-serialisable ``dict`` that is merged into
``summary.json`` under ``"analysis"`` → hook name. Hooks write their own TensorBoard entries
(through ``ctx.writer``) and PNGs (into ``ctx.out``; list them under ``"plots"``).

Register a hook from any module under ``agents/`` and add that module to
:data:`HOOK_MODULES` so the evaluator imports it::

    from agents.analysis.hooks import register_hook

    def my_analysis(ctx):            # -> dict
        ...

    register_hook("deploygym/DistillSource", my_analysis, name="distill_schedule")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# modules that register hooks when imported (imported lazily by :func:`find_hooks`)
HOOK_MODULES: list[str] = ["agents.analysis.ptq", "agents.analysis.distill_source"]


@dataclass
class HookContext:
    """Everything an analysis hook may need.

    Attributes:
        env_id: the evaluated env id (``deploygym/DynamicPTQ-v0``, ...).
        env_kwargs: the keyword arguments the env was made with.
        agent: the evaluated agent (``predict(obs, deterministic=True)``), or ``None``.
        out: folder for PNGs and other files.
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (may be ``None``).
        seed: the evaluation seed.
        device: ``"cpu"`` / ``"cuda"``.
        options: hook options from the command line (``--hook-opts k:v``) or the caller
            (e.g. ``{"net": <network of a pair>}``).
        progress: show progress bars.
    """

    env_id: str
    env_kwargs: dict[str, Any]
    agent: Any
    out: Path
    writer: Any = None
    seed: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True


Hook = Callable[[HookContext], dict[str, Any]]
_HOOKS: list[tuple[str, str, Hook]] = []


def register_hook(prefix: str, fn: Hook, name: str | None = None) -> None:
    """Run ``fn`` for every env id starting with ``prefix`` (idempotent per ``name``)."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"hook prefix must be a non-empty env-id prefix string, got {prefix!r}")
    if not callable(fn):
        raise TypeError(f"hook for {prefix!r} must be callable, got {type(fn).__name__}")
    name = name or getattr(fn, "__name__", "hook")
    _HOOKS[:] = [h for h in _HOOKS if h[1] != name]
    _HOOKS.append((prefix, name, fn))


def _import_modules() -> None:
    for mod in HOOK_MODULES:
        importlib.import_module(mod)


def find_hooks(env_id: str) -> list[tuple[str, Hook]]:
    """``(name, hook)`` of every registered hook whose prefix starts ``env_id``."""
    _import_modules()
    return [(name, fn) for prefix, name, fn in _HOOKS if env_id.startswith(prefix)]


def run_hooks(ctx: HookContext, names: list[str] | None = None) -> dict[str, Any]:
    """Call the matching hooks (only ``names`` if given); ``{hook name: its result}``."""
    results: dict[str, Any] = {}
    for name, fn in find_hooks(ctx.env_id):
        if names is not None and name not in names:
            continue
        results[name] = fn(ctx)
    return results
