"""Running a model in eval mode for a while, and giving every module its own mode back.

``model.train(was_training)`` afterwards sets every submodule to the root's mode: a frozen part kept in eval mode
inside a training model (embeddings, a teacher) would come back in train mode, and dropout modules a user left in
train mode inside an eval model (Monte Carlo dropout) would come back off. Every profile, probe and metric pass
puts the model in eval mode with :func:`enter_eval` and restores it with the function that returns.
"""

from __future__ import annotations

from typing import Callable

from torch import nn


def enter_eval(model: nn.Module) -> Callable[[], None]:
    """Put `model` in eval mode (no dropout, no gradient checkpointing); returns the function that gives every
    module back the ``training`` flag it had (call it in a ``finally``)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()

    def restore() -> None:
        for module, training in modes:
            module.training = training

    return restore
