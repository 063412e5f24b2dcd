"""What a profile was computed from, pinned: the model and corpus sources, the options, the versions.

Every profile's ``meta.provenance`` holds one record (a JSON-able dict) with four parts:

- ``model``: a :class:`ModelSource`. Hub ids are pinned to a commit sha (and list the blob ids of the weight,
  config and tokenizer files at that commit); local folders to a *content hash*; loaded objects keep their id.
- ``dataset``: a :class:`DatasetSource`. Hub datasets are pinned to a commit, config, split and the data files
  read (with their blob ids); local files and folders to a content hash; in-memory texts to a hash of the texts.
  Every source also records ``texts_hash``, the hash of the texts actually profiled (after ``num_samples``); a
  stream (``streaming=True``) is hashed as it passes through the engine, so only when one process read it from its
  start to its end (not with ``max_positions`` stopping it early, nor split over several processes, nor resumed).
- ``options``: the whole :class:`~hf_txray.ProfilerConfig` as a dict (every field, so options added to it later
  are recorded without changes here), plus the load options (``dtype``, ``device``, ``model_kwargs``...).
- ``versions``: hf_txray, transformers, torch, datasets, spaCy and the spaCy model used for tags.

Hash definitions (sha256, written ``"sha256:<hex>"``, unless said otherwise):

- a file: the sha256 of its bytes;
- a set of files (a model folder, a data folder): the sha256 of the lines ``"<relative path>\\0<file sha256>\\n"``
  sorted by path. For a model folder the files are its weight, config and tokenizer files
  (:data:`MODEL_FILE_PATTERNS`, top level only); for a data folder every file under it except hidden ones;
- texts: the sha256 over the texts in order, each as an 8-byte little-endian length then its UTF-8 bytes;
- a loaded model's weights (``runtime``): :func:`weights_sample_hash`, the sha256 of a sample of each tensor
  (``"sample-sha256:<hex>"``), and where TXRayCallback records it, :func:`weights_full_hash`, of every byte, with
  xxh3-128 (``"xxh3-128:<hex>"``; hf_txray recorded ``"sha256:<hex>"`` there before, still compared).

:func:`hf_txray.reproduce` reads this record back.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Callable, Mapping

import xxhash

from .architectures import neuron_architecture
from .hashes import file_sha256
from .redaction import redact_record
from .tables import code_span  # public_label: a name with a backtick in it ended a one-backtick span early

PROVENANCE_SCHEMA = 1
MODEL_FILE_PATTERNS = (
    "*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.gguf", "*.pt", "*.pth",
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "*.model", "*.tiktoken", "adapter_config.json",
)  # fmt: skip


# ----- hashes -----------------------------------------------------------------------------------------------------
WEIGHT_SAMPLES = 64  # values read from each weight tensor by weights_sample_hash


# Modules that read only an encoder's last hidden state (BERT-style poolers), so they change no MLP activation;
# AutoModel re-initialises a pooler at random when the folder was saved without one (add_pooling_layer=False).
UNPROFILED_MODULES = frozenset({"pooler"})


def weights_sample_hash(model: Any) -> str:
    """A cheap fingerprint of a loaded model's weights: the sha256 over each parameter and buffer's name, dtype,
    shape and `WEIGHT_SAMPLES` values evenly spaced through it (as float64 bytes), in ``named_parameters`` then
    ``named_buffers`` order. Weights inside a module named as in :data:`UNPROFILED_MODULES` are left out: two loads
    of a folder saved without a pooler would otherwise hash apart (each draws a new random pooler), though the
    activations profiled are the same.

    It reads a few KB whatever the model's size (a full hash would read every weight again), so it tells apart
    another initialisation, another fine-tune or weights replaced on disk, not a change confined to values it does
    not sample (:func:`weights_full_hash` does). Weights on the ``meta`` device (offloaded) contribute their name,
    dtype and shape only. The PEFT adapter layers' state (:func:`peft_adapter_states`: which adapters run, or none)
    is hashed too.

    Returns:
        `str`: ``"sample-sha256:<hex>"``.
    """
    import torch

    def sampled(flat: Any) -> bytes:
        # Integer spacing: a float linspace rounds numel - 1 up to numel for tensors past 2**24 values.
        count = min(WEIGHT_SAMPLES, flat.numel())
        index = torch.arange(count, device=flat.device) * (flat.numel() - 1) // max(count - 1, 1)
        return flat[index].to(device="cpu", dtype=torch.float64).numpy().tobytes()

    return "sample-sha256:" + _weights_digest(model, sampled, b"unsampled\n")


# The hash functions a full weights hash may be recorded with, by the prefix written before its hex digest: xxh3-128
# (helper 382: 0.036 s on GPT-2 small's 124M float32 parameters on one CPU core, sha256 0.37 s), and sha256, which
# hf_txray recorded before (still compared, so those snapshots keep every byte compared).
FULL_HASHES: dict[str, Callable[[], Any]] = {"xxh3-128": xxhash.xxh3_128, "sha256": hashlib.sha256}
FULL_HASH_KIND = "xxh3-128"  # the one recorded now


def weights_full_hash(model: Any, kind: str = FULL_HASH_KIND) -> str:
    """A fingerprint of every byte of a loaded model's weights: as :func:`weights_sample_hash` (same tensors, names,
    dtypes, shapes, adapter states), over each tensor's whole contents in its own dtype instead of a sample, so a
    change to any value tells the weights apart. It reads every weight (on GPT-2 small's 124M float32 parameters,
    about 0.04 s on one CPU core with xxh3-128, 0.4 s with sha256, helper 382; a GPU model's are copied to the CPU a
    tensor at a time). A tensor that cannot be read as bytes (a quantized or sharded subclass) contributes its name,
    dtype and shape only.

    Args:
        kind (`str`, *optional*, defaults to `"xxh3-128"`): the hash function, a key of :data:`FULL_HASHES` (compare
            a recorded hash with one of its own kind, :func:`full_hash_kind`).

    Returns:
        `str`: ``"<kind>:<hex>"``, ``"xxh3-128:<32 hex digits>"`` by default.
    """
    import torch

    def every_byte(flat: Any) -> memoryview:
        return memoryview(flat.to(device="cpu").contiguous().view(torch.uint8).numpy())

    return f"{kind}:" + _weights_digest(model, every_byte, b"unread\n", FULL_HASHES[kind])


def full_hash_kind(recorded: Any) -> str | None:
    """The kind of a recorded :func:`weights_full_hash` (``"xxh3-128"``, ``"sha256"``), None where it is not one this
    hf_txray computes (the caller then compares the weights sample hash instead: hashes of two kinds never match)."""
    kind = recorded.partition(":")[0] if isinstance(recorded, str) and ":" in recorded else None
    return kind if kind in FULL_HASHES else None


def _weights_digest(model: Any, values: Callable[[Any], Any], unreadable: bytes,
                    hasher: Callable[[], Any] = hashlib.sha256) -> str:
    """The hex digest (`hasher`'s, sha256 by default) of `model`'s weights, as :func:`weights_sample_hash` describes,
    each non-empty tensor (flattened, detached) contributing ``values(flat)``, or `unreadable` where it cannot be
    read."""
    digest = hasher()
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, tensor in tensors:
        if not UNPROFILED_MODULES.isdisjoint(name.split(".")[:-1]):
            continue
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        try:
            digest.update(values(tensor.detach().reshape(-1)))
        except (RuntimeError, TypeError):  # a tensor subclass (quantized, sharded) without indexing or casting
            digest.update(unreadable)
    # A model holding several adapters runs the active ones only (set_adapter, disable_adapter()): the same tensors
    # then compute another function, so probes and means of one adapter must not match the model under another.
    for name, state in peft_adapter_states(model):
        if UNPROFILED_MODULES.isdisjoint(name.split(".")):
            digest.update(f"adapters|{name}|{state}\n".encode())
    return digest.hexdigest()


def peft_adapter_states(model: Any) -> list[tuple[str, str]]:
    """``(module name, state)`` of every PEFT adapter layer of `model` (LoRA, IA3... wrappers, `modules_to_save`
    copies), where state names the adapters that layer runs (``"active=a,b"``) or ``"disabled"`` (inside peft's
    ``disable_adapter()``). Read by duck typing, so peft need not be installed: a layer whose ``active_adapters`` is a
    list (transformers models have a method of that name) and ``disable_adapters`` a bool.

    Returns:
        `list[tuple[str, str]]`: empty for a model without adapter layers.
    """
    states = []
    for name, module in model.named_modules():
        active, disabled = getattr(module, "active_adapters", None), getattr(module, "disable_adapters", None)
        if isinstance(disabled, bool) and isinstance(active, (list, tuple, str)):
            active = [active] if isinstance(active, str) else list(active)
            states.append((name, "disabled" if disabled else "active=" + ",".join(map(str, active))))
    return states


def adapter_record(config: Mapping[str, Any], active: bool) -> dict[str, Any]:
    """What a provenance record keeps of one PEFT adapter's config (an ``adapter_config.json`` as a dict, or a
    ``PeftConfig``'s ``to_dict()``): its type, rank, target modules and the base model it was made for (its own
    ``base_model_name_or_path``, which may differ from the model it runs on), and whether it runs (`active`). Nothing
    else of the config (no revision, no training options) is recorded."""
    kind = config.get("peft_type")
    targets = config.get("target_modules")
    if isinstance(targets, (set, frozenset, list, tuple)):
        targets = sorted(str(t) for t in targets)
    base = config.get("base_model_name_or_path")
    rank = config.get("r")
    return {"peft_type": None if kind is None else str(getattr(kind, "value", kind)),
            "r": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
            "target_modules": targets if isinstance(targets, (str, list)) else None,
            "base_model_name_or_path": base if isinstance(base, str) and base else None, "active": bool(active)}


def peft_adapters(model: Any) -> dict[str, dict[str, Any]] | None:
    """``{adapter name: adapter_record}`` of the PEFT adapters a loaded model holds (a ``PeftModel``, a transformers
    model with adapters from ``load_adapter``, or a model whose layers peft wrapped, then known by the names its
    layers run), None when it holds none. `active` is what its adapter layers run now
    (:func:`peft_adapter_states`; none inside ``disable_adapter()``), else the model's ``active_adapters``.
    """
    configs = getattr(model, "peft_config", None)
    configs = dict(configs) if isinstance(configs, Mapping) else {}
    states = peft_adapter_states(model)
    if not configs and not states:
        return None
    running = [name for _, state in states if state.startswith("active=") for name in state[7:].split(",") if name]
    if not states:  # adapters without layers of their own (refused by analyze, recorded all the same)
        listed = getattr(model, "active_adapters", None)
        running = list(listed) if isinstance(listed, (list, tuple)) else []
    names = list(dict.fromkeys([*configs, *running]))
    records = {}
    for name in names:
        config = configs.get(name)
        as_dict = config.to_dict() if callable(getattr(config, "to_dict", None)) else dict(config or {})
        records[str(name)] = adapter_record(as_dict, name in running)
    return records


def recorded_architecture(provenance: Mapping[str, Any] | None) -> str | None:
    """The architecture whose neurons a profile holds, from its provenance: the text model's ``model_type`` (a
    vision-language model's language model is the same neurons as that model alone: LLaVA's Llama), else the
    model's; None when not recorded."""
    runtime = (provenance or {}).get("runtime", {})
    return runtime.get("text_model_type") or runtime.get("model_type")


