"""Deploying the viewer as a Hugging Face Space: ``spaces_app/`` plus a copy of this package, in one commit.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

SPACE_FILES = ("app.py", "README.md", "requirements.txt")


# ----- deploying the Space ---------------------------------------------------------------------------------------
def default_app_dir() -> Path:
    """``spaces_app/`` of the hf_txray checkout this package is imported from."""
    return Path(__file__).resolve().parents[2] / "spaces_app"


def set_space_datasets(readme: str, datasets: list[str], title: str | None = None) -> str:
    """The Space README with its YAML header's ``datasets:`` (and optionally ``title``) replaced."""
    import yaml

    match = re.match(r"^---\n(.*?)\n---\n?", readme, re.S)
    if not match:
        raise ConfigurationError("The Space README.md has no YAML header (--- ... ---).")
    header = yaml.safe_load(match.group(1)) or {}
    header["datasets"] = list(datasets)
    if title:
        header["title"] = title
    dumped = yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip()
    return f"---\n{dumped}\n---\n{readme[match.end():]}"


def stage_space(folder: str | Path, results_repo_id: str | None = None, app_dir: str | Path | None = None,
                title: str | None = None) -> Path:
    """Write the Space's files into `folder`: app.py, README.md (``datasets:`` set to `results_repo_id`),
    requirements.txt, and a copy of the ``hf_txray`` package (the Space imports it from its own root)."""
    app_dir = Path(app_dir) if app_dir is not None else default_app_dir()
    missing = [name for name in SPACE_FILES if not (app_dir / name).is_file()]
    if missing:
        raise ConfigurationError(f"{app_dir} lacks the Space file(s) {', '.join(missing)}; pass app_dir= the "
                                 "spaces_app folder of an hf_txray checkout.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(app_dir / name, folder / name)
    readme = (app_dir / "README.md").read_text(encoding="utf-8")
    if results_repo_id:
        from ..hub import check_repo_id

        readme = set_space_datasets(readme, [check_repo_id(results_repo_id)], title)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    package = Path(__file__).resolve().parents[1]
    shutil.copytree(package, folder / "hf_txray", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return folder


def deploy_space(space_repo_id: str, results_repo_id: str | None = None, *, token: str | None = None,
                 private: bool = False, app_dir: str | Path | None = None, title: str | None = None,
                 commit_message: str | None = None) -> "CommitInfo":
    """Create (or update) a Gradio Space that browses `results_repo_id`, in one commit.

    hf_txray is not on PyPI, so the Space carries it: the upload holds ``app.py``, ``README.md`` (its YAML
    ``datasets:`` names the results repo, which the app opens by default), ``requirements.txt`` (hf_txray's
    dependencies) and a copy of the ``hf_txray`` package folder. Files of an earlier deploy under ``hf_txray/``
    that the package no longer has are deleted; other files of the Space are left alone.

    Args:
        space_repo_id (`str`): ``namespace/name`` of the Space (created with ``sdk: gradio`` when missing).
        results_repo_id (`str`, *optional*): the results dataset repo the Space opens by default (the app's
            ``?repo=`` parameter and text box still open others).
        token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login.
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created Space. A Space that
            opens a private results repo needs the ``HF_TOKEN`` secret set in its settings.
        app_dir (`str` or `Path`, *optional*): the ``spaces_app`` folder (default: the one of this checkout).
        title (`str`, *optional*): the Space's title in its README header.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Example:
        ```python
        >>> from hf_txray.viewer import deploy_space
        >>> deploy_space("my-user/minilm-txray-viewer", "my-user/minilm-txray")
        ```
    """
    from huggingface_hub import HfApi

    from ..errors import HubError
    from ..hub import check_repo_id, resolve_token, scrub

    check_repo_id(space_repo_id)
    token = resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="hf_txray-space-") as tmp:
        folder = stage_space(Path(tmp) / "space", results_repo_id, app_dir, title)
        api = HfApi(token=token)
        try:
            repo_id = api.create_repo(space_repo_id, repo_type="space", space_sdk="gradio", private=private,
                                      exist_ok=True).repo_id
            return api.upload_folder(
                repo_id=repo_id, repo_type="space", folder_path=folder,
                commit_message=commit_message or f"Deploy the hf_txray viewer for {results_repo_id or 'results'}",
                delete_patterns=["hf_txray/**"],
            )
        except Exception as err:
            raise HubError(f"Deploying the Space {space_repo_id!r} failed: {scrub(str(err), token)}") from None
