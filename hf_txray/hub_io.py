"""The Hub IO primitives every artifact and the results layer share: repo ids, tokens, one download, one upload.

This module sits at the bottom of the package (it imports no artifact): :mod:`hf_txray.artifact` builds
``from_pretrained(repo_id)`` and ``push_to_hub`` on it, and :mod:`hf_txray.hub` (the multi-artifact results repo)
builds its push on :func:`upload_folder`, which uploads local paths as the card shows them
(:func:`hf_txray.layout.public_folder`, imported when a push runs). The token is only ever handed to
``huggingface_hub``: it is written to no file, card or log, and removed
(:func:`hf_txray.redaction.scrub`) from the messages of the errors raised here.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from .counts import check_text
from .errors import ArtifactNotFoundError, ConfigurationError, HubError, ProfileFormatError, TXRayError
from .io_utils import UNFINISHED_WRITES
from .logging import get_logger
from .provenance import hub_cache_snapshot
from .redaction import safe_cause, scrub
from .tables import shell_command

logger = get_logger(__name__)

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, DatasetCard, HfApi


def check_repo_id(repo_id: Any) -> str:
    """Raise :class:`ConfigurationError` unless `repo_id` is ``name`` or ``namespace/name`` as the Hub allows."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        if not repo_id:
            raise HFValidationError("it is empty")
    except HFValidationError as err:
        raise ConfigurationError(f"Invalid Hub repo id {repo_id!r}: {err} Use 'namespace/name', e.g. "
                                 "'my-user/minilm-txray'.") from None
    return repo_id


# What git (and so the Hub) refuses in a branch name (`git check-ref-format`): whitespace and control characters,
# ~ ^ : ? * [ \, "..", "@{", an empty part ("//", a leading or trailing "/"), a part starting with "." or ending
# with ".lock", a trailing ".", a leading "-", and "@" alone; and '"', which git takes but the card's loading examples
# (``revision="..."``) cannot hold
_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\\"]|\.\.|@\{|//|^/|/$|(?:^|/)\.|\.lock(?:/|$)|\.$|^-|^@$")


def check_branch(revision: Any) -> str | None:
    """Raise :class:`ConfigurationError` unless `revision` (the branch a push commits to) is None or a branch name
    git accepts: an empty or blank one, or one with a space, was sent as it is and failed after the export (an empty
    one as a 404 of the branch route), or made a branch no git client can fetch.

    Returns:
        `str` or `None`: the branch as the repo lists it (:func:`branch_name`), what the push commits to and its card
        and messages name.
    """
    if revision is None:
        return None
    if not isinstance(revision, str) or not revision or _BAD_BRANCH.search(revision):
        raise ConfigurationError(
            f"Invalid branch {revision!r} to push to (revision, --revision): a branch name is not empty and holds no "
            "spaces, control characters, '~^:?*[\\\"', '..' or '@{', nor an empty, '.'-led or '.lock' part, e.g. "
            "'exp' or 'results/v2'; leave it out to push to the default branch. Nothing was uploaded.")
    return branch_name(revision)


def branch_name(revision: str | None) -> str | None:
    """The branch `revision` names as the repo lists it: ``refs/heads/exp`` (git's full name of the branch 'exp') is
    'exp'. A card written for ``revision="refs/heads/exp"`` named that spelling in its loading examples and its
    ``hf-txray reproduce --revision``, where the repo's branch list and the Hub's branch menu say 'exp'."""
    return None if revision is None else revision.removeprefix("refs/heads/")


# A Hub license id (https://huggingface.co/docs/hub/repositories-licenses): one lowercase word, e.g. "apache-2.0",
# "cc-by-4.0", "openrail++", "other"; no offline list of them exists, so only what cannot be one is refused
_LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")


def check_license(license: Any) -> str | None:
    """Raise :class:`ConfigurationError` unless `license` (a card's ``license``) is None or could be a Hub license id:
    ``--license "a b"`` (or one with a quote or a newline) was written into the card's metadata as it was, which the
    Hub refuses when the card is pushed; and ``"Apache-2.0"`` (the SPDX spelling) was written as it was, which is no
    Hub license id (they are all lowercase: ``apache-2.0``), refused naming the lowercase form rather than changed."""
    if license is not None and not (isinstance(license, str) and _LICENSE_ID.fullmatch(license)):
        raise ConfigurationError(
            f"Invalid license {license!r} (license, --license): a Hub license id is one word of letters, digits, '.', "
            "'-', '_' and '+', e.g. 'apache-2.0', 'cc-by-4.0' or 'mit' (see "
            "https://huggingface.co/docs/hub/repositories-licenses), or 'other' for one the Hub does not list. "
            "Nothing was written.")
    if license is not None and license != license.lower():
        raise ConfigurationError(
            f"Invalid license {license!r} (license, --license): Hub license ids are lowercase; use "
            f"{license.lower()!r} (see https://huggingface.co/docs/hub/repositories-licenses). Nothing was written.")
    return license


def check_hub_text(name: str, value: Any) -> None:
    """Refuse a text argument of a push or export (a card's ``pretty_name``, a commit message) that is neither None
    nor a string (:func:`~hf_txray.counts.check_text`), its value shown in at most 60 characters.

    Raises:
        ConfigurationError: ``"commit_message must be a string (or None), got 3 (int): ... Nothing was written."``
    """
    check_text(name, value, width=60, note="Nothing was written.")


def resolve_token(token: str | bool | None = None) -> str:
    """The token to use: `token`, else (None, or `True` as huggingface_hub takes it) ``HF_TOKEN``, else the saved
    login (``hf auth login``). Always the token itself: `True` was handed on as it was, so the errors of a failed
    upload, which mask the token in their message, raised ``TypeError: replace() argument 1 must be str, not bool``
    instead (and could not have masked it).

    Raises:
        HubError: when there is none (`False` included: a push needs one).
    """
    from huggingface_hub import get_token

    token = token if isinstance(token, str) and token else get_token() if token is not False else None
    if not token:
        raise HubError("No Hugging Face token: pass token=..., set the HF_TOKEN environment variable, or log in "
                       "with `hf auth login`. Nothing was uploaded.")
    return token


def token_retry_note(token: str) -> str:
    """The sentence a failed push's retry hint adds when its `token` is not the one a retry finds by default
    (``HF_TOKEN``, then the saved login), else ``""``: a push with ``--token`` (``HF_TOKEN`` unset) printed a retry
    command without one, which failed for want of a token (or pushed as the saved login's user). The token itself is
    never written: the note says in words to pass it."""
    from huggingface_hub import get_token

    if get_token() == token:
        return ""
    return ("This push used a token passed with --token (token=...), not HF_TOKEN or the saved login, and it is not "
            "shown here: add --token YOUR_TOKEN to the command (token=... in Python), or set HF_TOKEN, to retry.")


