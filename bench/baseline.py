"""Shared by the benchmark scripts: the plain forward baseline over the very batches `analyze` builds, and the
main process's CPU time (user + system, with minor page faults) from ``resource.getrusage``."""

from __future__ import annotations

import resource
import statistics
from dataclasses import dataclass

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
                   features=("token",)) -> list[dict]:
    """The model inputs `analyze` runs (same encoder, windows and token budget), for the plain forward baseline."""
    from hf_txray.batching import BatchEncoder, EncodeOptions, default_stride

    encoder = BatchEncoder(tokenizer, EncodeOptions(max_length, features, stride=default_stride(max_length),
                                                    batch_size=batch_size, max_tokens_per_batch=max_tokens_per_batch))
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
