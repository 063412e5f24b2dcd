"""What the viewer's tests share: the local app server, its gradio_client, its tables, and the Chromium browser.

Used by tests/test_space.py, tests/test_space_neuron_page.py and tests/test_wheel.py.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium, driven by Playwright (`playwright install` cannot download)
NO_CHROMIUM = "!!! BROWSER TEST NOT RUN: /usr/bin/chromium is missing. Install it with `apt-get install -y chromium` " \
              "(make test does this) !!!"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update"]
# Playwright's expect() waits 5 s by default; a viewer update on a loaded 2-core machine can take longer (a browser
# test's assertion without its own timeout failed once beside four other jobs, 2026-12-05): every assertion of the
# browser tests waits up to 30 s, as their explicit timeouts already did.
try:
    from playwright.sync_api import expect as _expect
except ImportError:  # the test extra missing: the browser tests skip themselves
    _expect = None
if _expect is not None:
    _expect.set_options(timeout=30_000)


@contextlib.contextmanager
def serve(demo: Any) -> Iterator[str]:
    """Launch a ``gr.Blocks`` on 127.0.0.1 in this process; yields its URL, closes it afterwards."""
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield url
    finally:
        demo.close()


def opened_client(url: str, source: str) -> Any:
    """A ``gradio_client.Client`` of the app at `url` with `source` opened (checked)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    opened = client.predict(source, api_name="/open")
    assert opened[0].startswith("Opened"), opened[0]
    return client


def frame(value: dict) -> pd.DataFrame:
    """A Dataframe output as gradio_client returns it."""
    return pd.DataFrame(value["data"], columns=value["headers"])


@contextlib.contextmanager
def browser_page(playwright: Any, width: int = 1400, height: int = 1000, scrollbars: bool = False) -> Iterator[Any]:
    """A page of a headless Chromium (Playwright's sync API module `playwright`), closed afterwards.

    `scrollbars`: draw scrollbars as a desktop browser does (headless Chromium hides them by default), so that a test
    can see whether a scroll container shows one."""
    with playwright.sync_playwright() as p:
        hidden = {"ignore_default_args": ["--hide-scrollbars"]} if scrollbars else {}
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, **hidden)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