def full_repo_id(repo_id: str, token: str) -> str:
    """``namespace/name``: the token's user is the namespace of a bare ``name`` (cards' loading examples need it).

    Raises:
        HubError: the token's user cannot be looked up.
    """
    if "/" in repo_id:
        return repo_id
    from huggingface_hub import HfApi

    try:
        return f"{HfApi(token=token).whoami()['name']}/{repo_id}"
    except Exception as err:  # HTTP or network: one error type, without the token
        raise HubError(f"Could not find the user of the token to complete repo id {repo_id!r}: "
                       f"{scrub(str(err), token)}. Pass 'namespace/{repo_id}'.") from None


def looks_local(name: str) -> bool:
    """Whether `name` is meant as a local path rather than a repo id (absolute, ``./``, ``~``, or deeper than
    ``namespace/name``): such a name that does not exist is a missing folder, never a Hub lookup."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1
            or name.endswith("/"))


def may_be_same_model(a: str, b: str) -> bool:
    """Whether two model names (Hub ids or local paths) may name the same model: equal; the same folder; a Hub id
    and a Hub cache snapshot of it (``models--org--name``); a Hub id without namespace and its namespaced form
    (``gpt2``, ``openai-community/gpt2``); or a local folder named as a Hub repo or as another folder (a local copy,
    ``snapshot_download(local_dir=...)``). A Hub id against another namespace's repo is another model."""
    def parts(name: str) -> tuple[str | None, str, str | None]:
        """``(resolved path or None, last name, Hub id or None)``, lower case."""
        name = name.strip().rstrip("/\\")
        if looks_local(name) or Path(name).expanduser().exists():
            path = Path(name).expanduser().resolve()
            snapshot = hub_cache_snapshot(str(path)) or hub_cache_snapshot(name)
            hub = snapshot[0].lower() if snapshot else None
            return str(path), (hub.split("/")[-1] if hub else path.name.lower()), hub
        return None, name.split("/")[-1].lower(), name.lower()

    (path_a, last_a, hub_a), (path_b, last_b, hub_b) = parts(a), parts(b)
    if path_a is not None and path_a == path_b:
        return True
    if hub_a and hub_b and "/" in hub_a and "/" in hub_b:
        return hub_a == hub_b  # two namespaced repos: the same only when equal
    return last_a == last_b


def other_models(probed: Iterable[str], models: Iterable[str]) -> list[str]:
    """The names in `probed` that no name in `models` may name (:func:`may_be_same_model`), sorted: the same model is
    often named twice over, by a relative and an absolute path or by a Hub id and a local copy (helper 209: a probe of
    ``/abs/model`` beside profiles of ``./model`` was refused as another model's)."""
    models = [m for m in models if m]
    return sorted({name for name in probed if not any(may_be_same_model(name, own) for own in models)})


def check_probed_models(probed: Iterable[str], models: Iterable[str], message: Callable[[list[str]], str],
                        refused: str) -> None:
    """Say when probing results of a model (`probed`) would sit beside TX-Ray results of other `models`, where the
    card and the viewer show them as those neurons' model's. Names alone tell another model for sure only when both
    sides are Hub repo ids (``org/model-a`` vs ``org/model-b``): that is refused. A local folder, a class name (a model
    passed as an object without ``name_or_path``) or a folder's last part may name the same weights as another name
    (helper 212: the README's probing example, a model loaded from a folder, beside its profile by Hub id), so it is
    warned about, not refused.

    Args:
        message (`Callable`): the sentence naming where and what, given the other names.
        refused (`str`): what is said after `message` when refused ("Nothing was written. Save them elsewhere.").

    Raises:
        ConfigurationError: for other Hub repo ids.
    """
    models = sorted({m for m in models if m})
    other = other_models(probed, models)
    if not other:
        return
    from .card import hub_model_id

    if all(hub_model_id(m) for m in [*other, *models]):
        raise ConfigurationError(f"{message(other)} {refused}")
    logger.warning("%s (If they are the same model under two names, nothing is wrong: names alone cannot tell a "
                   "local copy from another model.)", message(other))


def names_a_repo(name: str | os.PathLike) -> bool:
    """Whether `name`, as typed, reads as a Hub repo id ``namespace/name`` rather than a path (a `Path` never does)."""
    return isinstance(name, str) and name.count("/") == 1 and not looks_local(name)


def refuse_revision_of_folder(folder: str | os.PathLike, revision: str | None) -> None:
    """Refuse a `revision` asked of a local `folder`, which is read as it is: the revision would be ignored.

    Raises:
        ConfigurationError: `revision` is not None.
    """
    if revision is None:
        return
    name = str(folder)
    if not names_a_repo(folder):
        fix = "Drop revision (--revision), or pass the repo id."
    else:  # 'namespace/name' meant the repo: a folder of that name in the working directory hides it
        fix = (f"A local folder of that name hides the Hub repo {name!r}: rename or move the folder, or run from "
               "another directory.")
    raise ConfigurationError(f"revision={revision!r} applies to Hub repos only; {name!r} is a local folder, read as "
                             f"it is. {fix}")


def local_or_download(name_or_path: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None,
                      cache_dir: str | os.PathLike | None = None, allow_patterns: list[str] | None = None) -> Path:
    """A local folder as it is, else the snapshot of the Hub dataset repo `name_or_path` (offline-cache aware): the
    folder of :func:`locate_or_download` looking in dataset repos only (its arguments, return value aside)."""
    return locate_or_download(name_or_path, revision=revision, token=token, cache_dir=cache_dir,
                              allow_patterns=allow_patterns)[0]


# Where a repo id is looked for when a model repo may hold the folder asked for: a dataset repo of that id first (what
# hf_txray pushes), then the model repo (TXRayTrainer.push_to_hub uploads output_dir/txray/ with the model)
DATASET_THEN_MODEL = ("dataset", "model")


