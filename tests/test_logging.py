"""hf_txray.logging: verbosity, main-process-only records, and the one progress-bar switch."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hf_txray
from hf_txray.logging import get_logger
from models import SAMPLE_TEXTS, tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_switches():
    level = hf_txray.logging.get_verbosity()
    disabled = hf_txray.logging.are_progress_bars_disabled()
    yield
    hf_txray.logging.set_verbosity(level)
    (hf_txray.logging.disable_progress_bars if disabled else hf_txray.logging.enable_progress_bars)()


def _run_python(code: str) -> subprocess.CompletedProcess:
    """`code` run by a fresh interpreter that imports this checkout, offline: logging set up from scratch (pytest's
    own log handler raises on records that logging reports instead)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_verbosity_levels_and_main_process_only(capfd, monkeypatch, restore_switches):
    logger = get_logger("hf_txray.test")
    assert logger.parent is get_logger() and hf_txray.logging.get_verbosity() == logging.WARNING  # the default
    logger.info("quiet info")
    hf_txray.logging.set_verbosity_info()
    assert hf_txray.logging.get_verbosity() == logging.INFO
    logger.info("loud info")
    hf_txray.logging.set_verbosity_error()
    logger.warning("hidden warning")
    err = capfd.readouterr().err
    assert "loud info" in err and "quiet info" not in err and "hidden warning" not in err

    hf_txray.logging.set_verbosity_warning()
    monkeypatch.setenv("RANK", "1")  # as torchrun sets it on the second process
    logger.warning("rank-1 warning")
    logger.error("rank-1 error")
    monkeypatch.setenv("RANK", "0")
    logger.warning("rank-0 warning")
    err = capfd.readouterr().err
    assert "rank-1 warning" not in err and "rank-1 error" in err and "rank-0 warning" in err


def test_verbosity_and_progress_switch_from_the_environment():
    env = {**os.environ, "HF_TXRAY_VERBOSITY": "error", "HF_TXRAY_DISABLE_PROGRESS_BARS": "1",
           "PYTHONPATH": str(ROOT)}
    code = "import hf_txray; print(hf_txray.logging.get_verbosity(), hf_txray.logging.are_progress_bars_disabled())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["40", "True"], done.stderr[-2000:]


def test_tqdms_own_environment_switch_hides_hf_txrays_bars_too():
    """Helper 385: tqdm reads ``TQDM_DISABLE=1`` (and every ``TQDM_*`` default) from the environment, which hid the
    bars of transformers and datasets, but hf_txray passed ``disable=False`` explicitly, so its profiling bar still
    filled a SLURM log; tqdm's other settings (``TQDM_MININTERVAL``) apply as well."""
    code = ("import hf_txray, sys; sys.path.insert(0, 'tests'); from models import SAMPLE_TEXTS, tiny; "
            "model, tokenizer = tiny('bert'); bar = hf_txray.logging.tqdm(total=3); "
            "print(getattr(bar, 'mininterval', 'off')); bar.close(); "
            "hf_txray.analyze(model, SAMPLE_TEXTS[:3], tokenizer=tokenizer, features=('token',), max_length=16)")
    for env, shown, interval in (({"TQDM_DISABLE": "1"}, False, "off"), ({"TQDM_MININTERVAL": "30"}, True, "30.0")):
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.split() == [interval], done.stderr[-2000:]
        assert ("hf_txray profiling" in done.stderr) == shown, (env, done.stderr[-2000:])


