"""Local data files read through ``datasets``' Arrow cache, built again when a file changed under its old mtime.

``datasets`` keys the cache of a local data file by its path and modification time. A file rewritten with its
mtime kept (``cp -p``, ``rsync -t``, ``tar x``, ``os.utime``) is then served from the cache of its old content: the
profile is of the old texts, with no error (helper 165). A file's inode change time (``st_ctime``) cannot be set by
a user and moves with every write and every ``utime``, as git's index relies on: hf_txray records the data files'
stamps (size, mtime, ctime, inode) beside each cache it loads, and a cache whose files' stamps differ from the
record, or that it never recorded, is built again (the stale cache removed first, whose recorded columns datasets'
builder would cast the new rows to, and ``download_mode="force_redownload"`` without the checks of the split sizes
it recorded): once, then read as before.

Several processes reading one file at once (the ranks of ``torchrun hf-txray analyze corpus.txt``, or two runs side
by side) take turns under a file lock beside the record: one process checks the stamps, builds and records, the
others then find the cache fresh. Without it a rank that saw the cache before its record was written took it for
stale and removed it while the rank that built it was opening it ("Failed to open local file ...").
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .io_utils import read_json, write_json


def load_local_dataset(path: str, *, split: str | None = None, streaming: bool = False, **config: Any) -> Any:
    """``datasets.load_dataset(path, split=split, streaming=streaming, **config)`` for local data files, with a cache
    built from other contents than the files hold now built again (see the module docstring). A stream reads the
    files themselves, so it is opened as it is."""
    import datasets

    if streaming:
        return datasets.load_dataset(path, split=split, streaming=True, **config)
    builder = datasets.load_dataset_builder(path, **config)
    stamps = _stamps(builder.config.data_files or {})
    record = _record_path(builder.cache_dir)
    with _turn(record):
        return _load_recorded(path, split, config, builder.cache_dir, record, stamps)


def _load_recorded(path: str, split: str | None, config: dict[str, Any], builder_cache: str, record: Path,
                   stamps: dict[str, list[int]]) -> Any:
    import datasets

    stale = Path(builder_cache).exists() and _read(record) != stamps
    if stale:  # its dataset_info.json is read back by the builder: the old columns, cast to (helper 365)
        shutil.rmtree(builder_cache, ignore_errors=True)
    # built again without datasets' checks: they compare the new split with the sizes the stale cache recorded
    # (NonMatchingSplitsSizesError: a file rewritten shorter under its old mtime was refused, helper 362)
    anew = {"download_mode": "force_redownload", "verification_mode": "no_checks"} if stale else {}
    loaded = datasets.load_dataset(path, split=split, **anew, **config)
    _write(record, stamps)
    return loaded


@contextmanager
def _turn(record: Path) -> Iterator[None]:
    """Hold the lock of `record`'s cache while it is checked, built and recorded; a cache folder that cannot be
    written (read-only, shared) is read without one, as the record is then never written either."""
    from filelock import FileLock

    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(record) + ".lock")
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _stamps(data_files: Any) -> dict[str, list[int]]:
    from .hashes import file_stamp

    stamps = {}
    for files in data_files.values():
        for file in files:
            try:
                stamps[str(file)] = list(file_stamp(file))
            except (OSError, ValueError):  # not a local path (fsspec URL): nothing to compare
                continue
    return stamps


def _record_path(builder_cache: str) -> Path:
    from .cache import cache_dir

    return cache_dir() / "local_data" / (hashlib.sha1(str(builder_cache).encode()).hexdigest() + ".json")


def _read(record: Path) -> Any:
    try:
        return read_json(record)
    except (OSError, ValueError):
        return None


def _write(record: Path, stamps: dict[str, list[int]]) -> None:
    try:
        write_json(record, stamps)
    except OSError:  # a read-only cache: the next load builds again, as the first
        pass