def locate_or_download(name_or_path: str | os.PathLike, *, revision: str | None = None,
                       token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
                       allow_patterns: list[str] | None = None,
                       repo_types: Sequence[str] = ("dataset",)) -> tuple[Path, str | None]:
    """A local folder as it is, else the snapshot of the Hub repo `name_or_path` (offline-cache aware), with the type
    of repo it came from (None for a local folder).

    Args:
        name_or_path (`str` or `os.PathLike`): a folder, or a repo id.
        revision (`str`, *optional*): branch, tag or commit of the repo.
        token (`str` or `bool`, *optional*): for private repos; defaults to ``HF_TOKEN`` / the saved login.
        cache_dir (`str` or `os.PathLike`, *optional*): the Hub cache to use (default: ``HF_HUB_CACHE``).
        allow_patterns (`list[str]`, *optional*): download only these files.
        repo_types (`Sequence[str]`, *optional*, defaults to ``("dataset",)``): the repo types to look in, in order;
            the next one is tried only where no repo of the type before was found (:data:`DATASET_THEN_MODEL`).

    Returns:
        `tuple[Path, str | None]`: the folder, and ``"dataset"`` or ``"model"`` (None for a local folder).

    Raises:
        ArtifactNotFoundError: a path that does not exist, a name that is neither a folder nor a repo id, or one
            that reads as a mistyped path (no ``/``, or its parent folder exists) and is no Hub repo (of
            `repo_types`) either.
        ConfigurationError: `revision` given with a local folder (it would be ignored).
        HubError: the repo cannot be downloaded (missing, private without a token, offline and not cached).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        refuse_revision_of_folder(name_or_path, revision)
        return path, None
    name = str(name_or_path)
    if path.exists():
        raise ArtifactNotFoundError(f"{path} is a file; pass the folder it was saved to (save_pretrained writes "
                                    "a folder).")
    if isinstance(name_or_path, Path) or looks_local(name):
        raise ArtifactNotFoundError(f"No folder {path}:{near_paths_hint(path)} Check the path (a Hub repo id is "
                                    "'namespace/name').")
    try:
        check_repo_id(name)
    except ConfigurationError:
        raise ArtifactNotFoundError(f"{name!r} is neither a folder nor a valid Hub repo id "
                                    f"('namespace/name').{_revision_apart_hint(name)}") from None
    from huggingface_hub import snapshot_download

    failure: Exception | None = None  # the first type's, unless a later type's repo was found and failed
    for repo_type in repo_types:
        try:
            _check_hub_serves(name, repo_type, revision, token, cache_dir)
            with _no_match_said_by_us():
                return Path(snapshot_download(name, repo_type=repo_type, revision=revision, token=token,
                                              cache_dir=cache_dir, allow_patterns=allow_patterns)), repo_type
        except Exception as err:  # missing repo or revision, private without token, offline: one error type
            if failure is None or not _no_such_repo(err):
                failure = err
            if not _no_such_repo(err):  # the repo is there (another revision, a token, the network): said as it is
                break
    secret = token if isinstance(token, str) else None
    raise _not_downloaded(name, path, revision, failure, secret, repo_types) from safe_cause(failure, secret)


REVISION_SEPARATOR = "@"  # a Hub repo at a branch, tag or commit: "owner/name@revision" (as hf:// paths write it)


def split_revision(part: str, *, strict: bool = True) -> tuple[str, str | None]:
    """A source part as ``(repo id or folder, revision or None)``: ``owner/name@revision`` names the repo at a branch,
    tag or commit sha (the ``repo_id@revision`` of ``hf://`` paths in huggingface_hub; a revision may be
    URL-quoted, ``refs%2Fpr%2F1``). An existing folder is read as it is, even with an ``@`` in its name. The one
    reading of ``owner/name@revision``: ``hf-txray view`` opens it, ``hf-txray show`` and the downloads that take the
    revision apart name it in their hints (:func:`repo_at_revision`, with `strict` False: a revision with spaces or
    a second ``@`` is taken as it is, for the hint to name).

    Raises:
        ConfigurationError: an ``@`` with nothing before or after it, or, when `strict`, a second ``@`` or spaces in
            the revision.
    """
    from urllib.parse import unquote

    part = str(part).strip()
    if REVISION_SEPARATOR not in part or Path(part).expanduser().exists():
        return part, None
    repo, revision = part.split(REVISION_SEPARATOR, 1)
    revision = unquote(revision).strip()
    odd = REVISION_SEPARATOR in revision or any(c.isspace() for c in revision)
    if not repo.strip() or not revision or (strict and odd):
        raise ConfigurationError(f"{part!r} is not a source: write a Hub repo at a revision as owner/name@revision "
                                 "(a branch, tag or commit sha, e.g. my-user/minilm-txray@exp), or a folder.")
    return repo.strip(), revision


def repo_at_revision(name: str) -> tuple[str, str] | None:
    """``(repo id, revision)`` for ``owner/name@revision``, as :func:`split_revision` reads it (how ``hf-txray view``
    and ``hf://`` paths name a repo at a revision; a URL-quoted revision unquoted), else None (no ``@``, an existing
    path, nothing before or after the ``@``, or no valid repo id before it)."""
    try:
        repo, revision = split_revision(name, strict=False)
        check_repo_id(repo)
    except ConfigurationError:
        return None
    return None if revision is None else (repo, revision)


def _revision_apart_hint(name: str) -> str:
    """For ``owner/name@revision`` (:func:`repo_at_revision`), the sentence that says to pass the revision apart, as
    the callers of :func:`locate_or_download` take it; else ``""``."""
    if (at := repo_at_revision(name)) is None:
        return ""
    repo, revision = at
    return (f" For the repo {repo!r} at the revision {revision!r}, pass the two apart: {repo!r} with "
            f"revision={revision!r} ({shell_command('--revision', revision)} on the command line).")


def check_public_repo(name: str, revision: str | None = None, repo_type: str = "dataset") -> None:
    """Raise unless the Hub answers for the repo `name` (at `revision`) read without a token: what a download with
    ``token=False`` must not replace by the cache. ``snapshot_download`` answers a refused request (a private repo,
    read anonymously) with the copy in the cache, without a word: a viewer on a Space, which reads the repos its
    visitors open anonymously, showed them any private repo its cache held (one its owner's token read before, as
    an earlier default source on persistent storage).

    Raises:
        TXRayError: no such repo or revision, a private or gated one, or the Hub not reached (as
            :func:`locate_or_download` says them).
    """
    from huggingface_hub import HfApi

    try:
        HfApi().repo_info(name, repo_type=repo_type, revision=revision, token=False)
    except Exception as err:  # noqa: BLE001 - every failure refuses: the cache must not answer instead
        raise _not_downloaded(name, Path(name), revision, err, None, (repo_type,)) from None


def _check_hub_serves(name: str, repo_type: str, revision: str | None, token: str | bool | None,
                          cache_dir: str | os.PathLike | None) -> None:
    """Raise the Hub's answer when it refuses the repo `name` that the cache holds, online only: a 401 for the token
    in use (expired or mistyped), or no such repo (deleted, or private and not readable with that token).
    ``snapshot_download`` answers both with the copy in the cache, without a word, however old that copy is (helper
    268: a refused token; helper 330: a deleted repo still loaded as the stages read before); asked first, the Hub's
    answer reaches the user. Other failures (the network, the Hub down) are left to the download, which reads the
    cache as it always did. Without a cached copy there is nothing to hide the answer: the download says it, and the
    question (the same ``repo_info`` request the download makes) is not asked twice."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if constants.is_offline_mode() or not _in_cache(name, repo_type, cache_dir):
        return
    try:
        HfApi().repo_info(name, repo_type=repo_type, revision=revision, token=token)
    except RepositoryNotFoundError:  # gated repos too: the download would read the cache instead of saying it
        raise
    except HfHubHTTPError as err:
        if getattr(err.response, "status_code", None) == 401:
            raise
    except Exception:  # the network, the Hub down: the download reads the cache, as it always did
        return


def _in_cache(name: str, repo_type: str, cache_dir: str | os.PathLike | None) -> bool:
    """Whether the Hub cache holds a copy of the repo `name` of `repo_type` (any revision): what
    ``snapshot_download`` may answer with when the Hub refuses it. A cache that cannot be read may hold one."""
    from huggingface_hub import CacheNotFound, scan_cache_dir

    try:
        cached = scan_cache_dir(cache_dir).repos
    except CacheNotFound:
        return False
    except Exception:  # noqa: BLE001 - unreadable: ask the Hub, as for a cached copy
        return True
    return any(repo.repo_id == name and repo.repo_type == repo_type for repo in cached)


