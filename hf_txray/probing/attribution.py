"""Which input tokens drive a neuron? Captum's neuron attribution at the token-embedding level, per token.

Needs the optional extra ``captum`` (``pip install captum`` or ``pip install "hf_txray[captum]"``). For a neuron
``(layer, index)`` at a site (by default TX-Ray's MLP neuron, the input of the down projection) at one token position,
``NeuronIntegratedGradients`` integrates the neuron's gradient with respect to the input embeddings along the straight
path from a baseline (the pad token's embedding at every non-special position, or zeros) to the real embeddings;
summing over the hidden dimension gives one score per token, and the scores add up to the neuron's value at the input
minus its value at the baseline (completeness). ``NeuronConductance`` (``method="conductance"``) instead attributes
a model *output* (``target``) through the neuron.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..artifact import ValueEquality
from ..credit import CONTEXT_CHARS
from ..distributed import refuse_unloaded_weights
from ..errors import ConfigurationError, ModelError
from ..hooks import HookSpec, module_hooks, trace
from ..modes import enter_eval
from ..forward import check_no_virtual_tokens, on_own_default_device, own_autograd, own_precision, weights_dtype
from ..lengths import resolve_max_length
from ..logging import warn_caller, warnings_caught
from ..counts import as_int, check_count, is_int
from ..tables import covering_pieces
from ..sites import (Site, check_hooked_rows, check_unchunked, find_sites, is_encoder_decoder, model_inside,
                     require_dense)
from ..tokenizing import keeping_first_tokens

METHODS = ("integrated_gradients", "conductance")
BASELINES = ("pad", "zero")


def _require_captum():
    try:
        import captum.attr  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "Neuron attribution needs Captum, an optional dependency of hf_txray: `pip install captum` (or "
            "`pip install \"hf_txray[captum]\"`)."
        ) from err
    return captum.attr


@dataclass(eq=False)  # == by value (ValueEquality): the generated one raised on the table
class TokenAttribution(ValueEquality):
    """Per-token attribution of one neuron for one text.

    Attributes:
        table (`pd.DataFrame`): one row per token: ``token_index``, ``token``, ``char_start``, ``char_end`` (its
            characters as profiles span them: from its first visible character, empty for a piece of whitespace
            alone such as a lone ``"▁"``), ``special``, ``score``.
        text (`str`): the input.
        layer (`int`), neuron (`int`), position (`int`): the neuron and the token position it is read at.
        activation (`float`): the neuron's value on the input; ``baseline_activation`` on the baseline.
        method (`str`): ``"integrated_gradients"`` or ``"conductance"``.
        n_steps (`int`): integration steps.
    """

    table: pd.DataFrame
    text: str
    layer: int
    neuron: int
    position: int
    activation: float
    baseline_activation: float
    method: str
    n_steps: int

    @property
    def scores(self) -> np.ndarray:
        return self.table["score"].to_numpy()

    @property
    def completeness_gap(self) -> float:
        """Sum of the scores minus (activation - baseline activation): near 0 for integrated gradients."""
        return float(self.scores.sum() - (self.activation - self.baseline_activation))

    def highlight_spans(self) -> list[tuple[str, float | None]]:
        """The text cut into ``(piece, score)`` pairs (``None`` between tokens), e.g. for Gradio's ``HighlightedText``;
        a character several tokens cover (an NFKC ligature, the byte-level pieces of one emoji) shows the score of
        largest magnitude among them (:func:`~hf_txray.tables.covering_pieces`), and the text stays whole.

        Example:
            ```python
            >>> attribution.highlight_spans()
            [('The', 0.02), (' ', None), ('cat', 0.61), ...]
            ```
        """
        table = self.table[~self.table["special"].to_numpy(dtype=bool)]
        scores = table["score"].to_numpy(dtype=np.float64)
        pieces: list[tuple[str, float | None]] = []
        cursor = 0
        for start, end, i in covering_pieces(table["char_start"], table["char_end"], scores):
            if start > cursor:
                pieces.append((self.text[cursor:start], None))
            pieces.append((self.text[start:end], float(scores[i])))
            cursor = end
        if cursor < len(self.text):
            pieces.append((self.text[cursor:], None))
        return pieces


def _site(model: Any, layer: int, site: str, module_pattern: str | None) -> Site:
    index = as_int(layer)  # numpy ints and 0-d int arrays or tensors too (``scores.argmax()``), as a profile's layer
    if index is None:
        raise ConfigurationError(f"layer must be an int, got {layer!r}.")
    chosen = find_sites(model, site, module_pattern, layers=index)[0]
    require_dense([chosen], "Attribution")
    check_unchunked(model, [chosen])
    return chosen


class _Tap(nn.Module):
    """The identity, through which a block's first output passes so that Captum hooks a module returning one tensor."""

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value


