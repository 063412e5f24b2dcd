"""The end of a run at scale: moving the keyed sums to the host accumulators (``ProfileBuilder.sink``) and building
the feature tables, for a profile with millions of (neuron, token) keys.

On a GPU this work comes after the last forward pass, on the host, and the forward of a small model over a corpus of
a million tokens takes a few seconds (SmolLM2-135M at about 0.35M tokens/s): a host merge of the same order halves
the run's throughput. The keys are synthetic but shaped like a run's: SmolLM2's grid (30 layers x 1536 MLP neurons),
winners drawn from a skewed distribution over neurons and tokens from a Zipf law over a 30k vocabulary, each with the
example id's parity (the noise statistics' split halves). The baseline is the previous merge (every chunk through a
stable sort and a keyed sum, parities paired by ``reduceat``; the noise sums aligned with the feature table's keys by
binary searches), kept here and run interleaved in the same process.

Usage: python bench/bench_sink.py [--credits 20000000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

LAYERS, NEURONS, VOCAB = 30, 1536, 30_000


def previous_reduce_in_order(parts):
    """The merge before this change: a stable sort and keyed sums even for one sorted chunk of distinct keys."""
    keys = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    width = len(parts[0][1]) if parts else 0
    if len(keys) == 0:
        return keys, [np.zeros(0) for _ in range(width)], np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    columns = [np.bincount(group, weights=np.concatenate([p[1][i] for p in parts])[order], minlength=len(starts))
               for i in range(width)]
    counts = np.add.reduceat(np.concatenate([np.asarray(p[2], dtype=np.int64) for p in parts])[order], starts)
    return keys[starts], columns, counts


def previous_merge_parity(keys, columns, counts):
    base = keys >> 1
    if len(base) == 0:
        return base, list(columns), counts
    first = np.empty(len(base), dtype=bool)
    first[0] = True
    np.not_equal(base[1:], base[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return base[starts], [np.add.reduceat(c, starts) for c in columns], np.add.reduceat(counts, starts)


def previous_aligned(self, keys):
    """NoiseSums.aligned before the merge join: a binary search per odd-half and per squared key."""
    self.odd.compact()
    self.squares.compact()
    mass_odd, count_odd = np.zeros(len(keys)), np.zeros(len(keys), dtype=np.int64)
    where = np.searchsorted(keys, self.odd.keys)
    mass_odd[where], count_odd[where] = self.odd.mass, self.odd.count
    mass_sq = np.zeros(len(keys))
    mass_sq[np.searchsorted(keys, self.squares.keys)] = self.squares.mass
    return mass_odd, count_odd, mass_sq


@contextmanager
def previous_engine() -> Iterator[None]:
    from hf_txray import accumulators, credit

    saved = accumulators.reduce_in_order, credit.merge_parity, accumulators.NoiseSums.aligned
    accumulators.reduce_in_order, credit.merge_parity = previous_reduce_in_order, previous_merge_parity
    accumulators.NoiseSums.aligned = previous_aligned
    try:
        yield
    finally:
        accumulators.reduce_in_order, credit.merge_parity, accumulators.NoiseSums.aligned = saved


def synthetic_streams(credits: int, seed: int = 0) -> dict[str, tuple]:
    """Sorted unique keys with their sums and counts, as a run's held sums reach the host (one chunk per stream)."""
    from hf_txray.accumulators import FEATURE_BITS

    rng = np.random.default_rng(seed)
    neuron = np.minimum(rng.zipf(1.3, credits) - 1, NEURONS - 1)  # a few neurons win most positions
    rows = rng.integers(0, LAYERS, credits) * NEURONS + rng.permutation(NEURONS)[neuron]
    fid = np.minimum(rng.zipf(1.2, credits) - 1, VOCAB - 1)
    odd = rng.integers(0, 2, credits)
    position = np.minimum(rng.geometric(0.04, credits), 127)
    mass = rng.gamma(2.0, 0.5, credits)
    streams = {}
    for name, code, columns in (("feature:token", fid * 2 + odd, [mass, mass * mass]),
                                ("positions", position * 2 + odd, [mass])):
        keys, inverse = np.unique((rows << (FEATURE_BITS + 1)) | code, return_inverse=True)
        streams[name] = (keys, [np.bincount(inverse, weights=c, minlength=len(keys)) for c in columns],
                         np.bincount(inverse, minlength=len(keys)))
    return streams