def _no_such_repo(err: Exception) -> bool:
    """Whether a failed snapshot download says that there is no repo of that id and type (or none readable), or,
    offline, none in the cache: where a repo of the next type may hold what is asked for."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    status = getattr(getattr(err.__cause__, "response", None), "status_code", None)
    return isinstance(err, RepositoryNotFoundError) or (
        isinstance(err, LocalEntryNotFoundError) and (status in (401, 404) or constants.is_offline_mode()))


def _not_downloaded(name: str, path: Path, revision: str | None, err: Exception, token: str | None,
                    repo_types: Sequence[str] = ("dataset",)) -> TXRayError:
    """The error for `name`, neither a local folder nor a Hub dataset (or a repo of the other `repo_types`) that could
    be downloaded, in one line: a mistyped path (a bare name, or one whose parent folder exists here:
    ``results/ptbb``) is said to be no folder first, with the close names beside it; a repo id (``user/repo``, no
    such local folder) is said not to download."""
    at = f" at {revision!r}" if revision else ""
    why, fix = _why_not_downloaded(err, revision, token)
    repo = " or ".join(("dataset", *(f"{t} repo" for t in repo_types[1:])) if repo_types[0] == "dataset"
                       else (f"{t} repo" for t in repo_types))
    if "/" not in name or path.parent.is_dir():
        return ArtifactNotFoundError(f"No folder {name!r} here, nor a Hub {repo} of that id{at}: {why}."
                                     f"{near_paths_hint(path)} Check the path; for a Hub repo, {fix[0].lower()}"
                                     f"{fix[1:]}")
    return HubError(f"Could not download the Hub {repo} {name!r}{at}: {why}; and there is no local folder of that "
                    f"name. {fix}")


def _why_not_downloaded(err: Exception, revision: str | None, token: str | None) -> tuple[str, str]:
    """(what went wrong, its fix) for a failed snapshot download, short: huggingface_hub's own words run to several
    lines (offline, connection) and are kept for the "cause:" of an error they do not explain."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if isinstance(err, GatedRepoError):
        return "a gated repo", "Accept its conditions on its Hub page and pass a token that may read it."
    # a bare name ('mistyped_folder') can come back as a plain 404 under a "could not reach" error: not found too
    status = getattr(getattr(err.__cause__, "response", None), "status_code", None)
    if isinstance(err, RepositoryNotFoundError) or (isinstance(err, LocalEntryNotFoundError) and status in (401, 404)):
        return ("no such repo, or a private one without a token that may read it",
                "Check the repo id; a private repo needs token=... (--token, for the commands that take it) or "
                "HF_TOKEN.")
    if isinstance(err, RevisionNotFoundError):
        return f"no revision {revision!r} in it", "Check the revision (a branch, tag or commit of the repo)."
    if isinstance(err, HfHubHTTPError) and getattr(err.response, "status_code", None) == 401:
        # not a missing repo (RepositoryNotFoundError, above): the Hub answers 401 to a bad token on any repo
        return ("the Hub refused the token in use as invalid (401 Unauthorized: an expired or mistyped token=..., "
                "HF_TOKEN or saved login)", "Renew the token (token=..., HF_TOKEN or `hf auth login`); a public repo "
                "also reads without one (token=False, or unset HF_TOKEN).")
    if isinstance(err, LocalEntryNotFoundError) and constants.is_offline_mode():
        return ("offline (HF_HUB_OFFLINE=1) and not in the cache",
                "Unset HF_HUB_OFFLINE to download it.")
    if isinstance(err, LocalEntryNotFoundError):  # a connection error or the Hub down, and no cached copy
        return "the Hub could not be reached and it is not in the cache", "Check the network, or try again later."
    first = (scrub(str(err), token).splitlines() or [""])[0][:200]
    return (f"it could not be downloaded (cause: {type(err).__name__}: {first})",
            "Check the repo id and the network; a private repo needs token=... or HF_TOKEN.")


class _NoMatchFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No files matched")


@contextlib.contextmanager
def _no_match_said_by_us() -> Iterator[None]:
    """Keep huggingface_hub's "No files matched allow_patterns=..." off the user's screen: optional configs (probing
    tables a results repo may lack) are looked for on purpose, and what is missing is said by hf_txray's own error."""
    hub_logger, quiet = logging.getLogger("huggingface_hub._snapshot_download"), _NoMatchFilter()
    hub_logger.addFilter(quiet)
    try:
        yield
    finally:
        hub_logger.removeFilter(quiet)


def source_name(name_or_path: str | os.PathLike, folder: Path, revision: str | None = None,
                repo_type: str = "dataset") -> str:
    """How messages name what :func:`local_or_download` returned as `folder`: the local folder itself, or the Hub
    repo (and revision) a downloaded snapshot came from, e.g. ``the Hub dataset 'user/x' at revision 'v1'``, ``the
    Hub model repo 'user/m'``."""
    if Path(name_or_path).expanduser() == folder:
        return str(folder)
    what = "dataset" if repo_type == "dataset" else f"{repo_type} repo"
    return f"the Hub {what} {str(name_or_path)!r}" + (f" at revision {revision!r}" if revision else "")


@contextlib.contextmanager
def naming_the_source(name_or_path: str | os.PathLike, folder: Path, revision: str | None = None,
                      token: str | bool | None = None, repo_type: str = "dataset",
                      call_args: str | None = None) -> Iterator[None]:
    """Re-raise a :class:`ProfileFormatError` about the downloaded snapshot `folder` naming the repo id and revision
    instead of the snapshot's path in the local cache (which tells a user nothing about what they asked for), and
    the repo's other branches when its default one was read (`token`: the one the download used). A call that the
    message suggests, ``from_pretrained('<folder>')``, is given `call_args` instead (the repo id, revision and
    subfolder as a user types them), not the words that name the source."""
    try:
        yield
    except ProfileFormatError as err:
        name = source_name(name_or_path, folder, revision, repo_type)
        if name == str(folder) or str(folder) not in str(err):
            raise
        text = str(err)
        if call_args is not None:
            text = text.replace(f"from_pretrained({str(folder)!r})", f"from_pretrained({call_args})")
        hint = ("" if revision else _other_branches_hint(str(name_or_path), token, repo_type)) or \
            empty_repo_note(str(name_or_path), revision, token, repo_type)
        raise type(err)(text.replace(str(folder), name) + hint) from None