def compared_architectures(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str | None]:
    """The architectures of two profiles (their provenance `a` and `b`), to tell whether their neurons correspond:
    each text model's (:func:`recorded_architecture`) when both recorded one, else each model's own ``model_type``
    (a profile saved before the text model's was recorded: a LLaVA then was "llava", not "llama"), as
    :func:`~hf_txray.architectures.neuron_architecture` names it (Qwen2-VL's text model: "qwen2")."""
    runtimes = [(p or {}).get("runtime", {}) for p in (a, b)]
    key = "text_model_type" if all(r.get("text_model_type") for r in runtimes) else "model_type"
    return [neuron_architecture(r.get(key)) for r in runtimes]


def recorded_depths(*provenances: Mapping[str, Any] | None) -> list[int | None]:
    """The number of blocks (``num_hidden_layers`` of the text config) of each profile's model, None where not
    recorded (profiles saved before it was)."""
    return [(p or {}).get("runtime", {}).get("num_hidden_layers") for p in provenances]


def recorded_hidden_sizes(*provenances: Mapping[str, Any] | None) -> list[int | None]:
    """The residual width (``hidden_size`` of the profiled stack's config) of each profile's model, None where not
    recorded (profiles saved before it was)."""
    return [(p or {}).get("runtime", {}).get("hidden_size") for p in provenances]


