"""What a dataset reader's failure says, in a line: the file datasets names, the root cause, a short cause.

``datasets`` wraps a reader's error (pyarrow's, pandas', json's) in its own, and logs the reader's whole message (a
schema, a line a field) before raising: hf_txray's errors name the file and the cause in one line instead, whether
the data is loaded (:mod:`hf_txray.loading`) or streamed (:mod:`hf_txray.streaming`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Iterable, Iterator


def first_line(err: BaseException) -> str:
    """The first line of an error's message, at most 200 characters (datasets' and the Hub's can run to pages)."""
    text = str(err)
    return text.splitlines()[0][:200] if text else ""


def root_cause(err: BaseException) -> BaseException:
    """The error at the bottom of a chain of explicit causes (``raise ... from``): datasets wraps a reader's error in
    a DatasetGenerationError whose own message ("An error occurred while generating the dataset") does not say what
    is wrong with the file. Implicit contexts are not followed: the JSON builder raises pyarrow's error (the row
    at fault) while handling pandas' fallback error (a position that is not)."""
    seen = set()
    while err.__cause__ is not None and id(err) not in seen:  # a chain can loop back on itself
        seen.add(id(err))
        err = err.__cause__
    return err


# datasets' DatasetGenerationCastError (files of other columns) names the file it was reading in its message
_GENERATING_FROM = re.compile(r"generating data using\s+(\S+?),")


def short_cause(err: BaseException, limit: int = 120) -> str:
    """A reader's error in a few words for a "cause:" clause: datasets' CastError by its column counts (its message
    is the two schemas, a line a field), its DatasetGenerationCastError by its second paragraph (the first is "An
    error occurred while generating the dataset"), else the first line, cut at `limit` characters."""
    details = getattr(err, "details", None)
    if type(err).__name__ == "CastError" and callable(details):
        text = str(details())
    elif type(err).__name__ == "DatasetGenerationCastError":
        paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()]
        text = paragraphs[1] if len(paragraphs) > 1 else first_line(err)
    else:
        text = first_line(err)
    text = text.rstrip(" :.")  # it goes inside the error's own sentence
    return text if len(text) <= limit else text[:limit - 3] + "..."


def file_named_by(err: BaseException) -> str | None:
    """The data file a datasets error names as the one it was reading (DatasetGenerationCastError), or None."""
    found = _GENERATING_FROM.search(str(err))
    return found.group(1) if found else None


# What to do about a data file that is not UTF-8, the one encoding datasets' text, CSV and JSON readers read
NOT_UTF8_REENCODE = ("the file was likely written in another encoding (Latin-1, Windows-1252) and read as UTF-8. "
                     "Re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`)")
NOT_UTF8_FIX = f"{NOT_UTF8_REENCODE}, then profile it."

TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".txt", ".csv", ".tsv")  # files read as text (not compressed)


def first_undecodable(root: str | Path, names: Iterable[str]) -> tuple[str, int] | None:
    """``(name, line)``: the first of the data files `names` (paths relative to the folder `root`, or the file `root`
    itself) holding bytes that are not UTF-8, and the line (from 1) of the first such byte; None when they all
    decode (compressed and binary files are not read). Called only once a reader failed on a UnicodeDecodeError:
    neither datasets nor pyarrow names the file of a folder, nor the line."""
    base = Path(root)
    for name in names:
        path = base / name if base.is_dir() else base
        if path.suffix.lower() not in TEXT_SUFFIXES or not path.is_file():
            continue
        with open(path, "rb") as file:
            for line, raw in enumerate(file, 1):  # a UTF-8 sequence never holds a newline byte: lines split safely
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return name, line
    return None


class FailedFiles(logging.Filter):
    """Keeps datasets' "Failed to read file '...' with error ..." records (and its other "Failed to ... '<file>'")
    off the screen while a local dataset is read, remembering the last file they named: they print the reader's
    whole error (a pyarrow schema, a line a field) before hf_txray's own error, which names that file in one line
    instead."""

    # the loggers that say so
    LOGGERS = tuple(f"datasets.packaged_modules.{m}.{m}" for m in ("arrow", "parquet", "csv", "json", "cache"))
    # "Failed to read file 'f'", "... load JSON from file 'f'", "... read schema from 'f'" (parquet), "... convert
    # pandas DataFrame to Arrow Table from file 'f'": the first quoted name
    _NAMED = re.compile(r"Failed to [^']*'(.+?)'")

    def __init__(self) -> None:
        super().__init__()
        self.file: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        found = self._NAMED.match(record.getMessage())
        if found:
            self.file = found.group(1)
        return found is None

    @contextlib.contextmanager
    def listening(self) -> Iterator["FailedFiles"]:
        loggers = [logging.getLogger(name) for name in self.LOGGERS]
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeFilter(self)
