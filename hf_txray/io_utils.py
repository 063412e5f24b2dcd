"""Atomic writes: a folder or file appears complete or not at all, and what was there before is never lost."""

from __future__ import annotations

import errno
import glob
import json
import math
import os
import re
import secrets
import shutil
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import ConfigurationError, OutputError


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to `target`; on success it replaces `target`, on error it is removed.

    The caller decides whether `target` may be replaced (see :func:`hf_txray.artifact.check_save_target`): what is
    in it is gone afterwards. The new folder gets the usual permissions (``0o777`` less the umask), and no temporary
    folder is left behind, whatever fails. When `target` is a symbolic link, the folder it leads to is replaced and
    the link stays (as :func:`atomic_file` writes through one).

    Raises:
        ConfigurationError: `target` is the current working directory or a folder above it (a folder in use cannot
            be replaced).
        OutputError: the folder cannot be written (permissions, a full disk), naming `target`, not the temporary
            folder; what was at `target` before is kept.
    """
    # the link's folder, not the link: renamed over, the link became a folder and its target kept the old content
    target = check_not_working_directory(_link_target(Path(os.path.abspath(target))))
    check_writable(target)  # a file in the path is named as such (mkdir would say "File exists")
    # the writer's pid in the name: a folder left by a killed run is told from one being written (remove_stale_backups)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()  # not mkdtemp: that makes the folder private (0o700)
    except OSError as err:
        raise output_error(err, target) from err
    try:
        yield tmp
        _replace_dir(tmp, target)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        # a write in the temporary folder (a full disk reported by a writer that names no file, as pyarrow's or a
        # card's write): name the folder asked for
        if _within(err, target.parent) or (not err.filename and err.errno in WRITE_ERRNOS):
            raise output_error(err, target) from err
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(target: str | os.PathLike, shown: str | os.PathLike | None = None) -> None:
    """Refuse, before any work, a folder that could not be created or replaced: its nearest existing ancestor
    (the folder itself is replaced through a sibling) is a file, or is not writable (permissions, a read-only file
    system), or the folder is a mount point, which cannot be renamed (a container's volume: the swap failed with
    "Device or resource busy" once the work was done, helper 332).

    Args:
        target: the folder to write.
        shown (*optional*): the folder to name in the error (the one asked for, when `target` is inside it).

    Raises:
        OutputError: naming `shown` (or `target`) and the folder in the way.
    """
    target = Path(os.path.abspath(target))
    shown = Path(os.path.abspath(shown)) if shown is not None else target
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if is_mount_point(target):  # a link to one too: the folder it leads to is replaced
        problem = "it is a mount point, which cannot be replaced (the folder is written beside it, then renamed)"
        fix = f"Choose a folder inside it, e.g. {shown / 'txray'}."
    elif not ancestor.is_dir():
        problem, fix = f"{ancestor} is a file, so no folder can be made there", "Choose another folder."
    elif not os.access(ancestor, os.W_OK | os.X_OK):
        problem, fix = f"{ancestor} is not writable", f"Choose another folder, or make {ancestor} writable."
    else:
        return
    raise OutputError(f"Cannot write {shown}: {problem}. {fix}", shown, problem)


def is_mount_point(path: str | os.PathLike) -> bool:
    """Whether the folder `path` (or the folder a link at `path` leads to) is a mount point: on another device than
    its parent (``os.path.ismount``), or listed in ``/proc/self/mountinfo``, which also names a bind mount of a
    folder of the same file system (same device as its parent: ``os.path.ismount`` reads it as an ordinary folder,
    and renaming it fails with "Device or resource busy" all the same)."""
    path = os.path.realpath(path)
    if os.path.ismount(path):
        return True
    if not os.path.isdir(path):
        return False
    try:
        lines = Path("/proc/self/mountinfo").read_bytes().splitlines()
    except OSError:  # not Linux: os.path.ismount's answer
        return False
    # the fifth field is the mount point, with space, tab, newline and backslash written as octal escapes
    unescape = re.compile(rb"\\([0-7]{3})")
    return any(len(fields) > 4 and os.fsdecode(unescape.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])) == path
               for fields in (line.split(b" ") for line in lines))


def output_error(err: OSError, target: Path) -> OutputError:
    """`err`, raised while writing `target` (possibly through a temporary name), as an :class:`OutputError` that
    names `target` and the way out."""
    reason = err.reason if isinstance(err, OutputError) else (err.strerror or str(err))
    return OutputError(f"Cannot write {target}: {reason}. Nothing there was changed: make its folder writable or "
                       "free some disk space, or save somewhere else.", target, reason)


# Errors of a write that has run out of room or of permission, which writers often raise without a file name.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def _within(err: OSError, folder: Path) -> bool:
    """Whether `err` concerns a path inside `folder` (the temporary folder, the target or its backup)."""
    names = [err.target] if isinstance(err, OutputError) else [err.filename, err.filename2]
    names = [n for n in names if n]
    return any(Path(os.path.abspath(n)).is_relative_to(folder) for n in names)


def check_not_working_directory(target: str | os.PathLike) -> Path:
    """`target` as an absolute path, refused when it is the current working directory or a folder above it.

    Raises:
        ConfigurationError: naming the folder and the fix (a folder in use cannot be replaced as a whole).
    """
    target, cwd = Path(os.path.abspath(target)), Path.cwd()
    if target == cwd or target in cwd.parents:
        raise ConfigurationError(
            f"cannot write into {target}: it is the current working directory (or holds it), and the folder is "
            "replaced as a whole; give a subfolder instead, e.g. ./results.")
    return target


def _replace_dir(new: Path, target: Path) -> None:
    # Move the old folder aside first (renaming over a non-empty folder fails), and put it back if the swap fails.
    backup = None
    if target.exists():
        backup = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
    try:
        os.replace(new, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    remove_stale_backups(target)  # `target` is complete now: earlier runs' copies of it are no longer needed


def remove_stale_backups(target: str | os.PathLike) -> list[Path]:
    """Remove what :func:`atomic_dir` left beside `target` when its process was killed: the ``.{name}.old-{pid}``
    copies it was removing (after the new folder was in place) and the ``.{name}.tmp-{pid}-{token}`` folders it was
    writing (killed before its renames). They are never read again and stay forever otherwise (a checkpoint's worth
    of disk at every kill). Call it only where `target` is known complete; returns the folders removed. A symbolic
    link `target` is looked beside its target folder, where :func:`atomic_dir` writes.

    A copy whose process may still be running (it may be between its two renames, when that copy is the only one; or
    still writing its new folder) is kept, as is every copy where that cannot be checked (Windows). Temporary folders
    named by earlier versions (``.{name}.tmp-{token}``, without the pid) are kept: nothing tells whose they are.
    """
    target = _link_target(Path(os.path.abspath(target)))
    removed = []
    for leftover, pid in _backups(target) + _backups(target, "tmp"):
        if _may_be_running(pid):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with suppress(OSError):
                leftover.unlink()
        if not leftover.exists():
            removed.append(leftover)
    return removed


def _backups(target: Path, kind: str = "old") -> list[tuple[Path, int]]:
    """What :func:`atomic_dir` left beside `target`, with the process ids in the names: its ``.{name}.old-{pid}``
    copies (`kind` ``"old"``) or its ``.{name}.tmp-{pid}-{token}`` folders (``"tmp"``). Only `target`'s own: the
    glob also matches those of a folder named ``{name}.old-N`` (.x.old-1.old-7)."""
    prefix = f".{target.name}.{kind}-"
    found = ((p, p.name[len(prefix):]) for p in target.parent.glob(f"{glob.escape(prefix)}*"))
    if kind == "old":
        return [(p, int(pid)) for p, pid in found if pid.isdigit()]
    split = ((p, *rest.partition("-")) for p, rest in found)
    return [(p, int(pid)) for p, pid, dash, token in split
            if pid.isdigit() and dash and len(token) == 8 and all(c in "0123456789abcdef" for c in token)]


def _may_be_running(pid: int) -> bool:
    """False only when no process `pid` runs on this machine (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return False  # this process is not between the renames of another save of the same folder
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal (PermissionError): running
        return True
    return True


def restore_interrupted_swap(target: str | os.PathLike, required: Sequence[str] = ()) -> bool:
    """Put back the folder :func:`atomic_dir` had moved aside when the process was killed between its two renames
    (`target` is then missing, and its previous content sits in ``.{name}.old-{pid}``); True when one was restored.

    Only a folder holding every file in `required` is put back (the newest): one whose removal was cut short is not.
    The new folder (``.{name}.tmp-...``) is not put back: nothing marks it complete. When `target` is there and holds
    every file in `required` (after a restore too), what killed runs left beside it is removed
    (:func:`remove_stale_backups`). A symbolic link `target` is restored through: its target folder is the one
    :func:`atomic_dir` had moved aside (beside itself), and the link stays."""
    target = _link_target(Path(os.path.abspath(target)))
    restored = False
    if not target.exists():
        aside = sorted((p for p, _ in _backups(target) if all((p / f).is_file() for f in required)),
                       key=lambda p: p.stat().st_mtime)
        if not aside:
            return False
        os.replace(aside[-1], target)
        restored = True
    if all((target / f).is_file() for f in required):
        remove_stale_backups(target)  # an earlier run's removal of the previous copy, or its new one, was cut short
    return restored


def atomic_file(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write a file through ``write(temporary path)`` next to `path`, then rename it over `path`: readers, and
    hard-linked copies staged for an upload, see the old file or the new one, never half of one. The temporary
    file (``.{name}.tmp-{pid}``) is removed when the write fails; returns `path`.

    When `path` is a symbolic link, the file it points at is written (the temporary file beside that one) and the
    link stays, as other tools write through a link; a caller that must not change the link's target (a staged copy
    of a folder) unlinks it first.

    Raises:
        OutputError: the file cannot be written (a link that points at itself in a loop included), naming `path`.
    """
    path = Path(path)
    target = _link_target(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, target)
    except OSError as err:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise output_error(err, path) from err
    except BaseException:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def _link_target(path: Path) -> Path:
    """`path`, or the path its symbolic link(s) lead to: a rename onto the link would replace the link itself with a
    regular file or folder and leave its target as it was."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if target.is_symlink():  # realpath stops where the links go round in a loop
        reason = "it is a symbolic link in a loop"
        raise OutputError(f"Cannot write {path}: {reason}. Point the link at a file, or remove it.", path, reason)
    return target


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON atomically (temporary file + rename), strictly: what is written reads back as it was given.

    Besides JSON's own types (dicts with str or int keys, lists, tuples, str, int, float, bool, None), numpy
    scalars are written as the Python number they hold, and paths and ``torch.device`` as their text. Anything else,
    and NaN or infinity (``NaN`` is no JSON: other readers refuse the file), is refused before the file is touched.

    Raises:
        ConfigurationError: naming the file, where in the payload the value is, and the value.
    """
    text = json_text(payload, path, indent=2, sort_keys=True) + "\n"
    atomic_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_text(payload: Any, target: Any, **options: Any) -> str:
    """`payload` as JSON text, as strictly as :func:`write_json` writes it (numpy scalars as their numbers, paths and
    ``torch.device`` as their text; anything else, NaN and infinity included, refused), for JSON kept inside another
    file (a parquet column's metadata).

    Args:
        payload: what to write.
        target: what the text is written to, named in the error (a path, or ``"the probe_rankings metadata"``).
        options: further keyword arguments of ``json.dumps`` (``indent``, ``sort_keys``).

    Raises:
        ConfigurationError: naming `target`, where in the payload the value is, and the value.
    """
    return json.dumps(_json_ready(payload, target, "payload"), allow_nan=False, **options)


def _json_ready(value: Any, path: Any, where: str) -> Any:
    """`value` in JSON's types (see :func:`write_json`); `where` names it in the error (``payload['meta']['seed']``).
    Before, ``default=str`` wrote any object as its text (an array as ``"[1 2 3]"``) and NaN as ``NaN``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (np.bool_, np.integer)):
        return bool(value) if isinstance(value, np.bool_) else int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            _refuse(path, where, value, "NaN and infinity are not JSON (write None where a value is undefined)")
        return float(value)
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str) and (not isinstance(k, int) or isinstance(k, bool))]
        if bad:
            _refuse(path, f"{where} key", bad[0], "JSON keys are text (ints are written as their digits)")
        return {str(k): _json_ready(v, path, f"{where}[{k!r}]") for k, v in value.items()}  # as json.dumps does
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, path, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    torch = sys.modules.get("torch")  # no torch.device can exist where torch was never imported
    if torch is not None and isinstance(value, torch.device):
        return str(value)
    _refuse(path, where, value, "JSON cannot hold it, and its text would not read back as it")


