"""Random number streams left as they were by work done beside the user's own.

A :class:`~hf_txray.TXRayTrainer` snapshot must not change training: with the same seed, the loss curve is the plain
``Trainer``'s. Profiling draws no random numbers itself, but what it loads can: spaCy imports ``rich``, whose
``Style`` draws ``random.getrandbits(24)`` at import, and loading a pipeline draws from torch's generator, so a first
snapshot with POS features moved the streams and every later draw of a data collator or augmentation (helper 145:
another loss from the second step on). Restoring rewinds the whole process's streams, so it wraps only work that
runs in the user's thread between their draws: a snapshot, and loading spaCy.
"""

from __future__ import annotations

import functools
import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def drawn_seed() -> int:
    """A seed drawn from the operating system's entropy, for ``seed=None`` (random, as ``datasets``'
    ``shuffle(seed=None)`` draws one): what is made with it records it, so that passing it back makes the same thing
    again (``default_rng(None)`` recorded None, and no one could). It leaves the global generators (numpy's, which
    ``transformers.set_seed`` seeds) as they were."""
    import numpy as np  # here: see preserved_rng

    return int(np.random.SeedSequence().generate_state(1)[0])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Within the block, draw freely: Python's, numpy's and torch's global generators (CPU and every CUDA device)
    are restored on exit to the states they had on entry."""
    import numpy as np  # here: the CLI's help imports this module's users without torch (test_imports)
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def keeps_rng(func: F) -> F:
    """Run `func` inside :func:`preserved_rng`."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with preserved_rng():
            return func(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
