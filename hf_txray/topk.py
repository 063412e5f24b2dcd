"""The per-position reduction of one layer's activations to its top-k neurons (the hooks' device work)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

# numpy's argmax is vectorised (SIMD) for these dtypes; torch's CPU ``max(dim=-1)`` with indices is not, and costs
# about 4x more (measured on MiniLM's 1536-wide MLP: 5.5 ms against 1.4 ms per 4096 positions, one thread).
_NUMPY_ARGMAX = (torch.float32, torch.float64)


# Activations (positions x neurons) from which top-1 on a CPU is split over threads: below, a thread hand-off costs
# more than it saves.
PARALLEL_ELEMENTS = 1 << 20


class ArgmaxThreads:
    """numpy's row-wise argmax split into row blocks over `threads` threads (numpy releases the GIL in argmax), so
    the hooks' top-1 uses the cores the forward's own kernels use: a single-threaded argmax is a growing share of a
    multi-threaded CPU forward. Two threads halved it on this project's 2-core machine (65536 x 768: 21.7 to 10.9
    ms). The first block runs on the calling thread; the others on a pool started at the first split (after any
    worker processes have forked) and stopped by :meth:`close`.

    Args:
        threads (`int`, *optional*): defaults to ``torch.get_num_threads()``, the forward's own thread count.
    """

    def __init__(self, threads: int | None = None):
        self.threads = torch.get_num_threads() if threads is None else threads
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """``array.argmax(axis=1)`` for a 2-D `array`, the same result whatever the split."""
        if self.threads < 2 or array.size < PARALLEL_ELEMENTS or len(array) < 2 * self.threads:
            return array.argmax(axis=1)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="hf_txray-topk")
        bounds = np.linspace(0, len(array), self.threads + 1).astype(np.int64).tolist()
        others = [self._pool.submit(np.argmax, array[lo:hi], 1) for lo, hi in zip(bounds[1:-1], bounds[2:])]
        first = array[: bounds[1]].argmax(axis=1)
        return np.concatenate([first] + [future.result() for future in others])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def top_k_per_row(activations: torch.Tensor, k: int = 1, rows: torch.Tensor | None = None,
                  argmax: ArgmaxThreads | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest values of every row (or of the chosen `rows`) and their column indices.

    Args:
        activations (`torch.Tensor`): ``(rows, neurons)``, on any device, without gradient.
        k (`int`, *optional*, defaults to 1): winners per row.
        rows (`torch.Tensor`, *optional*): int64 indices of the rows to return, on the activations' device
            (all rows when omitted). Every row is reduced first: one pass over the activations, then a tiny
            selection.
        argmax (`ArgmaxThreads`, *optional*): splits top-1 on a CPU over threads (one thread when omitted).

    Returns:
        ``(values, indices)``, both ``(len(rows), k)``, values in descending order. Exactly
        ``activations.max(-1, keepdim=True)`` for ``k == 1`` (ties go to the first index, a NaN wins as in torch)
        and ``activations.topk(k, -1)`` otherwise, then ``index_select(0, rows)``.
    """
    if k == 1 and activations.device.type == "cpu" and activations.dtype in _NUMPY_ARGMAX \
            and not activations.requires_grad:
        array = activations.numpy()
        # the first maximum, like torch; numpy's argmax also stops at the first NaN
        index = array.argmax(axis=1) if argmax is None else argmax(array)
        chosen = np.arange(len(array)) if rows is None else rows.numpy()
        index = index[chosen]
        return torch.from_numpy(array[chosen, index][:, None]), torch.from_numpy(index.astype(np.int64)[:, None])
    values, indices = activations.topk(k, dim=-1) if k > 1 else activations.max(dim=-1, keepdim=True)
    if rows is not None:
        values, indices = values.index_select(0, rows), indices.index_select(0, rows)
    return values, indices
