"""Whether a model keeps padding out of its real tokens' activations.

The engine runs texts in padded batches. That is exact only when the model's token mixing follows the attention mask:
then the activations of a text's tokens are the same whatever pads it. FNet (a Fourier transform over every
position), ConvBERT (convolutions over the sequence) and capacity-limited expert routing read the padding too, and a
profile of padded batches would depend on what else was in each batch, with no error. :func:`check_padding_is_masked`
tells them apart before any work: one short text, padded twice with different token ids under the same mask, must
give the same activations at its real tokens: bit for bit in a model that follows its mask (a masked score's softmax
weight is exactly 0), up to rounding where mixture-of-experts layers regroup their tokens (:data:`ROUNDING_ULPS`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .errors import ModelError, TXRayError
from .hooks import ExpertsCall, Trace
from .modes import enter_eval
from .moe import is_fused_experts
from .sites import activation_quantized, check_hooked_rows, dynamically_quantized

CHECK_TEXT = "Padding must never change what these few tokens read."
EXTRA_WIDTH = 16  # padding positions added to the text
# Differences up to this many units of the activations' precision (relative to their largest magnitude) are rounding.
# Measured: a tiny Mixtral's second layer moved by 1.5e-7 (about one float32 ulp of its largest activation) when its
# padding's ids changed; ConvBERT's convolutions moved activations by 1e-3 to 1e-2 of theirs, FNet's transform more.
ROUNDING_ULPS = 8


@torch.no_grad()
def check_padding_is_masked(model: Any, forward: Any, sites: Sequence[Any], encoder: Any, device: torch.device,
                            max_width: int, remedy: str = "batch_size=1 and pad_to_multiple_of=1", *,
                            padded: bool, batched: bool, max_tokens: int | None = None) -> None:
    """Refuse a model whose activations at real tokens change with the token ids of masked padding.

    The same one-text probe runs the model once before any work, so that a model that fails on the simplest input, or
    whose activations are not laid out (batch, sequence, width), is refused with a clear error: unpadded only, without
    the comparison, when the run feeds each text alone and unpadded (`padded=False`).

    Args:
        model (`PreTrainedModel`): the model (set to eval mode for the check, then restored).
        forward (`StackForward`): how the profiled stack runs (:mod:`hf_txray.forward`).
        sites (`list[Site]`): the hooked sites.
        encoder (`BatchEncoder`): the run's encoder (its inputs: ids, mask, token types).
        device (`torch.device`): where the inputs go.
        max_width (`int`): the widest row the run may feed the model.
        remedy (`str`, *optional*): the caller's options that run each text alone and unpadded, for the message.
        padded (`bool`): whether the run pads its texts (else only the probe runs):
            :func:`hf_txray.batching.pads_rows`.
        batched (`bool`): whether the run feeds a text with anything beside it (other texts or padding):
            :func:`hf_txray.batching.batches_rows`; batches of same-length rows (``pad_to_multiple_of=0``) are
            batched, never padded.
        max_tokens (`int`, *optional*): the most real tokens of a row (`max_length`), when less than `max_width`.

    Raises:
        ModelError: naming the first site whose activations moved, and the way to profile such a model (each text
            alone, unpadded: `remedy`).
    """
    _refuse_block_sparse_attention(model)
    _refuse_flex_attention_on_cpu(model, device)
    if batched:  # what the run reaches: the profiled body (not a head outside it)
        _refuse_batched_dynamic_quantization(getattr(forward, "body", None) or model, remedy)
        _refuse_batched_sparse_indexer(model, max_tokens or max_width, remedy)
        _refuse_batched_expert_capacity(model, remedy)
    batch = next((b for b in encoder([CHECK_TEXT], [0]) if b.inputs), None)
    if batch is None:
        return
    row, width, fills = _probe_inputs(batch.inputs, max_width, padded)
    real = row["input_ids"].shape[1]
    positions = forward.positions(torch.arange(real), width)
    runs = _run_probes(model, lambda fill: _real_activations(forward, sites, _padded(row, width, fill), positions,
                                                             device),
                       fills, f"its {forward.stack or 'body'}", "profiled")
    if len(runs) == 1:  # unpadded: the probe alone
        return
    alone = _run_probes(model, lambda _: _real_activations(forward, sites, row, forward.positions(
        torch.arange(real), real), device), (None,), f"its {forward.stack or 'body'}", "profiled")[0]
    regroups = has_experts(model, sites)
    for slot, site in enumerate(sites):
        (zeros, dtype), (other, _), (again, _) = (run[slot] for run in runs)
        if _padding_moved(zeros, other, again, dtype, regroups):
            raise ModelError(_padding_message(model, f"at {site.name!r}, the same text gives other activations",
                                              "a profile of padded batches would depend on what else each batch "
                                              "held. Profile", remedy))
        if _unpadded_differs(alone[slot][0], zeros, again, dtype):
            raise ModelError(
                f"{type(model).__name__} computes a text differently once it is padded: at {site.name!r}, a text's "
                "activations at its real tokens are not those of the same text alone and unpadded (beyond rounding), "
                "although the attention mask hides the padding. Its attention takes another form when the mask holds "
                "padding (PaliGemma's text model: bidirectional alone, causal padded), so a profile of padded batches "
                f"would mix the two. Profile each text alone and unpadded: {remedy}.")


@torch.no_grad()
def first_position_is_causal(model: Any, forward: Any, sites: Sequence[Any], encoder: Any, device: torch.device,
                             max_width: int) -> bool | None:
    """Whether the profiled stack attends causally, read from the model itself: the activations of the first
    position of one short text, at every hooked site, stay the same (up to rounding where experts regroup tokens)
    when only its last token changes.

    `skip_first_positions="auto"` follows this rather than the model's type: an encoder configured as a decoder
    that ignores ``is_decoder`` stays bidirectional, and a causal model that transformers' LM mappings do not list
    (a composite model's text stack) is causal all the same.

    Returns:
        `bool` or `None`: None when the probe has a single token (a `max_length` of 1 or 2), so that nothing later
        can change.
    """
    batch = next((b for b in encoder([CHECK_TEXT], [0]) if b.inputs), None)
    if batch is None:
        return None
    row, width, _ = _probe_inputs(batch.inputs, max_width, padded=False)
    ids = row["input_ids"][0].tolist()
    other = next((token for token in ids if token != ids[-1]), None)
    if width < 2 or other is None:
        return None
    changed = {**row, "input_ids": row["input_ids"].clone()}
    changed["input_ids"][0, -1] = other
    first = forward.positions(torch.arange(1), width)
    runs = _run_probes(model, lambda inputs: _real_activations(forward, sites, inputs, first, device),
                       (row, changed, row), f"its {forward.stack or 'body'}", "profiled")
    regroups = has_experts(model, sites)
    return not any(_padding_moved(*(run[slot][0] for run in runs), runs[0][slot][1], regroups)
                   for slot in range(len(sites)))


@torch.no_grad()
def check_outputs_ignore_padding(model: Any, inputs: dict[str, torch.Tensor], device: torch.device, max_width: int,
                                 remedy: str) -> None:
    """:func:`check_padding_is_masked` for runs that read the model's outputs (``evaluate_pruning``, ``TaskMetric``):
    the last hidden states at the real tokens of `inputs`' first row, padded twice with different token ids under
    the same mask, must be the same. FNet's classifier changed 4 of 36 predictions with what else its batch held.

    Raises:
        ModelError: the model's outputs move with its padding; `remedy` says how to run each text alone.
    """
    _refuse_block_sparse_attention(model)
    _refuse_batched_dynamic_quantization(model, remedy)
    row, width, fills = _probe_inputs(inputs, max_width)
    if len(fills) == 1:
        return  # no room for padding
    real = row["input_ids"].shape[1]
    runs = _run_probes(model, lambda fill: _last_hidden_states(model, _padded(row, width, fill), real, device),
                       fills, "the model", "evaluated")
    if runs[0] is None:
        return  # no hidden states to read (a model that returns logits only): nothing to tell
    (zeros, dtype), (other, _), (again, _) = runs
    if _padding_moved(zeros, other, again, dtype, has_experts(model, ())):
        raise ModelError(_padding_message(model, "the same text gives other hidden states", "its scores on padded "
                                          "batches would depend on what else each batch held. Evaluate", remedy))


def _last_hidden_states(model: Any, inputs: dict[str, torch.Tensor], real: int,
                        device: torch.device) -> tuple[torch.Tensor, torch.dtype] | None:
    """The last hidden states of every stack the model returns, at the first `real` positions, in float64."""
    out = model(**{name: tensor.to(device) for name, tensor in inputs.items()}, output_hidden_states=True)
    width = inputs["input_ids"].shape[1]
    # the last of each stack's states that still has a row per position (Funnel pools its last ones to half)
    found = [next(t for t in reversed(states) if t.shape[1] == width)
             for key in ("hidden_states", "encoder_hidden_states", "decoder_hidden_states")
             if isinstance(states := getattr(out, key, None), (tuple, list))
             and any(t.shape[1] == width for t in states)]
    if not found:
        return None
    return torch.cat([t[0, :real].detach().double().cpu().reshape(real, -1) for t in found], 1), found[0].dtype


def _refuse_block_sparse_attention(model: Any) -> None:
    """BigBird's block-sparse attention (BigBird, BigBird-Pegasus with ``attention_type="block_sparse"``) switches
    the model to full attention for good the first time a batch is too short for its blocks: the one-text probe did
    so before the run, so a model configured block-sparse was profiled with full attention and left switched
    (helper 138: 2 of a tiny model's credits moved), and a run's profile would depend on where its first short text
    came. Block-sparse rows also pad to whole blocks with what else their batch holds."""
    sparse = [name for name, m in model.named_modules() if getattr(m, "attention_type", None) == "block_sparse"]
    if sparse:
        # the outermost module that can switch them all (BigBird's model, BigBird-Pegasus' encoder)
        setter = next((name for name in sparse if callable(getattr(model.get_submodule(name), "set_attention_type",
                                                                    None))), None)
        how = (f" (or call model{'.get_submodule(' + repr(setter) + ')' if setter else ''}"
               ".set_attention_type('original_full'))") if setter is not None else ""
        raise ModelError(
            f"{type(model).__name__} uses block-sparse attention ({sparse[0] or 'the model'}: attention_type="
            "'block_sparse'), which transformers switches to full attention for good at the first text shorter than "
            "its blocks, so the attention a text gets would depend on the texts run before it. Load the model with "
            f"full attention: AutoModel.from_pretrained(..., attention_type='original_full'){how}.")


def _refuse_flex_attention_on_cpu(model: Any, device: torch.device) -> None:
    """transformers' flex_attention on a CPU (torch 2.13) gave wrong activations for some lengths (helper 142: a tiny
    Llama's 24-token text off by half of the activations' scale from eager attention, once NaN, depending on the
    calls before), in a plain forward pass: a profile would credit what that kernel got wrong."""
    configs = {id(c): c for c in (getattr(model, "config", None),) if c is not None}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None:
            configs[id(config)] = config
    if torch.device(device).type == "cpu" and any(getattr(c, "_attn_implementation", None) == "flex_attention"
                                                  for c in configs.values()):
        raise ModelError(
            f"{type(model).__name__} runs attn_implementation='flex_attention' on a CPU, where its kernel gave wrong "
            "activations for some text lengths (off by half their scale from eager attention, sometimes NaN). Load "
            "it with attn_implementation='sdpa' (or 'eager'), or profile it on a GPU.")


def _refuse_batched_expert_capacity(model: Any, remedy: str) -> None:
    """NLLB-MoE's routers let each expert take at most a share (`moe_eval_capacity_token_fraction`, each router's
    own copy of the config's) of all the tokens of a batch, flattened, padding included, earlier rows first: below 1
    (or at 0 and below, a fixed `expert_capacity`), which tokens an expert drops moves with the texts batched
    together (5 of 132 credits of a tiny model moved at site='residual'), which the one-text padding probe does not
    see. At 1 no token is dropped."""
    fractions = {m.moe_eval_capacity_token_fraction for m in model.modules()
                 if isinstance(getattr(m, "moe_eval_capacity_token_fraction", None), (int, float))}
    below = sorted(f for f in fractions if not isinstance(f, bool) and f < 1)
    if below:
        raise ModelError(
            f"{type(model).__name__}'s expert routers cap each expert at a share of a batch's tokens "
            f"(moe_eval_capacity_token_fraction={below[0]}; at 0 or below, a fixed expert_capacity), counted over all "
            "rows together, padding included, so which tokens they drop, and every later activation, moves with the "
            f"texts batched with a text. Run each text alone and unpadded ({remedy}), or, to profile the model "
            "without that cap, set it to 1.0 on every router: for m in model.modules(): if hasattr(m, "
            "'moe_eval_capacity_token_fraction'): m.moe_eval_capacity_token_fraction = 1.0.")


# Sparse-attention indexers that choose among compressed entries rather than tokens, and the layer types that use
# an indexer: DeepSeek-V4 picks index_topk of its compressed_sparse_attention layers' entries, one per `rate` tokens.
INDEXER_LAYER_TYPES = {"deepseek_v4": ("compressed_sparse_attention",), "glm5_next": ("indexed_attention",),
                       "glm5_next_text": ("indexed_attention",)}


def sparse_indexer_limit(config: Any) -> int | None:
    """The longest row (tokens) whose keys a DeepSeek-Sparse-Attention indexer (a config with `index_topk`) selects
    all of, so that a row's activations cannot depend on the rows batched with it; None without such an indexer
    (or with no layer that uses it)."""
    top = getattr(config, "index_topk", None)
    if not isinstance(top, int) or isinstance(top, bool):
        return None
    kinds = INDEXER_LAYER_TYPES.get(getattr(config, "model_type", ""))
    layer_types = getattr(config, "layer_types", None)
    if kinds and isinstance(layer_types, (list, tuple)) and not any(t in kinds for t in layer_types):
        return None  # no layer runs the indexer
    if getattr(config, "model_type", "") == "deepseek_v4":
        rates = getattr(config, "compress_rates", None) or getattr(config, "default_compress_rates", None) or {}
        return top * int(rates.get("compressed_sparse_attention", 1))
    return top


def _refuse_batched_sparse_indexer(model: Any, max_tokens: int, remedy: str) -> None:
    """DeepSeek Sparse Attention's indexer (GLM-5-Next, DeepSeek-V3.2: configs with `index_topk`) lets each query
    attend to the `index_topk` best-scored keys; in rows longer than that, which keys a padded row's tokens chose
    moved with the longer rows batched with it (a tiny GLM-5-Next: 0.12 on a layer's input, 4% of a mass cell),
    which the one-text padding probe does not see. Rows no longer than the limit select every key."""
    config = getattr(model, "config", None)
    config = getattr(config, "get_text_config", lambda: config)() if config is not None else None
    limit = sparse_indexer_limit(config) if config is not None else None
    if limit is not None and max_tokens > limit:
        raise ModelError(
            f"{type(model).__name__} selects each token's keys with a sparse-attention indexer (index_topk="
            f"{config.index_topk}): in rows longer than {limit} tokens, that selection moves with the other texts "
            f"batched with a text, so its activations would too. Keep rows within it (max_length <= {limit}), or "
            f"run each text alone and unpadded ({remedy}).")


def _refuse_batched_dynamic_quantization(model: Any, remedy: str) -> None:
    """A dynamically quantized layer scales its input by the batch's largest value, so a text's activations move
    with the other texts of its batch (by 1e-4 of their size in a tiny Llama with quantized q_proj: no credit moved
    there, but masses did), which the one-text padding probe does not see."""
    quantized = dynamically_quantized(model)
    if quantized is not None:
        raise ModelError(
            f"{quantized or type(model).__name__!r} is dynamically quantized (torch.ao.quantization.quantize_dynamic): "
            "it quantizes its input with one scale for the whole batch, so a text's activations would depend on the "
            f"other texts batched with it. Run each text alone and unpadded ({remedy}), or use the model as it was "
            "before quantize_dynamic.")
    quantizing = activation_quantized(model)
    if quantizing is not None:  # the padding probe refused it as an attention "of another form when padded"
        weight = getattr(model.get_submodule(quantizing), "weight", None)
        raise ModelError(
            f"{quantizing or type(model).__name__!r} quantizes its input as it runs ({type(weight).__name__} with "
            f"act_quant_kwargs: torchao's dynamic activation quantization): the input is rounded to 8 bits with a "
            "scale computed from it, and the float rounding of a batched matmul is enough to move a value across a "
            "rounding step, so a text's activations would change (by about 1e-3 of their size in a tiny Llama) "
            f"with the other texts batched with it. Run each text alone and unpadded ({remedy}), or quantize the "
            "weights only (TorchAoConfig(Int8WeightOnlyConfig())).")


def _probe_inputs(inputs: dict[str, torch.Tensor], max_width: int, padded: bool = True
                  ) -> tuple[dict[str, torch.Tensor], int, tuple[Any, ...]]:
    """The probe's row (the real tokens of `inputs`' first row, at most half the widest row, so that a short
    max_length still leaves room for padding), the width to pad it to, and the padding ids of each run: zeros, other
    ids of the real vocabulary (where the engine puts 0), zeros again (the forward's own noise); zeros alone, for
    one unpadded run, when there is no padding."""
    real = min(int(inputs["attention_mask"][0].sum()), max(1, max_width // 2))
    width = min(real + EXTRA_WIDTH, max_width) if padded else real
    row = {name: tensor[:1, :real] for name, tensor in inputs.items()}
    others = row["input_ids"][0].repeat(EXTRA_WIDTH)[: width - real]
    return row, width, ((0, others, 0) if width > real else (0,))


def _run_probes(model: Any, run: Any, fills: tuple[Any, ...], part: str, done: str) -> list[Any]:
    """``run(fill)`` for each padding fill, in eval mode; the model's own failure on this simplest input is said
    before any work (:func:`_probe_failed`)."""
    restore_modes = enter_eval(model)
    try:
        return [run(fill) for fill in fills]
    except TXRayError:
        raise
    except Exception as err:  # noqa: BLE001 - the model's own failure, said with the dtype it ran in
        raise _probe_failed(model, part, done, err) from err
    finally:
        restore_modes()


def _probe_failed(model: Any, part: str, done: str, err: Exception) -> ModelError:
    return ModelError(
        f"{type(model).__name__} failed on a one-text probe run before it is {done}, as hf_txray runs it ({part} "
        f"on input_ids and attention_mask, in {_dtypes_of(model)}): {type(err).__name__}: {err}. This "
        "architecture (or this stack of it, or this dtype: some kernels have no bfloat16 or float16 form, so try "
        f"float32: model.float()) cannot be {done} as it is.")


def _dtypes_of(model: Any) -> str:
    """The model's parameter dtypes, the one holding most weights first: ``"bfloat16"``, or ``"bfloat16 (and
    float32 for 2% of the weights)"`` for a model kept partly in another dtype (transformers'
    ``_keep_in_fp32_modules``, or a user's cast of some modules)."""
    sizes: dict[str, int] = {}
    for param in model.parameters():
        name = str(param.dtype).replace("torch.", "")
        sizes[name] = sizes.get(name, 0) + param.numel()
    if not sizes:
        return "no parameters"
    total = sum(sizes.values())
    ranked = sorted(sizes, key=sizes.get, reverse=True)
    share = lambda name: f"{sizes[name] / total:.0%}" if sizes[name] >= total / 100 else "under 1%"  # noqa: E731
    others = ", ".join(f"{name} for {share(name)} of the weights" for name in ranked[1:])
    return f"{ranked[0]} (and {others})" if others else ranked[0]


def _padding_moved(zeros: torch.Tensor, other: torch.Tensor, again: torch.Tensor, dtype: torch.dtype,
                   regroups: bool) -> bool:
    """Whether values read from a changed input (`other`: other padding ids, or another last token) differ from
    those of the original (`zeros`), beyond rounding and beyond the forward's own noise (`again`: the original run
    again)."""
    if torch.equal(zeros, other):
        return False
    # Beyond rounding: mixture-of-experts layers group the tokens routed to each expert, padding included, so
    # other padding regroups their matmuls and moves the next layers' activations by an ulp or so; and beyond
    # the forward's own noise (some accelerator kernels are not deterministic).
    # Only there: a dense model that follows its mask is bit-exact in any precision, and a tolerance of 8 bf16
    # ulps (6% of the largest activation) let ConvBERT, Nystromformer and YOSO through in bf16.
    rounding = ROUNDING_ULPS * torch.finfo(dtype).eps * float(zeros.abs().max()) if regroups else 0.0
    return float((zeros - other).abs().max()) > max(rounding, 4 * float((zeros - again).abs().max()))


# How far a text padded may be from the same text alone, at any position, as the relative size of the difference
# (its norm over the position's units over their norm): other widths run the matrix products in other blocks, which
# moves activations by rounding that grows through the layers: 0 in float32 here, up to 0.03 in bfloat16 (SmolLM2,
# SDPA), 0.004 in float16. A model whose attention changes form with padding (PaliGemma's text model) moved its
# first positions by 0.09 to 0.2 in every dtype.
UNPADDED_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-9}
UNPADDED_TOLERANCE_LOW = 0.06  # bf16, fp16 and narrower