def test_one_switch_for_the_profiling_and_spacy_bars(capfd, restore_switches):
    model, tokenizer = tiny("bert")
    texts = [f"{t} (switch test {i})" for i, t in enumerate(SAMPLE_TEXTS) if t.strip()]
    hf_txray.logging.disable_progress_bars()
    hf_txray.analyze(model, texts[:3], tokenizer=tokenizer, features=("token", "pos"), max_length=24)
    err = capfd.readouterr().err
    assert "hf_txray profiling" not in err and "spaCy" not in err
    import datasets
    import huggingface_hub.utils
    import transformers

    # the same switch turns off the bars of the libraries analyze calls (weight loading, maps, downloads)
    assert not transformers.utils.logging.is_progress_bar_enabled() and not datasets.is_progress_bar_enabled()
    assert huggingface_hub.utils.are_progress_bars_disabled()

    hf_txray.logging.enable_progress_bars()
    hf_txray.analyze(model, texts[:3], tokenizer=tokenizer, features=("token",), max_length=24, show_progress=False)
    assert "hf_txray profiling" not in capfd.readouterr().err  # show_progress=False: this call only
    hf_txray.analyze(model, texts[3:], tokenizer=tokenizer, features=("token", "pos"), max_length=24)
    err = capfd.readouterr().err
    assert "hf_txray profiling" in err and "spaCy" in err
    assert not hf_txray.logging.are_progress_bars_disabled()
    assert transformers.utils.logging.is_progress_bar_enabled() and datasets.is_progress_bar_enabled()
    # a library's bars that its user turned off with its own switch stay off (helper 121: enable turned them on)
    datasets.disable_progress_bars()
    try:
        hf_txray.logging.disable_progress_bars()
        hf_txray.logging.enable_progress_bars()
        assert not datasets.is_progress_bar_enabled() and transformers.utils.logging.is_progress_bar_enabled()
    finally:
        datasets.enable_progress_bars()
    assert transformers.utils.logging.is_progress_bar_enabled() and datasets.is_progress_bar_enabled()
    assert not huggingface_hub.utils.are_progress_bars_disabled()


def test_a_streams_bar_has_its_num_samples_as_total(capfd, tmp_path, restore_switches):
    """A stream's length is unknown, but take(num_samples) bounds it: the bar shows that total, and a stream that ends
    sooner closes its bar at the texts read."""
    import json
    import re

    model, tokenizer = tiny("bert")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"text number {i}"}) + "\n" for i in range(6)))
    hf_txray.logging.enable_progress_bars()
    for num_samples, shown in ((4, "4/4"), (10, "6/6"), (None, "6ex")):
        hf_txray.analyze(model, str(data), tokenizer=tokenizer, streaming=True, num_samples=num_samples, max_length=16)
        last = re.split(r"[\r\n]", capfd.readouterr().err.strip())[-1]
        assert "hf_txray profiling" in last and shown in last, (num_samples, last)


def test_library_bars_show_on_the_main_process_only(saved_bert, capfd, monkeypatch, restore_switches):
    """Under torchrun / accelerate launch every process loads the model: transformers' weight-loading bar was drawn by
    each (``hf-txray analyze`` with 2 processes: 'Loading weights' twice on stderr, the profiling bar once). Now the
    libraries' bars, like hf_txray's own, show on the main process only, and are on again after the call."""
    import transformers

    hf_txray.logging.enable_progress_bars()
    texts = [t for t in SAMPLE_TEXTS if t.strip()][:2]
    monkeypatch.setenv("RANK", "1")  # as the launcher sets it on the second process
    hf_txray.analyze(str(saved_bert), texts, features=("token",))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "hf_txray profiling" not in err, err[-2000:]
    assert transformers.utils.logging.is_progress_bar_enabled()
    monkeypatch.setenv("RANK", "0")
    hf_txray.analyze(str(saved_bert), texts, features=("token",))
    err = capfd.readouterr().err
    assert "Loading weights" in err and "hf_txray profiling" in err


