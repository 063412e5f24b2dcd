"""The scripts of ``bench/`` and ``examples/`` still start on today's code: each one is imported and its command
line parsed (``--help``), in this process, with no benchmark run. An API the scripts use at import time or while
building their parser that moved or was renamed fails here, under ``make test``, rather than when someone next runs
``make bench`` (a script that ran its benchmark on ``--help`` would also show here, as a test that does not end).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "examples").glob("*.py"))
HELPERS = {"baseline.py", "results_file.py"}  # modules the bench scripts share: no command line of their own


def _run_as_main(path: Path, monkeypatch) -> int | str | None:
    """Run `path` as ``python path --help`` would; the exit code (None when it returned without exiting)."""
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    monkeypatch.setattr(sys, "path", [str(path.parent)] + sys.path)
    environ = dict(os.environ)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:
        return stop.code
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return None


def test_every_script_is_listed():
    assert len(SCRIPTS) > 20 and {"run_all.py", "bench_profiling.py", "pruning_experiment.py"} <= {
        p.name for p in SCRIPTS}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_help(path: Path, monkeypatch, capsys):
    code = _run_as_main(path, monkeypatch)
    out = capsys.readouterr().out
    if path.name in HELPERS:
        assert code is None and "usage:" not in out
    else:
        assert code in (0, None) and "usage:" in out, f"{path.name} --help: exit {code!r}, printed {out[:500]!r}"
