"""A small Hugging Face Hub-compatible HTTP server for tests.

The real Hub is unreachable from the test machines, and `huggingface_hub` 2.x talks HTTP through `httpx2`, which
`respx`/`pytest-httpx` do not intercept. So the tests run the *real* clients (`HfApi`, `hf_hub_download`,
`snapshot_download`, `HfFileSystem`, `datasets.load_dataset`) against this server on 127.0.0.1.

It speaks the subset of the Hub protocol those clients use (routes and JSON shapes taken from the client source,
huggingface_hub 2.4 `hf_api.py`, `_commit_api.py`, `lfs.py`, `file_download.py`, `utils/_http.py`):

    GET  /api/whoami-v2                                       token check
    POST /api/validate-yaml                                   README front matter check (PyYAML)
    GET  /api/agent-harnesses                                 empty registry (the client's user-agent lookup)
    POST /api/repos/create            DELETE /api/repos/delete
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]            repo info (sha, private, siblings, cardData)
    GET  /api/{type}s/{ns}/{name}/refs                        branches and tags
    POST|DELETE /api/{type}s/{ns}/{name}/branch/{branch}      create (JSON `startingPoint`) / delete a branch
    POST /api/{type}s/{ns}/{name}/tag/{rev}                   tag a revision (JSON `tag`, `message`)
    DELETE /api/{type}s/{ns}/{name}/tag/{tag}                 delete a tag
    POST /api/{type}s/{ns}/{name}/super-squash/{branch}       squash a branch's history into one commit
    GET  /api/{type}s/{ns}/{name}/commits/{rev}               history, newest first
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]         listing (?recursive= &expand=)
    POST /api/{type}s/{ns}/{name}/paths-info/{rev}            form or JSON `paths`
    POST /api/{type}s/{ns}/{name}/preupload/{rev}             upload mode per file ("regular" or "lfs")
    POST /api/{type}s/{ns}/{name}/commit/{rev}                NDJSON: header/file/lfsFile/deletedFile/deletedFolder
    POST /[{type}s/]{ns}/{name}.git/info/lfs/objects/batch    LFS batch API (basic transfer, upload)
    PUT  /lfs/upload/{ticket}                                 pre-signed-like upload URL handed out by the batch API
    POST /lfs/verify/{type}s/{ns}/{name}                      LFS verify action
    GET|HEAD /[{type}s/]{ns}/{name}/resolve/{rev}/{path}      file download (ETag, X-Repo-Commit, Range, ...)

Repos live under `storage_dir/repos/{type}s/{ns}/{name}/`: `repo.json` (visibility, branches, every commit's
file table) and `objects/{sha256}` (file contents, regular and LFS alike). Each commit is a full snapshot of the
file table, so any commit sha in the history can be read back. Every revision (branch, tag or commit sha) resolves
to a commit: downloads answer with its sha in `X-Repo-Commit`, as the Hub does, which is what pins the client cache.
A branch's full ref name (``refs/heads/NAME``) names the branch NAME wherever a branch is read, committed to, created
or deleted, as in git.
A super-squash drops the commits that no branch or tag reaches any more, so they answer RevisionNotFound.

Things it deliberately does not do: Xet storage (clients must run with HF_HUB_DISABLE_XET=1, see `use_hub`),
pull requests (`create_pr` answers 400), gated repos, `.gitignore` handling, and LFS multipart transfer (it never
asks for it). Any valid token may read and write every repo.

Example:
    ```py
    with HubServer() as server, use_hub(server.url, token=server.token):
        HfApi().create_repo("me/data", repo_type="dataset")
    ```
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# URL segment ("datasets") <-> repo type ("dataset"), and the prefix of web/resolve URLs per type.
PLURAL_TO_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

DEFAULT_BRANCH = "main"
MiB = 1024 * 1024

# A new Hub repo starts with one commit holding this file (an excerpt of the Hub's default). The server does not
# read it: upload modes come from `HubServer.lfs_threshold` / `lfs_patterns`.
DEFAULT_GITATTRIBUTES = b"""\
*.bin filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
"""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """Git's blob id: what the Hub reports as `oid`/ETag of a regular file (and the client recomputes)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands in git for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def branch_name(ref: str) -> str:
    """`ref` without the ``refs/heads/`` of a branch's full ref name (git's, which the Hub takes for the branch)."""
    return ref.removeprefix("refs/heads/")


def _now_iso() -> str:
    # The client's `parse_datetime` only accepts '%Y-%m-%dT%H:%M:%S.%fZ'.
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _parse_front_matter(text: str) -> dict | None:
    """YAML between the leading `---` lines of a README, or None when there is none. Raises yaml.YAMLError."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.DOTALL)
    if match is None:
        return None
    data = yaml.safe_load(match.group(1))
    if data is not None and not isinstance(data, dict):
        raise yaml.YAMLError("the YAML metadata must be a mapping")
    return data or {}


def _validate_repo_path(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or path.endswith("/"):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


class HubError(Exception):
    """An error answer. `code` goes to `X-Error-Code`, which is how the client picks its exception class
    (RepoNotFound, RevisionNotFound, EntryNotFound); it must be set explicitly because the client's fallback
    (401 on a repo URL => RepositoryNotFoundError) only matches `https://` URLs."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------------------------------------------
# Repo state
# --------------------------------------------------------------------------------------------------------------