def _captum_layer(site: Site) -> tuple[nn.Module, list[HookSpec]]:
    """The module Captum reads the neuron on, and the hooks (:func:`~hf_txray.hooks.module_hooks`) it needs.

    An MLP site is its down projection (read at its input). A block's output (``site="residual"``) goes through a
    :class:`_Tap` on the block's first output tensor: Captum clones every element of a module's output tuple, and a
    T5 encoder block returns ``(hidden, position_bias, None)`` (helper 338: ``AttributeError: 'NoneType' object has
    no attribute 'clone'`` for every residual attribution of a T5)."""
    if site.capture == "input":
        return site.module, []
    tap = _Tap()

    def through(module: nn.Module, args: tuple, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return tap(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (tap(output[0]),) + output[1:]
        return output

    return tap, [("post", site.module, through)]


def _first_tensor(value: Any) -> torch.Tensor:
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _output_tensor(output: Any) -> torch.Tensor:
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    return _first_tensor(output)


@on_own_default_device
def neuron_attributions(
    model: Any,
    tokenizer: Any,
    text: str,
    layer: int,
    neuron: int,
    *,
    position: int | Sequence[int] | None = None,
    method: str = "integrated_gradients",
    site: str = "mlp",
    baseline: str = "pad",
    n_steps: int = 50,
    target: Any = None,
    internal_batch_size: int | None = None,
    max_length: int | None = None,
    module_pattern: str | None = None,
) -> TokenAttribution:
    """Attribute a neuron's activation (or, with conductance, an output through it) to the input tokens.

    Captum reads the neuron through hooks on the model, which see the forward passes of every thread: run nothing
    else on the model in other threads meanwhile (the viewer holds one lock for its attributions and live text).

    Args:
        model (`PreTrainedModel`): a transformers model accepting ``inputs_embeds``.
        tokenizer: its fast tokenizer.
        text (`str`): the input.
        layer (`int`), neuron (`int`): the neuron (as in profiles and probes).
        position (`int` or `Sequence[int]`, *optional*): token index at which the neuron is read; several: the one
            of them where the neuron is largest; defaults to where it is largest among non-special tokens, past the
            first position on decoder-only LMs, as profiles skip it there (``skip_first_positions="auto"``): its
            "massive activations" describe the position, not the input (SmolLM2-135M, neuron 1229 of layer 11: 2824
            at position 0, at most 0.14 elsewhere, every score on the first token).
        method (`str`, *optional*, defaults to `"integrated_gradients"`): Captum's ``NeuronIntegratedGradients``
            (integrated gradients: Sundararajan et al., 2017, "Axiomatic Attribution for Deep Networks", ICML), or
            ``"conductance"`` (``NeuronConductance``: Dhamdhere et al., 2019, "How Important Is a Neuron?", ICLR;
            needs `target`).
        site (`str`, *optional*, defaults to `"mlp"`): ``"mlp"`` or ``"residual"``.
        baseline (`str`, *optional*, defaults to `"pad"`): ``"pad"`` (pad-token embedding at every non-special
            position, special tokens kept; the EOS token's for tokenizers without a pad token, as GPT-2's and
            Llama's) or ``"zero"`` (on models that normalise their embeddings with RMSNorm, as T5 and Llama, the
            neuron jumps right off the zero input and the integral is poorly sampled: a warning says so when the
            scores miss more than 5% of the change they explain).
        n_steps (`int`, *optional*, defaults to 50): integration steps.
        target (*optional*): for conductance, the output index: a class id for classifiers, ``(position, id)`` for
            per-token outputs; refused with integrated gradients, which explain the neuron itself. A warning says
            when the target does not depend on the neuron at its read position (every score 0: a causal LM's
            neuron read after the target's position).
        internal_batch_size (`int`, *optional*): steps per forward pass (memory).
        max_length (`int`, *optional*): truncation; defaults to the model's usable position limit (at most 512),
            as in :func:`extract_activations`.
        module_pattern (`str`, *optional*): regex naming the hooked modules (see :func:`hf_txray.analyze`).

    Returns:
        `TokenAttribution`.

    Raises:
        ImportError: Captum is not installed (the message says ``pip install captum``).
        ConfigurationError: bad method, baseline, layer, neuron (an int in range: 2.7 or True is refused, not read
            as neuron 2 or 1), position, `n_steps` or `internal_batch_size` (ints >= 1), conductance without
            `target`, or a `target` with integrated gradients (which explain the neuron itself).

    Example:
        ```python
        >>> attribution = neuron_attributions(model, tokenizer, "The cat sat on the mat.", layer=3, neuron=811)
        >>> attribution.table[["token", "score"]]
        >>> attribution.completeness_gap   # ~0
        ```
    """
    attr = _require_captum()
    if method not in METHODS:
        raise ConfigurationError(f"Unknown attribution method {method!r}: choose one of {', '.join(METHODS)}.")
    if baseline not in BASELINES:
        raise ConfigurationError(f"Unknown baseline {baseline!r}: choose one of {', '.join(BASELINES)}.")
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("text must be a non-empty string.")
    if not is_int(neuron):  # int() read neuron 2.7 as neuron 2 and True as neuron 1, and attributed that one
        raise ConfigurationError(f"neuron must be an int (the neuron's index in its layer), got {neuron!r}.")
    n_steps = check_count("n_steps", n_steps)
    internal_batch_size = check_count("internal_batch_size", internal_batch_size, none="one batch of all n_steps")
    from ..loading import check_fast_tokenizer

    check_fast_tokenizer(tokenizer)  # a slow one ignores return_offsets_mapping: a bare KeyError 'offset_mapping'
    if method == "conductance" and target is None:
        raise ConfigurationError("method='conductance' attributes a model output through the neuron: pass target= "
                                 "(a class id, or (position, token id) for per-token outputs).")
    if method == "integrated_gradients" and target is not None:  # helper 272: ignored, the neuron itself explained
        raise ConfigurationError(
            f"target={target!r} names a model output, but method='integrated_gradients' attributes the neuron's own "
            "activation and takes no target (it was ignored): pass method='conductance' to attribute that output "
            "through the neuron, or leave target unset.")
    # a torch.compile / DataParallel wrapper: the model inside runs (DataParallel's missing config was refused as a
    # model without an MLP width, a compiled BERT failed with "'NoneType' object has no attribute 'shape'")
    model = model_inside(model)
    refuse_unloaded_weights(model)  # a meta-device model failed with "Tensor.item() cannot be called on meta tensors"
    check_no_virtual_tokens(model)  # prompt tuning's virtual tokens would shift every position read
    target_site = _site(model, layer, site, module_pattern)
    runner = model
    if is_encoder_decoder(model):  # the sites are the encoder's (the default stack): run it alone on the embeddings
        if method == "conductance":
            raise ConfigurationError(
                f"method='conductance' attributes a model output, and {type(model).__name__} is an encoder-decoder "
                "whose output needs decoder inputs as well: use method='integrated_gradients', which reads the "
                "encoder neuron itself (the encoder is run alone).")
        runner = model.get_encoder()
    if not 0 <= int(neuron) < target_site.width:
        raise ConfigurationError(f"Neuron {neuron} is out of range: layer {layer} has {target_site.width} neurons.")
    neuron = int(neuron)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    max_length = resolve_max_length(runner, tokenizer, max_length)  # a longer text failed inside the model
    with keeping_first_tokens(tokenizer):  # a text's first tokens, as the profile's token indices count them
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
    input_ids = enc["input_ids"].to(device)
    special = enc["special_tokens_mask"][0].bool()
    _check_position(position, input_ids.shape[1])  # before the two forward passes and the integral
    extra = {"attention_mask": enc["attention_mask"].to(device)}
    if "token_type_ids" in enc:
        extra["token_type_ids"] = enc["token_type_ids"].to(device)
    names = list(extra)
    embedding = model.get_input_embeddings()
    # tensors Captum can take gradients through inside the caller's torch.inference_mode() too (the embeddings made
    # there failed with "element 0 of tensors does not require grad")
    with own_autograd(), torch.no_grad():
        embeds = embedding(input_ids).detach()
        if baseline == "zero":
            base = torch.zeros_like(embeds)
        else:
            pad = _baseline_token(tokenizer)
            base = embedding(torch.where(special.to(device)[None], input_ids, torch.full_like(input_ids, pad)))

    def forward(inputs_embeds: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        kwargs = {name: value for name, value in zip(names, args)}
        return _output_tensor(runner(inputs_embeds=inputs_embeds, **kwargs))

    width = input_ids.shape[1]

    def grid(value: Any) -> torch.Tensor:  # (batch, seq, units): OPT's fc2 receives the tokens flattened
        tensor = _first_tensor(value)
        rows = math.prod(tensor.shape[:-1]) // width
        check_hooked_rows(target_site.name, tensor.shape, (rows, width))  # XLNet runs sequence-first: refused
        return tensor.reshape(-1, width, tensor.shape[-1])

    # the model's own precision inside a torch.autocast block too, as the profile that explain_examples pairs with was
    # computed (a tiny BERT under CPU bfloat16 autocast: activation 0.06128 for 0.06104, scores 26% off, silently)
    from ..pruning.masks import masks_version, refuse_changed_masks

    masks = masks_version(model)  # another thread's ablation during the passes: refused after them
    with own_precision(), own_autograd():
        restore_modes = enter_eval(model)
        try:
            with torch.no_grad(), trace(model, [target_site], retain=True) as traced:
                forward(embeds, *extra.values())
                values = grid(traced[target_site.layer])[..., neuron][0].float().cpu()
                traced.reset()
                forward(base, *extra.values())
                base_values = grid(traced[target_site.layer])[..., neuron][0].float().cpu()
            position = _read_position(position, values, special, _first_positions(runner))
            _refuse_nonfinite("activations (text, baseline)", [values[position], base_values[position]], model,
                              layer, neuron)  # before the integral
            selector = lambda x: grid(x)[:, position, neuron]  # noqa: E731
            to_input = target_site.capture == "input"
            layer_module, taps = _captum_layer(target_site)
            with module_hooks(taps):
                if method == "integrated_gradients":
                    explainer = attr.NeuronIntegratedGradients(forward, layer_module)
                    scores = explainer.attribute(embeds, neuron_selector=selector, baselines=base,
                                                 additional_forward_args=tuple(extra.values()), n_steps=n_steps,
                                                 internal_batch_size=internal_batch_size,
                                                 attribute_to_neuron_input=to_input)
                else:
                    explainer = attr.NeuronConductance(forward, layer_module)
                    with warnings_caught():  # the selector picks one unit of the grid (aggregates nothing)
                        warnings.filterwarnings("ignore", message="The neuron_selector provided is a callable")
                        scores = explainer.attribute(embeds, neuron_selector=selector, baselines=base, target=target,
                                                     additional_forward_args=tuple(extra.values()), n_steps=n_steps,
                                                     internal_batch_size=internal_batch_size,
                                                     attribute_to_neuron_input=to_input, method="gausslegendre")
        finally:
            restore_modes()
    refuse_changed_masks(model, masks, "neuron_attributions")
    per_token = scores[0].sum(-1).detach().float().cpu().numpy()
    _refuse_nonfinite("attribution scores", per_token, model, layer, neuron)
    starts, ends = _token_spans(tokenizer, text, enc["input_ids"][0].numpy(), enc["offset_mapping"][0].numpy(),
                                special.numpy())
    table = pd.DataFrame({
        "token_index": np.arange(len(per_token)), "token": tokenizer.convert_ids_to_tokens(enc["input_ids"][0]),
        "char_start": starts, "char_end": ends, "special": special.numpy(), "score": per_token.astype(np.float64),
    })
    result = TokenAttribution(table, text, target_site.layer, neuron, position, float(values[position]),
                              float(base_values[position]), method, n_steps)
    change = abs(result.activation - result.baseline_activation)
    if method == "integrated_gradients" and change > 0 and abs(result.completeness_gap) > GAP_WARNING * change:
        warnings.warn(
            f"The attribution scores of neuron {neuron} (layer {layer}) add up to {result.scores.sum():.4g}, but the "
            f"change they explain is {result.activation - result.baseline_activation:.4g} (completeness gap "
            f"{result.completeness_gap:.3g}): " + _gap_cause(model, n_steps, baseline), stacklevel=2)
    if method == "conductance" and not np.any(per_token):
        # helper 272: a tiny GPT-2 LM's neuron read at its largest position, 9, conducted nothing to the target at
        # position 5: every score 0, without a word
        warnings.warn(
            f"Every conductance score of neuron {neuron} (layer {layer}, read at token {position}) for target "
            f"{target!r} is 0: that output does not depend on the neuron at that position (a causal LM's output at an "
            "earlier position, or a classifier's last layer read outside the token it classifies). Pass position= "
            "a token the target reads (on a causal LM, at or before the target's position).", stacklevel=2)
    return result



def _refuse_nonfinite(what: str, values: Any, model: nn.Module, layer: int, neuron: int) -> None:
    """Refuse NaN or inf in the neuron's `what` (its activations at the read position, from the text and from the
    baseline, or the per-token scores): an overflow in half precision gave a tiny Llama in float16 a table of NaN
    scores, and in bfloat16 an activation of inf, without a word (helper 379). The fix named is the cause found: a
    weight holding NaN/inf (named), else half precision (attribute in float32), else a float32 overflow (helper 382:
    a float32 model with an inf weight was told to attribute in float32)."""
    values = np.asarray(values, dtype=np.float64)
    if np.isfinite(values).all():
        return
    dtype = weights_dtype(model)
    bad = next((name for name, p in model.named_parameters()
                if not p.is_meta and p.is_floating_point() and not bool(torch.isfinite(p).all())), None)
    if bad is not None:
        cause = (f"the weights hold NaN/inf (e.g. {bad!r}). Load or train weights that are finite "
                 "(torch.isfinite(p).all() for every parameter).")
    elif dtype in (torch.float16, torch.bfloat16):
        cause = (f"the forward pass or its gradients overflowed in {str(dtype).removeprefix('torch.')}. Attribute in "
                 "float32 (model.float(), or from_pretrained(..., dtype=torch.float32)).")
    else:
        cause = (f"the forward pass or its gradients overflowed in {str(dtype).removeprefix('torch.')}, whose weights "
                 "are finite: the activations grow past its range (check the model's scale, e.g. its norms' "
                 "weights).")
    raise ModelError(
        f"The {what} of neuron {neuron} (layer {layer}) hold NaN or inf ({int((~np.isfinite(values)).sum())} of "
        f"{values.size}): " + cause)

GAP_WARNING = 0.05  # share of the explained change the scores may miss before a warning


def _gap_cause(model: nn.Module, n_steps: int, baseline: str) -> str:
    """What a completeness gap above :data:`GAP_WARNING` comes from, and its fix. In 16-bit weights the path's
    gradients are rounded, and more steps do not close it (helper 379: a tiny BERT in bfloat16 missed 6.4% of the
    change at 32 steps and 5.7% at 512, where float32 missed 5e-7, and the warning said "Use more n_steps")."""
    dtype = weights_dtype(model)
    if dtype in (torch.float16, torch.bfloat16):
        return (f"the model computes in {str(dtype).removeprefix('torch.')}, whose rounding of the path's gradients "
                "more n_steps do not remove. Attribute in float32 (model.float(), or from_pretrained(..., "
                "dtype=torch.float32)) for scores that add up.")
    return (f"{n_steps} integration steps do not sample the path well enough"
            + (" (from the zero baseline, a model that normalises its embeddings with RMSNorm jumps right off zero)"
               if baseline == "zero" else "") + ". Use more n_steps" + (", or baseline='pad'" if baseline == "zero"
                                                                        else "") + ".")


def _baseline_token(tokenizer: Any) -> int:
    """The pad token's id, else the EOS token's (GPT-2 and Llama tokenizers have no pad token; id 0 is a real token)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ConfigurationError(
        "baseline='pad' needs a pad or an EOS token, and this tokenizer has neither: set tokenizer.pad_token, or "
        "pass baseline='zero'.")


def explain_examples(model: Any, tokenizer: Any, examples: pd.DataFrame, layer: int, neuron: int, *, k: int = 5,
                     **kwargs: Any) -> list[TokenAttribution]:
    """Attribute the neuron on its top examples from a profile (``Profile.top_examples(layer, neuron)``).

    Each example's text is its snippet (``left + token + right``) and the neuron is read at the token that covers the
    highlighted span, i.e. where TX-Ray credited it; when several tokens cover its first character (byte-level pieces
    of one emoji or CJK character, which share its offsets, so the snippet alone cannot tell which one was credited),
    at the one of them where the neuron is largest (it was read at the first of them before, whatever its activation).
    Meant for viewers computing attributions on demand.

    The snippet holds at most 60 characters of the text on each side of the token (what the profile keeps), so where
    the profiled text was longer the model reads less context and the neuron's value on the snippet is not the one
    the profile credited: each attribution explains its own ``activation``, and a ``UserWarning`` names the
    examples (by row) whose value differs from the example's ``activation`` column by more than 2%.

    Args:
        examples (`pd.DataFrame`): rows with ``left``, ``token`` and ``right`` columns.
        k (`int`, *optional*, defaults to 5): the first `k` examples.
        **kwargs: passed to :func:`neuron_attributions` (``method``, ``n_steps``...).

    Returns:
        `list[TokenAttribution]`, one per example.

    Example:
        ```python
        >>> explain_examples(model, tokenizer, profile.top_examples(3, 811), 3, 811, k=3)
        ```
    """
    missing = {"left", "token", "right"} - set(examples.columns)
    if missing:
        raise ConfigurationError(f"examples need columns left, token and right; missing {sorted(missing)}.")
    from ..loading import check_fast_tokenizer

    check_fast_tokenizer(tokenizer)  # _token_at reads offsets before neuron_attributions checks
    out = []
    kwargs["max_length"] = resolve_max_length(model, tokenizer, kwargs.get("max_length"))  # as each call resolves it
    for row in examples.head(k).itertuples(index=False):
        text = f"{row.left}{row.token}{row.right}"
        start = len(row.left) + (len(row.token) - len(row.token.lstrip()))
        out.append(neuron_attributions(model, tokenizer, text, layer, neuron,
                                       position=_token_at(tokenizer, text, start, kwargs["max_length"],
                                                          blank=not row.token.strip()),
                                       **kwargs))
    if "activation" in examples.columns:
        _warn_other_values(examples["activation"].head(k).to_numpy(np.float64), out, layer, neuron)
    return out


SNIPPET_TOLERANCE = 0.02  # relative difference between a snippet's value and the profiled one before a warning


def _warn_other_values(profiled: np.ndarray, attributions: Sequence[TokenAttribution], layer: int,
                       neuron: int) -> None:
    """Warn when the neuron's value on an example's snippet is not the activation the profile credited there (helper
    260: a tiny GPT-2's second top example, its left context cut to 60 characters, gave 0.196 for the profiled 0.266,
    and the attribution explained the 0.196 without a word)."""
    found = np.array([a.activation for a in attributions], dtype=np.float64)
    differ = np.flatnonzero(np.abs(found - profiled) > SNIPPET_TOLERANCE * np.maximum(np.abs(profiled), 1e-6))
    if not len(differ):
        return
    first = int(differ[0])
    warn_caller(
        f"On {len(differ)} of the {len(found)} examples (rows {differ.tolist()[:10]}) neuron {neuron} of layer {layer} "
        f"reads another value on the snippet than the profile credited (row {first}: {found[first]:.4g} against "
        f"{profiled[first]:.4g}): the snippet keeps at most {CONTEXT_CHARS} characters of context on each side, so "
        "the model reads less of the text (or the model, its dtype or the profile's settings differ). Each attribution "
        "explains its own `activation`; for the profiled value, run neuron_attributions on the example's whole text "
        "at its token.")


def _first_positions(model: Any) -> int:
    """The first positions the default read position leaves out: those profiles skip by default (1 for decoder-only
    LMs, whose first position carries massive activations; 0 otherwise)."""
    from ..analyze import default_skip_first_positions

    return default_skip_first_positions(model)


def _read_position(position: int | Sequence[int] | None, values: torch.Tensor, special: torch.Tensor,
                   skip: int = 0) -> int:
    """The token index the neuron is read at: `position`, or the one of several (or, for None, of the non-special
    tokens at index `skip` or later; of all non-special tokens when none is) where the neuron's activation `values`
    is largest."""
    if position is None:
        # helper 260: on a decoder-only LM the default read SmolLM2's massive first-position activation (2824 for at
        # most 0.14 elsewhere), whose attribution is the first token's alone: the position, not the input
        later = ~special & (torch.arange(len(special)) >= skip)
        candidates = torch.nonzero(later if later.any() else ~special).flatten()
        candidates = candidates if len(candidates) else torch.arange(len(special))
    else:
        candidates = torch.as_tensor(_check_position(position, len(values)), dtype=torch.long)
    return int(candidates[values[candidates].argmax()])


def _check_position(position: int | Sequence[int] | None, num_tokens: int) -> list[int] | None:
    """The token indices `position` lists (None for None), refused unless each is an int in ``[0, num_tokens)``:
    checked once the text is tokenized, before any forward pass (helper 275: a bad position was refused only after
    the forward passes on the input and on the baseline)."""
    if position is None:
        return None
    # several indices: a list, tuple or range, or an array or tensor of one or more dimensions (read by its `ndim`,
    # not np.ndim, which failed with numpy's bare ValueError on a ragged list such as [0, [1, 2]]); else one index:
    # an int, a numpy int or a 0-d array or tensor (``values.argmax()``: np.array(3) failed with numpy's bare
    # "iteration over a 0-d array", torch.tensor(3) was "not a token index")
    several = (isinstance(position, Sequence) and not isinstance(position, str)) or getattr(position, "ndim", 0) >= 1
    listed = list(position) if several else [position]
    bad = [p for p in listed if as_int(p) is None or not 0 <= as_int(p) < num_tokens]
    if bad or not listed:
        raise ConfigurationError(f"position {bad[0] if bad else position!r} is out of range or not a token "
                                 f"index: the text has {num_tokens} tokens.")
    return [as_int(p) for p in listed]


def _token_spans(tokenizer: Any, text: str, token_ids: np.ndarray, offsets: np.ndarray, special: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The tokens' character spans as profiles record them (:func:`~hf_txray.features.visible_spans`, the ends over
    the combining marks no token covers, :func:`~hf_txray.features.with_stripped_marks`, as the profile's
    ``char_end``; special tokens keep the tokenizer's offsets). The raw offsets gave Llama's prefix ``"▁"`` the text's
    first character, so :meth:`TokenAttribution.highlight_spans` showed that character with the blank piece's score
    and dropped its own token's (helper 322); and an uncased BERT's ``cafe`` (3, 7) of NFD ``"cafe\u0301"`` left the
    accent it stripped unscored, where the profile shows ``cafe\u0301`` (3, 8) (helper 340)."""
    from ..features import BlankPieces, visible_spans, with_stripped_marks

    token_ids = np.asarray(token_ids, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    special = np.asarray(special, dtype=bool)
    starts, ends = visible_spans(text, offsets[:, 0], offsets[:, 1], BlankPieces(tokenizer)(token_ids))
    ends[~special] = with_stripped_marks(text, starts[~special], ends[~special])  # the tokens profiles credit
    return np.where(special, offsets[:, 0], starts), np.where(special, offsets[:, 1], ends)


def _token_at(tokenizer: Any, text: str, char: int, max_length: int, blank: bool = False) -> list[int] | None:
    """The non-special tokens covering character `char` of `text`: one, or several byte-level pieces of one
    character (an emoji, a CJK character in GPT-2's BPE), which share its offsets; None when the cut left it out.

    A piece of whitespace alone (:class:`~hf_txray.features.BlankPieces`: GPT-2's ``"Ċ"`` or a lone ``"Ġ"``, a lone
    ``"▁"``) is credited with an empty span at the next visible character, so an example whose token is empty
    (`blank`) was read at such a piece: the blank pieces whose first visible character is `char`, not the word's
    token that covers it (helper 265: ``"a dog\nran"``, the profile credited ``"Ċ"`` 0.188 and the word's ``"r"``
    was read, -0.0075). A non-empty token is never a blank piece (Llama's prefix ``"▁"`` shares the first
    character's offsets)."""
    from ..features import BlankPieces, first_visible_char

    with keeping_first_tokens(tokenizer):  # as neuron_attributions cuts the text
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True,
                        max_length=max_length)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    real = np.asarray(enc["special_tokens_mask"], dtype=bool) == 0
    pieces = BlankPieces(tokenizer)(np.asarray(enc["input_ids"], dtype=np.int64))
    if blank:
        visible = first_visible_char(text, offsets[:, 0], offsets[:, 1])
        # a blank piece, or a token of whitespace alone (its visible start moved to its end), as profiles span them
        chosen = real & (pieces | (visible >= offsets[:, 1])) & (visible == char)
    else:
        chosen = real & ~pieces & (offsets[:, 0] <= char) & (char < offsets[:, 1])
    covering = np.flatnonzero(chosen).tolist()
    return covering or None


__all__: Sequence[str] = ["neuron_attributions", "explain_examples", "TokenAttribution"]
