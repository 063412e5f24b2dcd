"""What module structure cannot tell about an architecture: the config attribute holding its MLP width.

:mod:`hf_txray.sites` finds stacks, blocks and MLPs by structure and then *checks* what it found against the config:
the hooked input must be exactly as wide as the MLP intermediate width the config declares. Most configs name that
width with one of :data:`WIDTH_ATTRIBUTES`; the few that name it otherwise (or per stack) are listed in
:data:`WIDTH_OVERRIDES`, keyed by ``config.model_type`` (the shape of peft's target-module mapping); widths computed
from the config by a rule of the family's own (LFM2's, xLSTM's, GPT-NeoX-Japanese's) are in :data:`DERIVED_WIDTHS`.

:func:`format_neuron` labels a neuron for people: ``expert E unit U`` in mixture-of-experts layers (used by the viewer
and the dataset card).
"""

from __future__ import annotations

from typing import Any, Callable

from .counts import check_count
from .errors import ConfigurationError

# Config attributes that hold the MLP intermediate width, in the order they are tried.
WIDTH_ATTRIBUTES = ("intermediate_size", "ffn_dim", "d_ff", "n_inner", "ffn_hidden_size", "moe_intermediate_size")

# model_type -> stack -> attributes holding that stack's MLP width ("*" for models with one stack: a seq2seq
# family's `ForCausalLM`, BartForCausalLM, is its decoder alone).
WIDTH_OVERRIDES: dict[str, dict[str, tuple[str, ...]]] = {
    "distilbert": {"*": ("hidden_dim",)},
    "bart": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "mbart": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "pegasus": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "marian": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "blenderbot": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "blenderbot-small": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "plbart": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "m2m_100": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "nllb-moe": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "led": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "mvp": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "bigbird_pegasus": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "pegasus_x": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "fsmt": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "prophetnet": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    # a text decoder alone (WhisperForCausalLM, TrOCRForCausalLM: the speech / vision encoder reads no text)
    "whisper": {"encoder": ("encoder_ffn_dim",), "decoder": ("decoder_ffn_dim",), "*": ("decoder_ffn_dim",)},
    "trocr": {"*": ("decoder_ffn_dim",)},
    # one attribute of their own
    "xlnet": {"*": ("d_inner",)},
    "funnel": {"*": ("d_inner",)},
    "ctrl": {"*": ("dff",)},
    "cpmant": {"*": ("dim_ff",)},
    "reformer": {"*": ("feed_forward_size",)},
    # MoE models whose routed experts use `intermediate_size` and have no `moe_intermediate_size`.
    "mixtral": {"*": ("intermediate_size",)},
    "olmoe": {"*": ("intermediate_size",)},
    # Qwen-MoE: routed experts use `moe_intermediate_size`; `intermediate_size` is the dense layers' width.
    "qwen2_moe": {"*": ("moe_intermediate_size",)},
    "qwen3_moe": {"*": ("moe_intermediate_size",)},
}

# Families whose MLP is a fraction of the width their config declares: (attribute, divisor). RecurrentGemma's MLP
# takes `intermediate_size // 2` (its gate and up projections are each that wide).
WIDTH_DIVISORS: dict[str, tuple[str, int]] = {"recurrent_gemma": ("intermediate_size", 2)}


