"""Word-level activations of labelled text at any neuron site and layer, in memory or streamed to disk.

One forward pass per batch with hooks at the chosen sites (the same sites TX-Ray profiles, :func:`hf_txray.sites.
find_sites`); each hook gathers the rows of the tokens that belong to labelled words and reduces them to one vector
per word on the device (``first``, ``last`` or ``mean`` subword), so only ``words x neurons`` floats leave the device.
Rows are written straight into the output matrix: a NumPy array when it is small, else a disk-backed ``np.memmap``
(never the whole corpus in RAM). The forward stops after the last hooked layer.

Alongside the word vectors every hook keeps the per-neuron mean over all real tokens (not only labelled ones; past the
first position of a decoder-only LM, as profiles skip it): the values that ``ablate(..., mode="mean")`` substitutes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from ..artifact import Artifact, write_header
from ..counts import check_byte_size, check_count, is_int
from ..distributed import check_device
from ..errors import ConfigurationError, DatasetError, ModelError
from ..forward import StackForward, on_own_default_device, weights_dtype
from ..hashes import text_hashes
from ..hooks import Trace
from ..indices import whole_numbers
from ..io_utils import read_json, write_json
from ..modes import enter_eval
from ..options import resolve_layer
from ..padding import check_padding_is_masked
from ..sites import Site, check_hooked_rows, find_sites, require_dense
from .data import LabeledCorpus, refuse_single_string

AGGREGATIONS = ("first", "last", "mean")
DTYPES = {"float32": np.float32, "float16": np.float16}
DEFAULT_MEMMAP_THRESHOLD = 256 * 2**20  # bytes of word vectors above which they go to disk
VALUES_FILE = "values.bin"


class _StopForward(Exception):
    """Raised by the last hook: nothing after the last hooked layer needs computing."""


def check_can_split(num_sentences: int, hashes: np.ndarray | None = None) -> None:
    """Refuse sentences that no train/test split can part (:meth:`Activations.split`): fewer than two, or (with
    their content `hashes`, :func:`hf_txray.hashes.text_hashes`) one text repeated. ``probe_neurons`` checks its
    corpus with it before extraction: it was said only once every sentence had run through the model.

    Raises:
        DatasetError: what the sentences lack, and the fix.
    """
    if num_sentences < 2:
        raise DatasetError(f"At least two sentences are needed to split into train and test parts; the data holds "
                           f"{num_sentences}. Give more sentences (a larger corpus, or a larger max_sentences).")
    if hashes is not None and len(np.unique(hashes)) < 2:
        raise DatasetError(f"The {num_sentences} sentences are one text repeated: a train and a test part of other "
                           "sentences cannot be made. Use a corpus of distinct sentences.")


@dataclass(eq=False)  # == from Artifact: value equality through arrays and frames
class Activations(Artifact):
    """Word-level activations of a labelled corpus: one row per word, one column per (layer, neuron).

    Column ``c`` is neuron ``c % width`` of layer ``layers[c // width]``.

    Args:
        values (`np.ndarray`): ``(num_words, len(layers) * width)``; an ``np.memmap`` when stored on disk.
        labels (`np.ndarray`): label id of each word.
        label_names (`list[str]`): the label set.
        sentence_ids (`np.ndarray`): sentence of each word (index into the corpus).
        word_ids (`np.ndarray`): index of each word within its sentence.
        word_types (`np.ndarray`): id of each word's form in `type_vocab` (for the control task), as the
            tokenizer's normalizer writes it (an uncased model's "The" and "the" are one type).
        type_vocab (`list[str]`): distinct word forms.
        layers (`list[int]`): the extracted layers.
        width (`int`): neurons per layer.
        site (`str`): ``"mlp"`` or ``"residual"``.
        aggregation (`str`): ``"first"``, ``"last"`` or ``"mean"`` subword.
        neuron_means (`np.ndarray`): ``(len(layers), width)`` mean activation over all real tokens of the corpus
            (a decoder-only LM's past the first position, whose massive activations would dominate the mean).
        num_tokens (`int`): real tokens the means are taken over.
        num_skipped_words (`int`): labelled words without any token (truncated, or merged into a neighbour's token).
        model_id (`str`): the model.
        property_name (`str`): what the labels are.
        stack (`str`, *optional*): ``"encoder"`` or ``"decoder"`` of an encoder-decoder (None for one-stack models).
        module_pattern (`str`, *optional*): the regex that named the hooked modules (None: the automatic `site`).
        weights_sample_hash (`str`, *optional*): the fingerprint of the weights read (:func:`weights_fingerprint`);
            None for activations saved before it was recorded.
        weights_dtype (`str`, *optional*): their dtype (``"float32"``...).
        model_weights_sample_hash (`str`, *optional*): the sample hash of the weights every stack depends on (the
            body that runs; an encoder-decoder's encoder and decoder, heads left out: its decoder stack also reads
            the encoder's output), as a stack profile records it; None for activations saved before it was recorded.
        sentence_hashes (`np.ndarray`, *optional*): the content hash of each sentence of the corpus
            (:func:`hf_txray.hashes.text_hashes`, indexed by `sentence_ids`), from which a probe trained on these rows
            records the sentences it trained on; None for activations saved before it was recorded.
        tokenizer_vocab_hash (`str`, *optional*): the vocabulary fingerprint of the tokenizer that split the words
            (:func:`hf_txray.provenance.tokenizer_vocab_hash`); None for activations saved before it was recorded.
        path (`Path`, *optional*): the folder holding the values when they are on disk.

    Saved (``save_pretrained``) as the raw values (``values.bin``, memory-mapped by ``from_pretrained``), the index
    arrays (``indices.npz``) and the metadata (``activations.json``).
    """

    artifact_type = "activations"
    format_version = 1

    values: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    sentence_ids: np.ndarray
    word_ids: np.ndarray
    word_types: np.ndarray
    type_vocab: list[str]
    layers: list[int]
    width: int
    site: str = "mlp"
    aggregation: str = "first"
    neuron_means: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    num_tokens: int = 0
    num_skipped_words: int = 0
    model_id: str = ""
    property_name: str = "label"
    stack: str | None = None
    module_pattern: str | None = None
    weights_sample_hash: str | None = None
    weights_dtype: str | None = None
    model_weights_sample_hash: str | None = None
    sentence_hashes: np.ndarray | None = None
    tokenizer_vocab_hash: str | None = None
    path: Path | None = field(default=None, compare=False)  # where the values live, not what they are

    @property
    def num_words(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.values.shape[1])

    @property
    def on_disk(self) -> bool:
        """Whether the values are a disk-backed memmap (a pickled or deep-copied one has no file behind it: numpy
        rebuilds it in memory, as an ``np.memmap`` whose ``filename`` is None)."""
        return isinstance(self.values, np.memmap) and self.values.filename is not None

    def column(self, layer: int, neuron: int) -> int:
        """The column of neuron `neuron` of layer `layer` (a block index, or negative: counted from the last extracted
        layer).

        Raises:
            ConfigurationError: a layer that was not extracted, or a neuron that is not an int in ``[0, width)``
                (neuron 1.9 was read as column 1, layer ``True`` as layer 1).
        """
        layer = resolve_layer(self.layers, layer, "was not extracted")
        if not is_int(neuron) or not 0 <= neuron < self.width:
            raise ConfigurationError(f"Neuron {neuron!r} is out of range: layers have {self.width} neurons (an int "
                                     f"from 0 to {self.width - 1}).")
        return self.layers.index(layer) * self.width + int(neuron)

    def neurons(self, columns: Sequence[int] | np.ndarray) -> pd.DataFrame:
        """``layer`` and ``neuron`` of each column.

        Raises:
            ConfigurationError: a column that is not a whole number in ``[0, num_features)`` (1.5 was read as 1,
                ``True`` as 1 and -1 as the last column; one beyond the last ended in numpy's IndexError).
        """
        columns = whole_numbers(columns, "Activation columns")
        outside = columns[(columns < 0) | (columns >= self.num_features)]
        if len(outside):
            raise ConfigurationError(f"Activation columns must be in [0, {self.num_features}) (the extracted "
                                     f"{len(self.layers)} layers x {self.width} neurons), got {outside[:3].tolist()}.")
        position, neuron = np.divmod(columns, self.width)
        return pd.DataFrame({"layer": np.asarray(self.layers, np.int64)[position], "neuron": neuron})

    def means_by_layer(self) -> dict[int, np.ndarray]:
        """``{layer: per-neuron mean}``: what :func:`hf_txray.ablate` needs for ``mode="mean"``."""
        return {layer: self.neuron_means[i] for i, layer in enumerate(self.layers)}

    def split(self, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Train and test row indices, split by sentence (no sentence has words on both sides), and sentences of
        one content (:attr:`sentence_hashes`: the same text but for whitespace) on one side.

        Sentences are shuffled with `seed`; each content is drawn at the place of its first sentence (in corpus
        order) and goes to the test part with every sentence of it, in that order, until the part holds
        ``round(test_size * sentences)`` (at least 1, at most all but one content). So a corpus without repeated
        sentences splits exactly so, one with repeats can hold a few more test sentences, and a content is as likely
        to be held out however often it repeats. Split by position alone, a repeated sentence ("(Laughter.)") sat on both sides: 4 of the 40 test
        sentences of the first 200 of UD English EWT dev were training sentences too. Activations saved without
        sentence hashes split by position.

        Args:
            test_size (`float`, *optional*, defaults to 0.2): share of sentences in the test part, in (0, 1).
            seed (`int`, *optional*, defaults to 0): the shuffle.

        Raises:
            DatasetError: fewer than two sentences, or fewer than two distinct ones.
        """
        seed = check_split(test_size, seed)
        sentences = np.unique(self.sentence_ids)
        check_can_split(len(sentences), None if self.sentence_hashes is None else
                        np.asarray(self.sentence_hashes, np.uint64)[sentences])
        shuffled = np.random.default_rng(seed).permutation(sentences)
        num_test = min(max(1, int(round(test_size * len(sentences)))), len(sentences) - 1)
        if self.sentence_hashes is None:
            test = shuffled[:num_test]
        else:
            # Each content is drawn where its earliest sentence (in corpus order) falls in the shuffle. Ranked by
            # whichever of its sentences the shuffle meets first, a content of k copies came k times as early: 30
            # copies among 100 sentences were held out under every seed, the test part mostly that one sentence.
            position = np.empty(len(sentences), np.int64)
            position[np.searchsorted(sentences, shuffled)] = np.arange(len(sentences))
            _, first, inverse = np.unique(np.asarray(self.sentence_hashes, np.uint64)[sentences], return_index=True,
                                          return_inverse=True)
            rank = np.empty(len(first), np.int64)
            rank[np.argsort(position[first])] = np.arange(len(first))
            rank = rank[inverse.reshape(-1)]  # per sentence of `sentences`: its content's place in the draw
            taken = np.cumsum(np.bincount(rank))  # sentences in the first k + 1 contents
            groups = min(int(np.searchsorted(taken, num_test)) + 1, len(first) - 1)
            test = sentences[rank < groups]
            share = len(test) / len(sentences)
            # one sentence repeated through much of the corpus moves it whole; without repeats the part is exactly
            # round(test_size * sentences), which a small corpus rounds far from test_size (2 or 3 sentences: 50% or
            # 33%), and that is no repeat's doing (helper 260: "1 copies of one" was blamed)
            if len(test) != num_test and abs(share - test_size) > 0.1:
                copies = int(np.bincount(inverse.reshape(-1)).max())
                warnings.warn(
                    f"The test part holds {share:.0%} of the {len(sentences)} sentences, not the {test_size:.0%} asked "
                    f"(test_size): the corpus repeats some sentences many times ({copies} copies of one), and every "
                    "copy goes to one side. Remove the repeats, or read the accuracy with that split in mind.",
                    UserWarning, stacklevel=2)
        is_test = np.isin(self.sentence_ids, test)
        return np.nonzero(~is_test)[0], np.nonzero(is_test)[0]

    def _save_pretrained(self, folder: Path) -> None:
        with open(folder / VALUES_FILE, "wb") as handle:  # in slices: a memmap is never read whole
            for start in range(0, self.num_words, 4096):
                handle.write(np.ascontiguousarray(self.values[start:start + 4096]).tobytes())
        _write_sidecar(folder, self)

    @classmethod
    def _from_pretrained(cls, folder: Path) -> "Activations":
        """Open the values memory-mapped (read-only)."""
        header = read_json(folder / "activations.json")
        rows, cols = header["shape"]
        values = np.memmap(folder / VALUES_FILE, mode="r", dtype=header["dtype"], shape=(rows, cols))
        arrays = np.load(folder / "indices.npz")
        return cls(values, arrays["labels"], header["label_names"], arrays["sentence_ids"], arrays["word_ids"],
                   arrays["word_types"], header["type_vocab"], header["layers"], header["width"], header["site"],
                   header["aggregation"], arrays["neuron_means"], header["num_tokens"], header["num_skipped_words"],
                   header["model_id"], header["property"], header.get("stack"), header.get("module_pattern"),
                   header.get("weights_sample_hash"), header.get("weights_dtype"),
                   header.get("model_weights_sample_hash"),
                   arrays["sentence_hashes"] if "sentence_hashes" in arrays.files else None,
                   header.get("tokenizer_vocab_hash"), path=folder)

    def __repr__(self) -> str:
        where = f"disk:{self.path}" if self.on_disk else "memory"
        stack = f", stack={self.stack!r}" if self.stack else ""
        stack += f", module_pattern={self.module_pattern!r}" if self.module_pattern else ""
        return (f"Activations(words={self.num_words}, layers={self.layers}, width={self.width}, site={self.site!r}"
                f"{stack}, aggregation={self.aggregation!r}, property={self.property_name!r}, "
                f"labels={len(self.label_names)}, in={where})")


def check_split(test_size: Any, seed: Any) -> int:
    """Refuse a `test_size` that is not a number in (0, 1) or a `seed` that is not an int (what
    :meth:`Activations.split` takes), before any extraction: ``probe_neurons(test_size=1.5)`` was refused only after
    every sentence had run through the model, and ``test_size="0.2"`` or ``seed=0.5`` failed there with a bare
    ``TypeError``. Returns the seed as a Python int: a 0-d array or tensor (:func:`~hf_txray.counts.as_int`) is no
    seed numpy takes ("SeedSequence expects int or sequence of ints") nor a value a saved result can hold."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.integer, np.floating)) \
            or not 0.0 < test_size < 1.0:
        raise ConfigurationError(f"test_size must be a number in (0, 1), the share of sentences held out, got "
                                 f"{test_size!r}.")
    return check_count("seed", seed, minimum=0, note="the split's shuffle")


def _write_sidecar(directory: Path, acts: Activations) -> None:
    hashes = {} if acts.sentence_hashes is None else {"sentence_hashes": acts.sentence_hashes}
    np.savez(directory / "indices.npz", labels=acts.labels, sentence_ids=acts.sentence_ids, word_ids=acts.word_ids,
             word_types=acts.word_types, neuron_means=acts.neuron_means, **hashes)
    write_json(directory / "activations.json", {
        "shape": list(acts.values.shape),
        "dtype": np.dtype(acts.values.dtype).name, "layers": list(acts.layers), "width": acts.width, "site": acts.site,
        "aggregation": acts.aggregation, "label_names": acts.label_names, "type_vocab": acts.type_vocab,
        "num_tokens": acts.num_tokens, "num_skipped_words": acts.num_skipped_words, "model_id": acts.model_id,
        "property": acts.property_name, "stack": acts.stack, "module_pattern": acts.module_pattern,
        "weights_sample_hash": acts.weights_sample_hash, "weights_dtype": acts.weights_dtype,
        "model_weights_sample_hash": acts.model_weights_sample_hash, "tokenizer_vocab_hash": acts.tokenizer_vocab_hash,
    })
    write_header(directory, acts.artifact_type, acts.format_version)  # a folder extract_activations fills itself


# ----- hooks ----------------------------------------------------------------------------------------------------
class _Collector:
    """Hooks (a :class:`~hf_txray.hooks.Trace`) that reduce each site's activations to word vectors and token sums
    for the batch."""

    def __init__(self, sites: Sequence[Site], aggregation: str, stop_early: bool):
        self.sites = list(sites)
        self.aggregation = aggregation
        self.stop_early = stop_early
        self.select: torch.Tensor | None = None  # flat positions of the tokens to gather
        self.group: torch.Tensor | None = None  # word slot of each gathered token (mean)
        self.counts: torch.Tensor | None = None  # tokens per word slot (mean)
        self.num_groups = 0
        self.real: torch.Tensor | None = None  # flat positions of every real token (means)
        self.grid: tuple[int, int] | None = None  # (batch, sequence) the hooked activations must have
        self.outputs: list[torch.Tensor | None] = [None] * len(self.sites)
        self.sums = [None] * len(self.sites)
        self.trace = Trace(self.sites, read=self._record)
        self._last = max(range(len(self.sites)), key=lambda i: self.sites[i].layer) if self.sites else -1

    def __enter__(self) -> "_Collector":
        self.trace.attach()
        return self

    def __exit__(self, *exc) -> None:
        self.trace.remove()

    def reset(self) -> None:
        """Before each batch's forward pass."""
        self.outputs = [None] * len(self.sites)
        self.trace.reset()

    @torch.no_grad()
    def _record(self, slot: int, activations: torch.Tensor) -> None:
        if self.grid is not None:  # a sequence-first model (XLNet) read batch-first gave other words' vectors
            check_hooked_rows(self.sites[slot].name, activations.shape, self.grid)
        flat = activations.detach().reshape(-1, activations.shape[-1])
        real = flat.index_select(0, self.real)
        total = real.sum(0, dtype=torch.float64)
        self.sums[slot] = total if self.sums[slot] is None else self.sums[slot] + total
        rows = flat.index_select(0, self.select).float()
        if self.aggregation == "mean":
            summed = torch.zeros(self.num_groups, flat.shape[-1], dtype=torch.float32, device=flat.device)
            rows = summed.index_add_(0, self.group, rows) / self.counts[:, None]
        self.outputs[slot] = rows
        if self.stop_early and slot == self._last:
            raise _StopForward


def _batch_plan(texts: Sequence[str], enc: Any, width: int, corpus: LabeledCorpus | None, sentence_ids: Sequence[int],
                aggregation: str, max_length: int | None = None, blank: Any = None, skip: int = 0
                ) -> dict[str, np.ndarray]:
    """Which flat token positions to gather for the labelled words of a batch, and which word each row is. A word
    that `max_length` cuts (some of its tokens kept, not all) is skipped with the words past the cut: its last or
    mean vector would come from the tokens before the cut only. A token whose piece `blank`
    (:class:`~hf_txray.features.BlankPieces`) finds blank belongs to no word, as in TX-Ray's features. The neuron
    means (``real``) leave out the first `skip` token positions (a decoder-only LM's first position, as profiles
    skip it); the words keep them."""
    from ..features import align_to_spans, visible_spans

    real, select, group, counts, sent, word = [], [], [], [], [], []
    skipped = 0
    slot = 0
    for i, text in enumerate(texts):
        special = np.asarray(enc["special_tokens_mask"][i], dtype=np.int64)
        idx = np.nonzero(special == 0)[0]
        offsets = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        real.append(i * width + idx[idx >= skip])
        if corpus is None:
            continue
        sid = sentence_ids[i]
        starts_w, ends_w = corpus.word_starts[sid], corpus.word_ends[sid]
        if len(idx) == 0 or len(starts_w) == 0:
            skipped += len(starts_w)
            continue
        pieces = np.asarray(enc["input_ids"][i], dtype=np.int64)[idx]
        starts, ends = visible_spans(text, offsets[idx, 0], offsets[idx, 1],
                                     blank(pieces) if blank is not None else np.zeros(len(idx), dtype=bool))
        words = align_to_spans(starts_w, ends_w, starts, ends)
        ok = words >= 0
        if max_length is not None and len(enc["input_ids"][i]) >= max_length and ok.any():  # a full row: cut?
            ok &= ends_w[np.maximum(words, 0)] <= ends[ok].max()
        tok, words = idx[ok], words[ok]
        present = np.unique(words)
        skipped += len(starts_w) - len(present)
        if len(present) == 0:
            continue
        if aggregation == "mean":
            local = np.searchsorted(present, words)
            select.append(i * width + tok)
            group.append(slot + local)
            counts.append(np.bincount(local, minlength=len(present)))
        else:
            order = np.arange(len(words)) if aggregation == "first" else np.arange(len(words))[::-1]
            _, first = np.unique(words[order], return_index=True)
            select.append(i * width + tok[order[first]])
        sent.append(np.full(len(present), sid, dtype=np.int64))
        word.append(present.astype(np.int64))
        slot += len(present)
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return {"real": cat(real), "select": cat(select), "group": cat(group), "counts": cat(counts),
            "sentence": cat(sent), "word": cat(word), "skipped": np.int64(skipped)}


# ----- the loop -------------------------------------------------------------------------------------------------
def _resolve(model: Any, tokenizer: Any, device: Any) -> tuple[Any, Any, str, torch.device]:
    from ..loading import load_model

    loaded_here = isinstance(model, (str, Path))
    model, tokenizer, model_id, _ = load_model(model, tokenizer)  # the embedded MiniLM named by its Hub id
    if device is not None:
        model.to(torch.device(device))
    elif loaded_here and torch.cuda.is_available():
        model.to(torch.device("cuda"))
    try:
        model_device = next(model.parameters()).device
    except StopIteration:
        model_device = torch.device("cpu")
    return model, tokenizer, model_id, model_device


def _sites(model: Any, site: str, layers: Any, module_pattern: str | None,
           stack: str | None) -> tuple[list[Site], StackForward]:
    """The hooked sites and how their stack runs: analyze's StackForward, so a decoder is fed the text shifted right
    (teacher forcing) and a module outside the chosen stack is refused before any work."""
    chosen = find_sites(model, site, module_pattern, stack, layers)
    require_dense(chosen, "Extracting activations")
    return chosen, StackForward(model, stack, chosen)


class WeightsFingerprint(NamedTuple):
    """The weights activations were read from, as :func:`extract_activations` records them (the fields of the same
    names of `Activations` and `ProbingMeta`)."""

    weights_sample_hash: str | None  # the stack read (the body that runs, or an encoder-decoder's chosen stack)
    weights_dtype: str | None
    # every stack the read depends on, heads left out (StackForward.model_weights), as a stack profile hashes it
    model_weights_sample_hash: str | None = None


def _fingerprint(forward: StackForward) -> WeightsFingerprint:
    """The sample hashes and dtype of the weights that produce the activations read: the body that runs (task heads
    left out, as a profile hashes it, so a checkpoint loaded with or without its head matches), or the chosen stack
    of an encoder-decoder, and what every stack depends on (the same body, or the encoder and decoder together)."""
    from ..provenance import weights_sample_hash

    module = forward.read_weights
    dtype = weights_dtype(module)
    stack_hash = weights_sample_hash(module)
    model = forward.model_weights  # one-stack models: the same module, not read twice
    model_hash = stack_hash if model is module else weights_sample_hash(model)
    return WeightsFingerprint(stack_hash, str(dtype).removeprefix("torch.") if dtype else None, model_hash)


def weights_fingerprint(model: Any, site: str, layers: Any, module_pattern: str | None = None,
                        stack: str | None = None) -> WeightsFingerprint:
    """The `WeightsFingerprint` of the weights :func:`extract_activations` would read with these options (what
    `Activations` records): a probe's metric compares it with its training run's (:func:`weights_difference`),
    before any forward pass. A few KB of the weights are read (:func:`hf_txray.provenance.weights_sample_hash`)."""
    return _fingerprint(_sites(model, site, layers, module_pattern, stack)[1])


def weights_difference(recorded: Any, found: Any, stack: str | None) -> str | None:
    """Which weights differ between two reads of `stack` (each anything with `WeightsFingerprint`'s fields: an
    `Activations`, a `ProbingMeta`, a fingerprint), for an error message; None when they agree. A hash missing on
    either side (saved before it was recorded) is not compared.

    The stack's own hash comes first. A decoder stack's activations also depend on the weights outside it (its
    cross-attention reads the encoder's output), so there the two stacks' hashes are compared too; an encoder's
    depend on nothing outside it, and a one-stack model's two hashes are the same.
    """
    pairs = [("weights sample hash", "weights_sample_hash", "")]
    if stack == "decoder":
        pairs.append(("encoder-decoder weights sample hash", "model_weights_sample_hash",
                      "the weights outside the decoder (the encoder that feeds it): "))
    for label, name, which in pairs:
        before, after = getattr(recorded, name, None), getattr(found, name, None)
        if before and after and before != after:
            return f"{which}{label} {before[:26]}... vs {after[:26]}..."
    return None


def _check_padding(model: Any, tokenizer: Any, forward: StackForward, sites: list[Site], device: torch.device,
                   max_length: int, batch_size: int, multiple: int) -> None:
    """analyze's padding check (:func:`hf_txray.padding.check_padding_is_masked`) on extraction's own encoding: a
    model whose token mixing reads masked padding (FNet, ConvBERT) would give each word a vector that depends on the
    other sentences of its batch. Each text alone and unpadded, only its one-text probe runs."""
    from ..batching import batches_rows, encode, pads_rows

    def encoder(texts: Sequence[str], ids: Sequence[int]) -> list[SimpleNamespace]:
        return [SimpleNamespace(inputs=encode(tokenizer, texts, max_length)[1])]

    check_padding_is_masked(model, forward, sites, encoder, device, max_length, remedy="batch_size=1",
                            padded=pads_rows(batch_size, multiple), batched=batches_rows(batch_size, multiple))


def _iterate(model, tokenizer, corpus: LabeledCorpus | None, texts: Sequence[str], sites: list[Site],
             forward: StackForward, aggregation: str, batch_size: int, max_length: int, device: torch.device,
             show_progress: bool, on_batch) -> tuple[np.ndarray, int]:
    """Run the batches; `on_batch(plan, outputs)` receives each batch's word vectors; returns the per-neuron token
    means ``(len(sites), width)`` and the number of tokens. Token positions are mapped to where the hooks of the
    stack see them (a decoder position j + 1 is fed token j)."""
    from ..batching import PAD_MULTIPLE, encode
    from ..features import BlankPieces

    batch_size = check_count("batch_size", batch_size)
    from ..analyze import default_skip_first_positions

    multiple = 1 if batch_size == 1 else PAD_MULTIPLE  # one text per batch runs unpadded: no padding to check
    _check_padding(model, tokenizer, forward, sites, device, max_length, batch_size, multiple)
    # helper 260: SmolLM2-135M's neuron 1229 of layer 11 reads about 3000 at the first position and -0.02 on average
    # elsewhere; averaged over every token its mean was 103, and mean ablation filled that in at every position (LM
    # loss 6.27 -> 10.69, against 6.37 for its mean past the first position): the means skip that position as
    # profiles do (skip_first_positions="auto": 1 for decoder-only LMs, 0 otherwise)
    skip = default_skip_first_positions(model)
    from ..pruning.masks import masks_version, refuse_changed_masks

    masks = masks_version(model)  # another thread's ablation during the run: refused after its batch
    collector = _Collector(sites, aggregation, stop_early=True)
    blank = BlankPieces(tokenizer)
    num_tokens = 0
    bar = None
    restore_modes = enter_eval(model)
    try:  # the progress bar inside: an interrupt while it starts gives the eval period back
        starts = range(0, len(texts), batch_size)
        if show_progress:
            from ..logging import tqdm  # main process only, and off with hf_txray.logging.disable_progress_bars()

            starts = bar = tqdm(starts, desc="hf_txray: extracting activations", unit="batch")
        with collector, torch.no_grad():
            for start in starts:
                chunk = list(texts[start:start + batch_size])
                enc, inputs = encode(tokenizer, chunk, max_length, multiple)
                width = inputs["input_ids"].shape[1]
                plan = _batch_plan(chunk, enc, width, corpus, range(start, start + len(chunk)), aggregation,
                                   max_length, blank, skip)
                if len(plan["real"]) == 0 and len(plan["sentence"]) == 0:  # no token to average, no word to read
                    on_batch(plan, None)
                    continue
                collector.real = forward.positions(torch.from_numpy(plan["real"]), width).to(device)
                collector.select = forward.positions(torch.from_numpy(plan["select"]), width).to(device)
                collector.num_groups = len(plan["sentence"])
                collector.grid = forward.hooked_grid(*inputs["input_ids"].shape)
                if aggregation == "mean":
                    collector.group = torch.from_numpy(plan["group"]).to(device)
                    collector.counts = torch.from_numpy(plan["counts"]).to(device, torch.float32)
                collector.reset()
                try:
                    forward({k: v.to(device) for k, v in inputs.items()})
                except _StopForward:
                    pass
                refuse_changed_masks(model, masks, "extract_activations")  # before its vectors are kept
                num_tokens += len(plan["real"])
                on_batch(plan, collector.outputs)
    finally:
        if bar is not None:
            bar.close()
        restore_modes()
    sums = np.stack([s.cpu().numpy() if s is not None else np.zeros(site.width) for s, site in
                     zip(collector.sums, sites)]) if sites else np.zeros((0, 0))
    return sums / max(num_tokens, 1), num_tokens


def _check_finite_rows(block: np.ndarray, site: Site, sentences: np.ndarray, dtype: str) -> None:
    """Refuse word vectors that are NaN or inf, or that `dtype` storage would make inf (float16 holds at most
    65504): a probe trained on them got NaN weights, ranked the neurons in column order and predicted class 0
    (helper 182), all without an error."""
    finite = np.isfinite(block)
    if not finite.all():
        row, neuron = np.argwhere(~finite)[0]
        raise ModelError(
            f"The model gave a non-finite activation ({block[row, neuron]}) at {site.name} (layer {site.layer}, "
            f"neuron {neuron}) for a word of sentence {int(sentences[row])}: a probe trained on it would get NaN "
            "weights and a meaningless ranking. The weights hold NaN/inf (training diverged), or the forward "
            "overflowed in float16: load the model in float32 or bfloat16, or check its weights (e.g. "
            "torch.isfinite(p).all() for every parameter).")
    limit = np.finfo(DTYPES[dtype]).max
    if limit < np.finfo(np.float32).max and np.abs(block).max(initial=0.0) > limit:
        row, neuron = np.argwhere(np.abs(block) > limit)[0]
        raise ConfigurationError(
            f"An activation of {site.name} (layer {site.layer}, neuron {neuron}, sentence {int(sentences[row])}) is "
            f"{block[row, neuron]:.6g}, beyond what dtype={dtype!r} storage holds (+-{limit:.6g}): it would be stored "
            "as inf. Pass dtype='float32'.")


def _output_array(num_rows: int, num_cols: int, dtype: np.dtype, out_dir: str | Path | None,
                  threshold: int) -> tuple[np.ndarray, Path | None, bool]:
    """A preallocated (upper-bound) output: in memory, or a memmap in `out_dir` (a temporary folder if None)."""
    size = num_rows * num_cols * np.dtype(dtype).itemsize
    if out_dir is None and size <= threshold:
        return np.empty((num_rows, num_cols), dtype=dtype), None, False
    temporary = out_dir is None
    if temporary:
        from ..cache import writable_cache_folder

        # a read-only cache: the system's temporary folder (it failed with PermissionError, helper 378)
        root = writable_cache_folder("activations") or Path(tempfile.gettempdir())
        out_dir = tempfile.mkdtemp(prefix="extract-", dir=root)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    values = np.memmap(folder / VALUES_FILE, mode="w+", dtype=dtype, shape=(max(num_rows, 1), num_cols))
    return values, folder, temporary


@on_own_default_device
def extract_activations(
    model: Any,
    corpus: LabeledCorpus,
    tokenizer: Any = None,
    *,
    layers: str | int | Sequence[int] = "all",
    site: str = "mlp",
    aggregation: str = "first",
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | torch.device | None = None,
    dtype: str = "float32",
    out_dir: str | Path | None = None,
    memmap_threshold: int | float = DEFAULT_MEMMAP_THRESHOLD,
    module_pattern: str | None = None,
    stack: str | None = None,
    show_progress: bool = False,
) -> Activations:
    """Extract one activation vector per labelled word at the given site and layers.

    Args:
        model (`str`, `Path` or `PreTrainedModel`): Hub id, local path or loaded model.
        corpus (`LabeledCorpus`): the labelled words (:func:`~hf_txray.probing.read_conllu`, :func:`from_spacy`...).
        tokenizer (*optional*): a fast tokenizer; loaded from the model when omitted.
        layers (`"all"`, `int` or `list[int]`, *optional*, defaults to `"all"`): the blocks to read.
        site (`str`, *optional*, defaults to `"mlp"`): ``"mlp"`` (MLP intermediate neurons, TX-Ray's default) or
            ``"residual"`` (block outputs).
        aggregation (`str`, *optional*, defaults to `"first"`): how a word's subword vectors become one:
            ``"first"``, ``"last"`` or ``"mean"``.
        batch_size (`int`, *optional*, defaults to 32): sentences per forward pass, padded to a common width. A model
            whose token mixing reads masked padding (FNet, ConvBERT) is refused unless it is 1: then each sentence runs
            alone and unpadded.
        max_length (`int`, *optional*): truncation in tokens (default: the model's limit, at most 512); words past it,
            and a word it cuts, are skipped and counted in ``num_skipped_words``.
        device (`str` or `torch.device`, *optional*): moves the model there; by default a loaded model stays where it
            is and a model loaded here goes to CUDA when available.
        dtype (`str`, *optional*, defaults to `"float32"`): ``"float32"`` or ``"float16"`` storage.
        out_dir (`str` or `Path`, *optional*): store the values there as a memmap (reopen with
            :meth:`Activations.from_pretrained`). Without it, values larger than `memmap_threshold` bytes go to a temporary
            folder that is removed with the returned object.
        memmap_threshold (`int`, *optional*, defaults to 256 MiB): size in bytes above which the values are
            disk-backed; a whole float (``2e9``) is taken as its int, and ``float("inf")`` keeps them in memory.
        module_pattern (`str`, *optional*): regex naming the modules to hook (see :func:`hf_txray.analyze`); they must
            lie in the chosen `stack`.
        stack (`str`, *optional*): for encoder-decoder models (T5, BART...), ``"encoder"`` (the default) or
            ``"decoder"``: the encoder runs on the text and the decoder on the text shifted right (teacher forcing, as
            :func:`hf_txray.analyze` runs it), so a word's vector is read at the decoder positions fed its tokens
            (decoder position ``j + 1`` is fed token ``j``). Recorded in ``Activations.stack``.
        show_progress (`bool`, *optional*, defaults to `False`): a progress bar.

    Returns:
        `Activations`.

    Raises:
        ConfigurationError: unknown aggregation, dtype, site or stack, bad layers, batch size or `memmap_threshold`,
            `max_length` above the model's limit, `stack` given for a one-stack model.
        ModelError: a hooked module outside the chosen stack, decoder inputs that cannot be built, or a model whose
            activations at real tokens change with masked padding (with `batch_size` above 1).
        DatasetError: no labelled word could be aligned to a token.

    Example:
        ```python
        >>> corpus = hf_txray.probing.read_conllu("en_ewt-ud-dev.conllu", max_sentences=300)
        >>> acts = hf_txray.probing.extract_activations(model, corpus, tokenizer, layers=[2, 3])   # MiniLM
        >>> acts.values.shape, acts.num_skipped_words   # 5708 words, two inside a neighbour's token
        ((5706, 3072), 2)
        ```
    """
    from ..lengths import resolve_max_length
    from ..provenance import tokenizer_vocab_hash

    if not isinstance(corpus, LabeledCorpus):
        raise ConfigurationError(f"corpus must be a LabeledCorpus (see hf_txray.probing.load_labeled), got "
                                 f"{type(corpus).__name__}.")
    if aggregation not in AGGREGATIONS:
        raise ConfigurationError(f"Unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}.")
    if dtype not in DTYPES:
        raise ConfigurationError(f"Unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}.")
    # -1, 1.5 and True put every extraction on disk without a word (a size in bytes compared with the values')
    memmap_threshold = check_byte_size("memmap_threshold", memmap_threshold,
                                       note="bytes above which the values are disk-backed")
    device = check_device(device)  # as analyze checks it: device=3.5 was torch's TypeError, after the model loaded
    model, tokenizer, model_id, device = _resolve(model, tokenizer, device)
    sites, forward = _sites(model, site, layers, module_pattern, stack)
    width = sites[0].width
    if any(s.width != width for s in sites):
        raise ConfigurationError("The selected layers have different widths; extract them separately.")
    max_length = resolve_max_length(model, tokenizer, max_length, forward.shifted, runs=forward.runs)
    num_cols = len(sites) * width
    values, folder, temporary = _output_array(corpus.num_words, num_cols, np.dtype(DTYPES[dtype]), out_dir,
                                              memmap_threshold)
    state = {"row": 0, "skipped": 0, "sent": [], "word": []}

    def write(plan: dict[str, np.ndarray], outputs: list[torch.Tensor] | None) -> None:
        state["skipped"] += int(plan["skipped"])
        count = len(plan["sentence"])
        if count == 0 or outputs is None:
            return
        row = state["row"]
        for slot, out in enumerate(outputs):
            block = out.cpu().numpy()
            _check_finite_rows(block, sites[slot], plan["sentence"], dtype)
            values[row:row + count, slot * width:(slot + 1) * width] = block
        state["row"] += count
        state["sent"].append(plan["sentence"])
        state["word"].append(plan["word"])

    # one try from the loop to the sidecar: an error after the loop (the sidecar's write, a check of the rows) left
    # the temporary folder behind (helper 395), where one in the loop removed it
    try:
        means, num_tokens = _iterate(model, tokenizer, corpus, corpus.texts, sites, forward, aggregation, batch_size,
                                     max_length, device, show_progress, write)
        rows = state["row"]
        if rows == 0:
            raise DatasetError(f"No labelled word of the {corpus.num_sentences} sentences could be aligned to a token "
                               f"of {model_id} (empty texts, or max_length={max_length} too small).")
        sentence_ids = np.concatenate(state["sent"])
        word_ids = np.concatenate(state["word"])
        labels = np.fromiter((corpus.labels[s][w] for s, w in zip(sentence_ids, word_ids)), np.int64, count=rows)
        type_index: dict[str, int] = {}
        # a word type is what the model reads: an uncased tokenizer's normalizer makes "The" and "the" one input, so
        # one type (helper 151: as two, they drew different control labels the probe could not tell apart, which
        # lowered the control accuracy and inflated the selectivity)
        normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
        normalize = normalizer.normalize_str if normalizer is not None else (lambda form: form)
        forms = (normalize(corpus.texts[s][corpus.word_starts[s][w]:corpus.word_ends[s][w]])
                 for s, w in zip(sentence_ids, word_ids))
        word_types = np.fromiter((type_index.setdefault(f, len(type_index)) for f in forms), np.int64, count=rows)
        if folder is not None:
            values.flush()
            del values
            os.truncate(folder / VALUES_FILE, rows * num_cols * np.dtype(DTYPES[dtype]).itemsize)
            values = np.memmap(folder / VALUES_FILE, mode="r", dtype=DTYPES[dtype], shape=(rows, num_cols))
        else:
            values = values[:rows] if rows == len(values) else values[:rows].copy()
        acts = Activations(values, labels, list(corpus.label_names), sentence_ids, word_ids, word_types,
                           list(type_index), [s.layer for s in sites], width, site, aggregation, means, num_tokens,
                           state["skipped"], model_id, corpus.property_name, forward.stack, module_pattern,
                           *_fingerprint(forward), text_hashes(corpus.texts), tokenizer_vocab_hash(tokenizer),
                           path=folder)
        if folder is not None:
            _write_sidecar(folder, acts)
    except BaseException:
        if temporary and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if temporary and folder is not None:
        weakref.finalize(acts, shutil.rmtree, str(folder), True)
    return acts


@on_own_default_device
def neuron_means(
    model: Any,
    texts: Sequence[str],
    tokenizer: Any = None,
    *,
    layers: str | int | Sequence[int] = "all",
    site: str = "mlp",
    batch_size: int = 32,
    max_length: int | None = None,
    module_pattern: str | None = None,
) -> dict[int, np.ndarray]:
    """Mean activation of every neuron over all real tokens of `texts`: the values ``ablate(mode="mean")`` uses.

    On a decoder-only LM the first position is left out, as profiles skip it (``skip_first_positions="auto"``): its
    massive activations (SmolLM2-135M, neuron 1229 of layer 11: about 3000 there, -0.02 on average elsewhere) made
    the mean 103, and mean ablation filled that in at every position (LM loss 6.27 -> 10.69; 6.37 with the mean
    past the first position).

    Returns:
        `dict[int, np.ndarray]`: per layer, one mean per neuron.

    Example:
        ```python
        >>> means = neuron_means(model, texts, tokenizer, layers=[3])
        >>> with hf_txray.ablate(model, {3: [17]}, mode="mean", means=means):
        ...     ...
        ```
    """
    from ..lengths import resolve_max_length

    refuse_single_string(texts)
    model, tokenizer, _, device = _resolve(model, tokenizer, None)
    texts = [t for t in texts]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise DatasetError("texts must be a non-empty list of strings.")
    sites, forward = _sites(model, site, layers, module_pattern, None)  # the means ablate() fills: its stack
    limit = resolve_max_length(model, tokenizer, max_length, forward.shifted, runs=forward.runs)
    means, num_tokens = _iterate(model, tokenizer, None, texts, sites, forward, "first", batch_size, limit, device,
                                 False, lambda plan, outputs: None)
    if num_tokens == 0:
        from ..analyze import default_skip_first_positions

        # helper 265: one-token texts on GPT-2 were said to hold no token, though each holds one (at the skipped position)
        beyond = (" past the first position, which the means of a decoder-only LM leave out (its massive activations, "
                  "as profiles skip it): take the means of texts of two tokens or more"
                  if default_skip_first_positions(model) else "")
        raise DatasetError(f"texts hold no token to average over{beyond}.")
    return {site.layer: means[i] for i, site in enumerate(sites)}