def test_records_reaching_the_applications_handlers_are_masked(caplog):
    """helper 367: after enable_propagation(), records of hf_txray's loggers reached the application's handlers
    unmasked ("Could not open https://me:s3cretPass@host/x"): only hf_txray's own handler formatted through
    RedactingFormatter. The records themselves are masked now, those of child loggers too (a logger's filter does not
    run for the records its children hand up)."""
    import io

    secret = "s3cretPass"
    stream = io.StringIO()
    own = logging.StreamHandler(stream)
    own.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(own)
    propagated = logging.getLogger("hf_txray").propagate  # conftest's enable_propagation: kept for the next tests
    hf_txray.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            get_logger("analyze").warning("Could not open %s", f"https://me:{secret}@host/x")
            get_logger().warning("Could not open https://me:%s@host/y", secret)
            logging.getLogger("hf_txray").warning("kept as it is: %s of %d", "no secret", 3)
            try:
                raise OSError(f"https://me:{secret}@host/z")
            except OSError:
                get_logger("hub").exception("failed")
    finally:
        logging.getLogger("hf_txray").propagate = propagated
        root.removeHandler(own)
    shown = stream.getvalue()
    assert secret not in shown and secret not in caplog.text, shown
    assert "hf_txray.analyze Could not open https://***@host/x" in shown and "https://***@host/y" in shown
    assert "OSError: https://***@host/z" in shown and "Traceback" in shown
    plain = [r for r in caplog.records if "no secret" in r.getMessage()]
    assert plain and plain[0].args == ("no secret", 3)  # a record without a secret keeps its arguments



def test_records_of_loggers_get_logger_did_not_make_are_masked_on_hf_txrays_handler():
    """The library handler masks what reaches it from any logger below ``hf_txray``, also one that
    :func:`get_logger` did not make (``logging.getLogger("hf_txray.x")``, which carries no RedactingFilter of its
    own): its message, arguments and traceback. (A subprocess: the handler writes to stderr as it is at that time.)"""
    code = ("import logging, hf_txray\n"
            "plain = logging.getLogger('hf_txray.not_from_get_logger')\n"
            "plain.warning('Could not open %s', 'https://me:s3cretPass@host/x')\n"
            "try:\n"
            "    raise OSError('https://me:s3cretPass@host/z')\n"
            "except OSError:\n"
            "    plain.exception('failed')\n"
            "plain.warning('kept as it is: %s of %d', 'no secret', 3)\n")
    done = _run_python(code)
    assert done.returncode == 0 and "s3cretPass" not in done.stderr, done.stderr[-2000:]
    assert "WARNING hf_txray.not_from_get_logger: Could not open https://***@host/x" in done.stderr, done.stderr
    assert "OSError: https://***@host/z" in done.stderr and "Traceback" in done.stderr, done.stderr
    assert "kept as it is: no secret of 3" in done.stderr, done.stderr


def test_a_record_whose_arguments_do_not_fit_its_message_is_reported_not_raised():
    """helper 370: since 13088b3 the RedactingFilter merged every record's message on the logger itself, so
    ``get_logger("analyze").warning("%d items", "abc")`` raised TypeError into the code that logged; logging reports
    such a record on stderr ('--- Logging error ---') and goes on. The report shows the secret masked. (A subprocess:
    pytest's own log handler raises such errors on purpose.)"""
    code = ("from hf_txray.logging import get_logger\n"
            "get_logger('analyze').warning('%d items from https://me:s3cretPass@host/x', 'abc')\n"
            "get_logger().warning('%d of %s', 'abc', 'https://me:s3cretPass@host/y')\n"
            "print('went on')\n")
    done = _run_python(code)
    assert done.stdout.split() == ["went", "on"], done.stderr[-2000:]
    assert done.stderr.count("Logging error") == 2 and "%d items" in done.stderr, done.stderr[-2000:]
    assert "s3cretPass" not in done.stderr, done.stderr[-2000:]


