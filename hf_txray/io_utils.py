"""Atomic writes: a folder or file appears complete or not at all, and what was there before is never lost."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigurationError


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to `target`; on success it replaces `target`, on error it is removed.

    The caller decides whether `target` may be replaced (see :func:`hf_txray.artifact.check_save_target`): what is
    in it is gone afterwards. The new folder gets the usual permissions (``0o777`` less the umask), and no temporary
    folder is left behind, whatever fails.

    Raises:
        ConfigurationError: `target` is the current working directory or a folder above it (a folder in use cannot
            be replaced).
    """
    target = check_not_working_directory(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp: that makes the folder private (0o700)
    try:
        yield tmp
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