def _unpadded_differs(alone: torch.Tensor, padded: torch.Tensor, again: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether a text's activations alone and unpadded differ from those padded beyond rounding (see
    :data:`UNPADDED_TOLERANCE`) and beyond the forward's own noise (`again`), at any position, relative to that
    position's own activations: a massive activation at one position (a delimiter's, thousands of times the others)
    set the scale of every position when the scale was the largest activation, and hid a change of winners elsewhere
    (helper 143: 8 of 228 credits)."""
    if torch.equal(alone, padded):
        return False
    size = padded.norm(dim=-1).clamp_min(torch.finfo(torch.float64).tiny)
    moved = float(((alone - padded).norm(dim=-1) / size).max())
    noise = float(((padded - again).norm(dim=-1) / size).max())
    return moved > max(UNPADDED_TOLERANCE.get(dtype, UNPADDED_TOLERANCE_LOW), 4 * noise)


def _padding_message(model: Any, what: str, consequence: str, remedy: str) -> str:
    return (f"{type(model).__name__} lets padding change the activations of real tokens: {what} when only the token "
            "ids of its padding change (positions the attention mask hides). Its token mixing does not follow the "
            "attention mask (as FNet's Fourier transform, ConvBERT's convolutions or capacity-limited expert "
            f"routing), so {consequence} each text alone and unpadded: {remedy}.")


def has_experts(model: Any, sites: Sequence[Any]) -> bool:
    """Whether `model` routes tokens to experts (fused experts, a module named for its experts, or an experts site): its matrix
    products regroup tokens by expert, padding included, so other padding moves activations by rounding."""
    return (any(site.capture == "experts" for site in sites)
            or any(is_fused_experts(module) or "expert" in name.rsplit(".", 1)[-1].lower()
                   for name, module in model.named_modules()))  # a list or dict of experts (Switch Transformers)


def _padded(inputs: dict[str, torch.Tensor], width: int, fill: Any) -> dict[str, torch.Tensor]:
    """`inputs` (one row of real tokens) padded to `width` as the engine pads (zeros, mask 0), with `fill` as the
    padding's token ids."""
    grid = {name: torch.cat([t, t.new_zeros(1, width - t.shape[1])], dim=1) for name, t in inputs.items()}
    grid["input_ids"][0, inputs["input_ids"].shape[1]:] = fill
    return grid


def _real_activations(forward: Any, sites: Sequence[Any], inputs: dict[str, torch.Tensor], positions: torch.Tensor,
                      device: torch.device) -> list[tuple[torch.Tensor, torch.dtype]]:
    """Each site's activations (the experts' input at a mixture-of-experts site) at the real tokens' `positions`,
    in float64, with their own dtype."""
    found: list[tuple[torch.Tensor, torch.dtype] | None] = [None] * len(sites)

    def read(slot: int, value: Any) -> None:
        tensor = value.hidden if isinstance(value, ExpertsCall) else value
        flat = tensor.detach().reshape(-1, tensor.shape[-1])
        check_hooked_rows(sites[slot].name, tensor.shape, forward.hooked_grid(*inputs["input_ids"].shape))
        found[slot] = flat.index_select(0, positions.to(flat.device)).double().cpu(), tensor.dtype

    trace = Trace(sites, read=read).attach()
    try:
        forward({name: tensor.to(device) for name, tensor in inputs.items()})
    finally:
        trace.remove()
    # a site that did not run: the run's own check (WinnerRecorder.check_complete) names the way out
    return [(torch.zeros(0), torch.float32) if got is None else got for got in found]
