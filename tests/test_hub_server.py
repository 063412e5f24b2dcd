"""The local Hub server works with the real clients: huggingface_hub (httpx2), datasets, transformers.

Nothing here is mocked: every call below is real HTTP to 127.0.0.1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import datasets
import pandas as pd
import pytest
from huggingface_hub import (
    HfApi,
    HfFileSystem,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:
    from .hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
    from .hub_server import DEFAULT_GITATTRIBUTES, HubServer, use_hub
except ImportError:
    from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
    from hub_server import DEFAULT_GITATTRIBUTES, HubServer, use_hub

SHA_RE = re.compile(r"^[0-9a-f]{40}$")

README = """\
---
license: mit
configs:
- config_name: alpha
  data_files:
  - split: train
    path: alpha/*.parquet
  default: true
- config_name: beta
  data_files:
  - split: train
    path: beta/*.parquet
---
# Two configs
"""

ALPHA = pd.DataFrame({"word": ["the", "cat", "sat"], "count": [3, 1, 2]})
BETA = pd.DataFrame({"neuron": [7, 9], "mass": [0.5, 1.5]})


def make_dataset_folder(root: Path) -> Path:
    """A Hub dataset layout: README with two configs, one parquet file per config folder."""
    (root / "alpha").mkdir(parents=True)
    (root / "beta").mkdir()
    (root / "README.md").write_text(README)
    ALPHA.to_parquet(root / "alpha" / "train.parquet", index=False)
    BETA.to_parquet(root / "beta" / "train.parquet", index=False)
    return root


def rows(dataset: datasets.Dataset) -> list[dict]:
    return [dict(row) for row in dataset]


# ---------------------------------------------------------------------------------------------------------------


def test_create_repo_whoami_and_exist_ok(hub):
    url = hub.api.create_repo("data", repo_type="dataset")  # no namespace: the token's user
    assert (url.repo_id, url.repo_type, url.endpoint) == (f"{hub.username}/data", "dataset", hub.url)
    assert hub.api.create_repo("data", repo_type="dataset", exist_ok=True).repo_id == url.repo_id
    with pytest.raises(HfHubHTTPError) as exc_info:
        hub.api.create_repo("data", repo_type="dataset")
    assert exc_info.value.response.status_code == 409

    info = hub.api.dataset_info(url.repo_id)
    assert SHA_RE.match(info.sha) and info.private is False
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]  # like the Hub's initial commit

    assert hub.api.whoami()["name"] == hub.username
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        hub.api.whoami(token="hf_not_a_valid_token")

    hub.api.delete_repo(url.repo_id, repo_type="dataset")
    assert not hub.api.repo_exists(url.repo_id, repo_type="dataset")
    hub.api.delete_repo(url.repo_id, repo_type="dataset", missing_ok=True)


def test_upload_folder_is_one_commit_and_loads_with_datasets(hub, tmp_path):
    repo_id = f"{hub.username}/profiles"
    hub.api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    commits_before = hub.server.repo_commits(repo_id)

    info = hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=make_dataset_folder(tmp_path / "ds"),
                                 commit_message="Add profiles")

    commits = hub.server.repo_commits(repo_id)
    assert commits == [info.oid, *commits_before]  # exactly one new commit
    assert all(SHA_RE.match(oid) for oid in commits) and len(set(commits)) == len(commits)
    assert sorted(hub.api.list_repo_files(repo_id, repo_type="dataset")) == [
        ".gitattributes", "README.md", "alpha/train.parquet", "beta/train.parquet"]
    assert hub.api.dataset_info(repo_id).card_data["configs"][1]["config_name"] == "beta"

    readme = hf_hub_download(repo_id, "README.md", repo_type="dataset")
    assert Path(readme).read_text() == README
    assert Path(readme).parent.name == info.oid  # snapshot folder named by the X-Repo-Commit header

    assert rows(datasets.load_dataset(repo_id, "alpha", split="train")) == ALPHA.to_dict("records")
    assert rows(datasets.load_dataset(repo_id, "beta", split="train")) == BETA.to_dict("records")

    snapshot = Path(snapshot_download(repo_id, repo_type="dataset"))
    assert pd.read_parquet(snapshot / "beta" / "train.parquet").equals(BETA)
    assert (snapshot / ".gitattributes").read_bytes() == DEFAULT_GITATTRIBUTES


def test_reupload_with_delete_patterns_replaces_files(hub, tmp_path):
    repo_id = f"{hub.username}/replace"
    hub.api.create_repo(repo_id, repo_type="dataset")
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=make_dataset_folder(tmp_path / "v1"))
    old_sha = hub.api.dataset_info(repo_id).sha

    v2 = tmp_path / "v2"
    (v2 / "alpha").mkdir(parents=True)
    (v2 / "README.md").write_text(README.replace("# Two configs", "# Version 2"))
    pd.DataFrame({"word": ["dog"], "count": [5]}).to_parquet(v2 / "alpha" / "part-0.parquet", index=False)
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=v2, delete_patterns=["*.parquet"])

    files = hub.server.repo_files(repo_id)
    assert sorted(files) == [".gitattributes", "README.md", "alpha/part-0.parquet"]  # .gitattributes is kept
    assert b"# Version 2" in files["README.md"]
    assert len(hub.server.repo_commits(repo_id)) == 3
    # The old commit is still readable by its sha, the branch moved on.
    old = hf_hub_download(repo_id, "beta/train.parquet", repo_type="dataset", revision=old_sha)
    assert pd.read_parquet(old).equals(BETA)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "beta/train.parquet", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "README.md", repo_type="dataset", revision="0" * 40)


def test_private_repo_needs_a_valid_token(hub, tmp_path):
    repo_id = f"{hub.username}/secret"
    hub.api.create_repo(repo_id, repo_type="dataset", private=True)
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=make_dataset_folder(tmp_path / "ds"))

    anonymous = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError) as exc_info:
        anonymous.dataset_info(repo_id)
    assert exc_info.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "README.md", repo_type="dataset", token=False)
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(repo_id, "alpha", split="train", token=False)
    with pytest.raises(HfHubHTTPError, match="Invalid credentials") as exc_info:
        HfApi(endpoint=hub.url, token="hf_wrong").dataset_info(repo_id)
    assert not isinstance(exc_info.value, RepositoryNotFoundError)

    assert hub.api.dataset_info(repo_id).private is True
    assert rows(datasets.load_dataset(repo_id, "beta", split="train")) == BETA.to_dict("records")  # via HF_TOKEN


def test_fault_switch_fails_the_next_commit_only(hub, tmp_path):
    repo_id = f"{hub.username}/flaky"
    hub.api.create_repo(repo_id, repo_type="dataset")
    folder = make_dataset_folder(tmp_path / "ds")
    commits_before = hub.server.repo_commits(repo_id)

    hub.server.fail_next_commit = True
    with pytest.raises(HfHubHTTPError) as exc_info:
        hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder)
    assert exc_info.value.response.status_code == 500
    assert hub.server.repo_commits(repo_id) == commits_before  # nothing half-written

    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder)
    assert len(hub.server.repo_commits(repo_id)) == len(commits_before) + 1


def test_large_file_goes_through_lfs(hub, tmp_path):
    # The client sends "regular" files inline (base64 in the NDJSON commit) whatever their size; only the
    # preupload answer "lfs" makes it use the LFS batch API + PUT. The server answers "lfs" from 10 MiB on.
    repo_id = f"{hub.username}/weights"
    hub.api.create_repo(repo_id, repo_type="dataset")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    hub.api.upload_file(path_or_fileobj=big, path_in_repo="blobs/big.bin", repo_id=repo_id, repo_type="dataset")

    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in hub.server.requests]
    assert ("POST", "batch") in calls and ("PUT" in {m for m, _ in calls})
    assert hub.server.is_lfs(repo_id, "blobs/big.bin")

    (entry,) = hub.api.get_paths_info(repo_id, ["blobs/big.bin"], repo_type="dataset")
    assert entry.lfs.size == big.stat().st_size and entry.size == big.stat().st_size
    metadata = get_hf_file_metadata(hf_hub_url(repo_id, "blobs/big.bin", repo_type="dataset"))
    assert metadata.etag == entry.lfs.sha256 and metadata.size == big.stat().st_size
    assert Path(hf_hub_download(repo_id, "blobs/big.bin", repo_type="dataset")).read_bytes() == big.read_bytes()


def test_lfs_mode_for_small_parquet_files_and_ranged_reads(hub, tmp_path):
    hub.server.lfs_patterns = ["*.parquet"]  # what the Hub's default .gitattributes does for parquet
    repo_id = f"{hub.username}/lfs-parquet"
    hub.api.create_repo(repo_id, repo_type="dataset")
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=make_dataset_folder(tmp_path / "ds"))
    assert hub.server.is_lfs(repo_id, "alpha/train.parquet") and not hub.server.is_lfs(repo_id, "README.md")

    assert rows(datasets.load_dataset(repo_id, "alpha", split="train")) == ALPHA.to_dict("records")

    # HfFileSystem reads through HTTP Range requests.
    with HfFileSystem().open(f"datasets/{repo_id}/alpha/train.parquet", "rb", block_size=16) as f:
        f.seek(4)
        assert f.read(8) == (tmp_path / "ds" / "alpha" / "train.parquet").read_bytes()[4:12]

    # Uploading identical content again: the client skips it (preupload returns the remote oid).
    commits_before = hub.server.repo_commits(repo_id)
    hub.api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=tmp_path / "ds")
    assert hub.server.repo_commits(repo_id) == commits_before


def test_lfs_upload_faults(hub, tmp_path):
    repo_id = f"{hub.username}/lfs-faults"
    hub.api.create_repo(repo_id, repo_type="dataset")
    hub.server.lfs_patterns = ["*.bin"]

    hub.server.fail_next_lfs_upload = 1  # one 500: the client retries the PUT (after ~1 s) and succeeds
    hub.api.upload_file(path_or_fileobj=b"x" * 1000, path_in_repo="a.bin", repo_id=repo_id, repo_type="dataset")
    assert [r.status for r in hub.server.requests if r.method == "PUT"] == [500, 200]

    hub.server.fail_next_lfs_upload, hub.server.fault_status = 1, 403  # not retried: the upload fails
    commits_before = hub.server.repo_commits(repo_id)
    with pytest.raises(RuntimeError, match="Error while uploading 'b.bin'"):
        hub.api.upload_file(path_or_fileobj=b"y" * 1000, path_in_repo="b.bin", repo_id=repo_id, repo_type="dataset")
    assert hub.server.repo_commits(repo_id) == commits_before


def test_model_repo_with_transformers(hub, tmp_path):
    from transformers import AutoConfig, BertConfig

    repo_id = f"{hub.username}/tiny-bert"
    hub.api.create_repo(repo_id)  # repo_type model
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37).save_pretrained(
        tmp_path / "model")
    (tmp_path / "model" / "_private.txt").write_text("not for upload")
    hub.api.upload_folder(repo_id=repo_id, folder_path=tmp_path / "model", ignore_patterns=["_*"])

    assert sorted(s.rfilename for s in hub.api.model_info(repo_id).siblings) == [".gitattributes", "config.json"]
    assert AutoConfig.from_pretrained(repo_id).intermediate_size == 37  # transformers' own download path
    assert hub.server.repo_files(repo_id, repo_type="model")["config.json"].startswith(b"{")


def test_listing_history_and_refs(hub):
    repo_id = f"{hub.username}/tree"
    hub.api.create_repo(repo_id, repo_type="dataset")
    first = hub.api.upload_file(path_or_fileobj=b"1", path_in_repo="a/b/one.txt", repo_id=repo_id,
                                repo_type="dataset", commit_message="one")
    second = hub.api.upload_file(path_or_fileobj=b"2", path_in_repo="a/two.txt", repo_id=repo_id,
                                 repo_type="dataset", commit_message="two")

    top = {e.path: type(e).__name__ for e in hub.api.list_repo_tree(repo_id, "a", repo_type="dataset")}
    assert top == {"a/b": "RepoFolder", "a/two.txt": "RepoFile"}
    expanded = {e.path: e for e in hub.api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, expand=True)}
    assert expanded["a/b/one.txt"].last_commit.oid == first.oid
    assert expanded["a"].last_commit.oid == second.oid
    assert [c.title for c in hub.api.list_repo_commits(repo_id, repo_type="dataset")] == ["two", "one",
                                                                                          "initial commit"]
    assert hub.api.list_repo_refs(repo_id, repo_type="dataset").branches[0].target_commit == second.oid
    assert hub.api.file_exists(repo_id, "a/two.txt", repo_type="dataset")
    assert not hub.api.file_exists(repo_id, "a/three.txt", repo_type="dataset")
    infos = hub.api.get_paths_info(repo_id, ["a/b", "missing.txt", "a/two.txt"], repo_type="dataset")
    assert [i.path for i in infos] == ["a/b", "a/two.txt"]


def test_storage_scan_finds_a_leaked_token(hub):
    repo_id = f"{hub.username}/leak"
    hub.api.create_repo(repo_id, repo_type="dataset")
    assert hub.server.find_in_storage(hub.token) == []
    hub.api.upload_file(path_or_fileobj=f"token={hub.token}".encode(), path_in_repo="oops.txt", repo_id=repo_id,
                        repo_type="dataset", commit_message="safe message")
    assert len(hub.server.find_in_storage(hub.token)) == 1
    hub.api.upload_file(path_or_fileobj=b"clean", path_in_repo="ok.txt", repo_id=repo_id, repo_type="dataset",
                        commit_message=f"leaks {hub.token}")
    assert len(hub.server.find_in_storage(hub.token)) == 2  # the object plus repo.json (commit message)


def test_use_hub_points_clients_at_the_server_and_restores_everything(tmp_path):
    before = (constants.ENDPOINT, constants.HF_HUB_CACHE, datasets.config.HF_ENDPOINT, os.environ.get("HF_ENDPOINT"),
              os.environ.get("HF_TOKEN"))
    with HubServer() as server, use_hub(server.url, hf_home=tmp_path / "home") as home:
        assert constants.ENDPOINT == server.url and datasets.config.HF_ENDPOINT == server.url
        assert constants.HF_HUB_CACHE == str(home / "hub") and "HF_TOKEN" not in os.environ
        # The module-level functions (bound to an HfApi made at import) follow too.
        import huggingface_hub

        with pytest.raises(HfHubHTTPError, match="Invalid username or password"):
            huggingface_hub.create_repo("nope", token=False)
        assert server.requests[-1].path == "/api/repos/create"
    assert (constants.ENDPOINT, constants.HF_HUB_CACHE, datasets.config.HF_ENDPOINT, os.environ.get("HF_ENDPOINT"),
            os.environ.get("HF_TOKEN")) == before


def test_branches_tags_resolve_by_revision_and_super_squash(hub):
    repo_id = f"{hub.username}/refs"
    hub.api.create_repo(repo_id, repo_type="dataset")
    first = hub.api.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset")
    hub.api.create_tag(repo_id, tag="v1", repo_type="dataset")
    hub.api.create_branch(repo_id, branch="dev", repo_type="dataset")
    dev = hub.api.upload_file(path_or_fileobj=b"dev", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset",
                              revision="dev")
    refs = hub.api.list_repo_refs(repo_id, repo_type="dataset")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": first.oid, "dev": dev.oid}
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [("v1", "refs/tags/v1", first.oid)]
    with pytest.raises(HfHubHTTPError) as exc_info:
        hub.api.create_tag(repo_id, tag="v1", repo_type="dataset")
    assert exc_info.value.response.status_code == 409

    # A download by tag or branch answers with the commit it resolved to, as the Hub does.
    meta = get_hf_file_metadata(hf_hub_url(repo_id, "a.txt", repo_type="dataset", revision="v1"))
    assert meta.commit_hash == first.oid
    assert Path(hf_hub_download(repo_id, "a.txt", repo_type="dataset", revision="dev")).read_bytes() == b"dev"
    assert hub.api.dataset_info(repo_id, revision="v1").sha == first.oid
    with pytest.raises(RevisionNotFoundError):
        hub.api.dataset_info(repo_id, revision="v2")

    hub.api.super_squash_history(repo_id, repo_type="dataset", branch="dev")
    squashed = hub.api.list_repo_refs(repo_id, repo_type="dataset").branches
    new_dev = next(b.target_commit for b in squashed if b.name == "dev")
    assert new_dev not in (dev.oid, first.oid)
    assert [c.commit_id for c in hub.api.list_repo_commits(repo_id, repo_type="dataset", revision="dev")] == [new_dev]
    with pytest.raises(RevisionNotFoundError):  # no branch or tag reaches it any more
        hub.api.dataset_info(repo_id, revision=dev.oid)
    assert hub.api.dataset_info(repo_id, revision=first.oid).sha == first.oid  # main and v1 still do
    hub.api.delete_tag(repo_id, tag="v1", repo_type="dataset")
    hub.api.delete_branch(repo_id, branch="dev", repo_type="dataset")
    refs = hub.api.list_repo_refs(repo_id, repo_type="dataset")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
