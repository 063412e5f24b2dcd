"""The viewer as a Hugging Face Space: the Space's files (``app.py``, a ``README.md`` built with huggingface_hub's
``SpaceCard``, ``requirements.txt``, ``packages.txt``) are written from here, so a wheel install deploys as a
checkout does; the checked-in ``spaces_app/`` folder is what :func:`write_space_files` writes (a test keeps them equal).
:func:`deploy_space` uploads them with a copy of this package, in one commit.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import huggingface_hub  # lazy: CommitInfo and SpaceCard (annotations) load on use

from ..errors import ConfigurationError

SPACE_FILES = ("app.py", "README.md", "requirements.txt", "packages.txt")
# Files a custom `app_dir` must hold (packages.txt is optional there: app folders made before it existed lack it).
REQUIRED_APP_FILES = ("app.py", "README.md", "requirements.txt")
EXAMPLE_RESULTS = "my-user/minilm-txray"  # the results repo named by the checked-in spaces_app/README.md
GRADIO_VERSION = "6.31.0"  # sdk_version when gradio is not installed (the version the viewer is tested with)

# The Space's app.py: a launcher of the app shipped in the package (as evaluate's metric Spaces launch theirs).
APP_PY = '''"""hf_txray neuron viewer on a Hugging Face Space: the app ships in hf_txray (``hf_txray.viewer.app``); see README.md.

``hf_txray.viewer.deploy_space`` uploads this file next to a copy of the package, which is imported from here.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if (HERE / "hf_txray" / "__init__.py").is_file():  # on a Space: the copy uploaded by deploy_space
    sys.path.insert(0, str(HERE))

