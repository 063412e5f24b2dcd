"""The scripts of ``bench/`` and ``examples/`` still start on today's code: each one is run with ``--help`` in a
process of its own, with no benchmark run. An API the scripts use at import time or while
building their parser that moved or was renamed fails here, under ``make test``, rather than when someone next runs
``make bench`` (a script that ran its benchmark on ``--help`` would also show here, as a test that does not end).
Each script runs as ``__main__`` in a child forked from one Python process per test worker that has imported the
third-party libraries they share (torch, transformers, datasets, pandas...): a plain ``python script --help`` spent
its 5-17 s importing them again. hf_txray and the bench helpers are not preloaded: each script imports them, names
and all, as a fresh process would.

Two scripts are also read in this process (``runpy.run_path`` under their own module name, so ``__main__`` does not
run and nothing is parsed): the tests of the baselines of ``bench_profiling.py`` (a plain forward over the batches
``analyze`` runs) and ``bench_neuron_pages.py`` (histograms switched off) call their functions directly.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "examples").glob("*.py"))
HELPERS = {"baseline.py", "results_file.py"}  # modules the bench scripts share: no command line of their own


# Imported once by the preloaded process (third-party modules only: hf_txray and the helpers the scripts import
# are imported in each script's own child, as in a fresh process).
PRELOADED = ("numpy", "pandas", "torch", "datasets", "transformers", "transformers.training_args",
             "transformers.trainer", "transformers.hf_argparser", "transformers.models.auto.modeling_auto",
             "transformers.models.auto.tokenization_auto")
# The preloaded process: reads a script's path per line, forks, runs the script as __main__ with --help in the child
# (stdout and stderr into a file), and answers one JSON line {"code", "out"} per script.
_SERVER = r"""
import importlib, json, os, runpy, sys, tempfile, traceback
for name in sys.argv[1:]:
    importlib.import_module(name)
base_path = list(sys.path)
for line in sys.stdin:
    path = line.rstrip("\n")
    with tempfile.TemporaryFile() as out:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                sys.argv = [path, "--help"]
                sys.path[:] = [os.path.dirname(path)] + base_path[1:]  # as python puts a script's folder first
                try:
                    runpy.run_path(path, run_name="__main__")
                    code = 0
                except SystemExit as stop:
                    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                    if not isinstance(stop.code, (int, type(None))):
                        print(stop.code, file=sys.stderr)
                except BaseException:
                    traceback.print_exc()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    print(json.dumps({"code": os.waitstatus_to_exitcode(status), "out": text}), flush=True)
"""


class _Preloaded:
    """A Python process that has imported :data:`PRELOADED` and runs each script given to it in a forked child;
    started at the first script, and again after one was stopped at :data:`SCRIPT_TIMEOUT`."""

    def __init__(self):
        self.server: subprocess.Popen | None = None

    def run(self, path: Path) -> tuple[int, str]:
        """Run ``path --help`` as ``__main__`` in a process of its own (a parser such as transformers'
        HfArgumentParser edits the dataclass fields it reads in place: TXRayArguments' ``txray_text_column`` read
        ``str`` for every later test of the process); its exit code and output."""
        if self.server is None or self.server.poll() is not None:
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            self.server = subprocess.Popen([sys.executable, "-c", _SERVER, *PRELOADED], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self.server.stdin.write(f"{path}\n")
        self.server.stdin.flush()
        # the first answer also waits for the imports
        if not select.select([self.server.stdout], [], [], SCRIPT_TIMEOUT)[0]:
            self.close()
            pytest.fail(f"{path.name} --help did not end in {SCRIPT_TIMEOUT} s (did it run its benchmark?)")
        answer = self.server.stdout.readline()
        assert answer, f"the preloaded process ended (exit {self.server.poll()!r}) while running {path.name} --help"
        done = json.loads(answer)
        return done["code"], done["out"]

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            # the server and a script's child (the server's session); an interpreter's exit with torch loaded
            # took seconds
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=60)
            self.server.stdin.close()
            self.server.stdout.close()
        self.server = None


SCRIPT_TIMEOUT = 300


@pytest.fixture(scope="module")
def preloaded():
    runner = _Preloaded()
    yield runner
    runner.close()


def test_every_script_is_listed():
    assert len(SCRIPTS) > 20 and {"run_all.py", "bench_profiling.py", "pruning_experiment.py"} <= {
        p.name for p in SCRIPTS}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_help(path: Path, preloaded):
    code, out = preloaded.run(path)
    if path.name in HELPERS:
        assert code == 0 and "usage:" not in out, f"{path.name}: exit {code!r}, printed {out[-800:]!r}"
    else:
        assert code == 0 and "usage:" in out, f"{path.name} --help: exit {code!r}, printed {out[-800:]!r}"
    if "results_file" in path.read_text(encoding="utf-8") and path.name not in HELPERS:
        # a script that rewrites a section of bench/RESULTS.md can be run without (bench_trainer.py, bench_noise.py
        # and bench_pruning.py could not)
        assert "--no-write" in out, f"{path.name} --help offers no --no-write"


def _bench_module(name: str, monkeypatch):
    """Import ``bench/<name>.py`` as a module (its folder on the path, for the helpers it imports)."""
    monkeypatch.setattr(sys, "path", [str(ROOT / "bench")] + sys.path)
    return runpy.run_path(str(ROOT / "bench" / f"{name}.py"), run_name=name)


def test_profiling_baseline_runs_the_batches_of_analyze(monkeypatch):
    """bench_profiling.py's "ratio analyze / plain forward" divides by a plain forward over the batches analyze
    runs: the same padded tokens (it once padded its own unsorted batches of 32: on 600 PTB sentences 31872 padded
    tokens against analyze's 19568, a baseline 1.6x slower that flattered the ratio)."""
    from datasets import Dataset

    from tests.models import SAMPLE_TEXTS, bert_tokenizer, tiny_bert

    bench = _bench_module("bench_profiling", monkeypatch)
    model, tokenizer = tiny_bert().eval(), bert_tokenizer()
    # short and long texts interleaved, so batches of 32 in corpus order pad far more than length-sorted ones
    texts = [" ".join([text] * (1 + i % 7)) for i, text in enumerate(SAMPLE_TEXTS * 12)]
    _, profile = bench["profiled"](model, tokenizer, Dataset.from_dict({"text": texts}), ("token",))
    padded = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: padded.append(kwargs["input_ids"].numel()), with_kwargs=True)
    try:
        _, tokens = bench["plain_forward"](model, tokenizer, texts, profile.meta.config["max_tokens_per_batch"])
    finally:
        handle.remove()
    assert sum(padded) == profile.meta.num_padded_tokens
    assert tokens == profile.meta.num_input_tokens