# The config attribute on which ``prune(..., mode="remove")`` records what it removed (a JSON dict that
# save_pretrained writes to config.json and from_pretrained sets again): ``original_width`` (neurons per layer before
# any removal), ``kept`` (``{"layer": [original index of neuron 0, 1, ...]}``) and ``zeroed`` (``{"layer": [original
# indices]}``, the neurons ``uneven="zero"`` kept with a zero down-projection column). A profile records it as
# ``provenance["runtime"]["pruned"]``.
PRUNED_ATTRIBUTE = "hf_txray_pruned"


def pruning_record(model: Any) -> dict[str, Any] | None:
    """What ``mode="remove"`` removed from `model` (:data:`PRUNED_ATTRIBUTE` of its config, also after a reload),
    None for a model never pruned that way."""
    record = getattr(getattr(model, "config", None), PRUNED_ATTRIBUTE, None)
    return dict(record) if isinstance(record, Mapping) else None


def profiled_pruning(record: Mapping[str, Any] | None, site: str, module_pattern: str | None,
                     widths: Mapping[int, int]) -> dict[str, Any] | None:
    """The ``mode="remove"`` `record` of a model (:func:`pruning_record`) as a profile of `site` keeps it
    (``provenance["runtime"]["pruned"]``), None where the profiled units keep their numbers: the automatic MLP site's
    neurons are the units a removal renumbers; the automatic residual site's are the hidden units, which keep theirs;
    a `module_pattern` hooks the outputs (residual site) or the inputs (MLP site) of the modules it names, which are
    the renumbered units where as wide as the neurons the record kept in their layer (`widths`: ``{layer: hooked
    width}``), as the up projection's outputs and the down projection's inputs are, or twice as wide, as a fused
    ``[gate; up]`` projection's outputs are (Phi-3's ``gate_up_proj``, :data:`~hf_txray.pruning.remove.FUSED_GATE_UP`:
    a removed unit leaves both halves) (the record is then kept, also where such a width is the hidden size too: when
    unsure, the profile is not matched by number with the unpruned model's). A removal slices nothing else, so a
    module of another width (an up or query projection's input, the hidden units: helper 344) kept its units and
    their numbers."""
    if not record:
        return None
    if site == "mlp" and not module_pattern:
        return dict(record)
    kept = record.get("kept") or {}
    renumbered = module_pattern and any(width in (len(kept[str(layer)]), 2 * len(kept[str(layer)]))
                                        for layer, width in widths.items() if kept.get(str(layer)))
    return dict(record) if renumbered else None


def recorded_pruning(provenance: Mapping[str, Any] | None) -> tuple[bool, dict[str, Any] | None]:
    """``(recorded, record)`` of a profile's provenance: whether its runtime says if the model was pruned with
    ``mode="remove"`` (profiles saved before it was say nothing), and the record (None: not pruned, or a profile of
    units that ``mode="remove"`` does not renumber: :func:`profiled_pruning`)."""
    runtime = (provenance or {}).get("runtime", {})
    options = (provenance or {}).get("options") or {}
    if options.get("site", "mlp") != "mlp" and not options.get("module_pattern"):
        # hidden units keep their numbers: profiles saved before c52e137 recorded the MLP's record; a residual site
        # through a module_pattern keeps it where it hooks renumbered units (the up projection's outputs)
        return "pruned" in runtime, None
    return "pruned" in runtime, runtime.get("pruned")


def pruning_note(record: Mapping[str, Any] | None) -> str:
    """One sentence saying how a model pruned with ``mode="remove"`` numbers its neurons ("" when not pruned)."""
    if not record:
        return ""
    kept = record.get("kept") or {}
    first = next(iter(kept), None)
    width = len(kept[first]) if first is not None else None
    shown = ""
    if first is not None:
        listed = ", ".join(map(str, kept[first][:8])) + (", ..." if len(kept[first]) > 8 else "")
        shown = f" (layer {first}: kept = [{listed}])"
    zeroed = sum(len(v) for v in (record.get("zeroed") or {}).values())
    return (f"pruned model (hf_txray mode='remove'): {width} of {record.get('original_width')} neurons per layer "
            f"kept; neuron i is original neuron kept[i]{shown}, the lists in provenance['runtime']['pruned']['kept']"
            + (f"; {zeroed} more have a zeroed down-projection column (uneven='zero', provenance['runtime']['pruned']"
               "['zeroed']): they still activate and win credit, but change no output" if zeroed else ""))


