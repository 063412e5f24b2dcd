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
