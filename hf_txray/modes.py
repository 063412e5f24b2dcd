"""Running a model in eval mode for a while, and giving every module its own mode back; holding, for a while, the
weights an optimizer with train/eval modes (schedule-free) evaluates.

``model.train(was_training)`` afterwards sets every submodule to the root's mode: a frozen part kept in eval mode
inside a training model (embeddings, a teacher) would come back in train mode, and dropout modules a user left in
train mode inside an eval model (Monte Carlo dropout) would come back off. Every profile, probe and metric pass
puts the model in eval mode with :func:`enter_eval` and restores it with the function that returns, which gives each
module its own mode back through its own ``train()``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .errors import ModelError
from .logging import get_logger

logger = get_logger(__name__)


def enter_eval(model: nn.Module) -> Callable[[], None]:
    """Put `model` in eval mode (no dropout, no gradient checkpointing); returns the function that gives every
    module back the ``training`` flag it had (call it in a ``finally``).

    Runs on one model in several threads at once (a Gradio app's requests, a ``ThreadPoolExecutor`` of corpora)
    share one eval period: the first to enter records the modes, the last to leave gives them back. Each run giving
    back the modes it found, a run begun first and ended first put a training model back in training mode while the
    other still ran, whose later batches ran with dropout (helper 387: 57 of 80 neuron counts of tiny GPT-2 changed),
    and the other, ending last, left the model in eval mode.

    Raises:
        ModelError: a module stays in training mode after ``model.eval()`` (its own ``train()`` refuses eval mode);
            every module has its mode back first.
    """
    with _EVAL_LOCK:
        held = _IN_EVAL.get(id(model))
        fresh = held is None or held.model is not model
        modes = [(module, module.training) for module in model.modules()]
        # a run joining a period: the model may have been put back in training mode meanwhile (a Trainer's step in
        # another thread calls model.train()); this run needs eval mode all the same
        if fresh or any(training for _, training in modes):
            model.eval()
            stuck = [name or type(model).__name__ for name, module in model.named_modules() if module.training]
            if stuck:  # helper 292: a Monte Carlo dropout whose train() refuses eval mode ran its dropout in every profile
                give_back_modes(modes)
                raise ModelError(
                    f"{len(stuck)} module(s) of {type(model).__name__} stay in training mode after model.eval() "
                    f"({', '.join(map(repr, stuck[:3]))}{', ...' if len(stuck) > 3 else ''}): their own train() keeps "
                    "them training (as an always-on Monte Carlo dropout does), so their dropout or batch statistics "
                    "would make every activation hf_txray reads depend on chance and on the batch. Let their "
                    "train(False) take effect while hf_txray runs (e.g. a flag your train() reads), or replace them by "
                    "their eval-mode equivalent.")
        if fresh:
            held = _IN_EVAL[id(model)] = _EvalPeriod(model, modes)
        held.runs += 1
    given_back = False

    def restore() -> None:
        nonlocal given_back
        with _EVAL_LOCK:
            if given_back:  # a second call gives back nothing
                return
            given_back = True
            held.runs -= 1
            if held.runs == 0:
                del _IN_EVAL[id(model)]
                give_back_modes(held.modes)

    return restore


_EVAL_LOCK = threading.RLock()


@dataclass
class _EvalPeriod:
    """The runs inside :func:`enter_eval` on one model, and the modes the first of them found."""

    model: nn.Module  # held: an id() reused by another model after this one is collected cannot match it
    modes: list[tuple[nn.Module, bool]]
    runs: int = 0


_IN_EVAL: dict[int, _EvalPeriod] = {}  # by id(model)


def give_back_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    """Give every module of `modes` (``(module, training)`` pairs, parents before their children, as
    ``model.modules()`` lists them) its ``training`` flag back, through ``module.train(flag)``: a module's own
    ``train()`` runs as it would after the user's own call (a loralib-style layer unmerges its update for training,
    transformers' ``PreTrainedModel.train`` sets its kernels' mode; setting the flag alone left a merged layer in a
    training model, helper 292). A parent's call sets its children's mode too: a child whose flag differs from the
    one it had is called after it, in order. A flag that an override leaves other than asked is then set as it was."""
    for module, training in modes:
        if module.training != training:
            module.train(training)
    for module, training in modes:
        module.training = training


def has_modes(optimizer: Any) -> bool:
    """Whether `optimizer` has ``train()``/``eval()`` modes (schedule-free: ``optim="schedule_free_adamw"``); an
    `AcceleratedOptimizer`, which has the methods whatever it wraps, when the optimizer it wraps has them."""
    inner = getattr(optimizer, "optimizer", optimizer)
    return all(callable(getattr(inner, name, None)) for name in ("train", "eval"))


def optimizer_train_mode(optimizer: Any) -> bool | None:
    """Whether `optimizer` (one that :func:`has_modes`) is in train mode: True, False, or None where it has no such
    modes or does not say (read from the ``train_mode`` flag of its parameter groups, or of the optimizer itself or
    of the one an `AcceleratedOptimizer` wraps)."""
    if not has_modes(optimizer):
        return None
    flags = [group.get("train_mode") for group in getattr(optimizer, "param_groups", [])]
    if flags and all(isinstance(flag, bool) for flag in flags):
        return all(flags)
    for holder in (optimizer, getattr(optimizer, "optimizer", None)):
        if isinstance(getattr(holder, "train_mode", None), bool):
            return holder.train_mode
    return None


@contextlib.contextmanager
def evaluated_weights(optimizer: Any) -> Iterator[None]:
    """Within the block, the model holds the weights its `optimizer` evaluates, as in ``Trainer.evaluate``.

    A schedule-free optimizer trains the parameters at one point (``y``) and evaluates at another (``x``): the
    Trainer calls ``optimizer.eval()`` before evaluating, so its metrics, and the checkpoints and final model saved
    after an evaluation, are of ``x``. A snapshot taken in train mode profiled ``y`` (helper 280: at step 8, 16 of 96
    neurons' credit counts differed from the evaluated model's, and no snapshot was of the model saved). The
    training point is put back bit for bit afterwards (``train()`` after ``eval()`` rounds), so training goes on as
    the plain Trainer's. An optimizer already in eval mode (after an evaluation) holds ``x``: nothing to do. One
    with such modes that does not say which it is in is warned about and profiled as it is.
    """
    mode = optimizer_train_mode(optimizer)
    if mode is None and has_modes(optimizer):
        _warn_unread_mode(type(getattr(optimizer, "optimizer", optimizer)).__name__)
    if not mode:
        yield
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    training_point = [p.detach().clone() for p in params]
    optimizer.eval()
    try:
        yield
    finally:
        optimizer.train()
        with torch.no_grad():
            for param, value in zip(params, training_point):
                param.copy_(value)


@functools.lru_cache(maxsize=None)
def _warn_unread_mode(optimizer_name: str) -> None:  # once per optimizer class
    logger.warning("TX-Ray: the optimizer (%s) has train()/eval() modes, but no train_mode flag says which it is in: "
                   "snapshots profile the weights as training holds them, which may not be the ones Trainer.evaluate "
                   "uses.", optimizer_name)
