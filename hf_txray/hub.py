"""Sharing results on the Hugging Face Hub: push an analysis as a dataset repo, load it back.

The push writes the repo folder locally first (:func:`hf_txray.save_to_disk`), checks that every config loads with
``datasets.load_dataset``, then creates the dataset repo and uploads everything in ONE commit. A re-push replaces
our folders (the configs and ``plots/``) and the README, and leaves every other file of the repo alone; configs
that others declared in the README are kept. A failed upload leaves the local folder in place for a retry.

The token (argument, else ``HF_TOKEN``, else the saved login) is only ever handed to ``HfApi``: it is written to
no file, card or log, and removed from the messages of the errors raised here.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import huggingface_hub  # lazy: CommitInfo (annotations) loads on use

from .artifact import CLASS_OF_TYPE, HEADER_FILE, artifact_type_of, saved_artifacts
from .card import missing_profiles, naming_repo
from .counts import check_switch
from .errors import ConfigurationError, ProfileFormatError
from .export import check_card_options, collect, read_folder, save_to_disk
from .hub_io import (carry_remote_card, check_branch, check_hub_text, check_repo_id, dropped_results, full_repo_id,
                     local_or_download, naming_the_source, refuse_probing_of_other_models, resolve_token,
                     token_retry_note, upload_folder)
from .io_utils import link_or_copy
from .layout import CONFIGS, EXTRA_CONFIGS, OWNED_FOLDERS, check_tables_load, is_export_folder
from .logging import get_logger
from .profile import Profile
from .redaction import shown_url
from .report import TransferReport
from .tables import shell_command, shell_path
from .version import __version__

logger = get_logger(__name__)


class TXRayResults(NamedTuple):
    """What :func:`load` returns; unpacks as ``profiles, reports``."""

    profiles: dict[str, Profile]  # by stage
    reports: dict[str, TransferReport]  # by name, e.g. "pretrained->finetuned"


# ----- inputs (repo ids, tokens and the scrubbing of errors: hf_txray.hub_io) -------------------------------
def default_local_dir(repo_id: str) -> Path:
    """Where :func:`push_to_hub` writes the folder it uploads (kept when the upload fails, for a retry)."""
    from .cache import cache_dir

    return cache_dir() / "push" / repo_id.replace("/", "--")


# ----- checks before the upload ----------------------------------------------------------------------------------
def declared_configs(folder: Path) -> list[str]:
    """Our configs declared in the folder's README YAML."""
    from huggingface_hub import DatasetCard

    configs = DatasetCard.load(folder / "README.md").data.to_dict().get("configs") or []
    return [c["config_name"] for c in configs if c.get("config_name") in CONFIGS + EXTRA_CONFIGS]


def check_configs_load(folder: str | Path) -> dict[str, int]:
    """Load every declared config with ``datasets.load_dataset(folder, config)``; returns rows per config.

    Raises:
        ProfileFormatError: a config does not load, or loads a different number of rows than its parquet files hold.
    """
    return check_tables_load(Path(folder), declared_configs(Path(folder)))


