"""The DistillSource env's networks: the pinned teachers and the check that the default teacher
is the expected one, the shape check of any teacher or student, and user student builders.

The env distils from a committed network (:mod:`models.zoo`, e.g. ``fashion-mnist/cnn``)
so every machine uses the same teacher, and refuses a teacher whose weights differ from the
pinned ones unless told otherwise (``teacher_sha256=None``, or the other teacher's own
checksum). A teacher with options (e.g. the held-out ``seed: 1`` teacher of
``benchmarks/kd_source_policy.py``) is pinned under ``<dataset>/<arch>?<options>``. Re-pin
with ``python -m models.zoo [--kw seed:1]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from models.cache import state_dict_sha256 as weights_sha256
from models.zoo import load_pinned, pin_key, pinned_entry

__all__ = ["TeacherMismatchError", "check_classifier", "check_teacher", "load_pinned",
           "pinned_entry", "student_builder", "weights_sha256"]
# what a student builder may ask for, by keyword
BUILDER_ARGS = ("num_classes", "in_channels", "image_size", "input_shape")


class TeacherMismatchError(ValueError):
    """The teacher's weights are not the ones the env was told to expect."""


def check_teacher(net: nn.Module, dataset: str, arch: str, expected: str | None,
                  options: dict[str, Any] | None = None) -> str:
    """The teacher's weights sha256, after checking it against ``expected`` (``"pinned"``: the
    pinned one of ``(dataset, arch, options)`` if any; ``None``: no check; else a sha256)."""
    actual = weights_sha256(net)
    what = "the ones given as teacher_sha256"
    if expected == "pinned":
        entry = pinned_entry(dataset, arch, options)
        expected = entry["weights_sha256"] if entry else None
        what = f"the pinned {pin_key(dataset, arch, options)} teacher"
    if expected is not None and actual != expected:
        raise TeacherMismatchError(
            f"the teacher's weights (sha256 {actual[:16]}…) are not {what} "
            f"({expected[:16]}…); results with another teacher are not comparable. Pass "
            f"teacher_sha256=None to use it anyway, or teacher_sha256='{actual}' to pin it")
    return actual


def check_classifier(net: Any, role: str, shape: tuple[int, ...], num_classes: int,
                     device: str | torch.device = "cpu") -> None:
    """One clear ``TypeError``/``ValueError`` unless ``net`` is a module with parameters that
    maps 2 images ``[2, *shape]`` (in ``[0, 1]``) to logits ``[2, num_classes]``."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"{role} must be a torch.nn.Module, got {type(net).__name__}")
    if not any(True for _ in net.parameters()):
        raise ValueError(f"the {role} has no parameters")
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.rand(2, *shape, device=device))
    except Exception as e:  # noqa: BLE001 - any failure is the same user error
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"the {role} cannot take the data's images [N, {', '.join(map(str, shape))}]"
                         f" ({type(e).__name__}: {first})") from None
    finally:
        net.train(was)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, num_classes):
        raise ValueError(f"the {role} returns {got} for 2 images of shape {list(shape)}; "
                         f"expected logits (2, {num_classes}), one per class of the data")


def student_builder(fn: Callable[..., nn.Module]) -> Callable[[int, tuple[int, int, int]],
                                                               nn.Module]:
    """``build(num_classes, input_shape)`` calling the user's builder ``fn`` with the keywords
    of :data:`BUILDER_ARGS` it names (all of them if it takes ``**kwargs``; none is fine)."""
    if not callable(fn):
        raise TypeError(f"student must be an architecture name or a callable returning a "
                        f"torch.nn.Module, got {fn!r}")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())

    def build(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        offer = {"num_classes": num_classes, "in_channels": input_shape[0],
                 "image_size": tuple(input_shape[1:]), "input_shape": tuple(input_shape)}
        net = fn(**{k: v for k, v in offer.items() if takes_all or k in params})
        if not isinstance(net, nn.Module):
            raise TypeError(f"the student builder returned {type(net).__name__}, not a "
                            f"torch.nn.Module")
        return net

    return build
