"""Where hf_txray keeps what it caches on disk (tags, file hashes, pushes in flight, activations, local data stamps)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """hf_txray's cache folder: ``$HF_TXRAY_CACHE``, else ``$HF_HOME/hf_txray``."""
    env = os.environ.get("HF_TXRAY_CACHE")
    if env:
        return Path(env)
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hf_txray"


def writable_cache_folder(name: str) -> Path | None:
    """The folder `name` of hf_txray's cache, created if missing; None where it cannot be written (a read-only
    cache, shared on a cluster or mounted read-only in a container): what would be cached there is then computed
    again, as where it was never cached, rather than the run failing."""
    folder = cache_dir() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None