def test_neuron_pages_baseline_switches_the_histograms_off(monkeypatch):
    """bench_neuron_pages.py times `analyze` with and without the activation histograms. Its baseline once
    patched ``ActivationHistogram.add``, which the engine no longer calls (it counts on the device and adds with
    ``add_counts``): both runs kept the full histograms and the ratio measured noise."""
    from datasets import Dataset

    import hf_txray
    from tests.models import SAMPLE_TEXTS, bert_tokenizer, tiny_bert

    bench = _bench_module("bench_neuron_pages", monkeypatch)
    model, tokenizer, data = tiny_bert().eval(), bert_tokenizer(), Dataset.from_dict({"text": SAMPLE_TEXTS * 3})

    def counted() -> int:
        profile = hf_txray.analyze(model, data, tokenizer=tokenizer, features=("token",), show_progress=False)
        return 0 if profile.activation_histogram is None else int(profile.activation_histogram.counts.sum())

    full = counted()
    with bench["histograms_off"]():
        off = counted()
    assert full > 0 and off == 0 and counted() == full


def test_the_python_c_commands_in_results_md_still_print_and_write_their_section(monkeypatch, capsys):
    """The ``python -c`` commands that bench/RESULTS.md gives to rerun one part of a bench script (the 5 x 8 row
    of bench_noise's duplicates) print the section and rewrite it. bench_noise's parts return ``(title, text)``
    since 00a153e and write nothing: ``print(bench_noise.duplicates(...))`` printed a tuple and wrote no section
    (silent). Each command is run with the script stubbed (its parts return a title and a text at once) and
    ``results_file.update_section`` recorded."""
    import re
    import types

    text = (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    commands = [re.sub(r"\\\n\s*", "", m) for m in re.findall(r'python -c "(.*?)"', text, re.S)]
    commands = [c for c in commands if re.search(r"\bbench_\w+\.\w+\(", c)]  # those calling a script's part
    assert commands, "no python -c command calling a bench script's part in bench/RESULTS.md"
    for command in commands:
        scripts = sorted(set(re.findall(r"\b(bench_\w+)\.\w+\(", command)))
        written: list[tuple[str, str]] = []
        stub_results = types.ModuleType("results_file")
        stub_results.update_section = lambda title, body, path=None: written.append((title, body))
        for name in scripts:
            stub = types.ModuleType(name)
            stub.__getattr__ = lambda part: lambda *args, title="part", **kwargs: (title, "SECTION BODY")
            monkeypatch.setitem(sys.modules, name, stub)
        monkeypatch.setitem(sys.modules, "results_file", stub_results)
        monkeypatch.setattr(sys, "path", list(sys.path))  # the command inserts 'bench'
        exec(command, {"__name__": "__main__"})
        printed = capsys.readouterr().out
        assert written and all(body == "SECTION BODY" for _, body in written), (command, written)
        assert "SECTION BODY" in printed and "(" not in printed, (command, printed)
