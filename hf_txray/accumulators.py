"""Streaming statistics with one contract: ``add``, exact ``merge``, ``state_dict`` / ``load_state_dict``.

:class:`SparseSums` holds mass (sum of credited activations, float64) and count per int64 key; keys combine a
neuron row and a feature id. :class:`TopExamples` keeps, per neuron row, the `capacity` highest credited positions.
:class:`NoiseSums`, :class:`PositionMass` and :class:`ActivationHistogram` hold the noise statistics, the mass by
position and the activation histograms. All use memory proportional to what they keep (distinct keys, rows x
capacity), never to the number of tokens seen.

Every accumulator is an :class:`Accumulator`: ``merge`` folds another of the same kind in exactly (sums add; the
top examples keep the same set whatever the split), and ``state_dict`` gives flat numpy arrays and ints (safetensors
or pickle can hold them) from which ``load_state_dict`` rebuilds an equal accumulator. :func:`merged` combines any
number of them through that contract, as process gathers and checkpoints need.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from .allocator import available_memory
from .errors import ConfigurationError

FEATURE_BITS = 32  # key = row << FEATURE_BITS | feature_id

StateDict = dict[str, Any]  # flat: numpy arrays and Python scalars


@runtime_checkable
class Accumulator(Protocol):
    """The contract of every streaming statistic: ``add`` data, ``merge`` another exactly, save and restore state.

    ``add``'s arguments depend on the statistic; ``merge(other)`` returns ``self`` (so merges chain), and
    ``load_state_dict(state)`` returns ``self`` too, holding exactly what ``state_dict()`` described.
    """

    def add(self, *args: Any, **kwargs: Any) -> None: ...

    def merge(self, other: Any) -> Any: ...

    def state_dict(self) -> StateDict: ...

    def load_state_dict(self, state: StateDict) -> Any: ...

    @classmethod
    def empty_like(cls, other: Any) -> Any:
        """A new, empty accumulator of the same shape as `other` (rows, capacity, bin edges...)."""
        ...


A = TypeVar("A", bound=Accumulator)


def merged(parts: Sequence[A]) -> A:
    """A new accumulator holding `parts` merged in order (the parts are left as they were).

    Args:
        parts (`list[Accumulator]`): accumulators of one kind, e.g. one per process.

    Raises:
        ValueError: `parts` is empty or mixes kinds.
    """
    if not parts:
        raise ValueError("Nothing to merge.")
    kinds = {type(part) for part in parts}
    if len(kinds) != 1:
        raise ValueError(f"Cannot merge accumulators of different kinds: {sorted(k.__name__ for k in kinds)}.")
    out = copy_of(parts[0])
    for part in parts[1:]:
        out.merge(part)
    return out


def copy_of(accumulator: A) -> A:
    """An independent copy, through the state-dict contract."""
    return type(accumulator).empty_like(accumulator).load_state_dict(accumulator.state_dict())


def strings_to_array(strings: Sequence[str]) -> np.ndarray:
    """Strings as one flat uint8 array (their UTF-8 JSON list), so that a state dict of strings stays numeric."""
    return np.frombuffer(json.dumps(list(strings)).encode("utf-8"), dtype=np.uint8).copy()


def array_to_strings(array: np.ndarray) -> list[str]:
    """The strings :func:`strings_to_array` encoded."""
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))


def sub_state(state: StateDict, prefix: str) -> StateDict:
    """The entries of `state` under ``prefix + "."``, with that prefix removed."""
    start = len(prefix) + 1
    return {k[start:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def _copied(state: StateDict) -> StateDict:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()}


def _arrays_state(accumulator: Any, dtypes: dict[str, Any]) -> StateDict:
    """The state of a buffered accumulator whose state is the arrays named in `dtypes`: compacted, then copied (a
    state dict never shares memory with the live accumulator)."""
    accumulator.compact()
    return {name: getattr(accumulator, name).copy() for name in dtypes}


def _load_arrays(accumulator: Any, state: StateDict, dtypes: dict[str, Any]) -> None:
    """Set each array named in `dtypes` to a copy of ``state[name]`` with that dtype, and empty the add buffer."""
    for name, dtype in dtypes.items():
        setattr(accumulator, name, np.asarray(state[name], dtype=dtype).copy())
    accumulator._pending, accumulator._pending_size = [], 0


def make_keys(rows: np.ndarray, feature_ids: np.ndarray) -> np.ndarray:
    return (rows.astype(np.int64) << FEATURE_BITS) | feature_ids.astype(np.int64)


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return keys >> FEATURE_BITS, keys & ((1 << FEATURE_BITS) - 1)


def reduce_by_key(keys: np.ndarray, mass: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum `mass` and `count` per distinct key; returns sorted unique keys."""
    unique, inverse = np.unique(keys, return_inverse=True)
    return (
        unique,
        np.bincount(inverse, weights=mass, minlength=len(unique)),
        np.bincount(inverse, weights=count, minlength=len(unique)).astype(np.int64),
    )