def empty_repo_note(repo_id: str, revision: str | None = None, token: str | bool | None = None,
                    repo_type: str = "dataset") -> str:
    """`` It is empty ...`` for a Hub repo (at `revision`) that holds no file but ``.gitattributes``, which
    ``create_repo`` writes: what a push whose upload failed leaves (the repo is created first), read as "not an
    hf_txray export: no meta/*.parquet" without a word on why; else (or when it cannot be listed) ``""``."""
    from huggingface_hub import HfApi

    try:
        files = HfApi(token=token).list_repo_files(repo_id, repo_type=repo_type, revision=revision)
    except Exception:  # a hint only: the error itself stands
        return ""
    if set(files) - {".gitattributes"}:
        return ""
    return (" It is empty (no file but .gitattributes): nothing was pushed to it yet, or a push created it and its "
            "upload failed; push the results again (a failed push keeps its folder, and its error names the "
            "`hf-txray push` command that uploads it).")


def _other_branches_hint(repo_id: str, token: str | bool | None = None, repo_type: str = "dataset") -> str:
    """`` It was read at its default branch; the repo also has the branch(es) ...`` for a Hub repo with other
    branches (what was pushed to one of them is not on the default branch), else an empty string."""
    others = other_branches(repo_id, token, repo_type)
    if not others:
        return ""
    return (f" It was read at its default branch; the repo also has the branch(es) {', '.join(map(repr, others))}: "
            f"pass revision='{others[0]}' (--revision) to read one.")


def other_branches(repo_id: str, token: str | bool | None = None, repo_type: str = "dataset") -> list[str]:
    """The branches of the Hub repo `repo_id` that point at another commit than its default branch (where results
    pushed with ``revision=`` are), for a message about a default branch that lacks them; empty when the repo cannot
    be listed (a hint only: the error it goes into stands)."""
    from huggingface_hub import HfApi

    try:
        api = HfApi(token=token)
        refs, default = (api.list_repo_refs(repo_id, repo_type=repo_type),
                         api.repo_info(repo_id, repo_type=repo_type).sha)
    except Exception:  # a hint only: the error itself stands
        return []
    return [b.name for b in refs.branches if b.target_commit != default]


_MARKED_SECTION = re.compile(r"<!-- hf_txray:([\w-]+):start -->.*?<!-- hf_txray:\1:end -->", re.DOTALL)


def carry_remote_card(api: "HfApi", repo_id: str, folder: Path, revision: str | None, owned: Sequence[str],
                      into_remote: bool = False, absent: Sequence[str] = ()) -> None:
    """Carry into `folder`'s README what the repo's README declares and this push neither writes nor replaces, so
    that a push does not orphan it: configs others added (or another kind of push: probing results under TX-Ray
    results, and the other way), and their hf_txray-marked sections of the card text.

    A README that hf_txray did not write (text without the ``hf-txray`` tag, e.g. the card of the repo's own data) is
    kept, as ``datasets``' ``push_to_hub`` keeps a card's text: the results card goes in as its marked ``results``
    section (replaced by the next push), its configs and tags are added to the repo's metadata, and the rest of the
    metadata (license, name) stays the repo's.

    Args:
        owned (`Sequence[str]`): the config names this push replaces (its files deleted); their declarations go.
        into_remote (`bool`, *optional*, defaults to `False`): the local card is marked sections only (probing
            results, an ablation curve): the repo's card is kept, text and metadata, with those sections put in
            (replacing their earlier versions) and the local configs declared.
        absent (`Sequence[str]`, *optional*): probing configs of which the repo holds no file (deleted, e.g. as
            :func:`refuse_probing_of_other_models` advises): their declarations and card parts are not carried.
    """
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import EntryNotFoundError

    from .card import with_default
    from .layout import CONFIGS, EXTRA_CONFIGS

    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return
    try:
        remote = DatasetCard.load(api.hf_hub_download(repo_id=repo_id, filename="README.md", repo_type="dataset",
                                                      revision=revision))
    except EntryNotFoundError:  # a new repo or branch, or one whose data has no card
        remote = DatasetCard("---\n{}\n---\n")  # an empty metadata block: DatasetCard("") logs that it has none
    card = DatasetCard.load(readme)
    local = card.data.to_dict().get("configs") or []
    names = {c.get("config_name") for c in local}
    detected = [] if remote.data.to_dict().get("configs") else _detected_data(repo_id, revision, api.token)
    remote_configs = remote.data.to_dict().get("configs") or detected
    if absent:  # declared, but their files are gone: a card that declares them does not load
        from .card import without_probing_parts

        remote_configs = [c for c in remote_configs if c.get("config_name") not in set(absent)]
        remote.text = without_probing_parts(remote.text, absent)
    foreign = [c for c in _undefaulted(remote_configs) if c.get("config_name") not in set(owned) | names]
    _refuse_other_formats(repo_id, foreign)
    default = next((c["config_name"] for c in remote_configs if c.get("default")), None)
    # a new repo (or one without a card): the local card is the whole card, as save_pretrained wrote it; built into
    # the empty remote one, a probing result's push lost its title, tags and name (only the sections were kept)
    into_remote = into_remote and _has_card(remote)
    if into_remote or _hosts_results(remote):
        if into_remote:
            sections = {m.group(1): m.group(0) for m in _MARKED_SECTION.finditer(card.text)}
        else:
            sections = {RESULTS_SECTION: f"<!-- hf_txray:{RESULTS_SECTION}:start -->\n{card.text.strip()}\n"
                                         f"<!-- hf_txray:{RESULTS_SECTION}:end -->"}
            _add_metadata(remote, card)
        text = remote.text
        for name, section in sections.items():
            found = _marked(text, name)
            text = (text[:found.start()] + _merged_section(found.group(0), section) + text[found.end():]) if found \
                else text.rstrip() + "\n\n" + section + "\n"
        remote.data.configs = with_default(foreign + _undefaulted(local), default)  # the repo's default stays
        remote.text = text
        remote.save(readme)
        return
    if not foreign:
        return
    # the repo's own default (its data, not a config hf_txray writes) stays the default: datasets reads every config
    # with the builder of the default one, so an owner's CSV config beside a parquet default did not load
    ours = default is None or default in CONFIGS + EXTRA_CONFIGS
    card.data.configs = with_default(local + foreign if ours else foreign + _undefaulted(local), default)
    # the sections describing them (e.g. probing's), unless this card has its own of that name
    sections = [m.group(0) for m in _MARKED_SECTION.finditer(remote.text)
                if f"<!-- hf_txray:{m.group(1)}:start -->" not in card.text]
    card.text = card.text.rstrip() + "".join(f"\n\n{section}" for section in sections) + "\n"
    card.save(readme)


