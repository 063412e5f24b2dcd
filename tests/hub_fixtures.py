"""Pytest fixtures around the local Hub server (tests/hub_server.py).

Import them where they are needed, e.g. in tests/conftest.py:

    from hub_fixtures import hub, hub_server  # noqa: F401   (or `from tests.hub_fixtures ...` in a package)

`hub_server`: a started `HubServer` with empty storage, stopped after the test. The clients are NOT redirected:
    use it to test behaviour against several endpoints, or wrap your own `use_hub(hub_server.url, ...)`.
`hub`: the same server with the real `huggingface_hub`/`datasets` clients pointed at it (`use_hub`), a logged-in
    user (`HF_TOKEN` set to the server's token) and an isolated HF_HOME; everything is restored afterwards.

    def test_push(hub):
        hub.api.create_repo("test-user/data", repo_type="dataset")
        ...                                              # code under test uses the default endpoint
        assert "data.parquet" in hub.server.repo_files("test-user/data")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from huggingface_hub import HfApi

try:  # tests/ as a package or as a plain folder on sys.path (pytest's default "prepend" import mode)
    from .hub_server import HubServer, use_hub
except ImportError:
    from hub_server import HubServer, use_hub


@dataclass
class Hub:
    """What the `hub` fixture yields."""

    server: HubServer
    url: str
    token: str  # valid on the server; also exported as HF_TOKEN during the test
    username: str  # the account of `token`: the default namespace of `create_repo("name")`
    api: HfApi  # HfApi(endpoint=url, token=token)
    hf_home: Path  # isolated HF_HOME (hub cache under hf_home/"hub", datasets cache under hf_home/"datasets")


@pytest.fixture
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A fresh Hub-compatible server on 127.0.0.1 (cheap: one thread, storage in a pytest temp folder)."""
    server = HubServer(storage_dir=tmp_path_factory.mktemp("hub-storage")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub(hub_server: HubServer, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Hub]:
    """`hub_server` with the real clients pointed at it and a logged-in user, restored after the test (by the
    test's `monkeypatch`, so that what the test itself patches on top is undone first)."""
    hf_home = tmp_path_factory.mktemp("hf-home")
    with use_hub(hub_server.url, token=hub_server.token, hf_home=hf_home, monkeypatch=monkeypatch) as home:
        yield Hub(
            server=hub_server,
            url=hub_server.url,
            token=hub_server.token,
            username=hub_server.username,
            api=HfApi(endpoint=hub_server.url, token=hub_server.token),
            hf_home=home,
        )


# ----- repos to download from (models and datasets as users publish them) ----------------------------------------
def upload_folder_as(hub: Hub, repo_id: str, folder: Path, *, repo_type: str = "model", private: bool = False,
                     revision: str | None = None, message: str = "upload") -> str:
    """Create `repo_id` (if needed) and upload `folder` in one commit, to `revision` (a branch; created from main
    when missing). Returns the commit sha."""
    hub.api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if revision is not None:
        hub.api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True)
    return hub.api.upload_folder(repo_id=repo_id, repo_type=repo_type, folder_path=folder, revision=revision,
                                 commit_message=message).oid


def save_parquet_dataset(folder: Path, splits: dict[str, list[str]], config: str | None = None) -> Path:
    """`folder/<config or data>/<split>.parquet` with one `text` column per split (the Hub's parquet layout)."""
    import pandas as pd

    sub = folder / (config or "data")
    sub.mkdir(parents=True, exist_ok=True)
    for split, texts in splits.items():
        pd.DataFrame({"text": texts}).to_parquet(sub / f"{split}.parquet", index=False)
    return folder