def test_the_report_of_a_record_with_mapping_arguments_or_a_message_that_is_no_string_is_masked():
    """The report of an unmergeable record showed the secret of a mapping argument ("x %(a)s" with {"b": "...?token=
    s3cretPass"}: "Arguments: {'b': 'https://h/x?token=s3cretPass'}") and of a message that is not a string (a dict
    logged with an argument: "Message: {'url': 'https://me:s3cretPass@host/x'}"): only a tuple's strings and a str
    message were masked."""
    code = ("import logging\nfrom hf_txray.logging import get_logger\n"
            "for logger in (get_logger('analyze'), logging.getLogger('hf_txray.x')):\n"
            "    logger.warning('x %(a)s', {'b': 'https://h/x?token=s3cretPass'})\n"
            "    logger.warning({'url': 'https://me:s3cretPass@host/x'}, 'extra')\n"
            "print('went on')\n")
    done = _run_python(code)
    assert done.stdout.split() == ["went", "on"], done.stderr[-2000:]
    assert done.stderr.count("Logging error") == 4 and "token=***" in done.stderr, done.stderr[-3000:]
    assert "s3cretPass" not in done.stderr, done.stderr[-3000:]


def test_reloading_the_module_neither_chains_the_factory_again_nor_prints_twice():
    """importlib.reload(hf_txray.logging) made a second RedactingFilter, record factory and stderr handler: measured
    before, a record was masked by 2 chained factories (4 redact calls where 2 were made) and printed twice. After:
    the filter and handler already on the library logger are kept; one line, masked."""
    code = ("import importlib, logging\nimport hf_txray.logging as L\n"
            "calls = []\nmasking = L.redact\n"
            "def counted(text):\n    calls.append(text)\n    return masking(text)\n"
            "L.redact = counted\nlogging.getLogger('hf_txray.x').warning('one https://me:s3cretPass@host/x')\n"
            "before = len(calls)\nimportlib.reload(L)\nL.redact = counted\ncalls.clear()\n"
            "logging.getLogger('hf_txray.x').warning('two https://me:s3cretPass@host/x')\n"
            "print(before, len(calls), len(logging.getLogger('hf_txray').handlers), "
            "len(logging.getLogger('hf_txray').filters))\n")
    done = _run_python(code)
    before, after, handlers, filters = done.stdout.split()
    assert after == before and handlers == filters == "1", done.stdout
    assert done.stderr.count("two https://***@host/x") == 1 and "s3cretPass" not in done.stderr, done.stderr


def test_records_of_a_child_logger_not_made_by_get_logger_are_masked(caplog):
    """helper 374: the RedactingFilter sat on the library logger and on the children get_logger returned; a logger's
    filter does not run for the records its children hand up, so a child made with ``logging.getLogger("hf_txray.x")``
    sent "open https://u:s3cretPass@h/x" unmasked to a handler on ``hf_txray`` with its own formatter and, after
    enable_propagation(), to the application's. Every record of the hf_txray tree is masked now (a record factory);
    other loggers' records are left as they are."""
    import io

    secret = "s3cretPass"
    streams = {name: io.StringIO() for name in ("", "hf_txray")}
    handlers = {name: logging.StreamHandler(stream) for name, stream in streams.items()}
    for name, handler in handlers.items():
        logging.getLogger(name).addHandler(handler)
    propagated = logging.getLogger("hf_txray").propagate  # conftest's enable_propagation: kept for the next tests
    hf_txray.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            logging.getLogger("hf_txray.direct_child_374").warning("open https://u:%s@h/x", secret)
            logging.getLogger("hf_txray.direct_child_374.deeper").error("open https://h/y?token=%s", secret)
            logging.getLogger("hf_txray_other_374").warning("kept: https://u:%s@h/z", secret)  # not hf_txray's
    finally:
        logging.getLogger("hf_txray").propagate = propagated
        for name, handler in handlers.items():
            logging.getLogger(name).removeHandler(handler)
    for name, stream in streams.items():
        shown = stream.getvalue()
        assert "open https://***@h/x" in shown and "open https://h/y?token=***" in shown, (name, shown)
        assert f"open https://u:{secret}" not in shown and f"token={secret}" not in shown, (name, shown)
    assert f"kept: https://u:{secret}@h/z" in streams[""].getvalue()