def original_neuron(provenance: Mapping[str, Any] | None, layer: int, neuron: int) -> int | None:
    """The original index of `neuron` of `layer` in a profile of a model pruned with ``mode="remove"`` (its
    recorded ``kept`` list), None when the profile records no pruning of that layer."""
    kept = ((recorded_pruning(provenance)[1] or {}).get("kept") or {}).get(str(layer))
    return int(kept[neuron]) if kept is not None and 0 <= neuron < len(kept) else None


def pruning_difference(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, widths: tuple[int, int],
                       names: tuple[str, str] = ("a", "b"), layers: Any = None) -> str:
    """Why two profiles' (their provenance `a` and `b`, stages `names`) neurons of one number are not the same units
    because a model was pruned with ``mode="remove"`` ("" when nothing says so): their widths differ and one records
    pruning, or both record whether they were pruned and the records differ (other neurons removed, or one pruned
    and one not) in one of the profiled `layers` (default: all the records name; a block kept alike in both is the
    same units, whatever other blocks lost, as a masked model's blocks are the unmasked one's)."""
    (known_a, record_a), (known_b, record_b) = recorded_pruning(a), recorded_pruning(b)
    kept_a, kept_b = _kept(record_a, layers), _kept(record_b, layers)
    if not (kept_a or kept_b):  # neither renumbered a profiled layer (a mixture-of-experts block is never removed from)
        return ""
    if widths[0] == widths[1] and (not (known_a and known_b) or kept_a == kept_b):
        return ""  # the same pruning, or one profile saved before the record: nothing tells them apart
    return "; ".join(f"stage {name!r} is of a {pruning_note(record)}" if record else f"stage {name!r} is not pruned"
                     for name, record in zip(names, (record_a, record_b)))


def _kept(record: Mapping[str, Any] | None, layers: Any = None) -> Any:
    """``(original_width, kept)`` of a record, its ``kept`` restricted to `layers` (all when None); None when it
    renumbered none of them."""
    kept = (record or {}).get("kept") or {}
    if layers is not None:
        kept = {key: value for key, value in kept.items() if int(key) in {int(layer) for layer in layers}}
    return (record.get("original_width"), kept) if record and kept else None


def pruning_fingerprint(record: Mapping[str, Any] | None, layers: Any = None) -> str:
    """A short name for how a model numbers the neurons of `layers` (all the record names when None):
    ``"unpruned"``, or a hash of what ``mode="remove"`` kept there (its ``original_width`` and ``kept`` lists, not
    ``zeroed``: zeroed neurons keep their numbers). A plan records its source's over the profiled layers, so that it
    is refused on a model whose neurons of the same numbers are other units there, and taken on one pruned alike
    there, whatever other blocks lost (as :func:`pruning_difference` reads the profiled layers only)."""
    kept = _kept(record, layers)
    if kept is None:  # nothing renumbered in these layers
        return "unpruned"
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return "kept:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def tokenizer_vocab_hash(tokenizer: Any, *, drop_last: int = 0) -> str | None:
    """A fingerprint of a tokenizer's vocabulary (added tokens included): the sha256 over its ``(token, id)`` pairs
    in id order. Token features are the tokenizer's strings, so two profiles' token distributions describe the same
    units only when their vocabularies agree. None for an object without ``get_vocab``.

    Args:
        drop_last (`int`, *optional*, defaults to 0): leave out the tokens of the `drop_last` highest ids (the hash
            the vocabulary had before special tokens were added at its end: :func:`added_special_tokens_at_end`).

    Returns:
        `str` or `None`: ``"vocab-sha256:<hex>"``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust vocabulary: several times faster to read
    try:
        # a vocabulary only grows (add_tokens): the same object at the same length holds the same one
        key = (len(tokenizer), id(backend), drop_last)
        cached = _VOCAB_HASHES.get(tokenizer)
    except TypeError:  # no len, or not weakly referable
        key = cached = None
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        vocab = backend.get_vocab(with_added_tokens=True) if backend is not None else tokenizer.get_vocab()
    except (NotImplementedError, TypeError, AttributeError):
        return None
    pairs = sorted((i, t) for t, i in vocab.items())
    joined = "\n".join(f"{index}\0{token}" for index, token in pairs[:len(pairs) - drop_last])
    found = "vocab-sha256:" + hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()
    if key is not None and not drop_last:
        _VOCAB_HASHES[tokenizer] = (key, found)
    return found


# tokenizer -> ((its length, its backend's id, 0), its vocabulary hash): reading a 30k vocabulary briefly takes about
# 8 MB, which an extraction streamed to disk should not hold per call
_VOCAB_HASHES: "weakref.WeakKeyDictionary[Any, tuple[tuple[int, int, int], str]]" = weakref.WeakKeyDictionary()


def added_special_tokens_at_end(tokenizer: Any) -> list[str]:
    """The special tokens at the end of a tokenizer's vocabulary, highest id first, as ``add_special_tokens`` puts a
    pad token added for batching (GPT-2's ``{"pad_token": "[PAD]"}``): they split no text that does not hold them."""
    special = set(getattr(tokenizer, "all_special_tokens", None) or ())
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else 0
    found = []
    for index in range(size - 1, -1, -1):
        token = decoder.get(index)
        content = getattr(token, "content", None)
        if content is None or content not in special:
            break
        found.append(content)
    return found


def tokenizer_hash(tokenizer: Any) -> str | None:
    """A fingerprint of a whole fast tokenizer: the sha256 of its serialization (normalizer, pre-tokenizer, model
    with its vocabulary, post-processor, added tokens), which :func:`tokenizer_vocab_hash` does not see all of (a
    normalizer that no longer lower-cases tokenizes ``Apple`` into other tokens of the same vocabulary). None for a
    tokenizer without a Rust backend.

    Returns:
        `str` or `None`: ``"tokenizer-sha256:<hex>"``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    try:
        text = backend.to_str() if backend is not None else None
    except (AttributeError, TypeError, RuntimeError, ValueError):
        return None
    if not isinstance(text, str):
        return None
    # truncation and padding are the state of the last call (transformers sets them on the backend at every call),
    # not what the tokenizer does to a text: the same tokenizer hashed differently before and after encoding a batch.
    # The tokenizers library writes them first (version, truncation, padding, then added_tokens and the pipeline):
    # cut them off the text, as parsing a vocabulary's JSON took 3x the time of writing it (MiniLM: 32 against 10 ms)
    start = text.find('"added_tokens":')
    if text.startswith('{"version":') and start > 0:
        text = text[start:]
    else:  # another layout: parsed
        try:
            tokenizer_json = json.loads(text)
        except ValueError:
            return None
        if not isinstance(tokenizer_json, dict):
            return None
        tokenizer_json.pop("truncation", None)
        tokenizer_json.pop("padding", None)
        text = json.dumps(tokenizer_json, sort_keys=True, ensure_ascii=False)
    return "tokenizer-sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def files_hash(files: Mapping[str, str]) -> str:
    """The content hash of a set of files given as ``{relative path: sha256 of its bytes}``."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{files[path]}\n".encode())
    return "sha256:" + digest.hexdigest()


