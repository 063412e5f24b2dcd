"""The library's own exception types.

Every error hf_txray raises on bad input derives from :class:`TXRayError`, so callers can catch one type. Each
subclass also derives from the matching built-in (``ValueError``, ``FileNotFoundError``...) so generic handlers
keep working.
"""

from __future__ import annotations

import sys

from .redaction import redact_typed


class TXRayError(Exception):
    """Base class of every error raised by hf_txray.

    Its message is shown with the secrets a name may carry masked (:func:`~hf_txray.redaction.redact_typed`): a
    dataset given as ``https://user:hf_xxx@host/a.txt`` is refused without repeating the token, in the error, its
    traceback and the CLI's ``error:`` line alike; so is a Hub token cut short or pasted where a model, a revision or
    a path was meant (``Model 'hf_QMbWEzRbZPGy' ...``): the message repeats what the user typed, as argparse's do.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_typed(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigurationError(TXRayError, ValueError):
    """An argument or option has an invalid value (layer out of range, ``top_k`` < 1, unknown site...)."""


class DatasetError(TXRayError, ValueError):
    """The corpus cannot be used: unknown id, no text column, empty, non-string rows."""


class ModelError(TXRayError, ValueError):
    """The model cannot be loaded or has no recognisable neuron site."""


class UnreadExpertsError(ModelError):
    """A block's experts are in a layout hf_txray does not read (Llama 4's): the model's other blocks may still be
    dense MLP blocks that pruning and ablation can edit."""


class BlocksNotFoundError(ModelError):
    """The automatic search found no stack of identical blocks (a hybrid stack, Jamba's or Zamba2's): a
    `module_pattern` still profiles it, but pruning, masking and ablation, which edit the sites that search finds,
    cannot act on it."""


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


class ProcessFailedError(TXRayError, RuntimeError):
    """Another process of a multi-process run (``torchrun``, ``accelerate launch``) failed: ``rank`` is that process's
    rank and ``error`` its error in words (``"DatasetError: Row 33 ..."``).

    Raised on every other process at the next point where the processes meet (they exchange their results there), so
    that all of them stop together and none is left waiting for the failed one, or matched with its next call. When
    the failed process raised one of hf_txray's errors (or a built-in one), this error is of that type too (built by
    :func:`process_failed_error`): a ``DatasetError`` there is a ``DatasetError`` here, so one ``except`` clause
    catches the failure on every process and a script that goes on after it stays in step.
    """

    def __init__(self, message: str, rank: int | None = None, error: str = ""):
        super().__init__(message)
        self.rank, self.error = rank, error

    def __str__(self) -> str:  # the message as given (a KeyError would quote it)
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # a combined class is made at run time: rebuilt from its kind, not pickled by reference
        return process_failed_error, (str(self), self.rank, self.error, getattr(self, "kind", None))


_KIND_HOMES = (__name__, "builtins")  # the types a failure is re-raised as: hf_txray's errors and built-in ones


def error_kind(error: BaseException) -> str | None:
    """The type an error is re-raised as on the other processes (:class:`ProcessFailedError`): its nearest type of
    this module's errors or of the built-in exceptions (a user's subclass of ValueError: ``builtins.ValueError``),
    as ``module.name``; None for none but ``Exception``."""
    kind = next((c for c in type(error).__mro__ if c.__module__ in _KIND_HOMES), Exception)
    return None if kind in (Exception, BaseException, TXRayError) else f"{kind.__module__}.{kind.__qualname__}"


_COMBINED: dict[str, type] = {}


def process_failed_error(message: str, rank: int | None = None, error: str = "",
                         kind: str | None = None) -> ProcessFailedError:
    """A :class:`ProcessFailedError` that is also of type `kind` (``"hf_txray.errors.DatasetError"``,
    ``"builtins.KeyError"``: see :func:`error_kind`), or a plain one where `kind` is None, unknown, or a type that
    cannot be combined with it (``ExceptionGroup``)."""
    import builtins

    module, _, name = (kind or "").rpartition(".")
    base = getattr(sys.modules[__name__] if module == __name__ else builtins if module == "builtins" else None,
                   name, None) if name else None
    if isinstance(base, type) and issubclass(base, Exception) and not issubclass(base, ProcessFailedError):
        try:
            if kind not in _COMBINED:
                _COMBINED[kind] = type(f"ProcessFailedError[{name}]", (ProcessFailedError, base),
                                       {"__module__": __name__})
            failed = _COMBINED[kind](message, rank, error)
        except TypeError:  # a type that cannot be combined (ExceptionGroup), or built from a message alone
            pass
        else:
            failed.kind = kind
            return failed
    return ProcessFailedError(message, rank, error)
