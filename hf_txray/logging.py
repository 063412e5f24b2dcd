"""Logging and progress bars, as the Hugging Face libraries do them (``transformers.utils.logging``).

- One library logger, ``hf_txray`` (modules log to it or to children from :func:`get_logger`), with its own stderr
  handler; the level comes from ``HF_TXRAY_VERBOSITY`` (debug, info, warning, error, critical) and defaults to
  ``warning``. :func:`set_verbosity_info` & co. change it.
- Under ``torchrun`` / ``accelerate launch`` records below ERROR are emitted by the main process only (rank 0), so a
  warning is printed once, not once per process.
- One switch for every progress bar of the package (profiling, spaCy tagging, extraction):
  :func:`disable_progress_bars` / :func:`enable_progress_bars`, or ``HF_TXRAY_DISABLE_PROGRESS_BARS=1``.
  Functions that take ``show_progress=`` use it for that call only (:func:`progress_bars_for`): in the calling
  thread (or asyncio task), without touching the switch.

Example:
    ```python
    >>> import hf_txray
    >>> hf_txray.logging.set_verbosity_info()   # also what analyze detected (the text column, ...)
    >>> hf_txray.logging.disable_progress_bars()
    ```
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
from typing import Any, Iterator, Mapping

from logging import CRITICAL, DEBUG, ERROR, INFO, WARNING  # noqa: F401  (re-exported, as transformers does)

from .redaction import redact

LIBRARY_NAME = "hf_txray"
VERBOSITY_ENV = "HF_TXRAY_VERBOSITY"
PROGRESS_ENV = "HF_TXRAY_DISABLE_PROGRESS_BARS"
LOG_LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR, "critical": CRITICAL}

_lock = threading.Lock()
_handler: logging.Handler | None = None
_redacting: RedactingFilter | None = None  # the RedactingFilter of the library logger and its children (made by _configure)
_progress_bars_enabled = os.environ.get(PROGRESS_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


def _default_level() -> int:
    name = os.environ.get(VERBOSITY_ENV)
    if name is None:
        return WARNING
    if name.strip().lower() not in LOG_LEVELS:
        logging.getLogger(LIBRARY_NAME).warning("Unknown %s=%s; use one of %s.", VERBOSITY_ENV, name,
                                                ", ".join(LOG_LEVELS))
        return WARNING
    return LOG_LEVELS[name.strip().lower()]


def process_rank() -> int:
    """This process's rank, without starting anything: the process group's when initialised, else the launcher's
    ``RANK`` variable (torchrun, accelerate), or MPI's (``accelerate launch --cpu --mpirun_hostfile``), else 0."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except ImportError:  # torch is a dependency; this only guards odd installs
        pass
    for name in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):  # torchrun; MPI, as Accelerate
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class MainProcessFilter(logging.Filter):
    """Lets records below ERROR through on the main process only (errors are printed by every rank)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= ERROR or process_rank() == 0


# the attribute a record masked by RedactingFilter carries (in its __dict__, as `extra=` attributes are): the texts
# it left (_shown_parts), so that a record whose message or arguments were changed afterwards is masked again
_MASKED_FLAG = "_hf_txray_redacted"


def _shown_parts(record: logging.LogRecord) -> tuple[str, str | None, str | None] | None:
    """The texts of `record` that :class:`RedactingFilter` masks: its message with its arguments merged, its traceback
    text and its stack (strings: the record stays picklable for a ``SocketHandler`` or a process's queue); ``None``
    where the message cannot be merged."""
    try:
        return record.getMessage(), record.exc_text, record.stack_info
    except Exception:  # noqa: BLE001  reported by each handler (RedactingFilter._mask)
        return None


class RedactingFilter(logging.Filter):
    """Masks the secrets a record carries (:func:`~hf_txray.redaction.redact`) in the record itself, so that every
    handler sees them masked: a log line repeats what the user typed (the viewer's ``Could not open
    https://user:hf_xxx@host/x``), as an error message does, and the application's own handlers, after
    :func:`enable_propagation`, showed them unmasked when only hf_txray's handler masked its lines (helper 367). The
    message (its arguments merged in, when there was one to mask), the traceback text and the stack are rewritten; a
    record without a secret is left as it is.

    A filter of a logger runs only for the records logged through that logger, not for those its children hand up:
    :func:`get_logger` puts it on the library logger and on each child it returns, and the record factory
    (:func:`_install_record_factory`) applies it to every record of the ``hf_txray`` tree, those of a child made with
    ``logging.getLogger("hf_txray.x")`` included; the library's handler has it too, for when an application replaces
    the record factory without chaining to ours. It once had a masking formatter instead, which masked the whole
    line: the filter masks each of its parts, where no secret spans two (the level and the logger's name hold none).
    """

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        # once per record: the record factory, the logger's filter and the handler's each pass it here (3 redactions
        # of every record, measured by helper 394); the record's own flag holds the parts it was left with, and a
        # record whose message, arguments, traceback or stack were replaced since (an application's filter adding
        # "password=..." to its arguments, helper 399) is masked again
        shown = _shown_parts(record)
        if shown is not None and record.__dict__.get(_MASKED_FLAG) == shown:
            return True
        self._mask(record)
        record.__dict__[_MASKED_FLAG] = _shown_parts(record)
        return True

    def _mask(self, record: logging.LogRecord) -> None:
        """Mask the message (its arguments merged in, when there is one to mask), traceback text and stack of
        `record` in place."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  arguments the message cannot take ("%d" of "abc"): each handler reports it
            # ("--- Logging error ---", with the message and arguments as they are), as logging does; a filter that
            # raised handed the TypeError to the code that logged (helper 370)
            self._mask_parts(record)
            return
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            traceback = logging.Formatter().formatException(record.exc_info)
            if redact(traceback) != traceback:  # else left to each handler's own formatter
                record.exc_text = traceback
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)

    @staticmethod
    def _mask_parts(record: logging.LogRecord) -> None:
        """Mask the message and the string arguments of a record whose message cannot be merged, one by one: a
        handler's error report repeats them (``Message: %r``, ``Arguments: %s``): the arguments as a tuple or, for
        one mapping given (``"%(path)s"``), as a dict; a message that is no string (a dict, an exception) as its text,
        where that text holds a secret."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        else:
            with contextlib.suppress(Exception):  # a str() that raises is reported as such, and shows nothing
                text = str(record.msg)
                if redact(text) != text:
                    record.msg = redact(text)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: redact(arg) if isinstance(arg, str) else arg for key, arg in record.args.items()}


class StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (as logging's last-resort handler does), so redirections made after
    import (notebooks, pytest's capture, ``contextlib.redirect_stderr``) see the records."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def in_library_tree(name: str) -> bool:
    """Whether a logger called `name` is the library logger or one of its children (``hf_txray.analyze``)."""
    return name == LIBRARY_NAME or name.startswith(LIBRARY_NAME + ".")


# the logger that ``logging.captureWarnings(True)`` hands every warning to: hf_txray's warnings repeat what a user
# typed (a model's or a probe's name, a path) as its log lines do
WARNINGS_LOGGER = "py.warnings"


def _install_record_factory(redacting: RedactingFilter) -> None:
    """Mask, as each is made, the records of the whole ``hf_txray`` logger tree and those of the warnings that
    ``logging.captureWarnings(True)`` logs (``py.warnings``: hf_txray's warnings among them, whose text an
    application's handlers showed unmasked, helper 394); the factory that was in place makes them, and records of
    other loggers are left to it.

    A logger's filter sees only the records logged through that logger: a child made with
    ``logging.getLogger("hf_txray.x")`` rather than :func:`get_logger` has none, and its records reached the
    handlers of ``hf_txray`` and, after :func:`enable_propagation`, the application's, unmasked (helper 374). The
    filters of :func:`get_logger` stay: they mask hf_txray's own records even where an application later replaces
    the record factory without calling the one it found.
    """
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        name = getattr(record, "name", None)
        if isinstance(name, str) and (in_library_tree(name) or name == WARNINGS_LOGGER):
            redacting.filter(record)
        return record

    logging.setLogRecordFactory(make_record)


def _kept_from_before(items: list, kind: str) -> Any:
    """The `kind` (a class name of this module) among a logger's `items` (filters or handlers) that an earlier run of
    this module made, or None: ``importlib.reload(hf_txray.logging)`` runs it again, and the logger keeps what it
    was given."""
    return next((item for item in items if type(item).__name__ == kind and type(item).__module__ == __name__), None)


def _configure() -> logging.Logger:
    global _handler, _redacting
    root = logging.getLogger(LIBRARY_NAME)
    with _lock:
        if _redacting is None:
            # after a reload, the filter on the logger and the record factory that applies it are in place already:
            # made again, each record was masked twice by chained factories and printed by two handlers
            _redacting = _kept_from_before(root.filters, "RedactingFilter")
            _handler = _kept_from_before(root.handlers, "StderrHandler")
        if _redacting is None:
            _redacting = RedactingFilter()
            root.addFilter(_redacting)
            _install_record_factory(_redacting)
        if _handler is None:
            _handler = StderrHandler()
            _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            _handler.addFilter(MainProcessFilter())
            _handler.addFilter(_redacting)  # a record of a logger get_logger did not make passed no RedactingFilter
            root.addHandler(_handler)
            root.setLevel(_default_level())
            # Our handler prints; propagating too would print twice where the application configured the root
            # logger (transformers does the same). enable_propagation() hands records to the application instead.
            root.propagate = False
    return root


def get_logger(name: str | None = None) -> logging.Logger:
    """The library logger (``hf_txray``), or a child of it such as ``hf_txray.analyze``."""
    root = _configure()
    if name is None or name == LIBRARY_NAME:
        return root
    child = logging.getLogger(name if name.startswith(LIBRARY_NAME + ".") else f"{LIBRARY_NAME}.{name}")
    child.addFilter(_redacting)  # its records reach the library logger's handlers, not its filters
    return child


def get_verbosity() -> int:
    """The level of the library logger (``hf_txray.logging.WARNING``...)."""
    return _configure().getEffectiveLevel()


def set_verbosity(level: int) -> None:
    """Set the level of the library logger (``hf_txray.logging.INFO``...)."""
    _configure().setLevel(level)


def set_verbosity_debug() -> None:
    set_verbosity(DEBUG)


def set_verbosity_info() -> None:
    set_verbosity(INFO)


def set_verbosity_warning() -> None:
    set_verbosity(WARNING)


def set_verbosity_error() -> None:
    set_verbosity(ERROR)


def enable_propagation() -> None:
    """Also hand records to the parent loggers (e.g. an application's root handlers, pytest's ``caplog``)."""
    _configure().propagate = True


def disable_propagation() -> None:
    _configure().propagate = False


# ----- progress bars ----------------------------------------------------------------------------------------------
# The bars of the libraries hf_txray calls (loading weights, dataset maps, Hub downloads): one switch for all of them.
# (module, enable, disable, whether its bars are on)
_LIBRARY_SWITCHES = (
    ("transformers.utils.logging", "enable_progress_bar", "disable_progress_bar", lambda m: m.is_progress_bar_enabled()),
    ("datasets", "enable_progress_bars", "disable_progress_bars", lambda m: m.is_progress_bar_enabled()),
    ("huggingface_hub.utils", "enable_progress_bars", "disable_progress_bars",
     lambda m: not m.are_progress_bars_disabled()))
# the override of one call (progress_bars_for): (show, nested) of the innermost block of this thread / asyncio task,
# show None where the global switch applies, nested True where bars are cleared when done. Per thread, not a module
# global: two analyze(show_progress=False) runs in two threads saved and restored one global switch in turn and could
# leave it off for good after both ended (A saved True, set False; B saved False; A restored True; B restored False)
_call_bars: contextvars.ContextVar[tuple[bool | None, bool]] = contextvars.ContextVar(
    "hf_txray_call_bars", default=(None, False))
_switched_off: set[str] = set()  # the libraries whose bars disable_progress_bars turned off (and only those)


def _switch_library_bars(enabled: bool) -> None:
    """Off: the libraries' bars that are on; on again: only those (a library's bars its user turned off with its own
    switch stay off)."""
    import importlib

    for name, on, off, is_on in _LIBRARY_SWITCHES:
        module = importlib.import_module(name)
        if not enabled and is_on(module):
            getattr(module, off)()
            _switched_off.add(name)
        elif enabled and name in _switched_off:
            getattr(module, on)()
            _switched_off.discard(name)


def enable_progress_bars() -> None:
    """Show progress bars (the default): hf_txray's, and those of transformers, datasets and huggingface_hub that
    :func:`disable_progress_bars` hid (not those turned off with their own library's switch)."""
    global _progress_bars_enabled
    _progress_bars_enabled = True
    _switch_library_bars(True)


def disable_progress_bars() -> None:
    """Hide every progress bar a call shows: hf_txray's (profiling, spaCy tagging, activation extraction) and those of
    the libraries it calls (transformers' weight loading, datasets' maps, huggingface_hub's downloads)."""
    global _progress_bars_enabled
    _progress_bars_enabled = False
    _switch_library_bars(False)


def are_progress_bars_disabled() -> bool:
    """Whether hf_txray's bars are hidden here: by the ``show_progress`` of the call this thread is in
    (:func:`progress_bars_for`), else by the global switch (:func:`disable_progress_bars`)."""
    show, _ = _call_bars.get()
    return not (_progress_bars_enabled if show is None else show)


@contextlib.contextmanager
def progress_bars_for(show: bool | None, nested: bool = False) -> Iterator[None]:
    """The switch for one call: ``show_progress=True``/``False`` shows or hides the bars made inside the block by the
    thread (or asyncio task) that entered it, None keeps the one around it (an outer block's, else the global switch).
    The global switch itself is never changed, so calls in other threads keep theirs, and a change of it inside the
    block (:func:`disable_progress_bars`) stays after it.

    Args:
        show (`bool`, *optional*): show (True) or hide (False) hf_txray's bars inside the block; None keeps the
            switch around it.
        nested (`bool`, *optional*, defaults to `False`): the bars run under a bar of the caller's (a Trainer's
            training bar): each is cleared when done (``leave=False``), as the Trainer's evaluation bar is.

    Example:
        ```python
        >>> with progress_bars_for(False):
        ...     profile = profiler.run(corpus, text_column="text")
        ```
    """
    show_before, nested_before = before = _call_bars.get()
    _call_bars.set((show_before if show is None else bool(show), nested_before or nested))
    try:
        yield
    finally:
        _call_bars.set(before)  # not reset(token): a generator closed in another context raised ValueError there


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm``, disabled when the switch is off or on processes other than the main one. Else tqdm's own
    environment settings apply (``TQDM_DISABLE=1``, ``TQDM_MININTERVAL=30``...), as to the bars of transformers and
    datasets: an explicit ``disable=False`` overrode ``TQDM_DISABLE=1``, which then hid every bar but hf_txray's.
    Inside ``progress_bars_for(..., nested=True)`` a bar is cleared when done (``leave=False``)."""
    from tqdm.auto import tqdm as auto_tqdm

    if kwargs.pop("disable", False) or are_progress_bars_disabled() or process_rank() != 0:
        kwargs["disable"] = True
    if _call_bars.get()[1]:
        kwargs.setdefault("leave", False)
    return auto_tqdm(*args, **kwargs)


@contextlib.contextmanager
def library_bars_on_main_process() -> Iterator[None]:
    """Inside the block, the bars of the libraries hf_txray calls (transformers' weight loading, datasets' maps,
    huggingface_hub's downloads) show on the main process only, as hf_txray's own do: under ``torchrun`` /
    ``accelerate launch`` every process loads the model and the corpus. On the others, the bars that are on are
    turned off for the block and on again after it (those off stay off)."""
    import importlib

    if process_rank() == 0:
        yield
        return
    turned_off = []
    for name, on, off, is_on in _LIBRARY_SWITCHES:
        module = importlib.import_module(name)
        if is_on(module):
            getattr(module, off)()
            turned_off.append((module, on))
    try:
        yield
    finally:
        for module, on in turned_off:
            getattr(module, on)()


@contextlib.contextmanager
def datasets_progress_bars() -> Iterator[None]:
    """Inside the block, the bars of ``datasets`` (``Dataset.map``: the spaCy tagging) follow our switch."""
    import datasets

    if not are_progress_bars_disabled() and process_rank() == 0:
        yield
        return
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def warnings_caught(record: bool = False) -> Iterator[list | None]:
    """``warnings.catch_warnings(record=record)``, one block at a time in the process: hf_txray's blocks that silence
    or record warnings (the viewer's derived reports, figures, probes) may run in several threads at once (Gradio's
    worker threads), and Python's filters and ``showwarning`` are process-wide. A block that began inside another
    one and ended after it put back that one's filters: two viewer requests left ``simplefilter("ignore")`` on for
    good, silencing every later warning of the process (helper 387). Blocks of one thread nest. Warnings that other
    code raises in other threads while a block runs are still filtered (or recorded) by it, as Python does."""
    import warnings

    with _warnings_lock, warnings.catch_warnings(record=record) as caught:
        yield caught


_warnings_lock = threading.RLock()


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the user's line: the first frame outside hf_txray, however many library
    functions lie between (a fixed ``stacklevel`` is right for one call path only)."""
    import warnings

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)


_configure()  # the handler, level and HF_TXRAY_VERBOSITY apply from `import hf_txray` on