# ----- the upload -------------------------------------------------------------------------------------------------
def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str | None = None, revision: str | None = None) -> huggingface_hub.CommitInfo:
    """Upload a folder written by :func:`hf_txray.save_to_disk` as one commit to the dataset repo `repo_id`.

    Our folders (:data:`~hf_txray.layout.OWNED_FOLDERS`) are replaced: files of a previous push that this folder no
    longer holds are deleted, and a warning names the repo's stages and reports that the folder does not hold (the
    push drops them; its previous commit keeps them). Other files of the repo are left alone, the
    ``probe_rankings`` and ``ablation`` configs included when the folder has none; when those are of a model the folder does not hold, nothing is uploaded and
    a `ConfigurationError` says so where both are named by Hub ids, a warning where a name is a local one (they
    would be shown beside this folder's neurons as its model's).

    Args:
        folder (`str` or `Path`): the export folder.
        repo_id (`str`): ``namespace/name`` (or ``name`` for the token's user); created when missing.
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created repo.
        token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login.
        commit_message (`str`, *optional*): the commit's title.
        revision (`str`, *optional*): the branch to commit to (created from the default branch when missing);
            defaults to the default branch.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Raises:
        ConfigurationError: the repo holds probing results of a model the folder does not hold (the message names
            the repo folder to delete, or push to another repo).
        HubError: no token, or the upload failed (the message says how to retry; the folder is untouched).

    Example:
        ```python
        >>> hf_txray.hub.push_folder("results/minilm-export", "my-user/minilm-txray")
        ```
    """
    folder, repo_id = Path(folder), check_repo_id(repo_id)
    private = check_switch("private", private)  # private="no" went on to create_repo (helper 369)
    check_hub_text("commit_message", commit_message)
    revision = check_branch(revision)  # refs/heads/exp: the branch 'exp', as the card and the messages name it
    if not is_export_folder(folder):
        raise ConfigurationError(f"{folder} is not an hf_txray export folder (README.md and meta/*.parquet); write "
                                 "one with hf_txray.save_to_disk or push profiles with hf_txray.push_to_hub.")
    token = resolve_token(token)
    check_configs_load(folder)
    named = full_repo_id(repo_id, token)  # what the card's examples name: the token's user is a bare name's namespace
    owned = OWNED_FOLDERS + tuple(name for name in EXTRA_CONFIGS if (folder / name).is_dir())
    command = shell_command("hf-txray", "push", repo_id, shell_path(folder), *(("--private",) if private else ()),
                            *(("--revision", revision) if revision else ()))
    kwargs = (", private=True" if private else "") + (f", revision={revision!r}" if revision else "")
    dropped: list[str] = []  # the warning naming the repo's stages and reports this push replaces, said once pushed

    def prepare(api: Any, full_id: str) -> None:
        absent = refuse_probing_of_other_models(api, full_id, revision, folder)  # before anything is sent
        carry_remote_card(api, full_id, staged, revision, CONFIGS, absent=absent)
        dropped.extend(filter(None, [dropped_results(api, full_id, revision, folder)]))

    # the remote card is merged into the copy, whose examples name this repo and branch: the folder stays as saved
    with _staged_copy(folder, named, revision) as staged:
        info = upload_folder(
            staged, repo_id, token=token, private=private, revision=revision,
            commit_message=commit_message or f"Upload TX-Ray results (hf_txray {__version__})",
            # the results header replaces a single artifact's (Profile.push_to_hub) left by an earlier push
            allow_patterns=["README.md", HEADER_FILE] + [f"{name}/*" for name in owned],
            delete_patterns=[HEADER_FILE] + [f"{name}/*" for name in owned],
            prepare=prepare,
            what_uploads=str(folder),
            retry_hint=(f"The exported folder is intact at {folder}. Retry with:\n    {command}\nor from Python: hf_txray.hub.push_folder({str(folder)!r}, {repo_id!r}"
                        f"{kwargs})" + (f"\n{note}" if (note := token_retry_note(token)) else "")))
    logger.info("Pushed %s to %s", folder, shown_url(info.commit_url))
    for warning in dropped:
        logger.warning(warning)
    return info


@contextlib.contextmanager
def _staged_copy(folder: Path, repo_id: str, revision: str | None) -> Iterator[Path]:
    """A linked copy of the export `folder` whose README is a file of its own, its loading and reproduce examples
    naming `repo_id` at `revision` (:func:`~hf_txray.card.naming_repo`: the folder's card names the repo and branch it
    was exported for, or a placeholder): merging the repo's card into the README (carry_remote_card) wrote into the
    user's folder, so a retry or a push of the folder to another repo carried that repo's card along (its text twice,
    or its configs declared where their files are not)."""
    with tempfile.TemporaryDirectory(prefix="hf_txray-push-") as tmp:
        staged = Path(tmp) / folder.name
        shutil.copytree(folder, staged, copy_function=link_or_copy)
        readme = staged / "README.md"
        if readme.is_file():  # a hard link would be written through
            readme.unlink()
            text = (folder / "README.md").read_text(encoding="utf-8")
            readme.write_text(naming_repo(text, repo_id, revision), encoding="utf-8")
        yield staged