def test_each_record_is_masked_once():
    """helper 394: a record of a get_logger child passed the RedactingFilter three times (the record factory, the
    logger's filter, the handler's), each merging its message and redacting it: measured before, 3 redact calls per
    record (2 for a child made with logging.getLogger). Once now, and still masked."""
    code = ("import logging\nimport hf_txray.logging as L\ncalls = []\nmasking = L.redact\n"
            "def counted(text):\n    calls.append(text)\n    return masking(text)\n"
            "L.redact = counted\ncounts = []\n"
            "for logger in (L.get_logger('counted'), logging.getLogger('hf_txray.direct'), L.get_logger()):\n"
            "    calls.clear()\n    logger.warning('open https://me:%s@host/x', 's3cretPass')\n"
            "    counts.append(len(calls))\nprint(*counts)\n")
    done = _run_python(code)
    assert done.stdout.split() == ["1", "1", "1"], (done.stdout, done.stderr)
    assert done.stderr.count("open https://***@host/x") == 3 and "s3cretPass" not in done.stderr, done.stderr


def test_warnings_captured_by_logging_and_the_commands_warning_lines_are_masked(tmp_path):
    """helper 394: with logging.captureWarnings(True) a warning becomes a record of the "py.warnings" logger, which
    the record factory left alone (only hf_txray's tree was masked): measured before, hf_txray's warning "could not
    open https://me:s3cretPass@host/x" reached the application's handler whole; and the command line's one-line
    warnings (cli._warning_line) printed the message as it was. Both masked now; other text kept."""
    code = ("import logging, sys\nimport hf_txray.logging as L\nlogging.captureWarnings(True)\n"
            "logging.getLogger('py.warnings').addHandler(logging.StreamHandler(sys.stdout))\n"
            "L.warn_caller('could not open https://me:s3cretPass@host/x with tokenizer=gpt2, bos_token, author=me')\n")
    done = _run_python(code)
    assert "could not open https://***@host/x with tokenizer=gpt2, bos_token, author=me" in done.stdout, done.stdout
    assert "s3cretPass" not in done.stdout + done.stderr, done.stdout
    import io

    from hf_txray.cli import _warning_line

    shown = io.StringIO()
    _warning_line("analyze")(UserWarning("open https://h/x?token=s3cretPass, max_tokens_per_batch=4096"), UserWarning,
                             hf_txray.logging.__file__, 1, file=shown)
    assert shown.getvalue() == "hf-txray analyze: UserWarning: open https://h/x?token=***, max_tokens_per_batch=4096\n"


def test_a_record_changed_after_it_was_masked_is_masked_again():
    """helper 399: the once-per-record flag (7d1a394) was a bare True set by the record factory, so a record whose
    arguments an application's filter changed afterwards passed hf_txray's handler unmasked: measured at 7d1a394,
    "open x (password=hunter2)" on stderr (fb52d66: "password=***"). The flag holds the texts the filter left, and a
    record whose texts changed is masked again; an unchanged one still costs one redact call, and stays picklable
    (a SocketHandler or a process's queue sends its __dict__)."""
    code = ("import logging, pickle\nimport hf_txray.logging as L\ncalls = []\nmasking = L.redact\n"
            "def counted(text):\n    calls.append(text)\n    return masking(text)\n"
            "L.redact = counted\nclass Context(logging.Filter):\n"
            "    def filter(self, record):\n        record.msg += ' (%s)'\n"
            "        record.args = (*(record.args or ()), 'password=hunter2')\n        return True\n"
            "logger = L.get_logger('context')\nlogger.warning('open %s', 'x')\ncalls.clear()\n"
            "logger.addFilter(Context())\nrecords = []\nkeep = logging.Handler()\nkeep.emit = records.append\n"
            "logger.addHandler(keep)\nlogger.warning('open %s', 'x')\n"
            "logger.removeFilter(logger.filters[-1])\ncalls.clear()\nlogger.warning('plain %s', 'y')\n"
            "print(len(calls), len(pickle.dumps(records[0].__dict__)) > 0)\n")
    done = _run_python(code)
    assert "open x (password=***" in done.stderr and "hunter2" not in done.stderr, done.stderr
    assert done.stdout.split() == ["1", "True"], (done.stdout, done.stderr)


