"""Shared by the benchmark scripts: the plain forward baseline over the very batches `analyze` builds, the
main process's CPU time (user + system, with minor page faults) from ``resource.getrusage``, and the CPU time of
the engine's parts within a run (:class:`WorkTimer`), and the buckets a run hands to its encoding workers
(:func:`watching_buckets`)."""

from __future__ import annotations

import importlib
import resource
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds of this process (all its threads; worker processes excluded) and its minor page faults."""

    user: float = 0.0
    system: float = 0.0
    faults: int = 0

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: "CpuUsage") -> "CpuUsage":
        return CpuUsage(self.user - other.user, self.system - other.system, self.faults - other.faults)


def cpu_usage() -> CpuUsage:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuUsage(usage.ru_utime, usage.ru_stime, usage.ru_minflt)


def spread(values: list[float], digits: int = 2) -> str:
    """``median (min-max)`` of repeated measurements, for the report, with `digits` decimals."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def engine_batches(tokenizer, texts, max_length: int, batch_size: int, max_tokens_per_batch: int,
                   features=("token",), pad_to_multiple_of: int = 16) -> list[dict]:
    """The model inputs `analyze` runs (same encoder, windows, token budget and padded widths), for the plain
    forward baseline."""
    from hf_txray.batching import BatchEncoder, EncodeOptions
    from hf_txray.windows import default_stride

    options = EncodeOptions(max_length, features, stride=default_stride(max_length), batch_size=batch_size,
                            max_tokens_per_batch=max_tokens_per_batch, pad_multiple=pad_to_multiple_of)
    encoder = BatchEncoder(tokenizer, options)
    batches = []
    for i in range(0, len(texts), batch_size * 8):
        chunk = texts[i: i + batch_size * 8]
        batches += [b.inputs for b in encoder(chunk, list(range(i, i + len(chunk)))) if b.inputs]
    return batches


def plain_usage(model, batches) -> CpuUsage:
    """CPU usage of a bare ``model(**inputs)`` over `batches`."""
    start = cpu_usage()
    with torch.no_grad():
        for inputs in batches:
            model(**inputs)
    return cpu_usage() - start


def plain(model, batches) -> float:
    """CPU seconds (user + system) of a bare ``model(**inputs)`` over `batches`."""
    return plain_usage(model, batches).total


class WorkTimer:
    """Per-thread CPU time spent in the engine's parts, by part, within the runs of this process.

    * ``device``: the work that runs on the accelerator when there is one: the hooks' top-k and the credit
      reductions (``reduce_winners``, ``ProfileBuilder.accumulate``, the reductions of the queued keys, the folds of
      the device-side sums and the selection of top-example candidates);
    * ``forward``: the model's forward call, hooks included (the hooks' top-k is device work: the forward's own
      CPU time is ``forward`` minus ``_record``).

    Per-thread CPU time (the builder's flush thread runs beside the main thread); a timed call nested in another
    of the same group counts once."""

    DEVICE = [("sites.WinnerRecorder", "_record"), ("credit.ProfileBuilder", "accumulate"),
              ("credit", "reduce_winners"), ("credit", "reduce_stream"), ("credit", "reduce_keys"),
              ("credit", "merge_keyed"), ("credit", "admitted_candidates"), ("credit", "best_per_row")]
    FORWARD = [("forward.StackForward", "__call__")]

    def __init__(self):
        import importlib

        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        for group, targets in (("device", self.DEVICE), ("forward", self.FORWARD)):
            for where, name in targets:
                module, _, cls = where.partition(".")
                owner = importlib.import_module(f"hf_txray.{module}")
                owner = getattr(owner, cls) if cls else owner
                if hasattr(owner, name):
                    setattr(owner, name, self._timed(getattr(owner, name), group, name))

    def reset(self) -> None:
        self.seconds = {}

    def group(self, group: str) -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith(group + ":"))

    def _timed(self, fn, group: str, name: str):
        def wrapper(*args, **kwargs):
            depth = getattr(self._local, group, 0)
            if depth:
                return fn(*args, **kwargs)
            setattr(self._local, group, 1)
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                setattr(self._local, group, 0)
                with self._lock:
                    key = f"{group}:{name}"
                    self.seconds[key] = self.seconds.get(key, 0.0) + spent
        return wrapper


@contextmanager
def watching_buckets() -> Iterator[dict]:
    """Within the block, record what `analyze` runs hand to their encoding workers: ``buckets``, a ``(texts,
    batches)`` pair per bucket, and ``first``, the ``time.perf_counter()`` of the first batch's forward pass (an
    accelerator is idle until then)."""
    analyze_module = importlib.import_module("hf_txray.analyze")
    record: dict = {"buckets": [], "first": None}
    real_encode, real_process = analyze_module.encode_buckets, analyze_module.Profiler._process

    def encode(encoder, buckets, workers, read=None):
        for bucket, batches in real_encode(encoder, buckets, workers, read):
            record["buckets"].append((len(bucket.example_ids), len(batches)))
            yield bucket, batches

    def process(self, batch, builder, recorder):
        if record["first"] is None:
            record["first"] = time.perf_counter()
        return real_process(self, batch, builder, recorder)

    analyze_module.encode_buckets, analyze_module.Profiler._process = encode, process
    try:
        yield record
    finally:
        analyze_module.encode_buckets, analyze_module.Profiler._process = real_encode, real_process