def reduce_in_order(parts: Sequence[tuple[np.ndarray, Sequence[np.ndarray], np.ndarray]]
                    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Sorted unique keys of all `parts` with, per key, the sum of each float64 column and of the int64 counts.

    Args:
        parts (`list[tuple[np.ndarray, list[np.ndarray], np.ndarray]]`): ``(keys, columns, counts)`` chunks, all
            ``(n_i,)``: int64 keys (any order, repeats allowed), float64 columns, int64 counts.

    The result may hold the arrays of a part (when it is the only non-empty one and its keys are sorted and
    distinct): callers pass parts they no longer change.

    Each key's float sums add its entries in part order, then entry order, starting from zero: exactly what
    :func:`reduce_by_key` over the concatenation gives, and what merging sorted chunks one by one into a state
    gives (``(state + chunk_1) + chunk_2 ...``). One stable sort of the concatenation (timsort: O(n log parts)
    when the parts are sorted, as the flushed chunks are), one gather and one pass per column.
    """
    width = len(parts[0][1]) if parts else 0
    filled = [p for p in parts if len(p[0])]
    if len(filled) == 1 and _strictly_increasing(np.asarray(filled[0][0])):
        # One sorted chunk of distinct keys (the first move of a run's sums to the host, into an empty state): its
        # sums are already the per-key sums (0.0 + x is x for the non-negative masses summed here). Its arrays are
        # returned as they are, not copied (copying 10M keys' arrays cost more than the rest of the merge).
        keys, columns, counts = filled[0]
        return (np.asarray(keys, dtype=np.int64), [np.asarray(c, dtype=np.float64) for c in columns],
                np.asarray(counts, dtype=np.int64))
    keys = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    if len(keys) == 0:
        return keys, [np.zeros(0) for _ in range(width)], np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    merged = [np.concatenate([p[1][i] for p in parts]).astype(np.float64, copy=False)[order] for i in range(width)]
    counts = np.concatenate([np.asarray(p[2], dtype=np.int64) for p in parts])[order]
    if len(starts) == len(keys):  # disjoint chunks: nothing to add up
        return keys, merged, counts
    group = np.cumsum(first) - 1
    # bincount adds the weights of a bin in array order: the stable order above, i.e. part order then entry order.
    columns = [np.bincount(group, weights=column, minlength=len(starts)) for column in merged]
    return keys[starts], columns, np.add.reduceat(counts, starts)


def _strictly_increasing(keys: np.ndarray) -> bool:
    return bool(np.all(keys[1:] > keys[:-1]))


class SparseSums:
    """Sparse per-key sums of mass and count.

    New chunks are buffered and folded into the sorted state once the buffer outgrows the state, so adding is
    amortised O(chunk log chunk) and memory stays O(distinct keys).
    """

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.mass = np.zeros(0, dtype=np.float64)
        self.count = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, keys: np.ndarray, mass: np.ndarray, count: np.ndarray | None = None) -> None:
        if len(keys) == 0:
            return
        if count is None:
            count = np.ones(len(keys), dtype=np.int64)
        # Held as given (not copied: a copy of a final move's 10M keys cost a fifth of the move): callers hand over
        # arrays they no longer change, and the state is only ever replaced, never changed in place.
        self._pending.append((keys.astype(np.int64, copy=False), mass.astype(np.float64, copy=False),
                              count.astype(np.int64, copy=False)))
        self._pending_size += len(keys)
        if self._pending_size > max(len(self.keys), 1 << 16):
            self.compact()

    def compact(self) -> "SparseSums":
        if self._pending:
            # One stable merge of the state and every pending chunk (flushes hand over sorted unique keys, so the
            # sort only merges runs): the same sums as folding the chunks in one by one.
            parts = [(self.keys, [self.mass], self.count)] + [(k, [m], c) for k, m, c in self._pending]
            self.keys, (self.mass,), self.count = reduce_in_order(parts)
            self._pending, self._pending_size = [], 0
        return self

    def merge(self, other: "SparseSums") -> "SparseSums":
        other.compact()
        self.add(other.keys, other.mass, other.count)
        return self.compact()

    STATE = {"keys": np.int64, "mass": np.float64, "count": np.int64}  # the state dict's arrays and their dtypes

    def state_dict(self) -> StateDict:
        return _arrays_state(self, self.STATE)

    def load_state_dict(self, state: StateDict) -> "SparseSums":
        _load_arrays(self, state, self.STATE)
        return self

    @classmethod
    def empty_like(cls, other: "SparseSums") -> "SparseSums":
        return cls()

    @property
    def nbytes(self) -> int:
        self.compact()
        return self.keys.nbytes + self.mass.nbytes + self.count.nbytes


def rank_within_groups(sorted_rows: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal values of an already sorted array."""
    n = len(sorted_rows)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]]
    starts = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return np.arange(n) - starts