from hf_txray.viewer.app import build_demo  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
'''

REQUIREMENTS_TXT = """\
# The Space's Python dependencies. gradio itself comes from the README's `sdk_version`.
# hf_txray is not on PyPI: hf_txray.viewer.deploy_space uploads the package folder next to app.py, and app.py imports
# it from there; these are its dependencies (pyproject.toml), which `import hf_txray` needs (it imports torch).
# The CPU build of torch is enough for the viewer and much smaller than the default CUDA build.
--extra-index-url https://download.pytorch.org/whl/cpu
torch>=2.6
transformers>=5,<6
datasets>=5
huggingface_hub>=1.0
accelerate>=1.0
evaluate>=0.4
spacy>=3.7
numpy>=1.26
pandas>=2.1
pyarrow>=15
safetensors>=0.4
tqdm>=4.66
matplotlib>=3.8
scipy>=1.11
scikit-learn>=1.3
tabulate>=0.9
regex>=2023.0
xxhash>=2
filelock>=3.8
# imported by the app (hf_txray.viewer.app)
pyyaml>=6
"""

README_BODY = """
# hf_txray neuron viewer

A viewer for [TX-Ray](https://arxiv.org/abs/1912.00982) results made with
hf_txray (`hf_txray.push_to_hub`): which inputs make each MLP neuron of a language model the
most active unit, and how those preferences moved between training stages.

- **Overview**: model, corpus and stages; the per-layer summary of a transfer report; the paper's figures (Hellinger
  distance vs Hellinger length, length shift, POS mass share vs corpus frequency, per-neuron mass).
- **Neuron**: a neuron's status and stats per stage, its POS / token / word distributions for stage A and B side by
  side, its Hellinger distance, and its top activating examples with the winning token highlighted.
- **Search**: which neurons prefer a token, word or tag (by probability or mass); neurons lost or gained; neurons
  in a Hellinger range.
- **Transfer**: the most and least changed neurons of a stage pair; click a row to open the neuron.

The app opens the first dataset of this README's `datasets:` list (set by `hf_txray.viewer.deploy_space`; at the
revision its `txray_source: namespace/name@revision` names, when set), the `TXRAY_REPO` variable when set, or the repo
in the URL: `?repo=namespace/name`. Any other results repo can be typed
in the text box. For a private results repo, add an `HF_TOKEN` secret in the Space settings.

## How this Space is made

The app ships in the hf_txray package (`hf_txray.viewer.app`); this Space's `app.py` only imports and launches it.
hf_txray is not on PyPI, so the Space carries a copy of the package: `hf_txray.viewer.deploy_space(space_repo_id,
results_repo_id)` uploads `app.py`, this README (a `huggingface_hub.SpaceCard` whose `datasets:` names the results
repo), `requirements.txt` (hf_txray's dependencies), `packages.txt` (a CJK font, so the figures draw Chinese,
Japanese and Korean tokens) and the `hf_txray/` package folder, in one commit. Locally, the same app runs with
`hf-txray view DIR_OR_REPO [--port PORT]`.
"""


def gradio_version() -> str:
    """The installed gradio's version (the Space runs what was tested), else :data:`GRADIO_VERSION`."""
    from ..provenance import installed_version

    return installed_version("gradio") or GRADIO_VERSION


def space_card(datasets: list[str], title: str | None = None, source: str | None = None) -> huggingface_hub.SpaceCard:
    """The Space's README as a ``huggingface_hub.SpaceCard``: YAML header (sdk, app file, the results repos it opens
    in ``datasets:``, and `source`, the first of them at a revision, when pinned: see :func:`results_source`) and the
    body above."""
    from huggingface_hub import SpaceCard, SpaceCardData

    from ..card import SPACE_SOURCE_KEY, TAGS

    data = SpaceCardData(
        title=title or "hf_txray neuron viewer", emoji="🩻", colorFrom="blue", colorTo="yellow", sdk="gradio",
        sdk_version=gradio_version(), python_version="3.11", app_file="app.py", pinned=False, license="apache-2.0",
        short_description="Browse TX-Ray neuron profiles and transfer reports",
        tags=list(TAGS), datasets=list(datasets), **({SPACE_SOURCE_KEY: source} if source else {}))
    return SpaceCard(f"---\n{data.to_yaml()}\n---\n{README_BODY}")


def results_source(results_repo_id: str) -> tuple[str, str | None]:
    """A Space's results repo as ``(repo id, source)``: `results_repo_id` may name a revision (``owner/name@rev``, a
    branch, tag or commit, as the viewer opens it), which the README's ``datasets:`` cannot hold (the Hub links
    repo ids there), so the README names the repo id in ``datasets:`` and the whole ``owner/name@rev`` under
    ``txray_source`` (None when no revision is named), which the app opens (:func:`~hf_txray.viewer.app.default_source`).
    A branch spelt ``refs/heads/exp`` is named as the repo lists it, ``exp`` (:func:`~hf_txray.hub_io.branch_name`).

    Raises:
        ConfigurationError: not a Hub repo id, or a malformed revision.
    """
    from ..hub_io import branch_name, check_repo_id
    from .data import split_revision

    if not isinstance(results_repo_id, str):
        check_repo_id(results_repo_id)  # refused with its message
    repo, revision = split_revision(results_repo_id)
    revision = branch_name(revision)
    if revision == "":  # "refs/heads/" names no branch: the Space's README read "owner/name@", which its app refuses
        raise ConfigurationError(f"The results source {results_repo_id!r} names no branch after 'refs/heads/': give "
                                 "the branch, e.g. 'owner/name@refs/heads/exp' or 'owner/name@exp'.")
    check_repo_id(repo)
    return repo, (f"{repo}@{revision}" if revision is not None else None)


# Debian packages the Space installs (apt) before the app starts: a CJK font, which the figures' text falls back to
# (hf_txray.plots.FALLBACK_FONTS) for the tokens of Chinese, Japanese and Korean text; without it they are boxes.
PACKAGES_TXT = "fonts-noto-cjk\n"


def set_space_datasets(readme: str, datasets: list[str], title: str | None = None, source: str | None = None) -> str:
    """The Space README with its YAML header's ``datasets:`` (and optionally ``title``) replaced, and its
    ``txray_source`` set to `source` (a repo at a revision, :func:`results_source`), or removed when None."""
    from ..card import space_card as card_from_template

    return str(card_from_template(readme, datasets, title, source))


def write_space_files(folder: str | Path, results_repo_id: str | None = EXAMPLE_RESULTS,
                      title: str | None = None) -> Path:
    """Write the Space's own files into `folder`: ``app.py``, ``README.md`` (its ``datasets:`` naming
    `results_repo_id`), ``requirements.txt`` and ``packages.txt`` (a CJK font for the figures). ``spaces_app/`` of the
    repository is this with the defaults."""
    repo, source = results_source(results_repo_id) if results_repo_id else (None, None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP_PY, encoding="utf-8")
    (folder / "requirements.txt").write_text(REQUIREMENTS_TXT, encoding="utf-8")
    (folder / "packages.txt").write_text(PACKAGES_TXT, encoding="utf-8")
    (folder / "README.md").write_text(str(space_card([repo] if repo else [], title, source)), encoding="utf-8")
    return folder


def stage_space(folder: str | Path, results_repo_id: str | None = None, app_dir: str | Path | None = None,
                title: str | None = None) -> Path:
    """Write the Space into `folder`: its files (:func:`write_space_files`, or those of `app_dir` when given, with
    the README's ``datasets:`` set to `results_repo_id`) and a copy of the ``hf_txray`` package (the Space imports it
    from its own root)."""
    folder = Path(folder)
    if app_dir is None:
        write_space_files(folder, results_repo_id, title)
    else:
        app_dir = Path(app_dir)
        missing = [name for name in REQUIRED_APP_FILES if not (app_dir / name).is_file()]
        if missing:
            raise ConfigurationError(f"{app_dir} lacks the Space file(s) {', '.join(missing)}; pass an app_dir "
                                     "holding app.py, README.md and requirements.txt, or none for the built-in ones.")
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("app.py", "requirements.txt", "packages.txt"):
            if (app_dir / name).is_file():  # packages.txt is optional
                shutil.copy2(app_dir / name, folder / name)
        readme = (app_dir / "README.md").read_text(encoding="utf-8")
        if results_repo_id:
            repo, source = results_source(results_repo_id)
            readme = set_space_datasets(readme, [repo], title, source)
        (folder / "README.md").write_text(readme, encoding="utf-8")
    package = Path(__file__).resolve().parents[1]
    shutil.copytree(package, folder / "hf_txray", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return folder


def deploy_space(space_repo_id: str, results_repo_id: str | None = None, *, token: str | None = None,
                 private: bool = False, app_dir: str | Path | None = None, title: str | None = None,
                 commit_message: str | None = None) -> huggingface_hub.CommitInfo:
    """Create (or update) a Gradio Space that browses `results_repo_id`, in one commit.

    hf_txray is not on PyPI, so the Space carries it: the upload holds ``app.py``, ``README.md`` (its YAML
    ``datasets:`` names the results repo, which the app opens by default), ``requirements.txt`` (hf_txray's
    dependencies), ``packages.txt`` (a CJK font for the figures) and a copy of the ``hf_txray`` package folder. Files
    of an earlier deploy under ``hf_txray/`` that the package no longer has are deleted; other files of the Space are
    left alone.

    Args:
        space_repo_id (`str`): ``namespace/name`` of the Space (created with ``sdk: gradio`` when missing).
        results_repo_id (`str`, *optional*): the results dataset repo the Space opens by default (the app's
            ``?repo=`` parameter and text box still open others); ``owner/name@revision`` opens it at a branch, tag
            or commit (the README's ``datasets:`` names the repo, its ``txray_source`` the revision).
        token (`str`, *optional*): defaults to ``HF_TOKEN``, then the saved login.
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created Space; into a Space that
            exists and is public, refused before the upload. A Space that opens a private results repo needs the
            ``HF_TOKEN`` secret set in its settings.
        app_dir (`str` or `Path`, *optional*): a folder with a customised app.py, README.md and
            requirements.txt, and optionally packages.txt (default: the built-in ones, :func:`write_space_files`).
        title (`str`, *optional*): the Space's title in its README header.
        commit_message (`str`, *optional*): the commit's message (default: ``"Deploy the hf_txray viewer for
            <results repo>"``).

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Raises:
        ConfigurationError: `space_repo_id` is not a valid repo id, `app_dir` lacks a Space file, or `private=True`
            names a Space that exists and is public (before the upload).
        HubError: creating the Space or uploading to it failed.

    Example:
        ```python
        >>> from hf_txray.viewer import deploy_space
        >>> deploy_space("my-user/minilm-txray-viewer", "my-user/minilm-txray")
        ```
    """
    from huggingface_hub import HfApi

    from ..errors import HubError
    from ..hub_io import check_repo_id, refuse_public_repo, resolve_token
    from ..redaction import scrub

    check_repo_id(space_repo_id)
    token = resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="hf_txray-space-") as tmp:
        folder = stage_space(Path(tmp) / "space", results_repo_id, app_dir, title)
        repo, source = results_source(results_repo_id) if results_repo_id else ("results", None)
        api = HfApi(token=token)
        try:
            repo_id = api.create_repo(space_repo_id, repo_type="space", space_sdk="gradio", private=private,
                                      exist_ok=True).repo_id
            if private:
                refuse_public_repo(api, repo_id, repo_type="space")
            return api.upload_folder(
                repo_id=repo_id, repo_type="space", folder_path=folder,
                commit_message=commit_message or f"Deploy the hf_txray viewer for {source or repo}",
                delete_patterns=["hf_txray/**"],
            )
        except ConfigurationError:  # refused before the upload
            raise
        except Exception as err:
            raise HubError(f"Deploying the Space {space_repo_id!r} failed: {scrub(str(err), token)}") from None