def remote_column(api: "HfApi", repo_id: str, revision: str | None, config: str, column: str) -> list[Any] | None:
    """The values of `column` in the parquet files of `config` in the Hub dataset `repo_id` at `revision` ([] when it
    has none; None when a file cannot be read as parquet with that column). Only that column's byte ranges are read
    (``HfFileSystem``), not the whole files."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from urllib.parse import quote

    from huggingface_hub import HfFileSystem
    from huggingface_hub.errors import EntryNotFoundError

    try:
        files = sorted(f.path for f in api.list_repo_tree(repo_id, path_in_repo=config, repo_type="dataset",
                                                          revision=revision) if f.path.endswith(".parquet"))
    except EntryNotFoundError:
        return []
    # a fresh instance: fsspec hands back the cached one of the same arguments, whose listing of an earlier read
    # (its size, its commit) made a file changed since by a push read as no parquet at all (None)
    system = HfFileSystem(endpoint=api.endpoint, token=api.token, skip_instance_cache=True)
    at = "" if revision is None else "@" + quote(revision, safe="")
    values: list[Any] = []
    for path in files:
        try:
            with system.open(f"datasets/{repo_id}{at}/{path}", "rb") as handle:
                values += pq.ParquetFile(handle).read(columns=[column]).column(column).to_pylist()
        except (pa.ArrowException, KeyError):
            return None
    return values


_META_MODEL_COLUMNS = ("kind", "model_id", "metadata")


def pushed_models(folder: Path) -> set[str]:
    """The models of the profiles and reports of a folder in the dataset layout (both models of a report), as a
    push shows them (:func:`~hf_txray.provenance.public_name`: a local path relative to the current directory, or
    its last part)."""
    from .layout import read_config

    table = read_config(folder, "meta", columns=_META_MODEL_COLUMNS)
    return _meta_models(*(table.column(c).to_pylist() for c in _META_MODEL_COLUMNS))


def remote_models(api: "HfApi", repo_id: str, revision: str | None) -> set[str]:
    """:func:`pushed_models` of the Hub dataset `repo_id` at `revision`, from its ``meta`` config's columns only
    (an empty set when it holds no profile or report, or its meta cannot be read)."""
    columns = [remote_column(api, repo_id, revision, "meta", c) for c in _META_MODEL_COLUMNS]
    return set() if any(c is None for c in columns) else _meta_models(*columns)


def dropped_results(api: "HfApi", repo_id: str, revision: str | None, folder: Path) -> str | None:
    """The warning for the profiles and reports that the Hub dataset `repo_id` holds at `revision` and a push of the
    results `folder` (the dataset layout) drops, read before the upload; None when it drops none (or the repo's
    ``meta`` cannot be read). A push replaces the repo's results whole (documented), so a second ``analyze
    --push-to-hub`` of another stage dropped the first without a word; the warning names what goes, the commit that
    keeps it, and how to push them together."""
    from huggingface_hub.constants import DEFAULT_REVISION

    from .layout import read_config

    kinds, names = (remote_column(api, repo_id, revision, "meta", column) for column in ("kind", "name"))
    if not kinds or names is None or len(names) != len(kinds):
        return None
    table = read_config(folder, "meta", columns=("kind", "name")) if (folder / "meta").is_dir() else None
    ours = set() if table is None else set(zip(table.column("kind").to_pylist(), table.column("name").to_pylist()))
    gone = [(kind, name) for kind, name in dict.fromkeys(zip(kinds, names)) if (kind, name) not in ours]
    if not gone:
        return None
    said = ", ".join(f"{'stage' if kind == 'profile' else kind} {name!r}" for kind, name in gone)
    commit = api.repo_info(repo_id, repo_type="dataset", revision=revision).sha
    other_branch = revision is not None and branch_name(revision) != DEFAULT_REVISION
    if other_branch and commit == api.repo_info(repo_id, repo_type="dataset").sha:
        return None  # a branch made from the default one for this push (or still the same): the default one keeps them
    at = f" (branch {revision!r})" if revision else ""
    return (f"This push dropped from the Hub dataset {repo_id!r}{at} the results it does not hold (a push replaces "
            f"a repo's results whole): {said}. They remain in its previous commit: "
            f"hf_txray.load({repo_id!r}, revision={commit!r}). To keep them beside the new results, push them "
            "together (hf_txray.push_to_hub(repo_id, profiles=[...], reports=[...]), or `hf-txray push REPO_ID DIR` "
            "of a folder holding them all), or push to another repo or branch (revision=, --revision).")


def _meta_models(kinds: Sequence[Any], model_ids: Sequence[Any], metadata: Sequence[Any]) -> set[str]:
    """The public names of the models a ``meta`` config's rows name: a profile's ``model_id``, both models of a
    report (from its metadata)."""
    import json

    from .provenance import public_name

    models = set()
    for kind, model_id, record in zip(kinds, model_ids, metadata):
        record = json.loads(record) if kind == "report" and record else {}
        models.update([record["model_a"], record["model_b"]] if "model_a" in record else [model_id])
    return {public_name(m) for m in models if m}


def refuse_probing_into_other_models(probed: Iterable[str], models: Iterable[str], where: str, fix: str) -> None:
    """Refuse to add probing results of a model (`probed`, model ids as recorded) to results (`where`) holding the
    TX-Ray profiles and reports of other `models` only (as :func:`pushed_models` names them): the card and the
    viewer would show them beside those neurons as their model's (helper 209: the reverse of what
    :func:`refuse_probing_of_other_models` refuses). Nothing is checked where `models` is empty.

    Raises:
        ConfigurationError: naming both, with `fix` (:func:`check_probed_models`: other Hub ids; else a warning).
    """
    from .provenance import public_name

    models = sorted(set(models))
    if models:
        check_probed_models({public_name(m) for m in probed if m}, models,
                            lambda other: f"{where} holds the TX-Ray results of {models}, and these probing results "
                                          f"are of {other}, another model: they would be shown beside its neurons as "
                                          "its own.", f"Nothing was written. {fix}")


def refuse_probing_of_other_models(api: "HfApi", repo_id: str, revision: str | None, folder: Path) -> list[str]:
    """Refuse, before the upload of the results `folder` (profiles and reports in the dataset layout), to leave the
    repo's probing configs of a model the folder does not hold: a push replaces only the configs it owns, so they
    were kept, and the card and the Space showed them beside the new model's neurons (as
    :func:`hf_txray.save_to_disk` refuses over a local export). Only their ``model_id`` column is read; a config the
    folder holds replaces the repo's, and one that cannot be read is left as it is.

    Returns:
        `list[str]`: the probing configs of which the repo holds no file (its card's declarations of them go).

    Raises:
        ConfigurationError: naming the repo folder to delete, or to push to another repo.
    """
    from .layout import EXTRA_CONFIGS
    from .provenance import public_name

    kept = [name for name in EXTRA_CONFIGS if not (folder / name).is_dir()]
    if not kept or not (folder / "meta").is_dir():
        return []
    models, absent = pushed_models(folder), []
    for name in kept:
        values = remote_column(api, repo_id, revision, name, "model_id")
        if values == []:
            absent.append(name)
        at = f" at revision {revision!r}" if revision else ""
        check_probed_models(
            {public_name(str(m)) for m in values or [] if m}, models,
            lambda foreign: f"The Hub dataset {repo_id!r}{at} holds {name} results of {foreign}, a model this push "
                            f"does not hold (it holds {sorted(models)}); the push keeps them (it replaces only its own "
                            "folders), and the repo's card and Space show them as this model's.",
            f"Nothing was uploaded. Push to another repo, or delete the repo's {name}/ folder first: "
            f"HfApi().delete_folder({name!r}, repo_id={repo_id!r}, repo_type='dataset'"
            + (f", revision={revision!r}" if revision else "") + ").")
    return absent


def _refuse_other_formats(repo_id: str, configs: Sequence[dict]) -> None:
    """Refuse, before anything is uploaded, a repo whose own configs read files of another format than parquet
    (a CSV, JSON lines): ``datasets`` reads every config of a repo with the builder of its default one, so beside
    hf_txray's parquet configs either the owner's data or the results would no longer load (helper 144)."""
    paths = [path for config in configs for entry in config.get("data_files") or []
             for path in ([entry.get("path")] if isinstance(entry, dict) else [entry]) for path in
             (path if isinstance(path, list) else [path]) if isinstance(path, str)]
    other = next((path for path in paths if Path(path).suffix and Path(path).suffix != ".parquet"), None)
    if other is not None:
        raise ConfigurationError(
            f"The Hub dataset {repo_id!r} holds data in another format than parquet ({other!r}): datasets reads every "
            "config of a repo with one builder, so beside hf_txray's parquet configs either that data or the results "
            f"would no longer load. Nothing was uploaded. Push the results to a repo of their own (e.g. "
            f"'{repo_id}-txray'), or convert that data to parquet first.")


# The config declaring the data files a repo held without a card that declares them: not "default", which datasets
# also takes for the default config beside the one marked default (and then refuses to choose).
DATA_CONFIG = "data"


def _detected_data(repo_id: str, revision: str | None, token: str | bool | None = None) -> list[dict]:
    """The config ``datasets`` reads by default from the data files of a repo whose card declares none (a ``data/``
    folder, ``train.csv``...), as that config's exact files, named :data:`DATA_CONFIG`: once the results' configs are declared, ``datasets``
    reads the declared configs only, and the owner's data would no longer load. Empty when there are none (or they
    cannot be listed: then nothing is added, as before). Listed with the push's `token`: listed with the default one
    (``HF_TOKEN``, the saved login), a private repo pushed to with ``token=...`` alone listed nothing, and its owner's
    data no longer loaded."""
    from datasets import DownloadConfig
    from datasets.data_files import DataFilesDict, get_data_patterns

    base = f"hf://datasets/{repo_id}@{revision or 'main'}"
    config = DownloadConfig(token=token)
    try:
        found = DataFilesDict.from_patterns(get_data_patterns(base, download_config=config), base_path=base,
                                            download_config=config)
    except Exception:  # noqa: BLE001 - no data files (EmptyDatasetError), or a listing that failed: add nothing
        return []
    prefix = f"{base}/"
    # exact names, escaped: datasets reads data_files as glob patterns (a file 'train[v2].parquet' matched nothing)
    files = {str(split): [glob.escape(f[len(prefix):] if f.startswith(prefix) else f) for f in listed]
             for split, listed in found.items()}  # splits are NamedSplit
    files = {split: listed for split, listed in files.items() if listed}
    if not files:
        return []
    return [{"config_name": DATA_CONFIG, "default": True,
             "data_files": [{"split": split, "path": listed} for split, listed in files.items()]}]


RESULTS_SECTION = "results"  # the marked section holding a results card inside a README hf_txray did not write


def _undefaulted(configs: Sequence[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "default"} for c in configs]


def _has_card(remote: "DatasetCard") -> bool:
    """Whether the repo's README says anything: text, or metadata with a value."""
    return bool(remote.text.strip()) or any(value not in (None, "", [], {}) for value in remote.data.to_dict().values())


