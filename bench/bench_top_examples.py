"""Merging top-example candidates into the per-neuron lists (``TopExamples.add``) on SmolLM2's grid.

GPU check run 4 spent 2.3 s of SmolLM2-135M's 12.4 s `analyze` in these merges (``_best_per_row``: 68 sorts of
every touched row's old and new entries). The candidates here are shaped like a run's: SmolLM2's grid (30 layers x
1536 MLP neurons, 10 examples each), winners drawn skewed over neurons, activations rounded as bf16's few mantissa
bits round them (many exact ties), example ids rising through the corpus. As on the device, a batch's candidates are
admitted against the thresholds of the previous merge only. The baseline is the previous ``add`` (every candidate
through a four-key ``lexsort``), kept here and run interleaved in the same process; both keep the same entries
(checked).

Usage: python bench/bench_top_examples.py [--merges 34] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from hf_txray.accumulators import TopExamples, rank_within_groups  # noqa: E402

LAYERS, NEURONS, CAPACITY, BATCH_POSITIONS = 30, 1536, 10, 65_536


class PreviousTopExamples(TopExamples):
    """``add`` before this change: no admission against the current thresholds, and a four-key sort."""

    def _admitted(self, rows, activation, fields):
        return rows, activation, fields

    def _best_per_row(self, rows, activation, fields):
        order = np.lexsort((fields["token_index"], fields["example_id"], -activation, rows))
        keep = order[rank_within_groups(rows[order]) < self.capacity]
        return rows[keep], activation[keep], {k: v[keep] for k, v in fields.items()}


def batches(merges: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """One batch of winners per merge: every layer's winner at each of `BATCH_POSITIONS` positions."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(merges):
        neuron = np.minimum(rng.zipf(1.3, BATCH_POSITIONS * LAYERS // 8) - 1, NEURONS - 1)
        rows = rng.integers(0, LAYERS, len(neuron)) * NEURONS + neuron
        activation = np.round(rng.standard_normal(len(rows)) * 128) / 128  # bf16-like: many exact ties
        example_id = np.sort(rng.integers(m * 2000, (m + 1) * 2000, len(rows)))
        token_index = rng.integers(0, 512, len(rows))
        out.append({"row": rows, "activation": activation, "example_id": example_id, "token_index": token_index,
                    "char_start": token_index * 4, "char_end": token_index * 4 + 3})
    return out


def run(cls, data) -> tuple[float, TopExamples]:
    top = cls(LAYERS * NEURONS, CAPACITY)
    seconds = 0.0
    for batch in data:
        admitted = batch["activation"] >= top.activation[batch["row"], CAPACITY - 1]  # the device's admission
        cand = {k: v[admitted] for k, v in batch.items()}
        start = time.perf_counter()
        top.add(cand.pop("row"), cand.pop("activation"), **cand)
        seconds += time.perf_counter() - start
    return seconds, top


def measure(merges: int, repeats: int) -> dict:
    data = batches(merges)
    times: dict[str, list[float]] = {"previous": [], "now": []}
    for _ in range(repeats):
        before, old = run(PreviousTopExamples, data)
        after, new = run(TopExamples, data)
        times["previous"].append(before)
        times["now"].append(after)
        assert np.array_equal(old.activation, new.activation)
        assert all(np.array_equal(old.data[k], new.data[k]) for k in TopExamples.FIELDS)
    previous, now = statistics.median(times["previous"]), statistics.median(times["now"])
    return {"merges": merges, "candidates": int(sum(len(b["row"]) for b in data)), "repeats": repeats,
            "previous_s": previous, "now_s": now, "speedup": previous / now, "times": times}


def report(result: dict) -> str:
    return "\n".join([
        f"SmolLM2's grid ({LAYERS} x {NEURONS} neurons, {CAPACITY} examples each), {result['merges']} merges of "
        f"{result['candidates']:,} winners in all (admitted against the previous merge's thresholds, as on the "
        f"device), bf16-like ties; median of {result['repeats']} interleaved runs, one process.", "",
        "| merge | seconds | ratio |", "| --- | --- | --- |",
        f"| previous (four-key lexsort of every candidate) | {result['previous_s']:.2f} | 1.00 |",
        f"| now (admitted against the current thresholds, three-key lexsort) | {result['now_s']:.2f} | "
        f"{result['speedup']:.2f}x faster |", "",
        "Both keep the same entries (checked in every run)."])


def main() -> None:
    from results_file import bench_parser, publish

    args = bench_parser(merges=34, repeats=3).parse_args()
    result = measure(args.merges, args.repeats)
    print(json.dumps({k: v for k, v in result.items() if k != "times"}))
    publish("Top-example merges (`bench_top_examples.py`)", report(result), args)


if __name__ == "__main__":
    main()
