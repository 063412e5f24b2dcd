"""The package as users install it: a wheel, installed without -e into a fresh venv that reuses the installed torch.

From outside the checkout (cwd a temporary folder, the checkout not on sys.path) the installed package must be the
wheel's copy, ``hf-txray view`` must serve real results (profile and report folders; one Chromium screenshot), and
``deploy_space`` must upload a working Space to the local Hub server. Issue 11: "The viewer is not in the wheel".
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import hf_txray
from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
from models import SAMPLE_TEXTS, bert_tokenizer, tiny_bert
from space_helpers import CHROMIUM, NO_CHROMIUM, browser_page

ROOT = Path(__file__).resolve().parents[1]
# found, not imported: the viewer runs in the installed venv's processes (importing gradio here cost ~4 CPU-s)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="the viewer needs gradio: pip install -e '.[space]'")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 120) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin, clean env, work dir): the wheel built from a copy of the sources (the checkout stays
    clean) and installed with --no-deps --no-index into a venv whose .pth file points at this venv's site-packages,
    so torch and the other dependencies resolve without being installed again."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    for name in ("hf_txray", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(source)], tmp, env, timeout=180)
    wheel = next((tmp / "dist").glob("hf_txray-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp,
                     env).strip())
    (site / "_reuse_main_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp, env, timeout=180)
    work = tmp / "work"
    work.mkdir()
    return python, venv / "bin", env, work


def test_wheel_holds_the_viewer_and_imports_outside_the_checkout(installed):
    python, _, env, work = installed
    out = _run([str(python), "-c", "import sys, hf_txray, hf_txray.viewer.app as app; "
                "print(hf_txray.__file__); print(app.__file__); print(repr(sys.path)); "
                "print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))"],
               work, env, timeout=180).split("\n")
    venv = python.parent.parent
    assert Path(out[0]).is_relative_to(venv) and Path(out[1]).is_relative_to(venv), out  # the wheel's copy
    assert not Path(out[0]).is_relative_to(ROOT)
    assert str(ROOT) not in eval(out[2])  # the checkout is not on the path
    # the app module imports no torch (helper 452: ~2.2 of its ~8.4 CPU-s): the live tab imports it when a text is
    # run, and opening results (their probing configs) does
    assert out[3] == "[]", out


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
@pytest.mark.timeout(300)
def test_installed_view_serves_profile_and_report_folders(installed, tmp_path):
    """`hf-txray view A B REPORT` of the installed console script, on what analyze and compare write."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    _, bin_dir, env, work = installed
    run = lambda seed, stage: hf_txray.analyze(tiny_bert(seed), SAMPLE_TEXTS, tokenizer=bert_tokenizer(),  # noqa: E731
                                               features=("token",), stage=stage, show_progress=False)
    a, b = run(0, "before"), run(1, "after")
    folders = [a.save_pretrained(tmp_path / "a"), b.save_pretrained(tmp_path / "b"),
               hf_txray.compare(a, b).save_pretrained(tmp_path / "report")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(bin_dir / "hf-txray"), "view", *map(str, folders), "--port", str(port)],
                              cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):  # the page is served once gradio, torch and the results are loaded
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-3000:]
                time.sleep(0.5)
        with browser_page(playwright) as page:
            page.goto(url)
            playwright.expect(page.locator("#status textarea")).to_have_value(
                re.compile(r"^Opened .*2 profile\(s\), 1 report\(s\)"), timeout=60_000)
            page.screenshot(path=str(tmp_path / "wheel-view.png"), full_page=True)
        assert (tmp_path / "wheel-view.png").stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_installed_deploy_space_uploads_a_working_app(installed, hub):  # noqa: F811
    """deploy_space of the installed package (no spaces_app/ folder anywhere near it) to the local Hub server."""
    python, _, _, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # the hub fixture's env
    _run([str(python), "-c", "from hf_txray.viewer import deploy_space; "
          "deploy_space('test-user/wheel-viewer', 'test-user/some-results')"], work, env, timeout=180)
    files = hub.server.repo_files("test-user/wheel-viewer", repo_type="space")
    from hf_txray.viewer.space import APP_PY

    assert files["app.py"].decode() == APP_PY
    assert "from hf_txray.viewer.app import build_demo" in APP_PY
    for name in ("README.md", "requirements.txt", "hf_txray/__init__.py", "hf_txray/viewer/app.py"):
        assert name in files, name
    assert "test-user/some-results" in files["README.md"].decode()
    # the uploaded app runs: its launcher imports the uploaded package and builds the app
    space = work / "space"
    for name, content in files.items():
        (space / name).parent.mkdir(parents=True, exist_ok=True)
        (space / name).write_bytes(content)
    out = _run([sys.executable, "-c", "import os, app, hf_txray; print(hf_txray.__file__); print(type(app.demo).__name__)"],
               space, {**env, "SPACE_ID": "", "TXRAY_REPO": ""}, timeout=180).split("\n")
    assert Path(out[0]).is_relative_to(space) and out[1] == "Blocks", out