def _hosts_results(remote: "DatasetCard") -> bool:
    """Whether the repo's README is someone else's card (kept, with the results as a marked section), not one that
    hf_txray wrote whole (or an empty one), which a push replaces."""
    from .card import OLD_TAG, TAGS

    if _marked(remote.text, RESULTS_SECTION) is not None:
        return True
    metadata = remote.data.to_dict()
    tags = metadata.get("tags") or []
    # a card with text, or with metadata alone (a license, a name: YAML without text), that hf_txray did not tag
    return _has_card(remote) and TAGS[0] not in tags and OLD_TAG not in tags


def _add_metadata(remote: "DatasetCard", card: "DatasetCard") -> None:
    """The results card's tags added to the repo card's, and its other metadata where the repo card has none."""
    ours, theirs = card.data.to_dict(), remote.data.to_dict()
    tags = list(theirs.get("tags") or [])
    remote.data.tags = tags + [t for t in ours.get("tags") or [] if t not in tags]
    for key, value in ours.items():
        if key not in ("tags", "configs") and theirs.get(key) in (None, [], ""):
            setattr(remote.data, key, value)


def _marked(text: str, name: str) -> "re.Match | None":
    return re.search(f"<!-- hf_txray:{re.escape(name)}:start -->.*?<!-- hf_txray:{re.escape(name)}:end -->", text,
                     re.DOTALL)


def _merged_section(old: str, new: str) -> str:
    """`new` marked section in place of `old`, keeping the marked parts of `old` that `new` lacks (the probing
    section's subsection of the config a push does not write: a curve pushed after a probe keeps the probe's);
    an `old` without parts is replaced whole."""
    name = re.match(r"<!-- hf_txray:([\w-]+):start -->", new).group(1)
    kept = [m.group(0) for m in re.finditer(rf"<!-- hf_txray:({re.escape(name)}-[\w-]+):start -->.*?"
                                            r"<!-- hf_txray:\1:end -->", old, re.DOTALL)
            if f"<!-- hf_txray:{m.group(1)}:start -->" not in new]
    if not kept:
        return new
    end = f"<!-- hf_txray:{name}:end -->"
    return new[:new.rindex(end)] + "\n".join(kept) + "\n" + end