def lfm2_width(config: Any) -> tuple[str, int] | None:
    """LFM2's MLP width where its config adjusts the declared one (``block_auto_adjust_ff_dim``, the default and
    every released checkpoint's), as ``Lfm2MLP`` computes it: two thirds of ``intermediate_size``, times
    ``block_ffn_dim_multiplier`` and rounded up to a multiple of ``block_multiple_of`` where a multiplier is set
    (LFM2-350M: 6656 declared, 4608 built). Returns ``(description, width)``, or None where it is not adjusted."""
    declared = getattr(config, "intermediate_size", None)
    if not getattr(config, "block_auto_adjust_ff_dim", False) or not isinstance(declared, int) or declared <= 0:
        return None
    width = int(2 * declared / 3)
    multiplier, multiple = getattr(config, "block_ffn_dim_multiplier", None), getattr(config, "block_multiple_of", 1)
    if multiplier is not None:
        width = multiple * ((int(multiplier * width) + multiple - 1) // multiple)
    return f"intermediate_size={declared} adjusted by block_auto_adjust_ff_dim", width


def xlstm_width(config: Any) -> tuple[str, int] | None:
    """xLSTM's MLP width, as ``xLSTMFeedForward`` computes it: ``hidden_size x ffn_proj_factor`` rounded up to a
    multiple of ``ffn_round_up_to_multiple_of`` (xLSTM-7B: 4096 x 2.667 to 10944; no attribute declares it, and
    4 x hidden matched only where the rounding happened to land on it, hidden 32). Returns ``(description, width)``,
    or None where the config lacks one of the three."""
    hidden, factor = getattr(config, "hidden_size", None), getattr(config, "ffn_proj_factor", None)
    multiple = getattr(config, "ffn_round_up_to_multiple_of", None)
    if not (isinstance(hidden, int) and hidden > 0 and isinstance(factor, (int, float)) and factor > 0
            and isinstance(multiple, int) and multiple > 0):
        return None
    width = int(((hidden * factor + multiple - 1) // multiple) * multiple)  # the model's own float arithmetic
    return (f"hidden_size={hidden} x ffn_proj_factor={factor} rounded up to a multiple of "
            f"ffn_round_up_to_multiple_of={multiple}"), width


def gpt_neox_japanese_width(config: Any) -> tuple[str, int] | None:
    """GPT-NeoX-Japanese's MLP width, as ``GPTNeoXJapaneseMLP`` computes it: ``hidden_size x
    intermediate_multiple_size`` (no attribute declares it; 4 x hidden matched only at the default multiple of 4).
    Returns ``(description, width)``, or None where the config lacks one of the two."""
    hidden, multiple = getattr(config, "hidden_size", None), getattr(config, "intermediate_multiple_size", None)
    if not (isinstance(hidden, int) and hidden > 0 and isinstance(multiple, (int, float)) and multiple > 0):
        return None
    return f"hidden_size={hidden} x intermediate_multiple_size={multiple}", int(hidden * multiple)


# Families whose MLP width is computed from the config's attributes by a rule of their own: model_type -> a
# function of the config giving ``(description, width)``, or None where the rule does not apply.
DERIVED_WIDTHS: dict[str, Callable[[Any], tuple[str, int] | None]] = {
    "lfm2": lfm2_width, "xlstm": xlstm_width, "gpt_neox_japanese": gpt_neox_japanese_width}

# Mixture-of-experts models whose dense blocks (Qwen-MoE's `mlp_only_layers`, `decoder_sparse_step`) have an MLP of
# another width than the routed experts: the attributes holding the dense blocks' width.
DENSE_BLOCK_WIDTHS: dict[str, tuple[str, ...]] = {
    "qwen2_moe": ("intermediate_size",),
    "qwen3_moe": ("intermediate_size",),
    # without experts (num_local_experts=0, as the dense Granite-4.0-H models), a block's MLP is its shared_mlp
    "granitemoehybrid": ("shared_intermediate_size",),
    # Llama 4 interleaves dense blocks (`intermediate_size_mlp` wide) with MoE blocks (`interleave_moe_layer_step`)
    "llama4_text": ("intermediate_size_mlp",),
    # dense first blocks with a width attribute of their own (helper 203: refused against the experts' width)
    "ergo": ("first_dense_intermediate_size",),
    "kolibri1_1": ("mlp_only_intermediate_size",),
    "cohere2_moe": ("prefix_dense_intermediate_size",),  # None: the dense blocks take intermediate_size
    "minimax_m3_vl_text": ("dense_intermediate_size",),
}

# Text models of vision-language families that are another family's language model, computing the same function on
# text (Qwen2-VL's M-RoPE gives a text position the same index on its three axes, which is RoPE): their neurons are
# that model's, so profiles of the two compare and a plan ranked on one prunes the other. Each pair is checked in the
# suite (the same weights give the same credits, exactly); a type not listed compares with its own type only.
SAME_NEURONS_AS: dict[str, str] = {"qwen2_vl_text": "qwen2", "qwen2_5_vl_text": "qwen2"}


def neuron_architecture(model_type: str | None) -> str | None:
    """The architecture whose neurons a model of `model_type` holds (:data:`SAME_NEURONS_AS`, else itself)."""
    return SAME_NEURONS_AS.get(model_type, model_type) if model_type else model_type


# Names of the token mixers of the supported families (attention) and of state-space models (Mamba's `mixer`,
# Jamba's and Zamba's `mamba`, an `ssm`): a neuron site is never inside one of them. A Mamba block has no MLP, and
# its mixer's output projection takes an input as wide as the config's `intermediate_size`.
TOKEN_MIXER_NAME_PARTS = ("attn", "attention", "mixer", "mamba", "ssm")


# The names a gated or plain MLP gives its layers. A shared expert as wide as the hidden size (Qwen2-MoE's
# `shared_expert_intermediate_size == hidden_size`) has three linear layers from and to the hidden size, which its
# shape cannot tell apart: its down projection is the one of them named as one, where every other is named as an
# input (gate or up) projection; any other naming is refused. A dense MLP as wide as the hidden size likewise
# (GPT-2's c_fc/c_proj, Llama's gate/up/down_proj, GPT-J's and CodeGen's fc_in/fc_out, DistilBERT's lin1/lin2).
DOWN_PROJECTION_NAMES = ("down_proj", "output_linear", "fc2", "c_proj", "w2", "wo", "dense_4h_to_h", "fc_out", "lin2")
INPUT_PROJECTION_NAMES = ("gate_proj", "up_proj", "gate_up_proj", "input_linear", "fc1", "c_fc", "w1", "w3", "wi",
                          "wi_0", "wi_1", "dense_h_to_4h", "fc_in", "lin1")


def named_down_projection(names: list[str]) -> str | None:
    """The one of `names` (qualified linear layers of one MLP, all of the same shape) named as a down projection
    when all the others are named as input projections (:data:`DOWN_PROJECTION_NAMES`), else None."""
    last = [name.rpartition(".")[2] for name in names]
    down = [name for name, part in zip(names, last) if part in DOWN_PROJECTION_NAMES]
    parents = {name.rpartition(".")[0] for name in names}
    if len(down) != 1 or len(parents) != 1 or not all(
            part in DOWN_PROJECTION_NAMES + INPUT_PROJECTION_NAMES for part in last):
        return None
    return down[0]


# Fused experts whose own forward computes their units in float32 whatever the weights' dtype (it upcasts the tokens,
# weights and biases before the first projection and feeds the down projection float32): their units are computed and
# read at that precision. Keyed by the experts module's class name (the module holds no model_type); this holds only
# for the module's own ("eager") forward, which the family makes its default ("very sensitive to accumulation
# orders"): transformers' grouped kernels compute in the weights' dtype. Units recomputed in bfloat16 moved 3 of 822
# top-3 credits of a tiny bfloat16 model run one text at a time, and nearly every mass by rounding (helper 225).
FLOAT32_EXPERTS = ("OpenAIPrivacyFilterExperts",)


# Attention that runs only with a custom kernel and otherwise returns zeros, with no error: transformers' MRA
# (`mra2_attention` returns zeros while the module global `mra_cuda_kernel` is None: no CUDA, no `kernels` package),
# whose tokens then see only themselves. model_type -> the global of its modeling module that holds the kernel.
KERNEL_ONLY_ATTENTION: dict[str, str] = {"mra": "mra_cuda_kernel"}


def hidden_size(config: Any) -> int | None:
    """The residual width of `config` (``hidden_size`` through the config's attribute map, or ``d_model``)."""
    for name in ("hidden_size", "d_model", "dim", "n_embd"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def expected_mlp_widths(config: Any, stack: str | None) -> tuple[dict[str, int], str]:
    """The MLP intermediate widths `config` declares for `stack`, with the attribute each came from.

    Args:
        config: a transformers ``PretrainedConfig`` (or anything with the same attributes).
        stack (`str`, *optional*): ``"encoder"`` or ``"decoder"`` for encoder-decoder models, None otherwise.

    Returns:
        ``({attribute: width}, description)``; ``4 x hidden`` under the key ``"4 x hidden_size"`` when the config
        declares no width (GPT-2's ``n_inner=None``, Bloom, GPT-Neo). An empty dict when nothing is known.
    """
    divided = WIDTH_DIVISORS.get(getattr(config, "model_type", ""))
    value = getattr(config, divided[0], None) if divided else None
    if divided and isinstance(value, int) and value > 0:
        name = f"{divided[0]} // {divided[1]}"
        return {name: value // divided[1]}, f"{name}={value // divided[1]}"
    rule = DERIVED_WIDTHS.get(getattr(config, "model_type", ""))
    derived = rule(config) if rule else None
    if derived is not None:
        return {derived[0]: derived[1]}, f"{derived[0]} to {derived[1]}"
    override = WIDTH_OVERRIDES.get(getattr(config, "model_type", ""), {})
    names = override.get(stack or "*") or override.get("*") or WIDTH_ATTRIBUTES
    widths: dict[str, int] = {}
    unset = False
    for name in names:
        if not hasattr(config, name):
            continue
        value = getattr(config, name)
        if isinstance(value, int) and value > 0:
            widths[name] = value
            if name in override.get(stack or "*", ()) or name in override.get("*", ()):
                break  # the override names the one attribute that counts
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and v > 0 for v in value):
            widths.update({f"{name}[{i}]": v for i, v in enumerate(value) if v not in value[:i]})  # per layer (Gemma3n)
        elif value is None:
            unset = True
    hidden = hidden_size(config)
    if not widths and hidden and (unset or names is WIDTH_ATTRIBUTES):
        widths["4 x hidden_size"] = 4 * hidden
        if not unset:  # no known attribute at all: say that the width is assumed, not declared
            return widths, (f"4 x hidden_size={4 * hidden} (assumed: the config sets none of "
                            f"{', '.join(WIDTH_ATTRIBUTES)}; its width attribute may have another name)")
    described = ", ".join(f"{k}={v}" for k, v in widths.items()) or "none"
    return widths, described


def dense_block_widths(config: Any) -> tuple[dict[str, int], str] | None:
    """The MLP width of the dense blocks of a mixture-of-experts `config` that states it apart (see
    :data:`DENSE_BLOCK_WIDTHS`), as :func:`expected_mlp_widths` returns widths; None for other configs."""
    names = DENSE_BLOCK_WIDTHS.get(getattr(config, "model_type", ""), ())
    widths = {n: getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)}
    return (widths, ", ".join(f"{k}={v}" for k, v in widths.items())) if widths else None


def format_neuron(neuron: int, expert_units: int | None, routed_experts: int | None = None) -> str:
    """A neuron's label: ``"17"`` for a dense layer, ``"expert 3 unit 17 (#113)"`` for a MoE layer, and
    ``"shared expert unit 6 (#70)"`` for a unit of the shared expert(s), numbered after the routed experts' units.

    Args:
        neuron (`int`): the layer-wide neuron number.
        expert_units (`int`, *optional*): units per expert (``profile.meta.config["expert_width"]``), None for
            dense layers.
        routed_experts (`int`, *optional*): the routed experts (``config["num_experts"] -
            config["num_shared_experts"]``: :func:`routed_experts`); None labels every expert alike.

    Raises:
        ConfigurationError: `neuron` not one whole number >= 0 (a list or array of one too), or `expert_units` or `routed_experts` not an int >= 0
            (1.9 was labelled as neuron 1, -1 units per expert as ``"expert -5 unit 0"``).
    """
    from .indices import whole_numbers  # numpy: this module stays light

    index = whole_numbers(neuron, "format_neuron's neuron")
    # a list or array of one ([5]) passed whole_numbers, which flattens, then failed in int() with a bare TypeError
    if index.size != 1 or index[0] < 0 or getattr(neuron, "ndim", 0) != 0 or isinstance(neuron, (list, tuple)):
        raise ConfigurationError(f"format_neuron's neuron must be one index >= 0 (not a list or array), got "
                                 f"{neuron!r}.")
    neuron = int(index[0])
    expert_units = check_count("expert_units", expert_units, minimum=0, none="a dense layer")
    routed_experts = check_count("routed_experts", routed_experts, minimum=0, none="every expert labelled alike")
    expert, unit, shared = expert_unit(neuron, expert_units, routed_experts)
    if unit is None:
        return str(int(neuron))
    if shared:
        return f"shared expert unit {unit} (#{int(neuron)})"
    return f"expert {expert} unit {unit} (#{int(neuron)})"


def expert_unit(neuron: int, expert_units: int | None, routed_experts: int | None = None
                ) -> tuple[int | None, int | None, bool | None]:
    """A MoE neuron as ``(expert, unit, shared)``; ``(None, None, None)`` in a dense layer.

    The shared expert(s) are one linear layer whatever the count a config declares (``n x width`` units, see
    :func:`~hf_txray.sites` shared experts), so a shared unit is ``(None, column of that layer, True)``: its column
    is ``neuron - routed_experts x width``. A routed unit is ``(expert, unit, False)`` with ``neuron = expert x width
    + unit``. Arguments as in :func:`format_neuron`.
    """
    if not expert_units:
        return None, None, None
    expert, unit = divmod(int(neuron), int(expert_units))
    if routed_experts is None:  # numbering unknown (layers of several layouts): every expert alike
        return expert, unit, None
    if expert >= routed_experts:
        return None, int(neuron) - routed_experts * int(expert_units), True
    return expert, unit, False


def routed_experts(config: dict) -> int | None:
    """The routed experts of a profile's `config` (``meta.config``): ``num_experts`` counts the shared experts
    too (a shared expert of ``n x width`` units counts as ``n``); None for dense layers."""
    if not config.get("expert_width") or config.get("num_experts") is None:
        return None
    return int(config["num_experts"]) - int(config.get("num_shared_experts") or 0)


# What a profile's ``meta.config`` records of a MoE layer's numbering (a transfer report keeps them too).
EXPERT_KEYS = ("num_experts", "num_shared_experts", "expert_width")


def expert_numbering(config: dict) -> dict[str, int]:
    """The :data:`EXPERT_KEYS` a profile's `config` records (empty for dense layers)."""
    return {k: config[k] for k in EXPERT_KEYS if config.get("expert_width") and config.get(k) is not None}


def neuron_label(neuron: int, config: dict) -> str:
    """:func:`format_neuron` by the numbering a profile's (or report's) `config` records."""
    return format_neuron(neuron, config.get("expert_width"), routed_experts(config))
