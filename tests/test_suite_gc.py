"""The test suite's own garbage-collector settings (tests/conftest.py): they may make the suite faster, never keep
what a test drops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

_FIRST = '''
import functools
import weakref


class Pipeline:  # in a cycle with itself, as a spaCy pipeline with its components and their thinc models
    def __init__(self):
        self.me = self


@functools.lru_cache(maxsize=1)  # as hf_txray.features.annotation._load_pipeline (maxsize=4)
def load(name):
    return Pipeline()


LOADED = []


def test_load():
    LOADED.append(weakref.ref(load("first")))
'''

_SECOND = '''
import gc

import test_first


def test_a_later_module_evicts_it():
    test_first.load("second")  # the first pipeline leaves the cache: garbage, held in a cycle
    gc.collect()
    assert test_first.LOADED[0]() is None, "an evicted cached object was never freed"
'''


def test_an_object_evicted_from_a_cache_in_a_later_module_is_freed(tmp_path):
    """conftest froze (gc.freeze) everything alive at the end of each test module, so an object that a bounded cache
    held then and evicted later, if in a reference cycle, was never collected: a spaCy pipeline that
    ``_load_pipeline`` (4 kept) evicted in a later module stayed, ~20-35 MB each (17 loads in three test modules on one
    worker; one pipeline kept there). Only what is alive after collection (modules, test items) is frozen now."""
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_first.py").write_text(_FIRST)
    (tmp_path / "test_second.py").write_text(_SECOND)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TXRAY_CHECK_GLOBAL_STATE", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--rootdir", str(tmp_path), "test_first.py", "test_second.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout + done.stderr