def check_top_examples_memory(num_rows: int, capacity: int) -> None:
    """Refuse a `capacity` (``max_examples_per_neuron``) whose :class:`TopExamples` lists, allocated whole for every
    neuron row before any text is read, cannot fit in the memory available: the process was killed by the
    kernel (no message) or failed inside numpy (helper 178: MiniLM at 100,000 examples a neuron needs 34 GiB).

    Raises:
        ConfigurationError: the lists alone need more bytes than :func:`available_memory`.
    """
    # Every process of this machine holds its own lists (torchrun and accelerate set LOCAL_WORLD_SIZE), all drawing
    # on the same free memory.
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    local = int(local) if local.isdigit() and int(local) > 0 else 1
    per_example = num_rows * 8 * (1 + len(TopExamples.FIELDS)) * local
    need = capacity * per_example
    free = available_memory()
    if free is not None and need > free:
        processes = f" in each of the {local} processes on this machine" if local > 1 else ""
        raise ConfigurationError(
            f"max_examples_per_neuron={capacity} keeps {capacity:,} examples for each of {num_rows:,} neurons"
            f"{processes}: {need / 2**30:.1f} GiB, allocated before any text is read, and only "
            f"{free / 2**30:.1f} GiB of memory is available. Lower max_examples_per_neuron well below "
            f"{free // per_example:,} (which would fill that memory alone; the default is 10), or profile fewer "
            "layers."
        )