def push_to_hub(
    repo_id: str,
    profiles: Any = None,
    reports: Any = None,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    license: str | None = None,
    pretty_name: str | None = None,
    local_dir: str | Path | None = None,
    plots: bool = True,
    revision: str | None = None,
) -> huggingface_hub.CommitInfo:
    """Push an analysis (profiles and transfer reports) to the Hub as a dataset repo with a dataset card.

    Everything is checked before anything is uploaded: the repo id, the inputs (no empty profile), the token,
    and that every config of the written folder loads with ``datasets.load_dataset``. A report whose profiles are
    not pushed with it is pushed anyway; a warning (and the card) names the missing stages. Local model and data
    paths are uploaded as the card shows them (relative to the current directory, or their last component), never
    whole: :func:`hf_txray.layout.public_folder`.

    Args:
        repo_id (`str`): ``namespace/name`` of the dataset repo (``name`` alone: the token's user).
        profiles (`Profile`, `list[Profile]` or `dict[str, Profile]`, *optional*): the stages (a dict keyed by stage,
            as :func:`load` returns them).
        reports (`TransferReport`, `list` or `dict`, *optional*): the comparisons (a dict keyed by report name).
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created repo.
        token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login. Never written anywhere.
        commit_message (`str`, *optional*): the commit's title.
        license (`str`, *optional*): a Hub license id for the card, e.g. ``"apache-2.0"``.
        pretty_name (`str`, *optional*): the card's title.
        local_dir (`str` or `Path`, *optional*): where to write the folder; it is kept. By default a folder under
            the hf_txray cache, removed after a successful upload and kept after a failed one.
        plots (`bool`, *optional*, defaults to `True`): draw the key figures into ``plots/`` and the card.
        revision (`str`, *optional*): the branch to commit to (created from the default branch when missing), e.g.
            the branch of the model the results describe; defaults to the default branch. A tag of the repo is
            refused before the upload (a commit cannot go to a tag).

    Returns:
        `huggingface_hub.CommitInfo`: the commit (``.commit_url``, ``.oid``).

    Raises:
        ConfigurationError: invalid repo id, nothing to push, duplicate stage names, an empty profile.
        HubError: no token, or the upload failed (the message says how to retry from the kept folder).

    Example:
        ```python
        >>> report = hf_txray.compare(pretrained, finetuned)
        >>> hf_txray.push_to_hub("my-user/minilm-txray", profiles=[pretrained, finetuned], reports=[report],
        ...                      license="apache-2.0")
        ```
    """
    check_repo_id(repo_id)
    check_card_options(revision=revision, license=license, pretty_name=pretty_name)
    check_hub_text("commit_message", commit_message)
    # before the token is read or anything written: private="no" went on to create_repo, plots="no" drew them
    private, plots = check_switch("private", private), check_switch("plots", plots)
    by_stage, by_name = collect(profiles, reports)
    token = resolve_token(token)
    for name, absent in missing_profiles(by_stage, by_name).items():
        logger.warning("Report %s compares stage(s) %s whose profiles are not being pushed: pushing the report "
                       "without them (pass profiles=[...] to include them).", name, ", ".join(map(repr, absent)))
    repo_id = full_repo_id(repo_id, token)
    folder = Path(local_dir) if local_dir is not None else default_local_dir(repo_id)
    save_to_disk(folder, by_stage, by_name, repo_id=repo_id, license=license, pretty_name=pretty_name,
                 plots=plots, revision=revision)
    message = commit_message or (f"Upload TX-Ray results: {len(by_stage)} profile(s), {len(by_name)} report(s) "
                                 f"(hf_txray {__version__})")
    info = push_folder(folder, repo_id, private=private, token=token, commit_message=message, revision=revision)
    if local_dir is None:
        from .export import remove_folder

        remove_folder(folder)
    return info


def saved_results(path: str | Path) -> tuple[list[Profile], list[TransferReport]]:
    """Every profile and report saved with ``save_pretrained`` under `path` (checkpoints skipped)."""
    from .profile import Profile
    from .report import TransferReport

    return ([Profile.from_pretrained(p) for p in saved_artifacts(path, Profile.artifact_type)],
            [TransferReport.from_pretrained(p) for p in saved_artifacts(path, TransferReport.artifact_type)])


