"""The library's own exception types.

Every error hf_txray raises on bad input derives from :class:`TXRayError`, so callers can catch one type. Each
subclass also derives from the matching built-in (``ValueError``, ``FileNotFoundError``...) so generic handlers
keep working.
"""

from __future__ import annotations


class TXRayError(Exception):
    """Base class of every error raised by hf_txray."""


class ConfigurationError(TXRayError, ValueError):
    """An argument or option has an invalid value (layer out of range, ``top_k`` < 1, unknown site...)."""


class DatasetError(TXRayError, ValueError):
    """The corpus cannot be used: unknown id, no text column, empty, non-string rows."""


class ModelError(TXRayError, ValueError):
    """The model cannot be loaded or has no recognisable neuron site."""


class UnreadExpertsError(ModelError):
    """A block's experts are in a layout hf_txray does not read (Llama 4's): the model's other blocks may still be
    dense MLP blocks that pruning and ablation can edit."""


class IncompatibleProfilesError(TXRayError, ValueError):
    """Two profiles cannot be compared or merged (different layers, neuron counts or feature types)."""


class ProfileFormatError(TXRayError, ValueError):
    """A saved profile or report is missing files or has an unsupported format version."""


class HubError(TXRayError, RuntimeError):
    """An upload to or download from the Hugging Face Hub failed."""


class ReproducibilityError(TXRayError, ValueError):
    """A profile cannot be recomputed: its sources are not pinned, in memory only, changed, or out of reach."""


class OutputError(TXRayError, OSError):
    """A result cannot be written where it was asked to go: the folder is not writable, or the disk is full.
    ``target`` is the path asked for and ``reason`` the system's words."""

    def __init__(self, message: str, target: object = None, reason: str = ""):
        super().__init__(message)
        self.target, self.reason = target, reason


class ArtifactNotFoundError(TXRayError, FileNotFoundError):
    """A saved artifact's folder does not exist (a local path, or a name that is neither a folder nor a repo id)."""