def _refuse(path: Any, where: str, value: Any, why: str) -> None:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise ConfigurationError(f"Cannot write {path}: {where} is {shown} ({type(value).__name__}), and {why}. "
                             "Nothing was written; this is a bug of the caller that built the record (please report "
                             "it) or a value of the wrong type given to it.")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# What hf_txray's atomic writes leave beside a file or folder until they finish (``.{name}.tmp-*``: a timeline, a plot,
# a config's shard, a profile folder being written; ``.{name}.old-*``: a folder being replaced), and what a killed
# write leaves behind: readers skip them, uploads and copies must too (a background push reading output_dir while a
# snapshot is written uploaded half of one; push_folder uploaded a killed shard write's file, helper 340).
# As upload patterns (fnmatch's "*" crosses "/", so "*/" reaches every depth).
UNFINISHED_WRITES = (".*.tmp-*", "*/.*.tmp-*", ".*.old-*", "*/.*.old-*")


def unfinished_writes(directory: str, names: list[str]) -> set[str]:
    """The `names` in `directory` that are :data:`UNFINISHED_WRITES`: the `ignore` of a ``shutil.copytree``."""
    return set(shutil.ignore_patterns(*(p for p in UNFINISHED_WRITES if "/" not in p))(directory, names))


def arrow_path(path: str | os.PathLike) -> str:
    """`path` as pyarrow reads a local file: absolute. A relative path whose first name holds a colon
    (``run-12:30/meta/x.parquet``, a time in an ``--out`` folder's name) was read as a URI of scheme ``run-12`` and
    refused ("Unrecognized filesystem type in URI"), so the folder that was just saved was called damaged."""
    return os.path.abspath(path)


def link_or_copy(source: str, target: str) -> None:
    """A hard link (no copy of big parquet files), or a copy where links cannot be made (another file system)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_or_symlink(source: str, target: str) -> None:
    """A hard link, or a symbolic link where the file system has none (an upload reads through it): never a copy,
    where a copy would be a model's weights (a Trainer's ``output_dir``, staged at every push)."""
    try:
        os.link(source, target)
    except OSError:
        os.symlink(os.path.abspath(source), target)


def natural_key(name: str) -> list[tuple[int, Any]]:
    """Sort key reading digit runs as numbers: ``step-3`` before ``step-10``, ``layer_2`` before ``layer_10`` (the
    order a TXRayTrainer took its snapshots in, where a plain sort put ``step-10`` before ``step-3``)."""
    import re

    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]