@dataclass
class FileEntry:
    """One file of a commit. Contents live in `objects/{sha256}` of the repo folder."""

    sha256: str
    size: int
    blob_id: str  # git oid: of the content (regular) or of the LFS pointer (lfs), as on the Hub
    lfs: bool
    last_commit: str  # commit that last changed this path (for `expand=True` listings)

    @property
    def etag(self) -> str:
        # The Hub's ETag is the git blob id for regular files and the sha256 for LFS files.
        return self.sha256 if self.lfs else self.blob_id

    @property
    def remote_oid(self) -> str:
        # What `preupload` reports so the client can skip unchanged files (it compares with its own
        # git-sha1 for regular files and sha256 for LFS files, `CommitOperationAdd._local_oid`).
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    folder: Path
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    sdk: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def object_path(self, sha256: str) -> Path:
        return self.folder / "objects" / sha256

    def resolve(self, revision: str) -> Commit:
        """A branch name, a tag or a full commit sha -> commit (a branch wins over a tag of the same name)."""
        oid = self.branches.get(branch_name(revision), self.tags.get(revision, revision))
        if oid not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return self.commits[oid]

    def history(self, revision: str) -> list[Commit]:
        commit: Commit | None = self.resolve(revision)
        out = []
        while commit is not None:
            out.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return out

    def save(self) -> None:
        """Persist the metadata (atomic replace) so the on-disk folder is a faithful picture of the repo."""
        data = {
            "repo_type": self.repo_type,
            "repo_id": self.repo_id,
            "private": self.private,
            "created_at": self.created_at,
            "sdk": self.sdk,
            "branches": self.branches,
            "tags": self.tags,
            "commits": {oid: asdict(commit) for oid, commit in self.commits.items()},
        }
        tmp = self.folder / "repo.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.folder / "repo.json")


class RepoStore:
    """All repos of one server, on disk. Every public method takes the lock: the HTTP server is threaded."""

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        with self.lock:
            return self._repos.get((repo_type, repo_id))

    def create(self, repo_type: str, repo_id: str, *, private: bool, author: str, sdk: str | None) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self._repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            folder = self.root / "repos" / f"{repo_type}s" / repo_id
            (folder / "objects").mkdir(parents=True, exist_ok=True)
            repo = Repo(repo_type, repo_id, private, _now_iso(), folder, sdk=sdk)
            self._repos[(repo_type, repo_id)] = repo
            # Like the Hub: a new repo already has one commit with a `.gitattributes`.
            self.commit(repo, DEFAULT_BRANCH, [("file", ".gitattributes", DEFAULT_GITATTRIBUTES)],
                        title="initial commit", message="", author=author)
            return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            repo = self._repos.pop((repo_type, repo_id), None)
            if repo is None:
                raise HubError(404, "Repository not found", code="RepoNotFound")
            shutil.rmtree(repo.folder, ignore_errors=True)

    def put_object(self, repo: Repo, data: bytes) -> str:
        """Store bytes content-addressed; atomic so concurrent writers of the same object are harmless."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = repo.object_path(sha256)
        if not target.exists():
            tmp = target.with_name(f"{sha256}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return sha256

    def read_object(self, repo: Repo, sha256: str) -> bytes:
        return repo.object_path(sha256).read_bytes()

    def commit(self, repo: Repo, branch: str, operations: list[tuple], *, title: str, message: str,
               author: str, parent_commit: str | None = None) -> Commit:
        """Apply operations to the branch head and record a new snapshot commit.

        Operations: ("file", path, bytes), ("lfsFile", path, sha256), ("deletedFile", path),
        ("deletedFolder", path). All or nothing: the new file table is built on a copy.
        """
        branch = branch_name(branch)
        with self.lock:
            head_oid = repo.branches.get(branch)
            if head_oid is None and repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
            if parent_commit is not None and parent_commit != head_oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = copy.deepcopy(repo.commits[head_oid].files) if head_oid else {}
            oid = hashlib.sha1(f"{head_oid}|{title}|{uuid.uuid4()}".encode()).hexdigest()
            for operation in operations:
                self._apply(repo, files, operation, oid)
            commit = Commit(oid, head_oid, title, message, author, _now_iso(), files)
            repo.commits[oid] = commit
            repo.branches[branch] = oid
            repo.save()
            return commit

    def create_ref(self, repo: Repo, kind: str, name: str, revision: str) -> None:
        """A new branch or tag named `name` at `revision`; 409 when it exists."""
        name = branch_name(name) if kind == "branch" else name
        with self.lock:
            refs = repo.branches if kind == "branch" else repo.tags
            if not name or name in refs:
                raise HubError(409, f"Reference already exists: refs/{'heads' if kind == 'branch' else 'tags'}/{name}")
            refs[name] = repo.resolve(revision).oid
            repo.save()

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        name = branch_name(name) if kind == "branch" else name
        with self.lock:
            refs = repo.branches if kind == "branch" else repo.tags
            if name not in refs or (kind == "branch" and name == DEFAULT_BRANCH):
                raise HubError(404 if name not in refs else 403, f"Cannot delete {kind} {name!r}",
                               code="RevisionNotFound" if name not in refs else None)
            del refs[name]
            repo.save()

    def squash(self, repo: Repo, branch: str, *, message: str, author: str) -> Commit:
        """Replace a branch's history by one commit with its current files; unreachable commits are dropped."""
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
            files = copy.deepcopy(repo.commits[repo.branches[branch]].files)
            oid = hashlib.sha1(f"squash|{branch}|{uuid.uuid4()}".encode()).hexdigest()
            for entry in files.values():
                entry.last_commit = oid
            repo.commits[oid] = Commit(oid, None, message, message, author, _now_iso(), files)
            repo.branches[branch] = oid
            reachable = {c.oid for ref in [*repo.branches.values(), *repo.tags.values()] for c in repo.history(ref)}
            repo.commits = {k: v for k, v in repo.commits.items() if k in reachable}
            repo.save()
            return repo.commits[oid]

    def _apply(self, repo: Repo, files: dict[str, FileEntry], operation: tuple, oid: str) -> None:
        kind, path = operation[0], _validate_repo_path(operation[1])
        if kind == "file":
            data = operation[2]
            entry = FileEntry(self.put_object(repo, data), len(data), git_blob_oid(data), False, oid)
        elif kind == "lfsFile":
            sha256 = operation[2]
            if not repo.object_path(sha256).exists():
                raise HubError(422, f"LFS object {sha256} for '{path}' was never uploaded")
            size = repo.object_path(sha256).stat().st_size
            entry = FileEntry(sha256, size, git_blob_oid(lfs_pointer(sha256, size)), True, oid)
        elif kind == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
            return
        elif kind == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
            for p in doomed:
                del files[p]
            return
        else:
            raise HubError(400, f"Unknown commit operation: {kind}")
        old = files.get(path)
        if old is not None and old.sha256 == entry.sha256 and old.lfs == entry.lfs:
            entry.last_commit = old.last_commit  # unchanged content keeps its last-modifying commit
        files[path] = entry