def upload_folder(folder: str | os.PathLike, repo_id: str, *, token: str, private: bool = False,
                  commit_message: str, revision: str | None = None, create_pr: bool = False,
                  allow_patterns: list[str] | None = None, delete_patterns: list[str] | None = None,
                  prepare: Callable[["HfApi", str], None] | None = None, retry_hint: str = "",
                  what_uploads: str | None = None) -> "CommitInfo":
    """Create the dataset repo `repo_id` when missing and upload `folder` to it as one commit.

    Args:
        folder (`str` or `os.PathLike`): what to upload.
        repo_id (`str`): ``namespace/name``, checked with :func:`check_repo_id` by the caller.
        token (`str`): from :func:`resolve_token`.
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created repo.
        commit_message (`str`): the commit's title.
        revision (`str`, *optional*): the branch to commit to, checked with :func:`check_branch` by the caller
            (before its export); created from the default branch when missing; a tag of the repo is refused: a
            commit cannot go to a tag.
        create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead of committing.
        allow_patterns, delete_patterns (`list[str]`, *optional*): as ``HfApi.upload_folder`` takes them.
        prepare (`Callable[[HfApi, str], None]`, *optional*): called with the API and the created repo id before
            the upload (e.g. to merge the remote card into the local one).
        retry_hint (`str`, *optional*): appended to the error message of a failed upload, and logged as a warning
            when the upload is interrupted (``KeyboardInterrupt``, which is raised on).
        what_uploads (`str`, *optional*): what the error names as uploaded (default: `folder`; a temporary folder,
            gone by the time the error is read, is better named by what it held).

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Raises:
        HubError: the upload failed (the message never holds the token).
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    created = None  # the branch this push made, removed again when the push fails
    try:
        repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
        if private:
            refuse_public_repo(api, repo_id)
        if revision is not None:
            _refuse_tag_revision(api, repo_id, revision)
        if revision is not None and not create_pr:
            before = _branch_names(api, repo_id)
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
            created = _created_branch(revision, before)  # at once: a failed read of the refs below still removes it
            created = _created_branch(revision, before, _branch_names(api, repo_id))
        if prepare is not None:
            prepare(api, repo_id)
        from .layout import public_folder  # local paths leave as the card shows them, never whole

        with public_folder(Path(folder)) as public:
            return api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=public, revision=revision,
                                     create_pr=create_pr, commit_message=commit_message,
                                     allow_patterns=allow_patterns, delete_patterns=delete_patterns,
                                     ignore_patterns=list(UNFINISHED_WRITES))  # a killed write's files
    except TXRayError:  # refused before the upload
        _delete_branch(api, repo_id, created)
        raise
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as the CLI raises it: what is kept and how to retry, then stop
        logger.warning("Uploading %s to the Hub dataset %r was interrupted.%s", what_uploads or str(folder), repo_id,
                       f"\n{retry_hint}" if retry_hint else "")
        _delete_branch(api, repo_id, created)  # after the warning: a second Ctrl-C may stop it
        raise
    except Exception as err:  # HTTP, network and file errors alike
        _delete_branch(api, repo_id, created)
        what = what_uploads or str(folder)
        raise HubError(f"Uploading {what} to the Hub dataset {repo_id!r} failed: {scrub(str(err), token)}"
                       + (f"\n{retry_hint}" if retry_hint else "")) from safe_cause(err, token)


def _branch_names(api: "HfApi", repo_id: str) -> set[str]:
    return {b.name for b in api.list_repo_refs(repo_id, repo_type="dataset").branches}


def _created_branch(revision: str, before: set[str], after: set[str] | None = None) -> str | None:
    """The branch (as the repo names it) that creating `revision` added to the repo's branches `before`, or None.
    Decided from the refs, not from the name given: ``refs/heads/exp`` (git's full name of the branch 'exp') is not
    in the branch list, so the existing 'exp' counted as the push's own, and a failed push deleted it (helper 340).

    Without the refs `after` (not read yet, or their read failed), the branch presumed created: the name given,
    without ``refs/heads/``, when `before` holds neither form (helper 341: a failed read left the new branch)."""
    short = branch_name(revision)
    if after is None:
        return None if {revision, short} & before else short
    return next((name for name in sorted(after - before) if name in {revision, short}), None)


def _delete_branch(api: "HfApi", repo_id: str, branch: str | None) -> None:
    """Remove the `branch` a failed push created (None: it made none), best effort (the network may be what failed):
    left behind, it held a copy of the default branch, which readers of that revision took for the results pushed to
    it (helper 283: ``hf_txray.load(repo, revision="exp")`` after a failed push to the new branch ``exp`` loaded the
    default branch's profiles without a word)."""
    if branch is None:
        return
    try:
        api.delete_branch(repo_id, repo_type="dataset", branch=branch)
    except Exception as err:  # noqa: BLE001 - the push's own error is the one to raise
        logger.warning("The push created the branch %r of the Hub dataset %r and failed; it could not be deleted "
                       "(%s): it holds a copy of the default branch. Delete it with HfApi().delete_branch(%r, "
                       "repo_type='dataset', branch=%r), or push again.", branch, repo_id, type(err).__name__,
                       repo_id, branch)


def _refuse_tag_revision(api: "HfApi", repo_id: str, revision: str) -> None:
    """Refuse, before the upload, a `revision` that is a tag of the repo and no branch: a commit goes to a branch,
    so the push created a branch of the tag's name beside it, the tag kept the old files, and the branch then
    shadowed the tag for every reader of that revision (helper 176).

    Raises:
        ConfigurationError: `revision` names a tag and no branch (``refs/tags/NAME`` included, which the test Hub
            server took for a branch of that literal name; helper 179).
    """
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    if revision.startswith("refs/tags/") or (revision in {t.name for t in refs.tags}
                                             and revision not in {b.name for b in refs.branches}):
        raise ConfigurationError(
            f"revision={revision!r} is a tag of the Hub dataset {repo_id!r}, not a branch: a push commits to a "
            "branch, and would create a branch of that name that hides the tag from readers. Nothing was uploaded. "
            f"Push to a branch (e.g. revision='{revision}-results', or none for the default branch), then tag that "
            f"commit: HfApi().create_tag({repo_id!r}, tag=..., repo_type='dataset', revision=<branch>).")


def refuse_public_repo(api: "HfApi", repo_id: str, repo_type: str = "dataset") -> None:
    """Refuse, before the upload, a push asked to be private into a repo that exists and is public: `private` only
    applies when the repo is created (create_repo keeps an existing repo as it is), so the results were published
    (a Space, ``deploy_space(..., private=True)``: the viewer, and with its ``HF_TOKEN`` secret the private results
    it opens, stayed public).

    Raises:
        ConfigurationError: the repo is public.
    """
    if api.repo_info(repo_id, repo_type=repo_type).private:
        return
    what, flag = ("Space", "private=True") if repo_type == "space" else ("dataset", "private=True (--private)")
    shown = "the viewer and what it opens" if repo_type == "space" else "the results"
    raise ConfigurationError(
        f"The Hub {what} {repo_id!r} already exists and is public, and {flag} only makes a new repo private: "
        f"{shown} would be public. Nothing was uploaded. Make the repo private first "
        f"(HfApi().update_repo_settings({repo_id!r}, repo_type={repo_type!r}, private=True)), push to a new repo, or "
        "drop private to publish them.")


def near_paths_hint(path: Path) -> str:
    """`` Did you mean '...'?`` naming up to three paths close to `path` (a typo), or an empty string.

    The first component of `path` that does not exist is matched against the entries of the folder above it, case
    first (``Data`` for ``data``: a case-only slip, which a plain similarity ratio misses on short names), then
    by similarity of the case-folded names; the rest of `path` is kept after the match."""
    import difflib

    missing = path
    while not missing.parent.is_dir():
        if missing.parent == missing:
            return ""
        missing = missing.parent
    parent, rest = missing.parent, path.relative_to(missing)
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:  # unreadable folder
        return ""
    by_case = {}
    for name in names:
        by_case.setdefault(name.casefold(), []).append(name)
    same = [n for n in by_case.get(missing.name.casefold(), []) if n != missing.name]
    near = same or [n for close in difflib.get_close_matches(missing.name.casefold(), list(by_case), n=3)
                    for n in by_case[close]][:3]
    paths = [parent / n / rest if rest.parts else parent / n for n in near]
    return f" Did you mean {', '.join(repr(str(p)) for p in paths)}?" if paths else ""
