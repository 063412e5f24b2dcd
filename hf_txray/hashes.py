"""Content hashes: of a file's bytes (remembered by the file's stamp) and of a corpus's texts, in order (and in any
order, :func:`texts_multiset_hash`).

What a profile's provenance records (:mod:`hf_txray.provenance`: data and model files, ``texts_hash``) and what keys
the tag cache (:mod:`hf_txray.features.annotation`: the texts and the spaCy pipeline's files). A text is hashed as
its UTF-8 bytes after their length (8 bytes, little endian), so no two sequences of texts give the same bytes."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

_CHUNK = 1 << 20


def file_stamp(path: str | Path) -> tuple[int, int, int, int]:
    """(size, mtime, inode change time in ns, inode) of a file: what changes when its bytes may have, as git's index
    compares. The change time moves with every write and every ``utime``, so a file rewritten with its old mtime
    (``cp -p``, ``rsync -t``, ``tar x``) has another stamp."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB chunks.

    Remembered under the hf_txray cache by the absolute path and :func:`file_stamp`, as git does, so a multi-GB
    model folder is read once, not at every ``analyze``, and a file rewritten with its old mtime is read again.
    """
    from .cache import cache_dir

    stamp = "|".join(map(str, file_stamp(path)))
    key = hashlib.sha1(f"{Path(path).resolve()}|{stamp}".encode()).hexdigest()
    memo = cache_dir() / "sha256" / key
    if memo.is_file():
        return memo.read_text().strip()
    digest = bytes_sha256(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{key}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)
    except OSError:  # a read-only cache costs only the re-read
        pass
    return digest


def bytes_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes, read now in 1 MiB chunks (:func:`file_sha256` remembers it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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


def add_texts_sum(total: int, texts: Sequence[str]) -> int:
    """`total` plus the sha256 of each of `texts` (hashed alone, as :func:`update_texts_digest` writes it), modulo
    2**256: the running sum of :func:`texts_multiset_hash`, which a stream adds bucket by bucket."""
    for text in texts:
        digest = hashlib.sha256()
        update_texts_digest(digest, [text])
        total = (total + int.from_bytes(digest.digest(), "little")) % (1 << 256)
    return total


def texts_sum_hash(total: int) -> str:
    """The :func:`texts_multiset_hash` string of a sum from :func:`add_texts_sum`."""
    return "sha256-sum:" + total.to_bytes(32, "little").hex()


def combined_texts_sum_hash(hashes: Sequence[str | None]) -> str | None:
    """The :func:`texts_multiset_hash` of the texts of several parts together, from each part's: the sum of their
    sums, modulo 2**256 (what one hash of all their texts gives); None when a part has none (or one of another form),
    since the texts of that part are not known."""
    total = 0
    for part in hashes:
        if not isinstance(part, str) or not part.startswith("sha256-sum:"):
            return None
        total = (total + int.from_bytes(bytes.fromhex(part.removeprefix("sha256-sum:")), "little")) % (1 << 256)
    return texts_sum_hash(total)


def texts_multiset_hash(dataset: Any, column: str) -> str:
    """The hash of the texts of `column` of a ``datasets.Dataset`` in any order: the sum of each text's sha256,
    modulo 2**256 (a copy of a text counts again). The same texts shuffled give the same hash, where
    :func:`texts_hash`, in order, differs: what :func:`hf_txray.compare` reads to tell the same corpus, whose
    split halves are drawn from each text's content (:func:`text_halves`), whatever its position."""
    total = 0
    for chunk in dataset.with_format("arrow").iter(batch_size=10_000):
        total = add_texts_sum(total, chunk[column].to_pylist())
    return texts_sum_hash(total)


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """One 64-bit content hash per text (``uint64``): the first 8 bytes (little endian) of the sha256, as
    :func:`update_texts_digest` writes it, of the text in Unicode NFC without its whitespace. Compact enough to keep
    one per sentence (what a probe trained on: :attr:`hf_txray.probing.ProbingResult.train_sentences`); two texts
    share one with odds of 2**-64 unless they differ in whitespace only.

    The whitespace goes because one sentence is written with several spacings: a CoNLL-U file's text follows
    ``SpaceAfter=No`` ("story:"), its words joined (a dataset's ``tokens`` column, ``from_columns``) do not
    ("story :"), a line read from a file may keep its newline. Hashed as written, 292 of the first 300 sentences of
    UD English EWT dev differed between the two forms, and a probe trained on one form was scored on the other without
    a word."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, text in enumerate(texts):
        digest = hashlib.sha256()
        update_texts_digest(digest, ["".join(unicodedata.normalize("NFC", text).split())])
        out[i] = int.from_bytes(digest.digest()[:8], "little")
    return out


def text_halves(texts: Sequence[str]) -> np.ndarray:
    """The split half of each text (``int64``, 0 or 1): the lowest bit of its :func:`text_hashes`.

    A profile's noise statistics (split-half noise floors, the per-neuron test's design effect) keep the sums of one
    half apart. Drawn from the text's content, the half puts the copies of a text (a tweet posted many times,
    boilerplate, a web crawl's repeats) in one half, so that they count as one unit of independence, as the copies
    of one text should; by example id parity they fell in both halves alike, and the halves looked alike (a stage of
    5 tweets repeated 8 times had a noise floor of 0.000). It is a function of the text alone: the same in every
    process, window, bucket, merge order and resumed run."""
    return (text_hashes(texts) & np.uint64(1)).astype(np.int64)


def strings_hash(texts: list[str]) -> str:
    """:func:`texts_hash` of a list of strings."""
    import datasets

    return texts_hash(datasets.Dataset.from_dict({"text": list(texts)}), "text")
