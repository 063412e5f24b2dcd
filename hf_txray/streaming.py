"""Where a run's texts come from: an in-memory ``datasets.Dataset`` shard or a streamed ``IterableDataset``.

Both yield *buckets* (consecutive texts with their example ids and, for in-memory corpora, cached word/tag
annotations) together with the state that resumes the run right after the bucket. Streamed corpora are split
across processes with ``datasets.distributed.split_dataset_by_node`` (each example seen exactly once; uneven
and empty shards are fine) and checked row by row: a missing text column or a None row raises the same
:class:`~hf_txray.errors.DatasetError` as for in-memory data, at the first bad batch, naming the row.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import itertools
import math
import numbers
import re
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .counts import check_text
from .errors import DatasetError
from .features import WORD_START
from .read_errors import NOT_UTF8_REENCODE, FailedFiles, first_undecodable, root_cause, short_cause
from .redaction import safe_cause


@dataclass
class Bucket:
    """Consecutive texts of one source and the resume state after them.

    An in-memory source leaves `texts` and `annotations` unread (None) and says where they are in `rows`
    (``[lo, hi)`` of its shard): whoever encodes the bucket reads them with :meth:`InMemorySource.read`, in a
    worker process when there are workers, so the main process neither converts nor sends them.
    """

    texts: list[str] | None
    example_ids: np.ndarray
    annotations: dict[str, list] | None
    state: dict[str, Any]
    rows: tuple[int, int] | None = None


RAMP_BUCKETS = 3  # first buckets of a ramped plan, at 1/8, 1/4 and 1/2 of the full size


@dataclass(frozen=True)
class BucketPlan:
    """The size of each bucket: at most `texts` texts, closed early once its texts reach `chars` characters.

    Counting characters keeps a bucket of long documents near the batches it is meant to hold: by count alone, the
    60 whole WikiText-2 validation articles made one bucket of 22 windowed batches (``bench/bench_buckets.py``),
    which one worker encodes while the others idle. With
    `ramp`, the first :data:`RAMP_BUCKETS` buckets are 1/8, 1/4 and 1/2 of the full size, so an accelerator waits
    for a small first bucket instead of a full one. The sizes are a function of the texts and the bucket's index
    alone (saved with a checkpoint's state), so a resumed run cuts the same buckets as an uninterrupted one.

    Args:
        texts (`int`): most texts per bucket.
        chars (`int`, *optional*): characters (code points) after which a bucket closes, the text that reaches
            them included; None: count only.
        ramp (`bool`, *optional*, defaults to `False`): start with smaller buckets.
    """

    texts: int
    chars: int | None = None
    ramp: bool = False

    def limits(self, index: int) -> tuple[int, int | None]:
        """(most texts, character budget) of bucket number `index` (from 0)."""
        scale = 2.0 ** min(0, index - RAMP_BUCKETS) if self.ramp else 1.0
        chars = None if self.chars is None else max(1, math.ceil(self.chars * scale))
        return max(1, math.ceil(self.texts * scale)), chars


def _bucket_index(state: dict[str, Any] | None) -> int:
    """The index of the next bucket after `state` (a checkpoint of an earlier version has none: past the ramp)."""
    return 0 if not state else int(state.get("bucket", RAMP_BUCKETS))


def is_streaming(corpus: Any) -> bool:
    import datasets

    return isinstance(corpus, datasets.IterableDataset)


class InMemorySource:
    """A contiguous shard ``[start, end)`` of a ``datasets.Dataset``; example ids are corpus indices."""

    def __init__(self, shard, start: int, text_column: str):
        self.shard, self.start, self.text_column = shard, start, text_column
        self.total: int | None = len(shard)

    def buckets(self, plan: BucketPlan, state: dict[str, Any] | None) -> Iterator[Bucket]:
        lo, index = (int(state["processed"]) if state else 0), _bucket_index(state)
        while lo < len(self.shard):
            texts, chars = plan.limits(index)
            hi = min(lo + texts, len(self.shard))
            if chars is not None:  # the first text whose running length reaches the budget closes the bucket
                reached = int(np.searchsorted(np.cumsum(self._lengths(lo, hi)), chars, side="left"))
                hi = min(hi, lo + reached + 1)
            index += 1
            yield Bucket(None, np.arange(self.start + lo, self.start + hi), None,
                         {"processed": hi, "bucket": index}, (lo, hi))
            lo = hi

    def _lengths(self, lo: int, hi: int) -> np.ndarray:
        """Characters (code points) of the texts of shard rows ``[lo, hi)``, counted by Arrow without converting
        them to Python strings."""
        import pyarrow.compute as pc

        column = self.shard.with_format("arrow")[lo:hi][self.text_column]
        return pc.utf8_length(column).fill_null(0).to_numpy(zero_copy_only=False)

    def read(self, lo: int, hi: int) -> tuple[list[str], dict[str, list] | None]:
        """The texts of shard rows ``[lo, hi)`` and their cached word/tag annotations (None without)."""
        rows = self.shard[lo:hi]
        annotated = WORD_START in self.shard.column_names
        return rows[self.text_column], ({k: v for k, v in rows.items() if k != self.text_column} if annotated
                                        else None)

    def fetch(self, ids: np.ndarray) -> dict[int, str]:
        # to_dict reads the column in one Arrow call (iterating a datasets Column decodes row by row).
        rows = self.shard.select_columns([self.text_column]).select(ids - self.start).to_dict()
        return dict(zip(ids.tolist(), rows[self.text_column]))

    num_texts_held = 0  # texts are read back from the dataset

    def keep_texts(self, ids: set[int], through: int) -> None:
        """Nothing to do: texts are read back from the dataset."""

    def kept_texts(self, through: int) -> dict[int, str]:
        """None: a checkpoint needs no texts, they are read back from the dataset."""
        return {}

    def restore_texts(self, texts: dict[int, str]) -> None:
        """Nothing to do (see :meth:`kept_texts`)."""


HEAD_TEXTS = 16  # first texts of a stream whose hash a checkpoint records (StreamingSource.head_hash)


class StreamingSource:
    """This process's part of an ``IterableDataset``.

    Example ids are ``local_position * world_size + rank``: the stream position itself, on one process or several.
    ``split_dataset_by_node`` is told to interleave examples (``strategy="examples"``): its default gives each
    process whole data files when their number is a multiple of the process count, and then neither a position
    in the corpus (example ids, the parity halves of the noise statistics) nor ``take(num_samples)`` (cut per
    file) would be that of one process. The texts of top examples are kept (and pruned to those
    still referenced) because a stream cannot be read back. The texts read are hashed as they pass
    (:meth:`read_hash`), so a profile of a stream can record what it read without a second pass.
    """

    def __init__(self, corpus, text_column: str | None, rank: int, world: int,
                 local_files: tuple[str, Iterable[str]] | None = None):
        from datasets.distributed import split_dataset_by_node

        split = getattr(corpus, "_distributed", None)
        if split is not None and world > 1:
            raise DatasetError(
                f"This stream was already split with split_dataset_by_node (the part of rank {split.rank} of "
                f"{split.world_size}): hf_txray splits a stream across its {world} processes itself, so that every "
                "example is read once and numbered by its position in the whole stream (split again, half the "
                "corpus would be skipped). Pass the whole stream, as loaded.")
        self.corpus = (split_dataset_by_node(corpus, rank=rank, world_size=world, strategy="examples")
                       if world > 1 else corpus)
        self.text_column, self.rank, self.world = text_column, rank, world
        self.local_files = local_files  # (path, its data files): a local stream's, to name one a reader fails on
        self._chosen_from: frozenset[str] | None = None  # the first row's columns, when the text column was chosen
        self.total: int | None = None
        self._texts: dict[int, str] = {}
        self.num_read = 0  # texts read in this run
        self._digest: Any = hashlib.sha256()  # of the texts read from the stream's start
        self._sum = 0  # of the texts read from the stream's start, in any order (hashes.add_texts_sum)
        self._read_to_end = False
        self._resumed = False
        self._head: list[str] = []  # this process's first texts as read before the run (expect_head, head_hash)
        self._numbers: NumbersColumn | None = None  # the head of a CSV text column, while its cells are all numbers
        self._rows: Lookahead | None = None  # the rows of this run, as buckets() reads them
        self._read_on: Iterator[dict[str, Any]] | None = None  # the rows of a pass begun before the run (read_on)

    def share_of(self, num_samples: int | None) -> int | None:
        """The texts this process reads of a stream cut at `num_samples` (at most: the stream may end sooner), as
        examples are interleaved; None when unknown. A progress bar's total."""
        return None if num_samples is None else len(range(self.rank, num_samples, self.world))

    def read_on(self, rows: Iterator[dict[str, Any]]) -> None:
        """Profile `rows`, the stream's rows from its start read in a pass begun before the run
        (:func:`first_texts`), instead of reading the stream again from its start (one process, no checkpoint: a
        checkpoint records the state of the pass it reads)."""
        self._read_on = rows

    def buckets(self, plan: BucketPlan, state: dict[str, Any] | None) -> Iterator[Bucket]:
        done, index = 0, _bucket_index(state)
        rows: Iterable[dict[str, Any]] = self.corpus if state or self._read_on is None else self._read_on
        self._read_on = None
        if state:
            done = int(state["processed"])
            if has_shuffle_buffer(self.corpus):
                # datasets' state_dict does not hold a shuffle buffer: loaded, the buffer's texts would be lost.
                # Read the (seeded, so equally ordered) stream again from its start and skip what was done.
                rows = itertools.islice(self.corpus, done, None)
            else:
                # The texts before the resume point are not read again (on a Hub stream that would download them
                # all again).
                self.corpus.load_state_dict(state["dataset"])
            self._resumed = True  # a resumed run records no texts hash (a local file stays pinned by its content)
        texts: list[str] = []
        limit, budget = plan.limits(index)
        chars = 0
        self._rows = Lookahead(self._read(rows, done))
        for row in self._rows:
            texts.append(self._text_of(row, done + len(texts)))
            if not state:
                self._check_head(done + len(texts) - 1, texts[-1])
            chars += len(texts[-1])
            if len(texts) == limit or (budget is not None and chars >= budget):  # as InMemorySource.buckets
                index += 1
                yield self._bucket(texts, done, index)
                done, texts, chars = done + len(texts), [], 0
                limit, budget = plan.limits(index)
        if not state:
            self._check_head(done + len(texts), None)  # the stream ended before the texts read ahead of the run
        self._read_to_end = True  # set before the last yield: the run may stop at the last bucket
        if texts:
            yield self._bucket(texts, done, index + 1)
        else:  # the stream ended with a full bucket: a short column of numbers alone is judged whole
            self._check_numbers([])

    def _read(self, rows: Iterable[dict[str, Any]], done: int) -> Iterator[dict[str, Any]]:
        """`rows`, with a reader's failure (a data file the stream reaches late, a generator's own error) said in one
        line naming the row it stopped at and the file at fault: a stream is read lazily, so such an error comes
        mid-run, from deep inside datasets, after its log of the reader's whole message."""
        iterator, failed, position = iter(rows), FailedFiles(), done
        while True:
            try:
                with failed.listening():
                    row = next(iterator)
            except StopIteration:
                return
            except DatasetError:
                raise
            except Exception as err:  # pyarrow, pandas, json and a user's generator raise their own types
                raise self._unreadable(position, err, failed.file) from safe_cause(err)  # no URL's token
            yield row
            position += 1

    def _unreadable(self, position: int, err: Exception, file: str | None) -> DatasetError:
        cause = root_cause(err)
        at = f", in its file {file!r}" if file else ""
        if file is None and isinstance(cause, UnicodeDecodeError) and self.local_files is not None:
            found = first_undecodable(*self.local_files)  # no reader names the file of bytes that are not UTF-8
            if found is not None:
                file, at = found[0], f", in its file {found[0]!r} (line {found[1]})"
        if isinstance(cause, UnicodeDecodeError):  # the file is not UTF-8: say so, and how to re-encode it
            fix = f"That file is not UTF-8: {NOT_UTF8_REENCODE}"
        elif file:
            fix = ("Fix or remove that file (every data file of a folder must be readable by its extension's reader "
                   "and hold the same columns)")
        else:
            fix = ("Fix the source at fault (a data file the stream reads: it must be readable by its extension's "
                   "reader and hold the same columns as the others; a generator: its own error)")
        where = f"after row {self._describe(position - 1)}" if position else "before its first row"
        return DatasetError(
            f"The stream failed {where}{at} "
            f"(cause: {type(cause).__name__}: {short_cause(cause)}); the run stopped there (a checkpoint, if any, "
            f"holds the rows up to its last save). {fix}, or stop before it with num_samples (CLI: --num-samples).")

    def _bucket(self, texts: list[str], done: int, index: int) -> Bucket:
        from .hashes import add_texts_sum, update_texts_digest

        self._check_numbers(texts)

        ids = np.arange(done, done + len(texts), dtype=np.int64) * self.world + self.rank
        self._texts.update(zip(ids.tolist(), texts))
        self.num_read += len(texts)
        update_texts_digest(self._digest, texts)
        self._sum = add_texts_sum(self._sum, texts)
        state = {"processed": done + len(texts), "bucket": index,
                 "dataset": copy.deepcopy(self.corpus.state_dict())}
        return Bucket(list(texts), ids, None, state)

    def _check_numbers(self, texts: list[str]) -> None:
        """Refuse a CSV text column of numbers alone (:func:`refuse_numbers_column`; helper 290), judged on its
        first :data:`NUMBERS_HEAD` non-empty cells (all of them in a shorter stream), whatever the buckets' sizes: on
        the first bucket alone, a stream of one number then texts was refused where the same file in memory was read
        (batch_size=1, checkpoint_every=1: a first bucket of one text). A resumed run is not checked again."""
        if self._resumed or (self._numbers is None and (self.num_read or builder_name(self.corpus) != "csv")):
            return
        if self._numbers is None:
            self._numbers = NumbersColumn(self.text_column, NUMBERS_HEAD)
        if not self._numbers.read(texts) and (self._numbers.count >= NUMBERS_HEAD or self._read_to_end):
            self._numbers.refuse()

    def check_numbers_read(self) -> None:
        """At the end of a run that stopped before the stream's end (``max_positions`` reached) and before
        :data:`NUMBERS_HEAD` cells were read: judge the CSV text column on its first :data:`NUMBERS_HEAD` non-empty
        cells all the same (all of them in a shorter stream), reading the cells it has not read yet ahead (kept for
        the rows that follow, unprofiled), and refuse it when they are numbers alone (:func:`refuse_numbers_column`).
        Judged on the cells its buckets had read, a column whose first cells are numbers and the next ones texts was
        refused or not by bucket size: 5 numbers then 40 sentences, max_positions=1, was refused with
        checkpoint_every=1 and read without it, and in memory (helper 306). A row the stream fails to read ahead
        stops the reading: the cells read are judged, and its error is raised where the run would read that row.

        Raises:
            DatasetError: the column's first cells are numbers alone.
        """
        if self._numbers is None or self._resumed:
            return
        numbers = self._numbers
        if self._rows is not None and not self._read_to_end and not numbers.has_text and numbers.count < NUMBERS_HEAD:
            for row in self._rows.peek():
                cell = row.get(self.text_column) if isinstance(row, dict) else row
                if numbers.read([cell]) or numbers.count >= NUMBERS_HEAD:
                    break
        numbers.refuse()

    def _text_of(self, row: dict[str, Any], position: int) -> str:
        if not isinstance(row, dict):  # datasets accepts a generator of bare values lazily, and yields them as is
            raise DatasetError(
                f"Row {self._describe(position)} of the IterableDataset is {type(row).__name__} ({row!r:.60}), not a "
                "row dict: IterableDataset.from_generator needs rows such as {'text': ...}. Yield dicts, or pass the "
                "generator of strings itself.")
        if self.text_column is None:
            lists = {k: v for k, v in row.items() if isinstance(v, list) and v}
            self.text_column = choose_text_column(
                list(row), [k for k, v in row.items() if isinstance(v, str)],
                nested=[k for k, v in row.items() if isinstance(v, dict)],
                row_lists=[k for k, v in lists.items() if all(isinstance(x, dict) for x in v)],
                word_lists=[k for k, v in lists.items() if all(isinstance(x, str) for x in v)],
                reader=builder_name(self.corpus))
            self._chosen_from = frozenset(row)
        elif self._chosen_from is not None and row.keys() != self._chosen_from:
            # The column was chosen from the first row: another row's columns could have chosen another one.
            raise DatasetError(
                f"Row {self._describe(position)} has the columns {sorted(row)}, and the first row "
                f"{sorted(self._chosen_from)}: the text column {self.text_column!r} was chosen from the first row "
                "alone, as the stream declares no columns. Pass text_column=... (CLI: --text-column) to name it; if "
                "the stream reads several data files, a file of other columns may begin at that row: fix or remove it.")
        if self.text_column not in row:
            raise DatasetError(
                f"Text column {self.text_column!r} not found in row {self._describe(position)}; its columns are: "
                f"{list(row)}. Pass text_column=... (CLI: --text-column) naming the column that holds the texts; if "
                "the stream reads several data files, a file of other columns may begin at that row: fix or remove it."
            )
        text = row[self.text_column]
        if text is None:
            # after a shuffle, filter or skip the stream's row is not the file's (helper 227: 34 for the file's 37)
            where = (f"{self._describe(position)} of the stream as read (after its shuffle, filter, skip or take steps, "
                     "if any: not necessarily the row of a file)")
            raise missing_rows_error(self.text_column, where, builder_name(self.corpus))
        if not isinstance(text, str):
            raise DatasetError(
                f"Row {self._describe(position)} is {type(text).__name__} ({text!r:.60}), not a string: every text "
                "must be a str. Convert or drop non-string rows first."
            )
        return text

    def _describe(self, position: int) -> str:
        return str(position * self.world + self.rank)  # the stream's own row: examples are interleaved

    def fetch(self, ids: np.ndarray) -> dict[int, str]:
        return {i: self._texts[i] for i in ids.tolist()}

    def read_hash(self) -> str | None:
        """The :func:`~hf_txray.provenance.texts_hash` of this process's whole stream, when this run read it from its
        start to its end (not stopped early, not resumed); None otherwise."""
        if not self._read_to_end or self._resumed:
            return None
        return "sha256:" + self._digest.hexdigest()

    def read_multiset_hash(self) -> str | None:
        """The :func:`~hf_txray.hashes.texts_multiset_hash` of this process's whole stream, when
        :meth:`read_hash` gives its texts hash; None otherwise."""
        from .hashes import texts_sum_hash

        return texts_sum_hash(self._sum) if self.read_hash() is not None else None

    def pipeline(self) -> str:
        """The stream's processing steps (``datasets``' iterables, innermost first, e.g. ``ArrowExamplesIterable >
        RebatchedArrowExamplesIterable > FilteredExamplesIterable``): a checkpoint records them, as a saved
        position (``state_dict``) can only be loaded into a stream built by the same steps."""
        steps: list[str] = []

        def walk(state: Any) -> None:
            if isinstance(state, dict):
                for key, value in state.items():
                    if key not in ("previous_state", "previous_states"):  # snapshots, absent before the first read
                        walk(value)
                if isinstance(state.get("type"), str):
                    steps.append(state["type"])
            elif isinstance(state, list):
                for value in state:
                    walk(value)

        walk(self.corpus.state_dict())
        return " > ".join(steps)

    def head_hash(self, count: int = HEAD_TEXTS) -> str:
        """The :func:`~hf_txray.provenance.strings_hash` of this process's first `count` texts, read again from the
        start of the stream. A checkpoint records it so that a resume on a stream whose contents changed is
        refused: a stream has no fingerprint of its contents, and reading it all would cost a pass over the corpus,
        so a change past the first `count` texts goes unnoticed."""
        from .hashes import strings_hash

        # read as the run reads, so a reader's failure is said in one line (a Latin-1 .jsonl: helper 167)
        texts = [self._text_of(row, i) for i, row in zip(range(count), self._read(self.corpus, 0))]
        self.expect_head(texts)
        return strings_hash(texts)

    @property
    def head_texts(self) -> list[str]:
        """The first texts of this process's part as read before the run (empty before :meth:`head_hash`)."""
        return list(self._head)

    def expect_head(self, texts: list[str]) -> None:
        """The first texts of this process's part, as read before the run (:meth:`head_hash`, or the check that all
        processes hold one corpus): the run, reading the stream again from its start, must read them again
        (:meth:`_check_head`)."""
        self._head = list(texts)

    def _check_head(self, position: int, text: str | None) -> None:
        """Refuse a stream that did not start again from its first rows (`text` None: it ended at `position`).

        The head is read once before the run; a ``from_generator`` function that goes on reading a one-shot source
        (an open file, an iterator made outside it) then gave the run the rows after it, and those first rows were
        never profiled, without an error (2 processes, 40 texts: 24 profiled)."""
        if position >= len(self._head) or text == self._head[position]:
            return
        now = "ended there" if text is None else f"gave {text!r:.60}"
        raise DatasetError(
            f"The stream did not start again from its first rows: its row {self._describe(position)} was "
            f"{self._head[position]!r:.60} when its first {len(self._head)} rows were read before the run (to check "
            f"that all processes hold one corpus, or for the checkpoint), and read again from its start it {now}, so "
            "rows would be skipped. A from_generator function must open its source anew on each call (not go on "
            "reading a file or iterator made outside it); or pass the generator itself, which hf_txray reads once.")

    @property
    def num_texts_held(self) -> int:
        """Texts held now: those of top examples, and those read but not yet credited."""
        return len(self._texts)

    def keep_texts(self, ids: set[int], through: int) -> None:
        """Forget the texts of processed examples (ids up to `through`, the last example credited) that no
        top-example list refers to any more. Texts after `through` are kept: workers read buckets ahead, and
        those texts are still to be credited (ids grow with the stream position)."""
        self._texts = {i: t for i, t in self._texts.items() if i in ids or i > through}

    def kept_texts(self, through: int) -> dict[int, str]:
        """The texts held for top examples among those processed up to example id `through` (a checkpoint saves
        them: a stream cannot be read back; the texts read ahead are read again on resume)."""
        return {i: t for i, t in self._texts.items() if i <= through}

    def restore_texts(self, texts: dict[int, str]) -> None:
        """Hold `texts` again, as when the checkpoint was saved."""
        self._texts.update(texts)


class Lookahead:
    """An iterator that can be read ahead (:meth:`peek`) without losing what it read: the rows read ahead come next,
    in order, and an error met reading ahead is raised when its turn comes.

    Args:
        iterator (`Iterator`): what is read.
    """

    def __init__(self, iterator: Iterator[Any]):
        self.iterator, self.ahead, self.error = iterator, collections.deque(), None

    def __iter__(self) -> "Lookahead":
        return self

    def __next__(self) -> Any:
        if self.ahead:
            return self.ahead.popleft()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return next(self.iterator)

    def peek(self) -> Iterator[Any]:
        """The items that come next (those read ahead already, then more, read on as the caller asks), without
        taking them; stops at the end, or at an error (kept for :meth:`__next__`)."""
        at = 0
        while True:
            if at < len(self.ahead):
                yield self.ahead[at]
                at += 1
                continue
            if self.error is not None:
                return
            try:
                item = next(self.iterator)
            except StopIteration:
                return
            except Exception as err:  # raised in its turn, by __next__
                self.error = err
                return
            self.ahead.append(item)


def has_shuffle_buffer(corpus: Any) -> bool:
    """Whether the ``IterableDataset`` `corpus` reads through a shuffle buffer (``.shuffle(buffer_size=...)``, at any
    step of its chain of iterables), whose content its ``state_dict()`` does not keep."""
    from datasets.iterable_dataset import BufferShuffledExamplesIterable

    pending = [getattr(corpus, "_ex_iterable", None)]
    while pending:
        node = pending.pop()
        if isinstance(node, BufferShuffledExamplesIterable):
            return True
        pending += [getattr(node, "ex_iterable", None)] + list(getattr(node, "ex_iterables", None) or [])
        pending = [n for n in pending if n is not None]
    return False


# Usual names of the text column, tried in this order when none is given.
TEXT_COLUMN_CANDIDATES = ("text", "sentence", "content", "document", "article", "review", "body", "question", "prompt")


def missing_rows_error(column: str, first: Any, reader: str | None = None) -> DatasetError:
    """The error for a text column holding None rows, `first` naming the first one; `reader`: the ``datasets``
    builder that read the data (:func:`builder_name`), or ``"pandas"`` for a DataFrame's rows, for advice that fits
    its format."""
    why = {"csv": " A CSV read by datasets (pandas) turns empty cells and texts such as 'NA' or 'null' into None: "
                  "load it with load_dataset('csv', ..., keep_default_na=False) to keep them as texts (hf_txray "
                  "reads local CSV files that way).",
           "json": " In JSON, a null value and a row without the key both read as None.",
           "pandas": " In a DataFrame, None and NaN are both missing values.",
           "arrow": " In an Arrow table, a null value reads as None."}.get(
        reader, " A row without that key (rows given as dicts) reads as None too." if reader is None else "")
    col = repr(column)  # the column named in the code, not a placeholder to replace
    fix = {"pandas": f"(df.dropna(subset=[{col}])) or fill them (df[{col}].fillna(''))",
           "arrow": f"(table.filter(pyarrow.compute.is_valid(table[{col}]))) or fill them "
                    f"(pyarrow.compute.fill_null(table[{col}], ''))"}.get(
        # a dataset's advice is said for Python and for the CLI (hf-txray analyze), which shows the same message to
        # a user who has a data file and no dataset object; each way both drops and fills
        reader, f"(in Python: dataset.filter(lambda r: r[{col}] is not None)) or fill them (dataset.map(lambda r: "
                f"{{{col}: r[{col}] or ''}})); from the command line (hf-txray), drop or fill them in the data file "
                "itself")
    return DatasetError(
        f"Column {column!r} has missing (None) rows, the first at index {first}: every row must be a str. Drop them "
        f"{fix}.{why}"
    )


def column_names(data: Any) -> list[str] | None:
    """The columns of `data`: a dataset (in memory or streaming), a table, a dict of columns or a list of row dicts
    (every key any row holds); None where they are not known (a stream that declares none, a generator, a list of
    texts, a DatasetDict)."""
    if isinstance(data, (list, tuple)) and data and all(isinstance(row, dict) for row in data):
        return list(dict.fromkeys(str(key) for row in data for key in row))
    names = getattr(data, "column_names", getattr(data, "columns", None))
    if names is None and isinstance(data, dict):
        names = list(data)
    return [str(n) for n in names] if names is not None and not isinstance(names, (str, dict)) else None


def builder_name(dataset: Any) -> str | None:
    """The ``datasets`` builder that read `dataset` (``"csv"``, ``"json"``...), None when unknown."""
    return getattr(getattr(dataset, "info", None), "builder_name", None)


def non_string_column_error(column: str, feature: Any) -> DatasetError:
    """The error for a text column whose declared type is not a string (read in memory, or a stream's features)."""
    # said for Python and for the CLI (hf-txray analyze), whose user has a data file and no dataset object
    fix = ("If it holds the texts, cast or map it to text first (in Python: dataset.cast_column("
           f"{column!r}, datasets.Value('string'))); from the command line (hf-txray), write its values as texts in "
           "the data file (JSON: quoted strings)." if type(feature).__name__ != "Json" else
           "A JSON field whose values are not all strings or null (numbers, booleans, objects or lists among them) is "
           "typed Json, and its strings are decoded ('10' becomes 10): if it holds the texts, write every value of "
           "the field as a string.")
    return DatasetError(f"Column {column!r} holds {feature}, not strings: every row must be a str. Pass "
                        f"text_column=... (CLI: --text-column) naming the column that holds the texts, a string "
                        f"column. {fix}")


# A CSV cell pandas would read as a number (hf_txray reads a CSV's columns as written, as strings: helper 166)
_INT_CELL = re.compile(r"[+-]?\d+")
_FLOAT_CELL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


NUMBERS_HEAD = 100  # non-empty cells of a streamed CSV text column that, numbers alone, have it refused


class NumbersColumn:
    """The cells of a CSV's text column read so far, told apart from a column of numbers alone
    (:func:`refuse_numbers_column`): read at once in memory, bucket by bucket from a stream.

    Args:
        column (`str`): the text column.
        head (`int`, *optional*): judge the column on its first `head` non-empty cells alone (a stream's
            :data:`NUMBERS_HEAD`), whatever cells a read is given past them; None: on every cell read.
    """

    def __init__(self, column: str, head: int | None = None):
        self.column, self.kind, self.seen, self.count, self.has_text = column, None, [], 0, False
        self.head = head

    def read(self, texts: Iterable[Any]) -> bool:
        """Read more cells; True once one of them is not a number (the column holds texts: nothing to refuse). The
        cells past the first `head` non-empty ones are not read: a stream's bucket that goes on past its head would
        otherwise decide by the bucket's size."""
        if self.has_text:
            return True
        for text in texts:
            if self.head is not None and self.count >= self.head:
                return False
            cell = text.strip() if isinstance(text, str) else ""
            if not cell:  # an empty text is skipped (num_empty); a None row has its own error
                continue
            if _INT_CELL.fullmatch(cell):
                self.kind = self.kind or "int"
            elif _FLOAT_CELL.fullmatch(cell):
                self.kind = "float"
            else:
                self.has_text = True
                return True
            self.count += 1
            if len(self.seen) < 3:
                self.seen.append(cell)
        return False

    def refuse(self) -> None:
        """Raise unless a cell that is not a number was read, or no cell that is one.

        Raises:
            DatasetError: naming the column, the type pandas would give it and the fix (``--text-column``).
        """
        if self.has_text or self.kind is None:
            return
        raise DatasetError(
            f"Column {self.column!r} of the CSV holds numbers alone ({self.kind}, as pandas would type it: "
            f"{', '.join(self.seen)}{', ...' if self.count > len(self.seen) else ''}), not texts: read as written, "
            "they would be profiled as the corpus. Pass "
            "text_column=... (CLI: --text-column) naming the column that holds the texts, a string column. If these "
            "numbers are the texts to profile, write them as JSON strings in a .jsonl file, or one per line in a "
            ".txt file, or (in Python) pass them as a list of str.")


def refuse_numbers_column(column: str, texts: Iterable[Any], reader: str | None) -> None:
    """Refuse a CSV's text column whose every cell (empty ones aside) is a number (``--text-column year``):
    read as written (every column of a CSV is read as strings, so that texts such as "007" keep their form), its
    numbers would be profiled as the corpus's texts, where a JSON or in-memory column of numbers is refused as not
    holding strings (:func:`non_string_column_error`). Other readers' strings are strings as given. A stream's
    column is judged on its first :data:`NUMBERS_HEAD` non-empty cells (:class:`NumbersColumn`, in
    :class:`StreamingSource`).

    Args:
        column (`str`): the text column.
        texts: its cells (in memory: all of them, read until the first that is not a number).
        reader (`str`, *optional*): the ``datasets`` builder that read them (:func:`builder_name`); only ``"csv"``
            is checked.

    Raises:
        DatasetError: naming the column, the type pandas would give it and the fix (``--text-column``).
    """
    if reader != "csv":
        return
    check = NumbersColumn(column)
    check.read(texts)
    check.refuse()


def choose_text_column(columns: list[str], string_columns: list[str], text_column: str | None = None,
                       nested: Sequence[str] = (), row_lists: Sequence[str] = (),
                       word_lists: Sequence[str] = (), reader: str | None = None) -> str:
    """The text column: `text_column` if given, else a usual name, else the only string column unless the texts may
    be elsewhere; `nested`: the struct columns, whose fields a message points to ``dataset.flatten()``; `row_lists`:
    the columns of lists of structs, rows kept in one field (a message points to ``load_dataset("json",
    field=...)``); `word_lists`: the columns of lists of strings, texts split into words (a message says to join
    them). Beside those, the only string column is most likely an id or a version, not the texts. `reader`: the
    ``datasets`` builder that read the data (:func:`builder_name`); a CSV's (or TSV's) detected column named like a
    text is warned about, as its file may lack a header line. A `text_column` that is no string is refused in words
    (:func:`~hf_txray.counts.check_text`): ``TXRayCallback(df, text_column=0)`` on a DataFrame whose columns are
    the ints 0 and 1 (``datasets`` names them ``'0'`` and ``'1'``) failed with a bare TypeError."""
    check_text("text_column", text_column)
    if text_column is not None:
        if text_column not in columns:
            in_struct = "." in text_column and text_column.split(".")[0] in columns
            raise DatasetError(f"Text column {text_column!r} not found; the dataset's columns are: {columns}."
                               + (NESTED_HINT if in_struct or nested else "") + _rows_in_field_hint(row_lists))
        return text_column
    for candidate in TEXT_COLUMN_CANDIDATES:
        if candidate in columns:
            return candidate
    if len(string_columns) == 1 and not row_lists and not word_lists:  # else: an id, a file's version
        if reader == "csv":  # only a CSV or TSV names its columns by its first line: no other source has one
            _warn_name_reads_like_a_text(string_columns[0])
        return string_columns[0]
    strings = (f"; its string columns, one of which holds the texts: {', '.join(map(repr, string_columns))}"
               if string_columns else "; it has no string column")
    raise DatasetError(
        f"No text column found among {columns}{strings}: pass text_column=... (CLI: --text-column; looked for "
        f"{', '.join(TEXT_COLUMN_CANDIDATES)})." + (NESTED_HINT if nested and not string_columns else "")
        + _rows_in_field_hint(row_lists) + _words_hint(word_lists)
    )


# A column name longer than this, or of this many words, reads like a text (the first line of a file without a header)
_LONGEST_NAME, _MOST_WORDS = 40, 3


def reads_like_a_text(name: str) -> bool:
    """Whether a column `name` reads like a text rather than a name: several words parted by whitespace, or longer
    than any sane column name (pandas names the columns of a CSV without a header line by its first row)."""
    return len(name) > _LONGEST_NAME or len(name.split()) >= _MOST_WORDS


def _warn_name_reads_like_a_text(column: str, frame_evidence: str | None = None) -> None:
    """Warn when the detected text `column` of a CSV or TSV is named like a text: a CSV without a header line has its
    first text taken as the column's name by pandas, so that text is never profiled, without a word (helper 351). Not
    called for other sources (rows, a JSON file): they have no header line to lack (helper 354), nor for a DataFrame
    but with `frame_evidence` (:func:`warn_frame_read_without_header`), which says why it was likely read from one."""
    if not reads_like_a_text(column):
        return
    if frame_evidence is None:
        said, source, fix = "", ("if the data file has no header line, its first line was read as the column's name "
                                 "and that text is not profiled"), "Add a header line (e.g. 'text') to the file"
    else:
        said, source, fix = f", and {frame_evidence}", (
            "the DataFrame was likely read from a file without a header line (pd.read_csv names the columns by its "
            "first line), so that first text is not profiled"), (
            "Read the file with pd.read_csv(path, header=None, names=['text', ...])")
    warnings.warn(f"The text column detected, {column!r}, is named like a text{said}: {source}. {fix}, or pass "
                  "text_column= (CLI: --text-column) to say this column is meant.", UserWarning, stacklevel=2)


def warn_frame_read_without_header(column: str, others: dict[str, Sequence[Any]]) -> None:
    """Warn, as for a headerless CSV file, when a DataFrame's detected text `column` is named like a text and another
    of its columns (`others`: name -> its first values) is named by one of them, or by a number over numbers, as
    ``pd.read_csv`` of a file without a header line names them (columns ``['I loved it so much', '1']`` over labels 0
    and 1; ``['1', 'I loved it so much']`` over ids 2, 3... that never repeat the first; a score ``'0.734'``): its
    first row was taken as the names and is not profiled (helper 359: such a DataFrame had its first text dropped
    without a word, 2 of 3 texts profiled). A DataFrame of a long column name alone is not warned about: nothing
    tells it from one built so (helper 354)."""
    for name, values in others.items():
        if name in {str(value) for value in values}:
            _warn_name_reads_like_a_text(column, f"column {name!r} is named by one of its own values")
            return
        if _names_a_number(name) and _all_numbers(values):  # helper 377: an id or a score never repeats the first
            _warn_name_reads_like_a_text(column, f"column {name!r} is named by a number, as its values are numbers")
            return


def _names_a_number(name: Any) -> bool:
    """Whether a column name is a finite number written as text (``'1'``, ``'0.734'``), as pandas names the columns
    of a file without a header line by its first row."""
    try:
        return isinstance(name, str) and math.isfinite(float(name))
    except ValueError:
        return False


def _all_numbers(values: Sequence[Any]) -> bool:
    """Whether `values` (a column's first values) hold a number and nothing but numbers or missing values."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(present) and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in present)


def _words_hint(word_lists: Sequence[str]) -> str:
    """Advice for texts split into words (a CoNLL-style ``tokens`` column): join them into a text column (helper
    314: with a string ``id`` column beside, as conll2003 has, the ids "0", "1", ... were profiled as the texts)."""
    if not word_lists:
        return ""
    words = word_lists[0]
    return (f" The column {words!r} holds lists of strings (texts split into words, as CoNLL-style datasets keep "
            f"them): join them into a text column, dataset.map(lambda r: {{'text': ' '.join(r[{words!r}])}}), then "
            "pass text_column='text'.")


def _rows_in_field_hint(row_lists: Sequence[str]) -> str:
    """Advice for rows kept in one field: a JSON file ``{"data": [{"text": ...}, ...]}`` reads as one row whose
    column ``data`` lists them (helper 314: "it has no string column: pass text_column=...", which cannot help; and
    with ``"version": "v1.1"`` beside, SQuAD's layout, that one string was profiled as the corpus)."""
    if not row_lists:
        return ""
    field = row_lists[0]
    return (f" The column {field!r} holds a list of rows, as a JSON file whose top-level object keeps its rows in "
            f"the field {field!r} reads: read that field as the rows, datasets.load_dataset('json', data_files=PATH, "
            f"field={field!r}, split='train'), and pass that Dataset, or write one row a line (.jsonl).")


# Texts in a field of a struct column (``{"meta": {"text": ...}}``) are no column of their own until flattened.
NESTED_HINT = (" Texts in a nested field (a struct column such as {'meta': {'text': ...}}) become a column once "
               "flattened: dataset.flatten() names it 'meta.text', then pass text_column='meta.text'.")


def first_texts(corpus: Any, text_column: str | None) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The first text of a stream (``[]`` for an empty one), read and checked as the run reads it: its text column
    chosen or found, its text a str; and the stream's rows from its start, that first row then the rest of the same
    pass, for a run on one process to read on (:meth:`StreamingSource.read_on`). Read before the model loads, so that
    rows the run cannot profile (a generator of ints or of None, a text column missing from the rows, a list column)
    fail at once, not after the weights load (with a 22M-parameter model, 0.7-1.3 s later: minutes for a large one).
    Read on rather than read again: a stream whose ``map`` draws at random gives other first texts when read again
    (refused as "did not start again from its first rows", though read once it is profiled: helper 320), and one
    that mixes a one-shot ``from_generator`` into ``interleave_datasets`` lost the row read ahead, silently."""
    source = StreamingSource(corpus, text_column, 0, 1)
    rows = iter(corpus)
    first = list(itertools.islice(source._read(rows, 0), 1))  # a reader's failure said in one line, as in the run
    return [source._text_of(row, 0) for row in first], itertools.chain(first, rows)


def stream_texts_hash(corpus: Any, text_column: str | None) -> tuple[int, str]:
    """``(number of texts, texts_hash)`` of a whole ``IterableDataset``, read once (rows checked as in a run),
    holding one bucket of texts at a time."""
    source = StreamingSource(corpus, text_column, 0, 1)
    for bucket in source.buckets(BucketPlan(10_000), None):
        source.keep_texts(set(), int(bucket.example_ids[-1]))
    return source.num_read, source.read_hash()