def end_of_run(streams: dict[str, tuple]) -> dict[str, float]:
    """CPU seconds to sink every stream into a fresh builder, then to build its feature tables."""
    from hf_txray.credit import ProfileBuilder
    from hf_txray.features import Vocabulary

    builder = ProfileBuilder(LAYERS, NEURONS, {"token": Vocabulary([str(i) for i in range(VOCAB)])}, 10)
    start = time.process_time()
    for name, (keys, sums, counts) in streams.items():
        builder.sink(name, keys, [s.copy() for s in sums], counts.copy())
    sunk = time.process_time()
    tables = builder.tables()
    done = time.process_time()
    return {"sink": sunk - start, "tables": done - sunk, "total": done - start,
            "mass": float(tables["token"].mass.sum()), "keys": int(len(tables["token"].mass)),
            "noise": [float(np.dot(np.arange(len(c)) % 97, c)) for c in (tables["token"].mass_odd,
                                                                         tables["token"].count_odd,
                                                                         tables["token"].mass_sq)]}


def measure(credits: int, repeats: int) -> dict:
    streams = synthetic_streams(credits)
    runs: dict[str, list[dict]] = {"previous": [], "now": []}
    for _ in range(repeats):  # interleaved
        with previous_engine():
            runs["previous"].append(end_of_run(streams))
        runs["now"].append(end_of_run(streams))
    assert runs["now"][0]["mass"] == runs["previous"][0]["mass"], "the two merges disagree"
    assert runs["now"][0]["noise"] == runs["previous"][0]["noise"], "the two alignments disagree"
    best = {k: {part: min(r[part] for r in v) for part in ("sink", "tables", "total")} for k, v in runs.items()}
    return {"credits": credits, "keys": {name: len(s[0]) for name, s in streams.items()},
            "table_keys": runs["now"][0]["keys"], "best": best, "runs": runs}


def report(r: dict) -> str:
    prev, now = r["best"]["previous"], r["best"]["now"]
    keys = r["keys"]
    return "\n".join([
        f"Synthetic held sums of {r['credits']:,} credits on SmolLM2's grid ({LAYERS} layers x {NEURONS} MLP neurons, "
        f"tokens from a Zipf law over {VOCAB:,} values, both example-id parities): {keys['feature:token']:,} "
        f"(neuron, token, parity) keys and {keys['positions']:,} (neuron, position, parity) keys reach a fresh "
        f"builder's host accumulators; then its feature tables ({r['table_keys']:,} (neuron, token) entries) are "
        "built. CPU seconds, best of interleaved runs in one process; the previous merge (and, since 2026-12-04, the "
        "previous alignment of the noise sums: binary searches instead of a merge join) is kept in "
        "`bench/bench_sink.py`, and both give the same sums.",
        "",
        "| step | previous merge | now | ratio |", "| --- | --- | --- | --- |",
        *(f"| {step} | {prev[step]:.2f} s | {now[step]:.2f} s | {prev[step] / max(now[step], 1e-9):.2f}x |"
          for step in ("sink", "tables", "total")),
    ])


def main() -> None:
    from results_file import bench_parser, publish

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = bench_parser(credits=20_000_000, repeats=3).parse_args()
    result = measure(args.credits, args.repeats)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    publish("End of a run at scale: host merges (`bench_sink.py`)", report(result), args)


if __name__ == "__main__":
    main()
