"""The Trainer's uploads of ``output_dir``, with the TX-Ray snapshots named as a results push names them.

`Trainer.push_to_hub`, and the checkpoint pushes of ``hub_strategy``, upload ``output_dir`` as it is, through
``transformers.trainer.hf_api()``. The snapshots under ``output_dir/txray/`` name the model and the probe dataset by
their local paths, which resuming and ``hf-txray reproduce`` read there. Within :func:`public_output_uploads` that
upload sends a staged copy of ``output_dir`` instead (links, so the weights are not copied), whose snapshot and
report folders name local paths as cards do (:func:`hf_txray.layout.public_changes`); the local folder is unchanged.
"""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..io_utils import UNFINISHED_WRITES, link_or_symlink
from ..layout import is_export_folder, public_changes
from ..logging import get_logger
from .arguments import TXRAY_DIR

# Staged copies live inside output_dir (the same file system, where hard links work) under a name the Trainer's own
# "_*" upload pattern leaves out; they go once their upload has finished.
STAGING_PREFIX = "_txray_public-"
STAGED_NAME = "upload"

logger = get_logger(__name__)


@contextlib.contextmanager
def public_output_uploads(output_dir: str | Path, token: str | bool | None = None) -> Iterator[None]:
    """Within this context, the Trainer's uploads of `output_dir` send a public staged copy (module docstring).

    Args:
        output_dir: the Trainer's ``output_dir``.
        token (*optional*): the token of the uploads that the Trainer makes without one (it passes
            ``args.hub_token``, which :class:`~hf_txray.trainer.TXRayTrainer` clears while ``training_args.bin`` is
            written).
    """
    import transformers.trainer as trainer_module

    original = getattr(trainer_module, "hf_api", None)
    if original is None:  # another transformers layout: push as the Trainer does, and say what that sends
        logger.warning("TX-Ray: this transformers version uploads output_dir without hf_txray's staging, so the "
                       "txray/ files pushed with the model name local paths whole (the -txray results dataset does "
                       "not).")
        yield
        return
    trainer_module.hf_api = lambda: _PublicUploads(original(), Path(output_dir), token)
    try:
        yield
    finally:
        trainer_module.hf_api = original


class _PublicUploads:
    """An `HfApi` whose `upload_folder` of `output_dir` uploads its public staged copy, and removes from the repo the
    files under ``txray/`` that `output_dir` no longer holds; everything else passes."""

    def __init__(self, api: Any, output_dir: Path, token: str | bool | None = None):
        self._api, self._output_dir, self._token = api, output_dir, token

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def upload_folder(self, *, folder_path: str | Path, **kwargs: Any) -> Any:
        if kwargs.get("token") is None and self._token is not None:
            kwargs["token"] = self._token
        if Path(folder_path).resolve() != self._output_dir.resolve():
            return self._api.upload_folder(folder_path=folder_path, **kwargs)
        kwargs["ignore_patterns"] = _with_unfinished_writes(kwargs.get("ignore_patterns"))
        kwargs["delete_patterns"] = _with_txray_files(kwargs.get("delete_patterns"))
        staging = stage_public_output(self._output_dir, kwargs.get("ignore_patterns"))
        if staging is None:  # nothing names a local path
            return self._api.upload_folder(folder_path=folder_path, **kwargs)
        remove = lambda *_: shutil.rmtree(staging, ignore_errors=True)  # noqa: E731
        try:
            result = self._api.upload_folder(folder_path=staging / STAGED_NAME, **kwargs)
        except BaseException:
            remove()
            raise
        if isinstance(result, Future):  # run_as_future: the copy must outlive this call
            result.add_done_callback(remove)
        else:
            remove()
        return result


def _with_unfinished_writes(patterns: Sequence[str] | str | None) -> list[str]:
    """The caller's `ignore_patterns` and :data:`UNFINISHED_WRITES`."""
    given = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return given + [p for p in UNFINISHED_WRITES if p not in given]


# Every file the repo holds under txray/ that this upload does not send: upload_folder only adds, so the profiles and
# reports a resume (or a new run in the same output_dir) removed from output_dir stayed in the model repo beside the
# new timeline (measured: step-6, step-8 and their reports of the abandoned run next to a timeline of 0, 3, 5).
# upload_folder keeps what the same commit uploads, so only the files no longer in output_dir go.
TXRAY_FILES = f"{TXRAY_DIR}/*"


def _with_txray_files(patterns: Sequence[str] | str | None) -> list[str]:
    """The caller's `delete_patterns` and :data:`TXRAY_FILES`."""
    given = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return given + [TXRAY_FILES] if TXRAY_FILES not in given else given


def stage_public_output(output_dir: Path, ignore_patterns: Sequence[str] | str | None = None) -> Path | None:
    """A staging folder holding ``<staging>/upload``, `output_dir` as it may be uploaded (top-level entries
    matching `ignore_patterns` left out), or None when no TX-Ray folder in it names a local path.

    The caller removes the staging folder after the upload."""
    root = output_dir / TXRAY_DIR
    saved = sorted(p for p in root.glob("*/*") if p.is_dir() and is_export_folder(p)) if root.is_dir() else []
    changes = {p.relative_to(output_dir): public_changes(p) for p in saved}
    changes = {relative: change for relative, change in changes.items() if not change.empty}
    if not changes:
        return None
    patterns = [ignore_patterns] if isinstance(ignore_patterns, str) else list(ignore_patterns or [])

    def ignored(directory: str, names: list[str]) -> set[str]:
        if Path(directory) != output_dir:
            return set()
        return {n for n in names if n.startswith(STAGING_PREFIX) or any(fnmatch.fnmatch(n, p) for p in patterns)}

    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    try:
        staged = staging / STAGED_NAME
        shutil.copytree(output_dir, staged, ignore=ignored, copy_function=link_or_symlink)
        for relative, change in changes.items():
            change.apply(staged / relative)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging
