import functools
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest

import hf_txray.logging

hf_txray.logging.enable_propagation()  # hf_txray's records also reach the root logger, where caplog listens

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Annotation cache in a per-session temp dir, never the user's."""
    monkeypatch.setenv("HF_TXRAY_CACHE", str(tmp_path_factory.getbasetemp() / "txray-cache"))


@pytest.fixture(scope="session")
def saved_bert(tmp_path_factory) -> Path:
    """The tiny BERT of tests/models.py with its tokenizer, saved to a folder (loaded by path, as users do)."""
    from models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def hf_argument_parser():
    """``transformers.HfArgumentParser(dataclass_types)``, the field types of those dataclasses put back after the
    test: the parser rewrites each parsed dataclass's ``Field.type`` in place (annotations resolved, ``str | None``
    -> ``str``), and those of TXRayArguments (and the TrainingArguments fields it shares) stayed rewritten for every
    later test of the worker."""
    import dataclasses

    from transformers import HfArgumentParser

    saved = []

    def make(dataclass_types):
        for cls in dataclass_types if isinstance(dataclass_types, (list, tuple)) else [dataclass_types]:
            saved.extend((f, f.type) for f in dataclasses.fields(cls))
        return HfArgumentParser(dataclass_types)

    yield make
    for f, declared in reversed(saved):
        f.type = declared


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


# ----- global state: a test leaves the process as it found it ------------------------------------------------------
# A test that changed process-wide state (an env var, huggingface_hub's offline constant, a logger's level, a
# dataclass's field types...) made a *later* test fail, on whichever xdist worker ran it: flaky, and far from its
# cause. With HF_TXRAY_CHECK_GLOBAL_STATE=1 (below) a fixture fails the test that changed it, naming what changed, and
# puts it back for the tests after it.
_PYTEST_MODULES = ("_pytest.", "pytest_timeout", "xdist.")


def _logger_states() -> dict[str, tuple]:
    """The configured loggers (root included): level, handlers, filters, propagate, disabled. pytest's own capturing
    handlers (they change with each phase) are left out; loggers left at their defaults too (cheap: ~1k loggers)."""
    import logging

    def own(items):
        return tuple(i for i in items if not type(i).__module__.startswith(_PYTEST_MODULES))

    loggers = [("root", logging.getLogger())] + [(n, x) for n, x in list(logging.Logger.manager.loggerDict.items())
                                                 if isinstance(x, logging.Logger)]
    states = {}
    for name, logger in loggers:
        if not (logger.level or logger.handlers or logger.filters or not logger.propagate or logger.disabled):
            continue
        state = (logger.level, own(logger.handlers), own(logger.filters), logger.propagate, logger.disabled)
        if state != (logging.NOTSET, (), (), True, False):
            states[name] = state
    return states


@functools.lru_cache(maxsize=None)
def _constant_names(module_name: str) -> tuple[str, ...]:
    return tuple(n for n in vars(sys.modules[module_name]) if n.isupper() and not n.startswith("_"))


def _module_constants(module_name: str, names: tuple[str, ...] | None = None) -> dict[str, object]:
    """The upper-case attributes (or `names`) of a module already imported; nothing when it is not."""
    module = sys.modules.get(module_name)
    if module is None:
        return {}
    chosen = names if names is not None else _constant_names(module_name)
    return {f"{module_name}.{n}": getattr(module, n) for n in chosen if hasattr(module, n)}


@functools.lru_cache(maxsize=None)
def _declared_types(cls: type) -> dict[str, object]:
    """The annotation each field of the dataclass `cls` was declared with (by the class of its MRO declaring it)."""
    declared: dict[str, object] = {}
    for k in reversed(cls.__mro__):
        declared.update(k.__dict__.get("__annotations__", {}))
    return declared


def _field_type_drift() -> dict[str, object]:
    """Dataclass fields of the argument classes whose ``Field.type`` is no longer the annotation that declared it
    (transformers' ``HfArgumentParser`` rewrites them in place: ``str | None`` -> ``str``)."""
    import dataclasses

    classes = [getattr(sys.modules.get(m), n, None) for m, n in (
        ("hf_txray.options", "ProfilerConfig"), ("hf_txray.options", "AnalyzeOptions"),
        ("hf_txray.trainer.arguments", "TXRayArguments"))]
    drift = {}
    for cls in (c for c in classes if c is not None):
        declared_types = _declared_types(cls)
        for f in dataclasses.fields(cls):
            declared = declared_types[f.name]
            if f.type is not declared and f.type != declared:
                drift[f"{cls.__name__}.{f.name} type"] = f.type
    return drift


def _global_state() -> dict[str, object]:
    import logging
    import signal
    import warnings

    import torch

    state: dict[str, object] = {
        "os.environ": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},  # that one: pytest's
        "cwd": os.getcwd(), "sys.path": list(sys.path),
        "warnings.filters": list(warnings.filters), "warnings.showwarning": warnings.showwarning,
        "logging.captureWarnings": getattr(logging, "_warnings_showwarning", None) is not None,
        "logging.disable": logging.root.manager.disable, "logging.recordFactory": logging.getLogRecordFactory(),
        "torch.default_dtype": torch.get_default_dtype(), "torch.default_device": torch.get_default_device(),
        "torch.num_threads": torch.get_num_threads(), "torch.grad_enabled": torch.is_grad_enabled(),
        "torch.inference_mode": torch.is_inference_mode_enabled(),
        "torch.deterministic": (torch.are_deterministic_algorithms_enabled(),
                                torch.is_deterministic_algorithms_warn_only_enabled()),
        "torch.cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
        "torch.matmul_precision": torch.get_float32_matmul_precision(),
        "sys.excepthook": sys.excepthook, "threading.excepthook": __import__("threading").excepthook,
    }
    for sig in signal.Signals:  # the named ones
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler = signal.getsignal(sig)
        if not getattr(handler, "__module__", "").startswith(_PYTEST_MODULES):  # pytest-timeout's SIGALRM per test
            state[f"signal {sig.name}"] = handler
    state.update({f"logger {name!r}": s for name, s in _logger_states().items()})
    state.update(_module_constants("huggingface_hub.constants"))
    state.update(_module_constants("huggingface_hub", ("HUGGINGFACE_CO_URL_TEMPLATE",)))
    state.update(_module_constants("huggingface_hub.utils._http", ("_HUB_ORIGINS",)))
    state.update(_module_constants("datasets.config"))
    api = getattr(sys.modules.get("huggingface_hub.hf_api"), "api", None)
    if api is not None:
        state["huggingface_hub.hf_api.api.endpoint"] = api.endpoint
    # whether each library's bars show (its own state: huggingface_hub's {} and {"_global": True} both mean on)
    for module_name, is_on in (("transformers.utils.logging", "is_progress_bar_enabled"),
                               ("datasets.utils.tqdm", "is_progress_bar_enabled")):
        if module_name in sys.modules:
            state[f"{module_name}.{is_on}()"] = getattr(sys.modules[module_name], is_on)()
    if "huggingface_hub.utils.tqdm" in sys.modules:
        hub_tqdm = sys.modules["huggingface_hub.utils.tqdm"]
        state["huggingface_hub progress bars on"] = not hub_tqdm.are_progress_bars_disabled()
    txray_logging = sys.modules.get("hf_txray.logging")
    if txray_logging is not None:
        state.update({f"hf_txray.logging.{n}": getattr(txray_logging, n) for n in (
            "_progress_bars_enabled", "_handler", "_redacting")})
        state["hf_txray.logging._switched_off"] = set(txray_logging._switched_off)
    for module_name, name in (("hf_txray.features.registry", "_REGISTRY"),
                              ("hf_txray.pruning.strategies", "_REGISTRY")):
        registry = getattr(sys.modules.get(module_name), name, None)
        if registry is not None:
            state[f"{module_name}.{name}"] = dict(registry)
    for module_name, name in (("hf_txray.allocator", "_depth"), ("hf_txray.workers", "_ENCODER"),
                              ("hf_txray.workers", "_READ"), ("hf_txray.modes", "_IN_EVAL")):
        module = sys.modules.get(module_name)
        if module is not None:
            value = getattr(module, name)
            state[f"{module_name}.{name}"] = dict(value) if isinstance(value, dict) else value
    state.update(_field_type_drift())
    return state


def _restore(name: str, value: object) -> None:
    """Put one entry of :func:`_global_state` back (best effort: enough that the tests after it start clean)."""
    import logging
    import warnings

    import torch

    if name == "os.environ":
        for key in set(os.environ) - set(value) - {"PYTEST_CURRENT_TEST"}:
            del os.environ[key]
        os.environ.update(value)
    elif name == "cwd":
        os.chdir(value)
    elif name == "sys.path":
        sys.path[:] = value
    elif name == "warnings.filters":
        warnings.filters[:] = value
        warnings._filters_mutated()
    elif name == "torch.default_dtype":
        torch.set_default_dtype(value)
    elif name == "torch.default_device":
        torch.set_default_device(value)
    elif name == "torch.num_threads":
        torch.set_num_threads(value)
    elif name == "torch.grad_enabled":
        torch.set_grad_enabled(value)
    elif name.startswith("logger "):
        logger = logging.getLogger(None if name == "logger 'root'" else name[8:-1])
        level, handlers, filters, propagate, disabled = value if value is not None else (0, (), (), True, False)
        logger.setLevel(level)
        logger.handlers[:] = [h for h in logger.handlers if type(h).__module__.startswith(_PYTEST_MODULES)]
        logger.handlers.extend(handlers)
        logger.filters[:] = list(filters)
        logger.propagate, logger.disabled = propagate, disabled
    elif name.endswith(" type"):  # a dataclass field: its declared annotation again
        import dataclasses

        cls_name, field_name = name[:-5].split(".")
        cls = next(c for m in ("hf_txray.options", "hf_txray.trainer.arguments")
                   for c in [getattr(sys.modules.get(m), cls_name, None)] if c is not None)
        f = {f.name: f for f in dataclasses.fields(cls)}[field_name]
        f.type = _declared_types(cls)[field_name]
    elif name.count(".") and not name.startswith(("torch.", "logging.", "signal")):
        module_name, _, attr = name.rpartition(".")
        module = sys.modules.get(module_name)
        if module is not None and value is not None:
            setattr(module, attr, value)


# variables a library sets as it is imported or first used (os.environ.setdefault): not the test's doing
_IMPORT_TIME_ENV = {"KMP_DUPLICATE_LIB_OK": "sklearn", "KMP_INIT_AT_FORK": "sklearn",
                    "TORCHINDUCTOR_CACHE_DIR": "torch._inductor"}  # the last: set by its first compile


def _new_library_logger() -> tuple | None:
    """The state of a logger that :func:`hf_txray.logging.get_logger` made (its RedactingFilter, nothing else)."""
    import logging

    txray_logging = sys.modules.get("hf_txray.logging")
    return None if txray_logging is None else (logging.NOTSET, (), (txray_logging._redacting,), True, False)


def _changes(before: dict[str, object], after: dict[str, object], imported: set[str]) -> list[str]:
    """What differs, in words. An entry absent before is a module the test imported first (its constants, the
    loggers it configures at import: e.g. transformers' level), not a change, unless it belongs to a package that
    was imported already (a test adding a handler to a logger of its own) or is a field type."""
    changed = []
    def new_packages() -> bool:  # whether the test imported a package first (costly: asked only when needed)
        return len(sys.modules) != len(imported) and bool(
            {m.partition(".")[0] for m in sys.modules.keys() - imported} - {m.partition(".")[0] for m in imported})

    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, "<absent>"), after.get(name, "<absent>")
        if old == "<absent>" and not name.endswith(" type"):
            logger = name[8:-1] if name.startswith("logger ") else None
            parts = (logger or "").split(".")
            module = next((m for m in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if m in sys.modules),
                          None)
            if module not in imported:
                continue  # made as the test imported a module (torch._dynamo's artifact loggers), or not a logger
            if new == _new_library_logger():
                continue  # made by hf_txray.logging.get_logger (its filter, nothing else)
        try:
            same = old is new or bool(old == new)
        except Exception:  # noqa: BLE001  (e.g. an array): compared by identity
            same = False
        if same:
            continue
        if name == "os.environ":
            keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)
                          and not (k in _IMPORT_TIME_ENV and k not in old and _IMPORT_TIME_ENV[k] not in imported))
            if not keys:
                continue
            changed.append(f"os.environ {', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in keys)}")
        elif isinstance(old, list) and isinstance(new, list):  # sys.path, warnings.filters: what came, what went
            old, new = ([x for x in v if not _deliberate_addition(name, x)] for v in (old, new))
            if old == new:
                continue  # only deliberate additions (or one of them moved to the front again)
            added, removed = [x for x in new if x not in old], [x for x in old if x not in new]
            if name == "warnings.filters" and not removed and new_packages():
                continue  # filters a package adds at import (spaCy's, urllib3's), first imported by this test
            changed.append(f"{name}: added {added!r:.300}, removed {removed!r:.300}"
                           + ("" if added or removed else " (reordered)"))
        elif name.startswith("logger 'torch."):
            continue  # torch's own logging state, which torch.compile resets by itself
        elif name.startswith("logger ") or isinstance(old, (dict, list, set)):
            changed.append(f"{name}: {old!r:.300} -> {new!r:.300}")
        else:
            changed.append(f"{name}: {old!r:.200} -> {new!r:.200}")
    return changed