# --------------------------------------------------------------------------------------------------------------
# Tree listing (shared by /tree, /paths-info and repo info)
# --------------------------------------------------------------------------------------------------------------


def _folder_paths(files: dict[str, FileEntry]) -> set[str]:
    return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}


def _file_json(path: str, entry: FileEntry, repo: Repo, expand: bool) -> dict:
    out: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
    if entry.lfs:
        out["lfs"] = {"oid": entry.sha256, "size": entry.size,
                      "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
    if expand:
        out["lastCommit"] = _last_commit_json(repo.commits[entry.last_commit])
    return out


def _folder_json(path: str, files: dict[str, FileEntry], repo: Repo, expand: bool) -> dict:
    inside = sorted((p, e) for p, e in files.items() if p.startswith(path + "/"))
    tree_id = hashlib.sha1("".join(f"{p}:{e.blob_id}\n" for p, e in inside).encode()).hexdigest()
    out: dict[str, Any] = {"type": "directory", "oid": tree_id, "size": 0, "path": path}
    if expand:
        newest = max((repo.commits[e.last_commit] for _, e in inside), key=lambda c: c.date)
        out["lastCommit"] = _last_commit_json(newest)
    return out


def _last_commit_json(commit: Commit) -> dict:
    return {"id": commit.oid, "title": commit.title, "date": commit.date}


def _path_json(path: str, files: dict[str, FileEntry], repo: Repo, expand: bool) -> dict:
    if path in files:
        return _file_json(path, files[path], repo, expand)
    return _folder_json(path, files, repo, expand)


def list_tree(repo: Repo, commit: Commit, path: str, recursive: bool, expand: bool) -> list[dict]:
    files, folders = commit.files, _folder_paths(commit.files)
    if path and path not in folders:
        raise HubError(404, f"Directory not found: {path}", code="EntryNotFound")
    prefix = f"{path}/" if path else ""
    if recursive:
        names = {p for p in files if p.startswith(prefix)} | {f for f in folders if f.startswith(prefix)}
    else:
        names = {prefix + p[len(prefix):].split("/")[0] for p in files if p.startswith(prefix)}
    return [_path_json(name, files, repo, expand) for name in sorted(names)]


# --------------------------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------------------------

_REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+?)"
_API_REPO = r"/api/(?P<plural>models|datasets|spaces)/" + _REPO
_WEB_REPO = r"/(?:(?P<plural>datasets|spaces)/)?" + _REPO