def is_model_file(name: str) -> bool:
    """Whether a (top-level) file of a model folder or repo changes what the model computes."""
    return "/" not in name and any(fnmatch.fnmatch(name, pattern) for pattern in MODEL_FILE_PATTERNS)


def model_folder_files(folder: str | Path) -> dict[str, str]:
    """``{name: sha256}`` of the weight, config and tokenizer files of a local model folder (a file: itself)."""
    folder = Path(folder)
    if folder.is_file():
        return {folder.name: file_sha256(folder)}
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and is_model_file(p.name)}


def data_path_files(path: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of a local data file, or of every non-hidden file under a data folder."""
    path = Path(path)
    if path.is_file():
        return {path.name: file_sha256(path)}
    found = {}
    for item in sorted(path.rglob("*")):
        relative = item.relative_to(path)
        if item.is_file() and not any(part.startswith(".") for part in relative.parts):
            found[relative.as_posix()] = file_sha256(item)
    return found


# ----- records ----------------------------------------------------------------------------------------------------
@dataclass
class ModelSource:
    """Where the profiled model came from.

    Args:
        kind (`str`): ``"hub"`` (a Hub id), ``"local"`` (a folder or file) or ``"object"`` (a loaded model).
        id (`str`, *optional*): the Hub id or the path (absolute), or an object's ``name_or_path``.
        requested_revision (`str`, *optional*): the branch, tag or sha asked for.
        commit (`str`, *optional*): the commit sha it resolved to (Hub), or an object's ``_commit_hash``.
        files (`dict[str, str]`): weight/config/tokenizer files: Hub blob ids (sha256 for LFS) or local sha256.
        content_hash (`str`, *optional*): :func:`files_hash` of local `files`.
        training_step (`int`, *optional*): set on Trainer snapshots: the weights were still being trained.
        base_model (`dict`, *optional*): for a PEFT adapter (a folder or repo with ``adapter_config.json`` and no
            ``config.json``), the pinned source of the base model it names, as a ``ModelSource`` dict.
        adapters (`dict`, *optional*): for a loaded model holding PEFT adapters (a ``PeftModel``...), each adapter's
            type, rank, target modules, own base model and whether it ran (:func:`peft_adapters`). Its weights exist
            in memory only, so :func:`hf_txray.reproduce` refuses such a record until it is pinned
            (:func:`hf_txray.pin_model`) to the saved adapter.
    """

    kind: str
    id: str | None = None
    requested_revision: str | None = None
    commit: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    content_hash: str | None = None
    training_step: int | None = None
    base_model: dict[str, Any] | None = None
    adapters: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DatasetSource:
    """Where the profiled texts came from.

    Args:
        kind (`str`): ``"hub"``, ``"local"`` (file or folder), ``"in-memory"`` (a list of strings) or ``"object"``
            (a ``datasets.Dataset`` passed directly).
        id (`str`, *optional*): the Hub id or the local path (absolute).
        requested_revision, commit (`str`, *optional*): as for :class:`ModelSource` (Hub only).
        config, split (`str`, *optional*): the dataset config and split read.
        data_files (`dict[str, str]`): the data files read: Hub blob ids (sha256 for LFS) or local sha256.
        content_hash (`str`, *optional*): :func:`files_hash` of local `data_files`; for in-memory texts their
            :func:`texts_hash`.
        text_column (`str`, *optional*), num_samples (`int`, *optional*), num_texts (`int`): what was profiled; for
            a stream, the texts read, or (when it was not read to its end in one process) the texts counted.
        text_column_detected (`bool`, defaults to `False`): `text_column` was chosen by :func:`hf_txray.analyze`
            among the dataset's columns, not passed (``False`` for a list of strings: it has no columns).
        texts_hash (`str`, *optional*): :func:`texts_hash` of the texts profiled; for a stream, only when one process
            read it from its start to its end, not resumed (a local file is pinned by `content_hash` all the same).
        texts_multiset_hash (`str`, *optional*): :func:`~hf_txray.hashes.texts_multiset_hash` of the texts profiled,
            in any order (when `texts_hash` is recorded; None in records written before this field).
        streaming (`bool`, defaults to `False`): the texts were read as a stream (``streaming=True``, an
            ``IterableDataset`` or a generator); :func:`hf_txray.reproduce` streams a local file again.
        embedded (`bool`, *optional*): for a ``datasets.Dataset`` named like an embedded corpus of
            :mod:`hf_txray.corpora`, whether its texts are that corpus's leading texts (reloadable by name), not a
            ``select``/``shuffle``/``map`` of it, which keeps the name; None otherwise and in records written before
            this field.
    """

    kind: str
    id: str | None = None
    requested_revision: str | None = None
    commit: str | None = None
    config: str | None = None
    split: str | None = None
    data_files: dict[str, str] = field(default_factory=dict)
    content_hash: str | None = None
    text_column: str | None = None
    text_column_detected: bool = False
    num_samples: int | None = None
    num_texts: int = 0
    texts_hash: str | None = None
    texts_multiset_hash: str | None = None
    streaming: bool = False
    embedded: bool | None = None
    fingerprint: str | None = field(default=None, repr=False, compare=False)  # in-process cache key, not recorded

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record.pop("fingerprint")
        return record


# from_pretrained keywords that say how to reach the Hub, not what is computed, and may hold a secret (a token, a
# proxy URL with its user and password): never recorded, so never saved nor pushed.
UNRECORDED_LOAD_KEYS = ("token", "proxies")


def recordable_load_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """`kwargs` (a run's ``model_kwargs``) as a profile records it: less :data:`UNRECORDED_LOAD_KEYS`, as JSON data
    (:func:`jsonable`), with the secrets the other values may carry masked
    (:func:`~hf_txray.redaction.redact_record`: a ``cache_dir`` with a ``?token=``, a ``headers`` dict's
    ``Authorization``): the record is saved, pushed and shown."""
    kept = {key: value for key, value in (kwargs or {}).items() if key not in UNRECORDED_LOAD_KEYS}
    return redact_record(jsonable(kept))


def jsonable(value: Any) -> Any:
    """`value` as JSON data; what has no faithful JSON form becomes ``{"unrecorded": repr}``.

    :func:`hf_txray.reproduce` refuses options holding such a marker (e.g. a :class:`UserFeature` function).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: jsonable(v) for k, v in value.items()}
    from .features import UserFeature

    if isinstance(value, UserFeature):  # its function cannot be recorded
        return {"unrecorded": f"UserFeature({value.name!r})"}
    text = str(value)
    if type(value).__module__ == "torch" and text.startswith("torch."):  # torch.float16 -> "float16"
        return text.removeprefix("torch.")
    return {"unrecorded": repr(value)[:200]}


def unrecorded(value: Any) -> list[str]:
    """Descriptions of the values that :func:`jsonable` could not record, anywhere inside `value`."""
    if isinstance(value, dict):
        if set(value) == {"unrecorded"}:
            return [str(value["unrecorded"])]
        return [item for v in value.values() for item in unrecorded(v)]
    if isinstance(value, list):
        return [item for v in value for item in unrecorded(v)]
    return []


def config_options(config: Any) -> dict[str, Any]:
    """Every field of a :class:`~hf_txray.ProfilerConfig` (a dataclass) as JSON data, by name."""
    return {f.name: jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}


def versions(spacy_model: str | None = None) -> dict[str, str | None]:
    """Versions of the packages that change the numbers (and of the spaCy model, when tags were computed)."""
    from .version import __version__

    found: dict[str, str | None] = {"hf_txray": __version__}
    for package in ("transformers", "torch", "datasets", "tokenizers", "spacy"):
        found[package] = installed_version(package)
    found["spacy_model"] = spacy_model
    found["spacy_model_version"] = _spacy_model_version(spacy_model) if spacy_model else None
    return found


@functools.lru_cache(maxsize=None)
def installed_version(package: str) -> str | None:
    """The installed distribution's version, or None; read once per process (``importlib.metadata`` scans every
    installed distribution at each call: about 5 ms, at every profile and Trainer snapshot)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _spacy_model_version(name: str) -> str | None:
    for candidate in (name, name.replace("_", "-")):
        found = installed_version(candidate)
        if found is not None:
            return found
    return None


def build_record(model: ModelSource, dataset: DatasetSource, options: Mapping[str, Any],
                 runtime: Mapping[str, Any], spacy_model: str | None) -> dict[str, Any]:
    """The ``meta.provenance`` record."""
    return {"schema": PROVENANCE_SCHEMA, "model": model.to_dict(), "dataset": dataset.to_dict(),
            "options": dict(options), "runtime": jsonable(dict(runtime)), "versions": versions(spacy_model)}


def pinned_texts(record: Mapping[str, Any], num_examples: int | None = None) -> str:
    """The texts a provenance record pins, in words (``"40 texts"``), and, when the profile counted another number
    (`num_examples`, its ``meta.num_examples``), what each counts: the corpus given, of which ``max_positions``
    profiled the first texts, or the first of several merged parts, whose record alone was kept. ``hf-txray show``
    printed "pinned: ..., 40 texts" under "corpus: ..., 4 texts" without saying why."""
    pinned = record.get("dataset", {}).get("num_texts")
    text = f"{pinned} texts"
    if num_examples is None or pinned is None or pinned == num_examples:
        return text
    parts = record.get("merged_parts", 1)
    if parts > 1:
        return f"{text} (its first part's: the merge of {parts} parts holds {num_examples})"
    limit = (record.get("options") or {}).get("max_positions")
    if limit is not None and num_examples < pinned:
        return f"{text} given, of which {num_examples} profiled (max_positions={limit} stopped the run)"
    return f"{text} pinned, {num_examples} profiled"


def sources_text(record: Mapping[str, Any], model_commit: str | None = None, dataset_commit: str | None = None,
                 num_examples: int | None = None) -> str:
    """A provenance record's sources in one line: model and dataset pinned (commit or content hash), the texts
    (:func:`pinned_texts`, beside the profile's `num_examples` when given), device, dtype.

    `model_commit` / `dataset_commit` replace the recorded commits (e.g. when a ref moved without changing files).
    """
    model, dataset = record["model"], record["dataset"]
    model_commit = model_commit or model.get("commit")
    digest = (model.get("content_hash") or "")[:19]
    m = f"{model['id']} [{digest}]" if digest else f"{model['id']}@{(model_commit or '?')[:12]}"
    if dataset["kind"] == "hub":
        d = (f"{dataset['id']}@{(dataset_commit or dataset.get('commit') or '?')[:12]} (config "
             f"{dataset.get('config')}, split {dataset.get('split')})")
    else:
        digest = (dataset.get("content_hash") or dataset.get("texts_hash") or "")[:19]
        streamed = " (streamed)" if dataset.get("streaming") else ""
        d = f"{dataset.get('id') or 'in-memory texts'}{streamed} [{digest}]"
    runtime = record.get("runtime", {})
    return f"model {m}, dataset {d}, {pinned_texts(record, num_examples)}, {runtime.get('device')}/{runtime.get('dtype')}"


EMBEDDED_IDS = ("penn_treebank", "bbc_news")  # the dataset names of hf_txray.corpora (before the "/<split>")


def names_embedded(dataset_id: str | None) -> bool:
    """Whether `dataset_id` is the name of an embedded corpus of :mod:`hf_txray.corpora`."""
    return str(dataset_id).split("/")[0] in EMBEDDED_IDS


def is_embedded(record: dict[str, Any]) -> bool:
    """Whether the texts are an embedded corpus of :mod:`hf_txray.corpora` (its leading texts, reloadable by name):
    recorded as ``embedded``; a record written before that field is judged by its name alone."""
    dataset = record["dataset"]
    if dataset["kind"] != "object":
        return False
    recorded = dataset.get("embedded")
    return bool(recorded) if recorded is not None else names_embedded(dataset.get("id"))


def needs_texts_again(record: dict[str, Any]) -> bool:
    """Whether :func:`hf_txray.reproduce` needs the texts passed again (``dataset=``): they were in memory or an
    object, with nothing to reload them from (no Hub id, local path or embedded corpus)."""
    return record["dataset"]["kind"] in ("in-memory", "object") and not is_embedded(record)


def reproduce_hint(profile: Any) -> str:
    """What ``hf-txray reproduce`` can do with `profile`, in words (for ``hf-txray show``)."""
    lacks = missing_provenance(profile)
    if lacks:
        return f"hf-txray reproduce cannot recompute it: it lacks {lacks[0]}"
    if needs_texts_again(profile.meta.provenance):
        return "hf-txray reproduce --dataset recomputes it from the same texts"
    return "hf-txray reproduce recomputes it"


def missing_provenance(profile: Any) -> list[str]:
    """What a profile lacks to be reproduced (empty when nothing); profiles made before provenance lack it all."""
    m, record = profile.meta, profile.meta.provenance or {}
    if not record:
        lacks = ["the model commit or content hash" + ("" if m.revision else f" (only the name {m.model_id!r})"),
                 "the dataset commit or content hash, config, split and data files"
                 + (f" (only the name {m.dataset_id!r})" if m.dataset_id else ""),
                 "the hash of the texts profiled", "the recorded options (ProfilerConfig), device and dtype"]
        return lacks
    lacks = []
    parts = record.get("merged_parts", 1)
    if parts > 1:  # first: hf-txray show and the card name the first thing lacking
        lacks.append(f"the records of {parts - 1} of its {parts} merged parts (Profile.merge keeps the first part's "
                     "record, whose sources hold that part's texts only): reproduce each part's saved profile, then "
                     "merge them again")
    model, dataset = record.get("model", {}), record.get("dataset", {})
    if model.get("training_step"):
        lacks.append(f"the weights: the model was still training (step {model['training_step']}); save or push it "
                     "and record it with hf_txray.pin_model (TXRayTrainer.push_to_hub does this for the final step)")
    elif model.get("kind") == "object" and model.get("adapters"):
        lacks.append(f"the weights of the PEFT adapters {sorted(model['adapters'])}: the model held them in memory, "
                     "and its record pins its base model only. Save them (model.save_pretrained(folder)) and record "
                     "the folder with hf_txray.pin_model(profile, folder)")
    elif model.get("kind") == "object" and not model.get("id"):
        lacks.append("a model id: the model was passed as an object without name_or_path")
    elif not (model.get("commit") or model.get("content_hash")):
        lacks.append(f"a commit or content hash for the model {model.get('id')!r}")
    if dataset.get("kind") not in ("hub", "local") and not dataset.get("texts_hash"):
        lacks.append(_missing_texts_hash(dataset))
    if not record.get("options"):
        lacks.append("the recorded options")
    for item in unrecorded(record.get("options")) + unrecorded(record.get("runtime")):
        lacks.append(f"a recordable value for {item} (functions and objects cannot be recorded)")
    return lacks


def _missing_texts_hash(dataset: Mapping[str, Any]) -> str:
    if not dataset.get("streaming"):
        return "a content hash of the in-memory texts"
    return ("a hash of the streamed texts, which were neither a local data file (pinned by its content hash) nor "
            "read from their start to their end and profiled whole by one process (a resumed run does not read its "
            "stream again from the start, max_positions may stop a stream early, several processes split it); profile a local data file (streamed or not) or a datasets.Dataset to make the stage reproducible")


# ----- local paths in what is rendered or pushed for the Hub ------------------------------------------------------
# A card or a pushed record names a local model or dataset without the user's directory layout; the full path stays
# in the local provenance (reproduce checks the files there).
LOCAL_PATH_NOTE = "local path"
ID_KEYS = ("id", "model_id", "dataset_id", "model_a", "model_b", "dataset_a", "dataset_b",
           "base_model_name_or_path")  # names of sources (the last: of a PEFT adapter's own base model)


# An absolute Windows path (drive letter or UNC share), as a profile made on Windows records it: os.path only
# knows it there.
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\[^\\/]+[\\/])")


def _windows_absolute(name: str) -> bool:
    """Whether `name` is an absolute Windows path that this (non-Windows) system's os.path does not recognise."""
    return os.name != "nt" and bool(_WINDOWS_ABSOLUTE.match(name))


def is_local_path(name: str) -> bool:
    """Whether `name` is a local path (absolute, also a Windows one; ``./``, ``../``, ``~``, or existing here) rather
    than a Hub id or another name; a relative path that does not exist here names no one's folders and is left as
    it is."""
    return (os.path.isabs(os.path.expanduser(name)) or _windows_absolute(name) or name.startswith((".", "~"))
            or Path(name).expanduser().exists())


def public_path(name: str) -> tuple[str, bool]:
    """A local path as it may be shown in public: relative to the current directory when below it, else only its
    last component (then ``True``: the caller notes "local path"). Never through the home directory: from a current
    directory above it, a relative path would name the user."""
    if _windows_absolute(name):  # recorded on another system: nothing here is relative to it
        return PureWindowsPath(name).name or name, True
    path, cwd = Path(os.path.abspath(Path(name).expanduser())), Path.cwd()
    homes = _homes()  # as set and resolved: a symlinked home is still the user's
    through_home = any(path.is_relative_to(h) or path.resolve().is_relative_to(h) for h in homes) and not any(
        cwd.is_relative_to(h) for h in homes)
    if path != cwd and path.is_relative_to(cwd) and not through_home:
        return path.relative_to(cwd).as_posix(), False
    return path.name or name, True


# A Hub cache snapshot folder: <cache>/models--org--name/snapshots/<commit> (datasets--, spaces-- alike). The Hub
# forbids "--" in repo names, so the folder name splits back into the repo id.
_HUB_SNAPSHOT = re.compile(r"(?:^|[/\\])(?:models|datasets|spaces)--([^/\\]+)[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]?$")


def hub_cache_snapshot(name: str | None) -> tuple[str, str] | None:
    """``(repo id, commit)`` when `name` is the path of a Hub cache snapshot folder
    (``.../models--org--name/snapshots/<commit>``), else None: also when the folder's name reads back as no valid
    repo id (``models--a--b--c``, ``models----b``), which no Hub download writes."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    found = _HUB_SNAPSHOT.search(name) if isinstance(name, str) else None
    if not found:
        return None
    repo_id = found[1].replace("--", "/")
    try:  # else a folder named by hand gave the card and the pushed record "a/b/c" or "/b" as a Hub id
        validate_repo_id(repo_id)
    except HFValidationError:
        return None
    return repo_id, found[2]


def public_name(name: str | None) -> str | None:
    """`name` for a card or a pushed record: Hub ids and other names unchanged, a Hub cache snapshot folder by its
    repo id (its last component is the commit sha, which named nothing: helper 215), other local paths by
    :func:`public_path`."""
    if not isinstance(name, str) or not name or not is_local_path(name):
        return name
    snapshot = hub_cache_snapshot(name)
    return snapshot[0] if snapshot else public_path(name)[0]


def public_label(name: str) -> str:
    """`name` in a card's text: in backticks, with the "local path" note when only its last component is shown, and
    a Hub cache snapshot as its repo id at its commit."""
    snapshot = hub_cache_snapshot(name) if is_local_path(name) else None
    if snapshot:
        return f"{code_span(snapshot[0])} (Hub cache snapshot of commit `{snapshot[1][:12]}`)"
    if not is_local_path(name):
        return code_span(name)
    shown, reduced = public_path(name)
    return f"{code_span(shown)} ({LOCAL_PATH_NOTE})" if reduced else code_span(shown)


def public_record(value: Any, key: str | None = None) -> Any:
    """A JSON record (a profile's meta, its provenance, options) for the Hub: source names (:data:`ID_KEYS`) by
    :func:`public_name`, any other absolute path (an offload folder in ``model_kwargs``...) by :func:`public_path`,
    and the home directory inside other text as ``~``."""
    if isinstance(value, Mapping):
        return {k: public_record(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [public_record(v) for v in value]
    if not isinstance(value, str):
        return value
    if key in ID_KEYS:
        return public_name(value)
    if (os.path.isabs(os.path.expanduser(value)) and len(Path(value).parts) > 1) or _windows_absolute(value):
        return public_path(value)[0]
    for home in sorted((str(h) for h in _homes()), key=len, reverse=True):
        # the home folder itself, not a longer name it starts ("/home/al" in "/home/alice")
        value = re.sub(re.escape(home) + r"(?![\w.-])", "~", value) if len(home) > 1 else value
    return value


def _homes() -> list[Path]:
    """The home folder as set and as resolved (they differ when it is a symlink)."""
    home = Path.home()
    return list(dict.fromkeys([home, home.resolve()]))


# Keys of a saved artifact's JSON whose string values name sources (models, corpora), and keys whose whole subtree
# is a record of sources (provenance, a plan's source): the rest of an artifact's JSON is data (vocabularies, label
# names) and is never rewritten, even where a value looks like a path.
SOURCE_KEYS = ID_KEYS + ("data_source", "model", "dataset", "output_dir")
RECORD_KEYS = ("provenance", "source", "runtime", "options")


def public_sources(value: Any, key: str | None = None) -> Any:
    """An artifact's JSON for the Hub: the :data:`SOURCE_KEYS` values by :func:`public_name`, the
    :data:`RECORD_KEYS` subtrees by :func:`public_record`; everything else (data) as it is."""
    if key in RECORD_KEYS:
        return public_record(value)
    if isinstance(value, Mapping):
        return {k: public_sources(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [public_sources(v) if isinstance(v, (Mapping, list)) else v for v in value]
    if isinstance(value, str) and key in SOURCE_KEYS:
        return public_name(value)
    return value
