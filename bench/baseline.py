"""Shared by the benchmark scripts: the plain forward baseline over the very batches `analyze` builds."""

from __future__ import annotations

import time

import torch


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


def plain(model, batches) -> float:
    """CPU seconds of a bare ``model(**inputs)`` over `batches`."""
    start = time.process_time()
    with torch.no_grad():
        for inputs in batches:
            model(**inputs)
    return time.process_time() - start