class TopExamples:
    """The `capacity` highest credited activations of every neuron row, with where they occurred.

    Order: activation descending, then example id, then token index ascending, so the kept set does not depend on
    how the corpus was split into batches or processes.
    """

    FIELDS = ("example_id", "token_index", "char_start", "char_end")

    def __init__(self, num_rows: int, capacity: int, extra_fields: Sequence[str] = ()):
        """`extra_fields`: more int64 fields carried with each entry (e.g. where an entry came from, so that
        a merge of example tables can bring along their text columns); they take no part in the order."""
        self.num_rows = num_rows
        self.capacity = capacity
        if extra_fields:
            self.FIELDS = TopExamples.FIELDS + tuple(extra_fields)
        self.activation = np.full((num_rows, capacity), -np.inf)
        self.data = {name: np.full((num_rows, capacity), -1, dtype=np.int64) for name in self.FIELDS}

    def add(self, rows: np.ndarray, activation: np.ndarray, **fields: np.ndarray) -> None:
        if self.capacity == 0 or len(rows) == 0:
            return
        rows, activation, fields = self._admitted(rows, activation, fields)
        if len(rows) == 0:
            return
        rows, activation, fields = self._best_per_row(rows, activation, fields)
        touched = np.unique(rows)
        old_act = self.activation[touched]
        valid = np.isfinite(old_act)
        old_rows = np.broadcast_to(touched[:, None], old_act.shape)[valid]
        merged_rows = np.concatenate([old_rows, rows])
        merged_act = np.concatenate([old_act[valid], activation])
        merged = {k: np.concatenate([self.data[k][touched][valid], fields[k]]) for k in self.FIELDS}
        self._store(touched, *self._best_per_row(merged_rows, merged_act, merged))

    def _admitted(self, rows, activation, fields):
        """The entries at or above their row's capacity-th best: one below it cannot enter (a tie can, on example
        id), so it is dropped before any sort. The device admits a batch's candidates against the previous merge's
        thresholds only, and `merge` (another process's lists) admits none: then 2.6x faster on a synthetic SmolLM2
        grid (1.18x after the device's admission, with the one-key sort below: ``bench/bench_top_examples.py``)."""
        admitted = activation >= self.activation[rows, self.capacity - 1]
        if admitted.all():
            return rows, activation, fields
        return rows[admitted], activation[admitted], {k: v[admitted] for k, v in fields.items()}

    def _best_per_row(self, rows, activation, fields):
        example_id, token_index = fields["example_id"], fields["token_index"]
        if example_id.min() >= 0 and token_index.min() >= 0 and example_id.max() < 1 << 31 \
                and token_index.max() < 1 << 32:  # one sort key for (example id, token index): 3 sorts, not 4
            order = np.lexsort(((example_id << 32) | token_index, -activation, rows))
        else:
            order = np.lexsort((token_index, example_id, -activation, rows))
        rank = rank_within_groups(rows[order])
        keep = order[rank < self.capacity]
        return rows[keep], activation[keep], {k: v[keep] for k, v in fields.items()}

    def _store(self, touched, rows, activation, fields) -> None:
        self.activation[touched] = -np.inf
        for name in self.FIELDS:
            self.data[name][touched] = -1
        rank = rank_within_groups(rows)
        self.activation[rows, rank] = activation
        for name in self.FIELDS:
            self.data[name][rows, rank] = fields[name]

    def merge(self, other: "TopExamples") -> "TopExamples":
        if other.num_rows != self.num_rows:
            raise ValueError(f"Cannot merge top examples of {other.num_rows} rows into {self.num_rows}.")
        valid = np.isfinite(other.activation)
        rows = np.broadcast_to(np.arange(other.num_rows)[:, None], valid.shape)[valid]
        self.add(rows, other.activation[valid], **{k: other.data[k][valid] for k in self.FIELDS})
        return self

    def state_dict(self) -> StateDict:
        return _copied({"num_rows": self.num_rows, "capacity": self.capacity, "activation": self.activation,
                        **{f"data.{k}": v for k, v in self.data.items()}})

    def load_state_dict(self, state: StateDict) -> "TopExamples":
        self.num_rows, self.capacity = int(state["num_rows"]), int(state["capacity"])
        extra = tuple(k[len("data."):] for k in state if k.startswith("data.") and
                      k[len("data."):] not in TopExamples.FIELDS)
        self.FIELDS = TopExamples.FIELDS + extra
        self.activation = np.asarray(state["activation"], dtype=np.float64).reshape(self.num_rows, self.capacity).copy()
        self.data = {k: np.asarray(state[f"data.{k}"], dtype=np.int64).reshape(self.num_rows, self.capacity).copy()
                     for k in self.FIELDS}
        return self

    @classmethod
    def empty_like(cls, other: "TopExamples") -> "TopExamples":
        return cls(other.num_rows, other.capacity, other.FIELDS[len(TopExamples.FIELDS):])

    def entries(self) -> dict[str, np.ndarray]:
        """Flat arrays of the kept entries: row, rank, activation and the position fields."""
        valid = np.isfinite(self.activation)
        rows, ranks = np.nonzero(valid)
        out = {"row": rows.astype(np.int64), "rank": ranks.astype(np.int64), "activation": self.activation[valid]}
        out.update({k: self.data[k][valid] for k in self.FIELDS})
        return out


