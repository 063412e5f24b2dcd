"""The hash of a corpus's texts, in order: what a profile records as ``texts_hash`` (:mod:`hf_txray.provenance`) and
what keys the tag cache (:mod:`hf_txray.features.annotation`). Each text is its UTF-8 bytes after their length
(8 bytes, little endian), so no two sequences of texts give the same stream of bytes."""

from __future__ import annotations

import hashlib
from typing import Any


def update_texts_digest(digest: Any, texts: list[str]) -> None:
    """Add `texts` (in order) to a ``hashlib.sha256`` `digest`, as :func:`texts_hash` defines it; a stream's texts
    go through here bucket by bucket (:class:`~hf_txray.streaming.StreamingSource`)."""
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)


def texts_hash(dataset: Any, column: str) -> str:
    """The hash of the texts of `column` of a ``datasets.Dataset``, in order (streamed in Arrow chunks)."""
    digest = hashlib.sha256()
    for chunk in dataset.with_format("arrow").iter(batch_size=10_000):
        update_texts_digest(digest, chunk[column].to_pylist())
    return "sha256:" + digest.hexdigest()


def strings_hash(texts: list[str]) -> str:
    """:func:`texts_hash` of a list of strings."""
    import datasets

    return texts_hash(datasets.Dataset.from_dict({"text": list(texts)}), "text")