def _in_two_threads(first, second) -> None:
    """Run `first` and `second` in two threads at once, re-raising what either raised."""
    import threading

    errors = []

    def run(step):
        try:
            step()
        except BaseException as error:  # noqa: BLE001  re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(step,), name=step.__name__) for step in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize("enabled", [True, False])
def test_two_threads_hiding_their_bars_leave_the_global_switch_as_it_was(restore_switches, enabled):
    """``progress_bars_for(False)`` of two calls in two threads (two ``analyze(show_progress=False)``), entered and
    left in the order A, B, A, B: each saved and restored one module global, so B restored the False that A had set
    and the switch stayed off for good after both (silent: no bar of the process showed again). Each thread's
    ``show_progress`` now holds for its own bars, and the switch is never touched."""
    import threading

    from hf_txray.logging import are_progress_bars_disabled, progress_bars_for

    (hf_txray.logging.enable_progress_bars if enabled else hf_txray.logging.disable_progress_bars)()
    barrier, seen = threading.Barrier(2, timeout=30), {}

    def thread_a():
        with progress_bars_for(False):
            barrier.wait()  # 1: A inside
            barrier.wait()  # 2: B inside
            seen["a inside"] = are_progress_bars_disabled()
        barrier.wait()  # 3: A left
        barrier.wait()  # 4: B left

    def thread_b():
        barrier.wait()  # 1
        with progress_bars_for(False):
            barrier.wait()  # 2
            barrier.wait()  # 3
            seen["b inside, a left"] = are_progress_bars_disabled()
        barrier.wait()  # 4

    _in_two_threads(thread_a, thread_b)
    assert seen == {"a inside": True, "b inside, a left": True}
    assert are_progress_bars_disabled() is not enabled
    with progress_bars_for(True):  # one thread: a call's show_progress=True shows its bars under a switch off
        assert not are_progress_bars_disabled()
        with progress_bars_for(None):
            assert not are_progress_bars_disabled()  # an inner call without show_progress keeps the outer one
    assert are_progress_bars_disabled() is not enabled


def test_a_calls_switch_holds_in_its_thread_only_and_the_global_switch_set_in_a_block_stays(restore_switches,
                                                                                             monkeypatch):
    """A call's ``show_progress=False`` and a Trainer snapshot's ``nested=True`` (bars cleared when done) act on the
    bars of that call's thread: another thread's bars showed hidden or were cleared while the block lasted. The
    global switch set inside a block (``disable_progress_bars()``) stays after it."""
    import threading

    import tqdm.auto

    from hf_txray.logging import are_progress_bars_disabled, progress_bars_for

    made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda *args, **kwargs: made.append(
        (threading.current_thread().name, kwargs.get("disable"), kwargs.get("leave"))))
    hf_txray.logging.enable_progress_bars()
    barrier = threading.Barrier(2, timeout=30)

    def call():
        with progress_bars_for(False, nested=True):
            barrier.wait()  # 1: the call's block is on
            hf_txray.logging.tqdm(total=1)
            barrier.wait()  # 2: the other thread made its bar

    def other():
        barrier.wait()  # 1
        hf_txray.logging.tqdm(total=1)
        assert not are_progress_bars_disabled()
        barrier.wait()  # 2

    _in_two_threads(call, other)
    assert sorted(made) == [("call", True, False),  # the call's bar: hidden, and cleared when done
                            ("other", None, None)]  # the other thread's: as the global switch says, left when done
    with progress_bars_for(None):
        hf_txray.logging.disable_progress_bars()
    assert are_progress_bars_disabled()  # set inside a show=None block: stays
    with progress_bars_for(True):
        hf_txray.logging.enable_progress_bars()
        hf_txray.logging.disable_progress_bars()
        assert not are_progress_bars_disabled()  # the call's show_progress=True holds for its bars
    assert are_progress_bars_disabled()  # and the switch set in its block stays