class NoiseSums:
    """What the noise statistics of one feature type need, beside its :class:`SparseSums`.

    Per key: the mass and count of the credits from the texts of the odd half (a text's half:
    :func:`hf_txray.hashes.text_halves`; example id parity in profiles saved before; the even half is the total
    minus these; the two halves give split-half noise floors and the tests of :mod:`hf_txray.significance`), and the sum
    of squared credited activations (the spread of a feature's credit masses, saved with the profile as ``mass_sq``
    for analyses of it; no report reads it). All are sums, so they merge
    exactly across batches, checkpoints and processes, and memory stays O(distinct keys).
    """

    def __init__(self) -> None:
        self.odd = SparseSums()
        self.squares = SparseSums()

    def add(self, keys: np.ndarray, mass: np.ndarray, odd: np.ndarray) -> None:
        """`keys`, `mass`: one entry per credit; `odd`: whether the credit's example id is odd."""
        ones = np.ones(len(keys), dtype=np.int64)
        self.odd.add(*reduce_by_key(keys[odd], mass[odd], ones[odd]))
        self.squares.add(*reduce_by_key(keys, mass * mass, ones))

    def merge(self, other: "NoiseSums") -> "NoiseSums":
        self.odd.merge(other.odd)
        self.squares.merge(other.squares)
        return self

    def state_dict(self) -> StateDict:
        return {**{f"odd.{k}": v for k, v in self.odd.state_dict().items()},
                **{f"squares.{k}": v for k, v in self.squares.state_dict().items()}}

    def load_state_dict(self, state: StateDict) -> "NoiseSums":
        for name in ("odd", "squares"):
            getattr(self, name).load_state_dict(sub_state(state, name))
        return self

    @classmethod
    def empty_like(cls, other: "NoiseSums") -> "NoiseSums":
        return cls()

    def aligned(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mass_odd, count_odd, mass_sq) aligned with `keys`, the sorted keys of the matching :class:`SparseSums`."""
        self.odd.compact()
        self.squares.compact()
        mass_odd, count_odd = np.zeros(len(keys)), np.zeros(len(keys), dtype=np.int64)
        where = subset_positions(keys, self.odd.keys)
        mass_odd[where], count_odd[where] = self.odd.mass, self.odd.count
        if np.array_equal(self.squares.keys, keys):  # every credited key has its squares: no search
            return mass_odd, count_odd, self.squares.mass.copy()
        mass_sq = np.zeros(len(keys))
        mass_sq[subset_positions(keys, self.squares.keys)] = self.squares.mass
        return mass_odd, count_odd, mass_sq


def subset_positions(keys: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Positions in `keys` of the entries of `subset`, both sorted and distinct, `subset` a subset of `keys`.

    A merge join (pandas' join of monotonic indexes: linear, where ``np.searchsorted`` costs a binary search per
    entry); on 4M keys a third of the time."""
    if len(subset) == 0 or len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    _, _, where = pd.Index(subset).join(pd.Index(keys), how="left", return_indexers=True)
    if where is None:
        return np.arange(len(subset))
    if where.min() < 0:  # a key outside `keys` would land on the last entry silently
        raise ValueError("subset_positions: `subset` holds keys that `keys` does not")
    return where


