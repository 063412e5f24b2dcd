"""What a dataset reader's failure says, in a line: the file datasets names, the root cause, a short cause.

``datasets`` wraps a reader's error (pyarrow's, pandas', json's) in its own, and logs the reader's whole message (a
schema, a line a field) before raising: hf_txray's errors name the file and the cause in one line instead, whether
the data is loaded (:mod:`hf_txray.loading`) or streamed (:mod:`hf_txray.streaming`).
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import logging
import lzma
import re
from pathlib import Path
from typing import IO, Iterable, Iterator


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

# files read as text (not compressed): data files, and CoNLL-U treebanks (hf_txray.probing.read_conllu)
TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".txt", ".csv", ".tsv", ".conllu")

# Byte order marks of the other Unicode encodings a text file is written in (Notepad's "Unicode", Excel's "Unicode
# Text", PowerShell's `>`): UTF-32's first, as its little-endian mark begins with UTF-16's
_OTHER_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
               (codecs.BOM_UTF16_BE, "UTF-16"))
# The compressions of data files hf_txray reads, by extension, with the function that decompresses each: those
# datasets reads through fsspec with the standard library alone, in memory and streamed, for the builders that read
# through it (parquet and arrow files are read by pyarrow, which does not decompress them)
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
COMPRESSIONS = tuple(_OPENERS)
_HEAD = 1 << 16  # bytes read from a file's start: enough to tell UTF-16, whose every other byte of ASCII is NUL


def open_data_file(path: str | Path) -> IO[bytes]:
    """A data file opened for reading its bytes, decompressed when its last extension is ``.gz``, ``.bz2`` or ``.xz``
    (as datasets' text, CSV and JSON readers read it)."""
    return (_opener(Path(path)) or open)(path, "rb")


def _opener(path: Path):
    """The function that decompresses `path` by its last extension, or None for a file that is not compressed."""
    suffixes = path.suffixes
    return _OPENERS.get(suffixes[-1].lower() if suffixes else "")


def data_file_suffixes(path: str | Path) -> tuple[str, str]:
    """A data file's format extension and its compression's, lower-cased: ``(".jsonl", ".gz")`` for
    ``x.jsonl.gz``, ``(".jsonl", "")`` for ``x.jsonl``; a lone compression's extension is taken as the format
    (``(".gz", "")`` for ``x.gz``), ``("", "")`` for none."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    if len(suffixes) > 1 and suffixes[-1] in COMPRESSIONS:
        return suffixes[-2], suffixes[-1]
    return (suffixes[-1] if suffixes else ""), ""


def format_suffix(path: str | Path) -> str:
    """A data file's format extension, lower-cased, before a compression's: ``.conllu`` for ``x.conllu.gz``, ``""``
    for none."""
    return data_file_suffixes(path)[0]


def not_utf8_text(path: str | Path) -> str | None:
    """What makes the text data file `path` (``.txt``, ``.csv``, ``.json(l)``, also compressed) unreadable as UTF-8
    although its bytes may decode, as a clause with the fix; None when its head shows nothing. datasets reads such a
    file as UTF-8 alone: a UTF-16 file without a byte order mark gave texts such as ``"H\\x00e\\x00l\\x00l\\x00o"``,
    profiled as words, without an error (helper 345), and one with the mark a decoding error advising `iconv -f
    latin1`, which makes it worse. Only the first 64 KiB are read; a NUL byte, which text files do not hold, is told
    by its line."""
    if format_suffix(path) not in TEXT_SUFFIXES:
        return None
    try:
        with open_data_file(path) as file:
            head = file.read(_HEAD)
    except (OSError, EOFError, lzma.LZMAError):  # a damaged archive: its reader says so
        return None
    for mark, encoding in _OTHER_BOMS:
        if head.startswith(mark):
            return (f"is written in {encoding} (its byte order mark says so), and is read as UTF-8 alone: re-encode "
                    f"it as UTF-8 (e.g. `iconv -f {encoding.lower()} -t utf-8 in.txt > out.txt`), then profile it.")
    nul = head.find(b"\x00")
    if nul < 0:
        return None
    line = head.count(b"\n", 0, nul) + 1
    return (f"holds NUL bytes (line {line}), which a text file does not: it is likely "
            "written in UTF-16 without a byte order mark (every other byte of English text is then NUL), and would "
            "be profiled as words such as 'H\\x00e\\x00l\\x00l\\x00o'. Re-encode it as UTF-8 (e.g. `iconv -f "
            "utf-16le -t utf-8 in.txt > out.txt`), or remove the NUL bytes (`tr -d '\\000'`), then profile it.")


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