def _deliberate_addition(name: str, entry: object) -> bool:
    """Process-wide additions that are meant to stay: transformers' dynamic-modules folder on sys.path (added once per
    process, at the first remote-code lookup) and TXRayTrainer's one filter, which silences huggingface_hub's
    warning about data files for our txray/ tables only (pushes may run on the Trainer's background thread, so a
    scoped catch_warnings would not reach them)."""
    if name == "sys.path":  # exactly transformers' folder (init_hf_modules appends it as is): another
        utils = sys.modules.get("transformers.utils")  # ".../modules" that leaks is still reported
        return utils is not None and entry == getattr(utils, "HF_MODULES_CACHE", None)
    if name == "warnings.filters":
        message = entry[1] if isinstance(entry, tuple) and len(entry) > 1 else None
        return getattr(message, "pattern", "").startswith("It seems that you are about to commit a data file")
    return False


# Opt-in: ~10-20 ms a test on the 2 shared cores, about 2% of the suite's time (at the limit of what the suite may
# spend on it): `HF_TXRAY_CHECK_GLOBAL_STATE=1 pytest ...` to find a leak behind a flaky test.
CHECK_GLOBAL_STATE = os.environ.get("HF_TXRAY_CHECK_GLOBAL_STATE", "") not in ("", "0")
if CHECK_GLOBAL_STATE:  # imported before the first test, so that a test's change to their constants is seen
    import importlib

    for _name in ("huggingface_hub.constants", "datasets.config", "transformers.utils.logging"):
        importlib.import_module(_name)


@pytest.fixture(autouse=True)
def _global_state_kept(request):
    """With ``HF_TXRAY_CHECK_GLOBAL_STATE=1``: fail a test that leaves process-wide state changed (after its
    function-scoped fixtures are torn down), naming what changed, and put that state back."""
    if not CHECK_GLOBAL_STATE:
        yield
        return
    imported, before = set(sys.modules), _global_state()
    yield
    after = _global_state()
    changed = _changes(before, after, imported)
    if changed:
        for name in before.keys() | after.keys():
            if name in before and before[name] is not after.get(name):
                _restore(name, before[name])
            elif name.endswith(" type"):
                _restore(name, None)
        pytest.fail(f"{request.node.nodeid} left process-wide state changed:\n  " + "\n  ".join(changed),
                    pytrace=False)


# ----- the garbage collector: what stays for the whole run is not scanned again -----------------------------------
# A full collection walks every object of the process: ~0.3 s in a worker that has imported torch, transformers,
# datasets, gradio and spaCy (~450k objects after collection, more later), and it ran often: Python's own full
# collections, and accelerate's gc.collect() at every Trainer.train() (Accelerator.free_memory). gc.freeze() moves the
# objects alive now out of the collector's sight (Python's documented use: before forking, or after start-up). Done
# once, after collection (after a collection, so that no garbage is kept): the imported modules and the test items,
# which stay for the whole run. Helper 452: on three trainer tests full collections took 4.1 s of 28.4 CPU-s before,
# 2.0 s after. Not at the end of each test module as well (helper 456): a frozen object is never collected once it
# is garbage in a cycle, and bounded caches evict what a module left in them (hf_txray's spaCy pipelines, 4 kept:
# 17 loads in three test modules on one worker, each evicted pipeline ~20-35 MB kept for the rest of the run).
def _freeze_survivors() -> None:
    import gc

    gc.collect()
    gc.freeze()


def pytest_collection_finish(session):
    _freeze_survivors()


# A young-generation collection every 10000 net allocations, not 700, from before collection (the test modules' imports
# of torch, transformers, datasets...): as much work in fewer passes, and half as many full collections (they follow
# the count of younger ones). Helper 452, three trainer tests: full collections 20 -> 10, collector time 2.9 -> 1.9 s
# of ~26 CPU-s, the same peak memory.
__import__("gc").set_threshold(10_000)