# (method, path regex, handler name). First match wins; `rev` segments arrive URL-quoted (the client quotes
# them with safe=""), paths are unquoted by the handlers.
_ROUTES: list[tuple[str, re.Pattern, str]] = [
    (m, re.compile(rx + "$"), h)
    for m, rx, h in [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", r"/api/agent-harnesses", "agent_harnesses"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("DELETE", r"/api/repos/delete", "delete_repo"),
        ("GET", _API_REPO, "repo_info"),
        ("GET", _API_REPO + r"/revision/(?P<rev>.+)", "repo_info"),
        ("GET", _API_REPO + r"/refs", "refs"),
        ("POST", _API_REPO + r"/branch/(?P<ref>[^/]+)", "create_branch"),
        ("DELETE", _API_REPO + r"/branch/(?P<ref>[^/]+)", "delete_branch"),
        ("POST", _API_REPO + r"/tag/(?P<ref>[^/]+)", "create_tag"),
        ("DELETE", _API_REPO + r"/tag/(?P<ref>[^/]+)", "delete_tag"),
        ("POST", _API_REPO + r"/super-squash/(?P<ref>[^/]+)", "super_squash"),
        ("GET", _API_REPO + r"/commits/(?P<rev>[^/]+)", "commits"),
        ("GET", _API_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("POST", _API_REPO + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("POST", _API_REPO + r"/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", _API_REPO + r"/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", _WEB_REPO + r"\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs/upload/(?P<ticket>[0-9a-f]+)", "lfs_upload"),
        ("POST", r"/lfs/verify/(?P<plural>models|datasets|spaces)/" + _REPO, "lfs_verify"),
        ("GET", _WEB_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("HEAD", _WEB_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the client's pooled connections alive; every answer therefore carries a Content-Length
    # and every request body is read in full before routing.
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end instead of pinning a thread forever
    server: "_HTTPServer"

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        pass

    # ---- plumbing ----------------------------------------------------------------------------------------

    @property
    def hub(self) -> "HubServer":
        return self.server.hub

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.url_path = url.path
        self.body = self._read_body()
        try:
            for route_method, regex, handler in _ROUTES:
                match = regex.match(url.path)
                if match and route_method == method:
                    getattr(self, "route_" + handler)(**{k: v for k, v in match.groupdict().items()})
                    break
            else:
                raise HubError(404, f"Sorry, we can't find the page you are looking for: {method} {url.path}")
        except HubError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer: nothing left to tell it
        except Exception as err:  # a server bug must reach the test as a readable 500, not a hung client
            traceback.print_exc(file=sys.stderr)
            self._send_error(HubError(500, f"test hub server error: {type(err).__name__}: {err}"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict | None = None) -> None:
        # Recorded before answering, so a test that got the answer also sees the record.
        self.hub._record(self.command, self.url_path, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _send_error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send_json({"error": err.message}, status=err.status, headers=headers)

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    # ---- auth --------------------------------------------------------------------------------------------

    def _token(self) -> str | None:
        """The bearer token, None when absent. A token that is sent but unknown is refused everywhere, with
        the message for which the client does *not* pretend the repo is missing (like the Hub)."""
        header = self.headers.get("Authorization", "")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        if token not in self.hub.valid_tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return token

    def _require_token(self) -> str:
        token = self._token()
        if token is None:
            raise HubError(401, "Invalid username or password.", code="RepoNotFound")
        return token

    def _repo(self, plural: str | None, ns: str, name: str, write: bool = False) -> Repo:
        """The repo if this caller may see it (and write to it). Private or missing repos look the same,
        401 without a token and 404 with one, as on the Hub."""
        token = self._require_token() if write else self._token()
        repo = self.hub.store.get(PLURAL_TO_TYPE[plural or "models"], f"{ns}/{name}")
        if repo is None or (repo.private and token is None):
            raise HubError(401 if token is None else 404, "Repository not found", code="RepoNotFound")
        return repo

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    # ---- account -----------------------------------------------------------------------------------------

    def route_whoami(self) -> None:
        if self._token() is None:
            raise HubError(401, "Invalid username or password.")
        name = self.hub.username
        self._send_json({
            "type": "user", "id": hashlib.sha1(name.encode()).hexdigest()[:24], "name": name,
            "fullname": name, "email": f"{name}@example.com", "emailVerified": True, "isPro": False,
            "orgs": [], "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
        })

    def route_validate_yaml(self) -> None:
        content = self._json_body().get("content", "")
        try:
            _parse_front_matter(content)
        except yaml.YAMLError as err:
            self._send_json({"errors": [{"message": f"Invalid YAML metadata: {err}"}]}, status=400)
            return
        self._send_json({"errors": [], "warnings": []})

    def route_agent_harnesses(self) -> None:
        self._send_json({"standardEnvVars": [], "harnesses": {}})

    # ---- repos -------------------------------------------------------------------------------------------

    def route_create_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        name, namespace = payload.get("name"), payload.get("organization") or self.hub.username
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        if not (isinstance(name, str) and _NAME_RE.match(name) and _NAME_RE.match(namespace)):
            raise HubError(400, f"Invalid repo name: {namespace}/{name}")
        if repo_type == "space" and not payload.get("sdk"):
            raise HubError(400, "A Space needs an sdk")
        private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
        repo_id = f"{namespace}/{name}"
        try:
            repo = self.hub.store.create(repo_type, repo_id, private=private, author=self.hub.username,
                                         sdk=payload.get("sdk"))
        except HubError as err:
            if err.status == 409:
                url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
                self._send_json({"error": err.message, "url": url}, status=409)
                return
            raise
        self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def route_delete_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        namespace = payload.get("organization") or self.hub.username
        self.hub.store.delete(payload.get("type") or "model", f"{namespace}/{payload.get('name')}")
        self._send_json({})

    def route_repo_info(self, plural: str, ns: str, name: str, rev: str | None = None) -> None:
        repo = self._repo(plural, ns, name)
        with self.hub.store.lock:
            commit = repo.resolve(unquote(rev) if rev else DEFAULT_BRANCH)
            blobs = _is_true(self.query.get("blobs"))
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sibling.update(size=entry.size, blobId=entry.blob_id)
                    if entry.lfs:
                        sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size,
                                          "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
                siblings.append(sibling)
            info = {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": commit.oid, "private": repo.private,
                "gated": False, "disabled": False, "createdAt": repo.created_at, "lastModified": commit.date,
                "tags": [], "downloads": 0, "likes": 0, "siblings": siblings,
            }
            if repo.repo_type == "model":
                info["modelId"] = repo.repo_id
            if repo.sdk:
                info["sdk"] = repo.sdk
            card_data = self._card_data(repo, commit)
        if card_data is not None:
            info["cardData"] = card_data
        self._send_json(info)

    def _card_data(self, repo: Repo, commit: Commit) -> dict | None:
        entry = commit.files.get("README.md")
        if entry is None:
            return None
        try:
            return _parse_front_matter(self.hub.store.read_object(repo, entry.sha256).decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            return None  # the Hub, too, serves a repo whose card it cannot parse, without cardData

    def route_refs(self, plural: str, ns: str, name: str) -> None:
        repo = self._repo(plural, ns, name)
        with self.hub.store.lock:
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                        for b, oid in sorted(repo.branches.items())]
            tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": oid} for t, oid in sorted(repo.tags.items())]
        self._send_json({"branches": branches, "converts": [], "tags": tags, "pullRequests": []})

    def route_create_branch(self, plural: str, ns: str, name: str, ref: str) -> None:
        repo = self._repo(plural, ns, name, write=True)
        start = self._json_body().get("startingPoint") or DEFAULT_BRANCH
        self.hub.store.create_ref(repo, "branch", unquote(ref), start)
        self._send_json({})

    def route_delete_branch(self, plural: str, ns: str, name: str, ref: str) -> None:
        self.hub.store.delete_ref(self._repo(plural, ns, name, write=True), "branch", unquote(ref))
        self._send_json({})

    def route_create_tag(self, plural: str, ns: str, name: str, ref: str) -> None:
        # The URL names the revision to tag; the tag's name is in the body.
        repo = self._repo(plural, ns, name, write=True)
        self.hub.store.create_ref(repo, "tag", str(self._json_body().get("tag") or ""), unquote(ref))
        self._send_json({})

    def route_delete_tag(self, plural: str, ns: str, name: str, ref: str) -> None:
        self.hub.store.delete_ref(self._repo(plural, ns, name, write=True), "tag", unquote(ref))
        self._send_json({})

    def route_super_squash(self, plural: str, ns: str, name: str, ref: str) -> None:
        repo = self._repo(plural, ns, name, write=True)
        message = self._json_body().get("message") or "Super-squash"
        commit = self.hub.store.squash(repo, unquote(ref), message=message, author=self.hub.username)
        self._send_json({"commitOid": commit.oid})

    def route_commits(self, plural: str, ns: str, name: str, rev: str) -> None:
        repo = self._repo(plural, ns, name)
        with self.hub.store.lock:
            history = repo.history(unquote(rev))
        self._send_json([
            {"id": c.oid, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
            for c in history
        ])

    def route_tree(self, plural: str, ns: str, name: str, rev: str, path: str | None = None) -> None:
        repo = self._repo(plural, ns, name)
        with self.hub.store.lock:
            commit = repo.resolve(unquote(rev))
            listing = list_tree(repo, commit, unquote(path or "").strip("/"),
                                recursive=_is_true(self.query.get("recursive")),
                                expand=_is_true(self.query.get("expand")))
        self._send_json(listing)

    def route_paths_info(self, plural: str, ns: str, name: str, rev: str) -> None:
        repo = self._repo(plural, ns, name)
        # `HfApi.get_paths_info` posts a form (paths=a&paths=b&expand=False); accept JSON as well.
        if "json" in self.headers.get("Content-Type", ""):
            payload = self._json_body()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(self.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _is_true((form.get("expand") or ["false"])[-1])
        with self.hub.store.lock:
            commit = repo.resolve(unquote(rev))
            folders = _folder_paths(commit.files)
            found = [p.strip("/") for p in paths if p.strip("/") in commit.files or p.strip("/") in folders]
            infos = [_path_json(p, commit.files, repo, expand) for p in found]
        self._send_json(infos)

    # ---- uploads -----------------------------------------------------------------------------------------

    def _refuse_pull_requests(self) -> None:
        if _is_true(self.query.get("create_pr")):
            raise HubError(400, "The test hub server does not support pull requests (create_pr)")

    def route_preupload(self, plural: str, ns: str, name: str, rev: str) -> None:
        repo = self._repo(plural, ns, name, write=True)
        self._refuse_pull_requests()
        files = self._json_body().get("files", [])
        with self.hub.store.lock:
            commit = repo.resolve(unquote(rev))
            answer = []
            for item in files:
                path = _validate_repo_path(item.get("path"))
                existing = commit.files.get(path)
                answer.append({
                    "path": path,
                    "uploadMode": self.hub._upload_mode(path, int(item.get("size", 0))),
                    "shouldIgnore": False,
                    "oid": existing.remote_oid if existing else None,
                })
        self._send_json({"files": answer, "commitOid": commit.oid})

    def route_commit(self, plural: str, ns: str, name: str, rev: str) -> None:
        repo = self._repo(plural, ns, name, write=True)
        self._refuse_pull_requests()
        if self.hub._take_fault("commit"):
            raise HubError(self.hub.fault_status, "Injected failure (fail_next_commit)")
        header, operations = self._parse_ndjson_commit()
        commit = self.hub.store.commit(
            repo, unquote(rev), operations, title=header.get("summary") or "Commit",
            message=header.get("description") or "", author=self.hub.username,
            parent_commit=header.get("parentCommit"),
        )
        self._send_json({"success": True, "commitOid": commit.oid,
                         "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}", "hookOutput": ""})

    def _parse_ndjson_commit(self) -> tuple[dict, list[tuple]]:
        header: dict = {}
        operations: list[tuple] = []
        for line in self.body.decode("utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                operations.append(("file", value.get("path"), data))
            elif key == "lfsFile":
                if value.get("algo", "sha256") != "sha256":
                    raise HubError(400, f"Unsupported LFS algo: {value.get('algo')}")
                operations.append(("lfsFile", value.get("path"), value.get("oid")))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append((key, value.get("path", "").rstrip("/")))
            else:
                raise HubError(400, f"Unknown commit line key: {key!r}")
        return header, operations

    def route_lfs_batch(self, plural: str | None, ns: str, name: str) -> None:
        repo = self._repo(plural, ns, name, write=True)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "The test hub server only implements the LFS 'upload' operation")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            stored = repo.object_path(oid)
            if not (stored.exists() and stored.stat().st_size == size):  # no "actions": already uploaded
                ticket = self.hub._new_upload_ticket(repo, oid, size)
                answer["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs/upload/{ticket}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/lfs/verify/{repo.repo_type}s/{repo.repo_id}",
                               "header": {}},
                }
            objects.append(answer)
        body = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self._send(200, body, content_type="application/vnd.git-lfs+json")

    def route_lfs_upload(self, ticket: str) -> None:
        # Like an S3 pre-signed URL, the ticket is the credential: the client sends no Authorization here.
        if self.hub._take_fault("lfs_upload"):
            raise HubError(self.hub.fault_status, "Injected failure (fail_next_lfs_upload)")
        repo, oid, size = self.hub._redeem_upload_ticket(ticket)
        if len(self.body) != size or hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match LFS object {oid} ({size} bytes)")
        self.hub.store.put_object(repo, self.body)
        self._send(200, b"", headers={"ETag": f'"{oid}"'})

    def route_lfs_verify(self, plural: str, ns: str, name: str) -> None:
        repo = self._repo(plural, ns, name, write=True)
        payload = self._json_body()
        stored = repo.object_path(str(payload.get("oid")))
        if not (stored.exists() and stored.stat().st_size == payload.get("size")):
            raise HubError(404, f"LFS object {payload.get('oid')} not found")
        self._send_json({"success": True})

    # ---- downloads ---------------------------------------------------------------------------------------

    def route_resolve(self, plural: str | None, ns: str, name: str, rev: str, path: str) -> None:
        repo = self._repo(plural, ns, name)
        with self.hub.store.lock:
            commit = repo.resolve(unquote(rev))
            entry = commit.files.get(unquote(path))
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if entry is None:
            raise HubError(404, f"Entry not found: {unquote(path)}", code="EntryNotFound", headers=headers)
        headers["ETag"] = f'"{entry.etag}"'
        if entry.lfs:
            # On the Hub these come with the redirect to the CDN; the client prefers them over ETag/Length.
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size})
        data = self.hub.store.read_object(repo, entry.sha256)
        status, data = self._apply_range(data, headers)
        self._send(status, data, content_type="application/octet-stream", headers=headers)

    def _apply_range(self, data: bytes, headers: dict) -> tuple[int, bytes]:
        """Single `bytes=` ranges (HfFileSystem reads and resumed downloads use them); others: whole file."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match is None or match.groups() == ("", ""):
            return 200, data
        first, last = match.groups()
        if first == "":  # suffix range: the last N bytes
            start, end = max(len(data) - int(last), 0), len(data) - 1
        else:
            start, end = int(first), min(int(last), len(data) - 1) if last else len(data) - 1
        if start > end and start < len(data):  # "bytes=3-1" is not a valid range: ignore it (RFC 9110)
            return 200, data
        if start >= len(data):
            raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return 206, data[start:end + 1]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: "HubServer"


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int


class HubServer:
    """A Hub-compatible server on 127.0.0.1, run in a background thread.

    Args:
        valid_tokens (`Iterable[str]`, *optional*): tokens accepted as `Authorization: Bearer <token>`.
            Defaults to one fresh random token, also available as `.token`.
        username (`str`, *optional*, defaults to `"test-user"`): the account every valid token belongs to
            (`whoami`, default namespace of `create_repo("name")`, commit author).
        storage_dir (`str` or `Path`, *optional*): where repos are stored. Defaults to a temporary folder that
            `stop()` removes.

    Attributes worth setting in a test:
        fail_next_commit (`int`): that many next commit requests answer `fault_status` (True counts as 1).
        fail_next_lfs_upload (`int`): same for LFS PUTs. The client retries 5xx PUTs (5 retries, back-off from
            1 s), so one 500 is survived; use `fault_status=403` or a count above 5 for a hard failure.
        fault_status (`int`, defaults to 500).
        lfs_threshold (`int` or None, defaults to 10 MiB): preupload answers "lfs" for files at least this big
            (the Hub refuses larger regular files). None: never by size.
        lfs_patterns (`list[str]`): fnmatch patterns of paths always sent as LFS (e.g. `["*.parquet"]`,
            like the Hub's default `.gitattributes`). Defaults to none: small files go inline ("regular").

    Example:
        ```py
        with HubServer() as server, use_hub(server.url, token=server.token):
            HfApi().create_repo("test-user/data", repo_type="dataset")
            assert server.repo_files("test-user/data") == {".gitattributes": DEFAULT_GITATTRIBUTES}
        ```
    """

    def __init__(self, valid_tokens=None, *, username: str = "test-user", storage_dir: str | Path | None = None):
        self.token = f"hf_test_{secrets.token_hex(12)}"
        self.valid_tokens: set[str] = set(valid_tokens) if valid_tokens is not None else {self.token}
        self.username = username
        self.fail_next_commit: int = 0
        self.fail_next_lfs_upload: int = 0
        self.fault_status: int = 500
        self.lfs_threshold: int | None = 10 * MiB
        self.lfs_patterns: list[str] = []
        self.requests: list[RequestRecord] = []
        self._tempdir = None if storage_dir else tempfile.TemporaryDirectory(prefix="hub-server-")
        self.storage_dir = Path(storage_dir or self._tempdir.name)
        self.store = RepoStore(self.storage_dir)
        self._lock = threading.Lock()
        self._upload_tickets: dict[str, tuple[Repo, str, int]] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> "HubServer":
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)
            self._httpd = self._thread = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ---- inspection helpers for assertions -------------------------------------------------------------

    def _get_repo(self, repo_id: str, repo_type: str) -> Repo:
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on this server")
        return repo

    def repo_files(self, repo_id: str, repo_type: str = "dataset", revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """Path -> content of every file of a repo at a revision, read from the server's storage."""
        repo = self._get_repo(repo_id, repo_type)
        with self.store.lock:
            files = dict(repo.resolve(revision).files)
        return {path: self.store.read_object(repo, entry.sha256) for path, entry in sorted(files.items())}

    def repo_commits(self, repo_id: str, repo_type: str = "dataset", revision: str = DEFAULT_BRANCH) -> list[str]:
        """Commit shas from `revision` back to the initial commit (newest first)."""
        with self.store.lock:
            return [c.oid for c in self._get_repo(repo_id, repo_type).history(revision)]

    def downloads(self, since: int = 0) -> list[RequestRecord]:
        """File contents served (GET on `/resolve/`, 200 or 206) among `requests[since:]`; HEADs are not downloads."""
        with self._lock:
            recent = self.requests[since:]
        return [r for r in recent if r.method == "GET" and "/resolve/" in r.path and r.status in (200, 206)]

    def is_lfs(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = DEFAULT_BRANCH) -> bool:
        """Whether the file was committed as an LFS object."""
        with self.store.lock:
            return self._get_repo(repo_id, repo_type).resolve(revision).files[path].lfs

    def stored_files(self) -> Iterator[tuple[Path, bytes]]:
        """Every file the server keeps (all repos, all commits' objects and metadata, commit messages)."""
        with self.store.lock:
            paths = sorted(p for p in self.storage_dir.rglob("*") if p.is_file())
        for path in paths:
            with contextlib.suppress(FileNotFoundError):  # a repo deleted meanwhile
                yield path, path.read_bytes()

    def find_in_storage(self, needle: str | bytes) -> list[Path]:
        """Storage files containing `needle` (e.g. a token that must never be uploaded)."""
        needle = needle.encode() if isinstance(needle, str) else needle
        return [path for path, data in self.stored_files() if needle in data]

    # ---- internals used by the handler -------------------------------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status))

    def _take_fault(self, kind: str) -> bool:
        """Consume one pending injected failure of this kind, if any."""
        attribute = {"commit": "fail_next_commit", "lfs_upload": "fail_next_lfs_upload"}[kind]
        with self._lock:
            pending = int(getattr(self, attribute))
            if pending <= 0:
                return False
            setattr(self, attribute, pending - 1)
            return True

    def _upload_mode(self, path: str, size: int) -> str:
        if self.lfs_threshold is not None and size >= self.lfs_threshold:
            return "lfs"
        return "lfs" if any(fnmatch.fnmatch(path, pattern) for pattern in self.lfs_patterns) else "regular"

    def _new_upload_ticket(self, repo: Repo, oid: str, size: int) -> str:
        ticket = secrets.token_hex(16)
        with self._lock:
            self._upload_tickets[ticket] = (repo, oid, size)
        return ticket

    def _redeem_upload_ticket(self, ticket: str) -> tuple[Repo, str, int]:
        # Tickets stay valid after use: the client retries a PUT that answered 5xx with the same URL.
        with self._lock:
            if ticket not in self._upload_tickets:
                raise HubError(403, "Unknown or expired LFS upload URL")
            repo, oid, size = self._upload_tickets[ticket]
        if self.store.get(repo.repo_type, repo.repo_id) is not repo:
            raise HubError(404, "Repository not found (deleted since the LFS batch request)")
        return repo, oid, size


# --------------------------------------------------------------------------------------------------------------
# Pointing the real clients at a server
# --------------------------------------------------------------------------------------------------------------


class _Patches:
    """Set attributes/env vars and put the old values back, in reverse order."""

    _MISSING = object()

    def __init__(self, monkeypatch: Any = None):
        self._undo: list[Callable[[], None]] = []
        self._monkeypatch = monkeypatch  # a pytest MonkeyPatch: its undo stack restores these (see use_hub)

    def attr(self, obj: Any, name: str, value: Any) -> None:
        if self._monkeypatch is not None:
            self._monkeypatch.setattr(obj, name, value, raising=False)
            return
        old = obj.__dict__.get(name, self._MISSING) if hasattr(obj, "__dict__") else getattr(obj, name)
        setattr(obj, name, value)
        self._undo.append(lambda: delattr(obj, name) if old is self._MISSING else setattr(obj, name, old))

    def env(self, name: str, value: str | None) -> None:
        if self._monkeypatch is not None:
            if value is None:
                self._monkeypatch.delenv(name, raising=False)
            else:
                self._monkeypatch.setenv(name, value)
            return
        old = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
        self._undo.append(lambda: os.environ.pop(name, None) if old is None else os.environ.__setitem__(name, old))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


def _patch_huggingface_hub(patches: _Patches, url: str, home: Path) -> None:
    import huggingface_hub
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    # Read from the environment once, at import: env vars alone do not move an already-imported client.
    values = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {urlsplit(url).hostname},
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,  # no Xet storage here; also makes upload_folder a single create_commit
        "HF_HUB_DISABLE_TELEMETRY": True,  # else the user agent fetches /api/agent-harnesses, telemetry posts
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),  # never read the developer's saved token
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "CHECK_FOR_UPDATE_DONE_PATH": str(home / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(home / ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
    }
    for name, value in values.items():
        if hasattr(constants, name):
            patches.attr(constants, name, value)
    # Copies taken at import time elsewhere in the package.
    if "HUGGINGFACE_CO_URL_TEMPLATE" in vars(huggingface_hub):
        patches.attr(huggingface_hub, "HUGGINGFACE_CO_URL_TEMPLATE", values["HUGGINGFACE_CO_URL_TEMPLATE"])
    # The module-level `HfApi()` behind `huggingface_hub.upload_folder`, `create_repo`, ... froze its endpoint.
    patches.attr(hf_api.api, "endpoint", url)
    if hasattr(_http, "_HUB_ORIGINS"):  # redirects within these origins keep the Authorization header
        patches.attr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(url)})
    for module_name, name, value in [("huggingface_hub.utils._cache_manager", "HF_HUB_CACHE", values["HF_HUB_CACHE"]),
                                     ("huggingface_hub.utils._cache_assets", "HF_ASSETS_CACHE",
                                      values["HF_ASSETS_CACHE"])]:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, name):
            patches.attr(module, name, value)


def _patch_datasets(patches: _Patches, url: str, home: Path) -> None:
    try:
        from datasets import config
    except ImportError:
        return
    values = {
        "HF_ENDPOINT": url,
        "HUB_DATASETS_URL": url + "/datasets/{repo_id}/resolve/{revision}/{path}",
        "HF_HUB_OFFLINE": False,
        "HF_DATASETS_OFFLINE": False,
        "HF_CACHE_HOME": str(home),
        "HF_DATASETS_CACHE": home / "datasets",
        "HF_MODULES_CACHE": home / "modules",
        "DOWNLOADED_DATASETS_PATH": home / "datasets" / "downloads",
        "EXTRACTED_DATASETS_PATH": home / "datasets" / "downloads" / "extracted",
        # Both would leave 127.0.0.1: the parquet export lives on "datasets-server.<endpoint host>" (a DNS
        # lookup of datasets-server.127.0.0.1), the download counter HEADs an S3 URL.
        "USE_PARQUET_EXPORT": False,
        "HF_UPDATE_DOWNLOAD_COUNTS": False,
    }
    for name, value in values.items():
        if hasattr(config, name):
            patches.attr(config, name, value)


def _clear_client_caches() -> None:
    """Drop state the clients keep between calls: cached HfFileSystem instances (and their directory
    listings) and the pooled HTTP client (its connections point at a server that may be gone)."""
    from huggingface_hub import HfFileSystem
    from huggingface_hub.utils import _http

    HfFileSystem.clear_instance_cache()
    _http.close_session()
    # transformers keeps one shared HfApi (Trainer.push_to_hub uses it) bound to the endpoint it was created with.
    import sys

    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
        transformers_hub._hf_api = None


@contextlib.contextmanager
def use_hub(url: str, *, token: str | None = None, hf_home: str | Path | None = None,
            monkeypatch: Any = None) -> Iterator[Path]:
    """Point the real `huggingface_hub` and `datasets` clients at `url` for the duration of the block.

    Sets the env vars (for subprocesses and late imports) and patches the values the clients read at import
    time, isolates every HF cache under `hf_home` (a temporary folder by default) and restores it all on exit.

    Args:
        url (`str`): the server, e.g. `HubServer.url`.
        token (`str`, *optional*): exported as `HF_TOKEN`, as if the user were logged in. Without it
            `HF_TOKEN` is unset, so no real token of the developer can reach the server.
        hf_home (`str` or `Path`, *optional*): the isolated HF_HOME. Defaults to a temporary folder.
        monkeypatch (`pytest.MonkeyPatch`, *optional*): make the patches on it, so that its undo restores them: in
            one stack with the test's own ``monkeypatch.setattr/setenv/delenv``, each undone in reverse order
            whichever fixture pytest tears down first. Restored on exit of the block otherwise: a test's
            ``monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)`` was undone *after* that exit
            (monkeypatch set up before the hub fixture, by an autouse fixture), putting back the hub's ``False``:
            the worker stayed online for every later test, and kept the hub's HF_TOKEN.

    Yields:
        `Path`: the HF_HOME in use.
    """
    url = url.rstrip("/")
    with contextlib.ExitStack() as stack:
        if hf_home is None:
            hf_home = stack.enter_context(tempfile.TemporaryDirectory(prefix="hf-home-"))
        home = Path(hf_home)
        patches = _Patches(monkeypatch)
        stack.callback(_clear_client_caches)
        stack.callback(patches.restore)
        env = {
            "HF_ENDPOINT": url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0",
            "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_DATASETS_CACHE": str(home / "datasets"),
            "HF_TOKEN_PATH": str(home / "token"), "HF_TOKEN": token, "HUGGING_FACE_HUB_TOKEN": None,
            "HUGGINGFACE_HUB_CACHE": None, "HF_XET_CACHE": None, "HF_ASSETS_CACHE": None,
        }
        for name, value in env.items():
            patches.env(name, value)
        _patch_huggingface_hub(patches, url, home)
        _patch_datasets(patches, url, home)
        _clear_client_caches()
        yield home
