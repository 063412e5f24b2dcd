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


Runs = list[tuple[int, int]]  # [start, end) row ranges, in order
# Reduce only the creditable rows, run by run, when each run skips at least this many activations (padding, special
# tokens): a run costs one numpy call (about a microsecond), which reading about 800-1500 activations costs too
# (measured: 64-wide rows break even at about 800 skipped activations per run; MiniLM's 1536-wide rows at 27k per run
# save 2.9 us per run, 19% of the top-1).
RUN_SKIPPED_ELEMENTS = 2048


def contiguous_runs(rows: np.ndarray, num_rows: int, width: int) -> Runs | None:
    """`rows` (row indices into a ``(num_rows, width)`` tensor) as ``[start, end)`` runs of consecutive rows, when
    reducing only those runs pays (see :data:`RUN_SKIPPED_ELEMENTS`); None when every row should be reduced."""
    if len(rows) == 0:
        return None
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    if (num_rows - len(rows)) * width < (len(breaks) + 1) * RUN_SKIPPED_ELEMENTS:
        return None
    starts = rows[np.concatenate([[0], breaks])]
    ends = rows[np.concatenate([breaks - 1, [len(rows) - 1]])] + 1
    return list(zip(starts.tolist(), ends.tolist()))


def argmax_runs(array: np.ndarray, runs: Runs) -> np.ndarray:
    """The row-wise argmax of the rows of `runs`, concatenated in their order."""
    if len(runs) == 1:
        lo, hi = runs[0]
        return array[lo:hi].argmax(axis=1)
    return np.concatenate([array[lo:hi].argmax(axis=1) for lo, hi in runs])


def split_runs(runs: Runs, parts: int) -> list[Runs]:
    """`runs` cut into `parts` consecutive groups of (nearly) equal rows, splitting a run where a group ends."""
    total = sum(hi - lo for lo, hi in runs)
    bounds = np.linspace(0, total, parts + 1).astype(np.int64).tolist()[1:]
    groups: list[Runs] = [[]]
    done = 0  # rows placed in earlier groups and runs
    for lo, hi in runs:
        while lo < hi:
            take = min(hi - lo, bounds[len(groups) - 1] - done)
            if take > 0:
                groups[-1].append((lo, lo + take))
                lo, done = lo + take, done + take
            if done == bounds[len(groups) - 1] and len(groups) < parts:
                groups.append([])
    return [g for g in groups if g]


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

    def __call__(self, array: np.ndarray, runs: Runs | None = None) -> np.ndarray:
        """``array.argmax(axis=1)`` for a 2-D `array`, or for the rows of `runs` only (in their order), the same
        result whatever the split."""
        spans = [(0, len(array))] if runs is None else runs
        total = sum(hi - lo for lo, hi in spans)
        if self.threads < 2 or total * array.shape[1] < PARALLEL_ELEMENTS or total < 2 * self.threads:
            return argmax_runs(array, spans)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="hf_txray-topk")
        groups = split_runs(spans, self.threads)
        others = [self._pool.submit(argmax_runs, array, group) for group in groups[1:]]
        first = argmax_runs(array, groups[0])
        return np.concatenate([first] + [future.result() for future in others])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def top_k_lowest_first(values: torch.Tensor, k: int, numbers: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest `values` of every row, ties going to the lowest number: ``torch.topk`` picks among equal
    values in no stated order, and in bf16 ties are common (a dozen positions in 300 per layer on tiny models).

    Each value is made a unique int64 key, its float32 bits mapped to an order-preserving integer in the high half
    and the inverted neuron number in the low half, so one ``topk`` over the keys ranks (value descending, number
    ascending) exactly, on any device, without a host synchronisation. A NaN ranks above everything, as in torch.

    Args:
        values (`torch.Tensor`): ``(rows, n)``, float (bf16/fp16 are widened to float32 exactly; float64 is ranked
            by stable sorts).
        k (`int`): winners per row.
        numbers (`torch.Tensor`, *optional*): ``(rows, n)`` int64 neuron numbers of the columns (mixture-of-experts
            units); the column index when omitted.

    Returns:
        ``(values, numbers)``, both ``(rows, k)``, values in descending order.
    """
    if numbers is None:
        numbers = torch.arange(values.shape[-1], device=values.device).expand(values.shape)
    if values.dtype == torch.float64:  # no room beside 64 bits of value: stable sorts, by number then by value
        by_number = numbers.argsort(dim=-1, stable=True)
        ranked, where = values.gather(-1, by_number).sort(dim=-1, descending=True, stable=True)
        return ranked[:, :k], numbers.gather(-1, by_number.gather(-1, where[:, :k]))
    widened = values.float() + 0.0  # -0.0 becomes +0.0: they compare equal
    bits = widened.view(torch.int32).long()
    order = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)  # float order as integer order
    order = torch.where(widened.isnan(), 0x7FFFFFFF, order)  # every NaN above +inf, as torch ranks them
    keys = (order << 32) + ((1 << 32) - 1 - numbers)
    where = keys.topk(k, dim=-1).indices
    return values.gather(-1, where), numbers.gather(-1, where)


def top_k_per_row(activations: torch.Tensor, k: int = 1, rows: torch.Tensor | None = None,
                  argmax: ArgmaxThreads | None = None, runs: Runs | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest values of every row (or of the chosen `rows`) and their column indices.

    Args:
        activations (`torch.Tensor`): ``(rows, neurons)``, on any device, without gradient.
        k (`int`, *optional*, defaults to 1): winners per row.
        rows (`torch.Tensor`, *optional*): int64 indices of the rows to return, on the activations' device
            (all rows when omitted). Every row is reduced first: one pass over the activations, then a tiny
            selection.
        argmax (`ArgmaxThreads`, *optional*): splits top-1 on a CPU over threads (one thread when omitted).
        runs (`list[tuple[int, int]]`, *optional*): `rows` as ranges of consecutive rows
            (:func:`contiguous_runs`); top-1 on a CPU then reduces only those rows.

    Returns:
        ``(values, indices)``, both ``(len(rows), k)``, values in descending order. Exactly
        ``activations.max(-1, keepdim=True)`` for ``k == 1`` (ties go to the first index, a NaN wins as in torch)
        and :func:`top_k_lowest_first` otherwise (``topk`` with ties going to the lowest index), then
        ``index_select(0, rows)``.
    """
    if k == 1 and activations.device.type == "cpu" and activations.dtype in _NUMPY_ARGMAX \
            and not activations.requires_grad:
        array = activations.numpy()
        argmax = argmax or _single
        # the first maximum, like torch; numpy's argmax also stops at the first NaN
        if rows is None:
            chosen, index = np.arange(len(array)), argmax(array)
        else:
            chosen = rows.numpy()
            index = argmax(array, runs) if runs is not None else argmax(array)[chosen]
        return torch.from_numpy(array[chosen, index][:, None]), torch.from_numpy(index.astype(np.int64)[:, None])
    values, indices = top_k_lowest_first(activations, k) if k > 1 else activations.max(dim=-1, keepdim=True)
    if rows is not None:
        values, indices = values.index_select(0, rows), indices.index_select(0, rows)
    return values, indices


_single = ArgmaxThreads(threads=1)  # no pool: one thread never starts one