class PositionMass:
    """Per neuron row: credited mass and count by position index (the token's index in the model input).

    Sparse over (row, position) pairs, so memory is at most rows x max_length and usually far less; sums merge
    exactly. :meth:`top_share` gives each row's dominant position and its share of the row's mass: the diagnostic
    for neurons that describe a position (e.g. the first token of a decoder) rather than the input.
    """

    def __init__(self) -> None:
        self.sums = SparseSums()

    def add(self, rows: np.ndarray, positions: np.ndarray, mass: np.ndarray) -> None:
        self.sums.add(*reduce_by_key(make_keys(rows, positions), mass, np.ones(len(rows), dtype=np.int64)))

    def merge(self, other: "PositionMass") -> "PositionMass":
        self.sums.merge(other.sums)
        return self

    def state_dict(self) -> StateDict:
        return self.sums.state_dict()

    def load_state_dict(self, state: StateDict) -> "PositionMass":
        self.sums.load_state_dict(state)
        return self

    @classmethod
    def empty_like(cls, other: "PositionMass") -> "PositionMass":
        return cls()

    @classmethod
    def from_entries(cls, rows: np.ndarray, positions: np.ndarray, mass: np.ndarray, count: np.ndarray) -> "PositionMass":
        out = cls()
        out.sums.add(make_keys(np.asarray(rows), np.asarray(positions)), np.asarray(mass), np.asarray(count))
        out.sums.compact()
        return out

    def entries(self) -> dict[str, np.ndarray]:
        """Flat sorted arrays: row, position, mass, count."""
        self.sums.compact()
        rows, positions = split_keys(self.sums.keys)
        return {"row": rows, "position": positions, "mass": self.sums.mass.copy(), "count": self.sums.count.copy()}

    def top_share(self, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the position index holding the most mass (-1 if none) and that position's share of the mass."""
        e = self.entries()
        top = np.full(num_rows, -1, dtype=np.int64)
        share = np.zeros(num_rows)
        if len(e["row"]):
            order = np.lexsort((e["position"], -e["mass"], e["row"]))
            rows = e["row"][order]
            first = np.r_[True, rows[1:] != rows[:-1]]
            totals = np.bincount(e["row"], weights=e["mass"], minlength=num_rows)
            top[rows[first]] = e["position"][order][first]
            best = e["mass"][order][first]
            share[rows[first]] = np.where(totals[rows[first]] > 0, best / np.maximum(totals[rows[first]], 1e-300), 0.0)
        return top, share

    def equals(self, other: "PositionMass") -> bool:
        a, b = self.entries(), other.entries()
        return all(np.array_equal(a[k], b[k]) for k in a)


# Credited activations of MLP neurons range from ~0.01 (weak winners) to ~3000 (massive activations on the first
# token of causal LMs): log-spaced bins cover that range with the same relative resolution everywhere.
HISTOGRAM = {"low": 1e-3, "high": 1e4, "bins_per_decade": 8}


def histogram_edges(low: float = 1e-3, high: float = 1e4, bins_per_decade: int = 8) -> np.ndarray:
    """Log-spaced bin edges from `low` to `high`; values below `low` and from `high` up get a bin of their own."""
    decades = np.log10(high) - np.log10(low)
    return np.logspace(np.log10(low), np.log10(high), int(round(decades * bins_per_decade)) + 1)


class ActivationHistogram:
    """Per neuron row, how many credited activations fell in each fixed bin (exact under merge: counts add).

    Bin 0 holds values below ``edges[0]``, bin ``i`` holds ``edges[i-1] <= v < edges[i]``, the last bin values
    ``>= edges[-1]``. Sparse: only the (row, bin) pairs that were hit are kept, as sorted keys
    ``row * num_bins + bin`` with their counts, so memory follows the neurons that win, not the model's width.
    """

    def __init__(self, edges: np.ndarray):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.num_bins = len(self.edges) + 1
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, rows: np.ndarray, values: np.ndarray) -> None:
        if len(rows) == 0:
            return
        bins = np.searchsorted(self.edges, values, side="right")
        keys, counts = np.unique(rows.astype(np.int64) * self.num_bins + bins, return_counts=True)
        self._add_keys(keys, counts.astype(np.int64))

    def add_counts(self, rows: np.ndarray, bins: np.ndarray, counts: np.ndarray) -> None:
        """Add `counts` credits to the (row, bin) pairs given (bins already computed, e.g. on the device)."""
        if len(rows):
            self._add_keys(rows.astype(np.int64) * self.num_bins + bins.astype(np.int64), counts.astype(np.int64))

    def _add_keys(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._pending.append((keys, counts))
        self._pending_size += len(keys)
        if self._pending_size > max(len(self.keys), 1 << 16):
            self.compact()

    def compact(self) -> "ActivationHistogram":
        if self._pending:
            keys = np.concatenate([self.keys] + [k for k, _ in self._pending])
            counts = np.concatenate([self.counts] + [c for _, c in self._pending])
            self.keys, inverse = np.unique(keys, return_inverse=True)
            self.counts = np.bincount(inverse, weights=counts, minlength=len(self.keys)).astype(np.int64)
            self._pending, self._pending_size = [], 0
        return self

    def merge(self, other: "ActivationHistogram") -> "ActivationHistogram":
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("Histograms with different bin edges cannot be merged exactly.")
        other.compact()
        self._add_keys(other.keys, other.counts)
        return self.compact()

    STATE = {"edges": np.float64, "keys": np.int64, "counts": np.int64}  # the state dict's arrays and their dtypes

    def state_dict(self) -> StateDict:
        return _arrays_state(self, self.STATE)

    def load_state_dict(self, state: StateDict) -> "ActivationHistogram":
        _load_arrays(self, state, self.STATE)
        self.num_bins = len(self.edges) + 1
        return self

    @classmethod
    def empty_like(cls, other: "ActivationHistogram") -> "ActivationHistogram":
        return cls(other.edges)

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, bins, counts) of the non-empty bins, sorted by row then bin."""
        self.compact()
        rows, bins = np.divmod(self.keys, self.num_bins)
        return rows, bins, self.counts.copy()
