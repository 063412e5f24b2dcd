import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest

import hf_txray.logging

hf_txray.logging.enable_propagation()  # hf_txray's records also reach the root logger, where caplog listens

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Annotation cache in a per-session temp dir, never the user's."""
    monkeypatch.setenv("HF_TXRAY_CACHE", str(tmp_path_factory.getbasetemp() / "txray-cache"))


@pytest.fixture(scope="session")
def saved_bert(tmp_path_factory) -> Path:
    """The tiny BERT of tests/models.py with its tokenizer, saved to a folder (loaded by path, as users do)."""
    from models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def hf_argument_parser():
    """``transformers.HfArgumentParser(dataclass_types)``, the field types of those dataclasses put back after the
    test: the parser rewrites each parsed dataclass's ``Field.type`` in place (annotations resolved, ``str | None``
    -> ``str``), and those of TXRayArguments (and the TrainingArguments fields it shares) stayed rewritten for every
    later test of the worker."""
    import dataclasses

    from transformers import HfArgumentParser

    saved = []

    def make(dataclass_types):
        for cls in dataclass_types if isinstance(dataclass_types, (list, tuple)) else [dataclass_types]:
            saved.extend((f, f.type) for f in dataclasses.fields(cls))
        return HfArgumentParser(dataclass_types)

    yield make
    for f, declared in reversed(saved):
        f.type = declared


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