def push_from_disk(path: str | Path, repo_id: str, **kwargs: Any) -> huggingface_hub.CommitInfo:
    """Push a folder: an export (:func:`push_folder`) as it is, else every profile and report saved under it.

    Backs ``hf-txray push REPO_ID DIR``. Keyword arguments go to :func:`push_folder` or :func:`push_to_hub`
    (``license`` and ``pretty_name`` only apply to saved profiles and reports: an export already has its card).

    Example:
        ```python
        >>> push_from_disk("results/demo", "my-user/minilm-txray", private=True)
        ```
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigurationError(f"{path} is not a folder.")
    check_card_options(revision=kwargs.get("revision"), license=kwargs.get("license"),  # before the folder is read
                       pretty_name=kwargs.get("pretty_name"))
    if is_export_folder(path):
        _warn_card_options_not_held(path, {name: kwargs.pop(name, None) for name in ("license", "pretty_name")})
        return push_folder(path, repo_id, **kwargs)
    profiles, reports = saved_results(path)
    if not profiles and not reports:
        raise ConfigurationError(f"Nothing to push in {path}: no export folder (hf_txray.save_to_disk) and no saved "
                                 "profile or report (save_pretrained) under it.")
    return push_to_hub(repo_id, profiles=profiles, reports=reports, **kwargs)


def _warn_card_options_not_held(path: Path, given: dict[str, Any]) -> None:
    """Warn, for the card options `given` for an export folder (whose card is written, and pushed as it is), about
    each value its card does not already hold, naming what the card says: an option the card already holds (the
    export was made with the same --license) is pushed as asked, and was wrongly said not to be applied."""
    from huggingface_hub import metadata_load

    readme = path / "README.md"
    card = (metadata_load(readme) if readme.is_file() else None) or {}
    differs = {name: value for name, value in given.items() if value is not None and card.get(name) != value}
    if not differs:
        return
    def held(name: str) -> str:
        return "none" if card.get(name) is None else repr(card[name])

    said = "; ".join(f"{name} {value!r} not applied (the card's {name}: {held(name)})"
                     for name, value in differs.items())
    logger.warning("%s is an export folder whose dataset card is already written: %s. Export again with `hf-txray "
                   "export ... %s` (hf_txray.save_to_disk(..., %s)) to change the card.", path, said,
                   shell_command(*(word for name, v in differs.items() for word in (f"--{name.replace('_', '-')}", v))),
                   ", ".join(f"{name}={value!r}" for name, value in differs.items()))


def load(repo_id_or_dir: str | Path, *, revision: str | None = None, token: str | bool | None = None) -> TXRayResults:
    """Load the profiles and reports of a results repo (or of a folder written by :func:`hf_txray.save_to_disk`).

    The round trip is exact: the loaded Profiles and TransferReports equal (``==``) the pushed ones.

    Args:
        repo_id_or_dir (`str` or `Path`): a local export folder, or a Hub dataset repo id.
        revision (`str`, *optional*): branch or commit of the repo (refused with a local folder).
        token (`str` or `bool`, *optional*): for private repos; defaults to ``HF_TOKEN`` / the saved login.

    Returns:
        `TXRayResults`: ``(profiles, reports)``, dicts by stage and by report name.

    Raises:
        ArtifactNotFoundError: a local path that does not exist.
        ConfigurationError: `revision` with a local folder (a folder is read as it is).
        HubError: the repo cannot be downloaded (missing, private without a token, network).
        ProfileFormatError: the folder or repo is not an hf_txray export.

    Example:
        ```python
        >>> profiles, reports = hf_txray.load("my-user/minilm-txray")
        >>> reports["pretrained->finetuned"].most_changed(5, "pos")
        ```
    """
    # the header too (one small file): a repo holding a pushed pruning plan or activations is said to hold one
    folder = local_or_download(repo_id_or_dir, revision=revision, token=token,
                               allow_patterns=[f"{name}/*.parquet" for name in CONFIGS + EXTRA_CONFIGS]
                               + [HEADER_FILE])
    call = ", ".join([repr(str(repo_id_or_dir))] + ([f"revision={revision!r}"] if revision else []))
    with naming_the_source(repo_id_or_dir, folder, revision, token, call_args=call):
        kind = artifact_type_of(folder)
        if kind in ("pruning_plan", "activations") and not (folder / "meta").is_dir():
            # a pruning plan or activations, saved without meta/ by design (read_folder said a file was deleted)
            raise ProfileFormatError(
                f"{folder} holds a saved hf_txray {kind.replace('_', ' ')}, not profiles or reports: load it with "
                f"hf_txray.{CLASS_OF_TYPE[kind]}.from_pretrained({str(folder)!r}).")
        return TXRayResults(*read_folder(folder))
