"""How a profiled stack is run: through the base model (task heads never run), and for a decoder of an
encoder-decoder with teacher forcing on the text itself.

* Single-stack models run as ``model.base_model`` (``GPT2Model`` inside ``GPT2ForSequenceClassification``): a
  classification or LM head has nothing to do with the MLP neurons, and running it would only cost time and add
  constraints of its own (a sequence-classification head refuses batches without a pad id).
* Encoder stack: ``model.get_encoder()`` on the text.
* Decoder stack: the encoder on the text, then the decoder on the text shifted right, built by the model's own
  function (``model._shift_right``, or ``shift_tokens_right`` of the model's module, with ``decoder_start_token_id``,
  or T5Gemma2's ``prepare_decoder_input_ids_from_labels``)
  on the text padded with one more position, so that every token of the text is fed once. Decoder position
  ``j + 1`` receives token ``j``: it is credited with token ``j``'s features, and position 0 (the start token) is
  never credited.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from typing import Any, Callable, ParamSpec, TypeVar

import torch
from torch import nn

from .errors import ModelError
from .hooks import refuse_skipped_pre_hooks
from .logging import get_logger
from .sites import Site, check_unchunked, resolve_stack, text_model, unwrap_peft

logger = get_logger(__name__)
P = ParamSpec("P")  # on_own_default_device keeps the signature it wraps
R = TypeVar("R")

# Device types whose autocast state is read (torch raises for a type it does not know, such as "meta").
AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")


def active_autocasts() -> list[tuple[str, torch.dtype]]:
    """The ``(device type, dtype)`` of every ``torch.autocast`` context active on this thread."""
    return [(device, torch.get_autocast_dtype(device)) for device in AUTOCAST_DEVICES
            if torch.is_autocast_enabled(device)]


def weights_dtype(model: Any) -> Any:
    """The dtype a model's weights hold (its first floating parameter's; None for a model without one)."""
    parameters = model.parameters() if hasattr(model, "parameters") else ()
    return next((p.dtype for p in parameters if p.is_floating_point()), None)


@contextlib.contextmanager
def own_precision(active: list[tuple[str, torch.dtype]] | None = None):
    """Every autocast context of `active` (default: :func:`active_autocasts`, those active now) turned off, so that
    the model runs in the dtype of its weights, the dtype a profile records and :func:`hf_txray.reproduce` reloads."""
    with contextlib.ExitStack() as stack:
        for device, _ in active_autocasts() if active is None else active:
            stack.enter_context(torch.autocast(device, enabled=False))
        yield


@contextlib.contextmanager
def own_autograd():
    """Autograd on within the block, whatever the caller's context: a ``torch.no_grad()`` or ``torch.inference_mode()``
    block around a call that trains (a probe) or takes gradients (attributions) made its tensors without history, and
    the call failed with torch's "element 0 of tensors does not require grad and does not have a grad_fn"."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


@contextlib.contextmanager
def own_default_device():
    """torch's default device set back to the CPU, where the caller changed it (``torch.set_default_device`` or a
    ``with torch.device(...)`` block): the tensors hf_txray makes without naming a device (the tokenizer's inputs,
    its buffers) are made on the CPU and moved where the model is, as hf_txray places them. With the default device
    ``"meta"`` around analyze, the inputs were meta tensors and the run was refused as if the architecture could not
    be profiled ("Cannot copy out of meta tensor"), and a model path could not be loaded (helper 378)."""
    with contextlib.ExitStack() as stack:
        if torch.get_default_device().type != "cpu":
            stack.enter_context(torch.device("cpu"))
        yield


def on_own_default_device(function: Callable[P, R]) -> Callable[P, R]:
    """`function` run under :func:`own_default_device` (the entry points that tokenize and run a model); its
    signature and return type are kept for type checkers (``Callable`` alone made them ``(*Any, **Any) -> Any``)."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with own_default_device():
            return function(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def own_forward(module: nn.Module):
    """`module` with the `forward` it had before Accelerate's mixed precision wrapped it.

    With ``bf16``/``fp16``, ``Accelerator.prepare`` (so the `Trainer`) replaces the trained model's own ``forward``
    with an autocast wrapper, keeping the original as ``_original_forward``, and leaves it there after training. A
    model run through its own forward (a bare ``BertModel`` trained with ``compute_loss_func``) was then profiled in
    half precision, by ``TXRayTrainer`` snapshots and by ``analyze(trainer.model, ...)``, its dtype recorded as the
    weights' (helper 177: counts moved, masses off by 0.25). The wrapper is put back afterwards."""
    wrapped, original = vars(module).get("forward"), vars(module).get("_original_forward")
    if wrapped is None or original is None:
        yield
        return
    module.forward = original
    try:
        yield
    finally:
        module.forward = wrapped


def check_no_virtual_tokens(model: nn.Module) -> None:
    """Refuse a PEFT prompt-learning model (prompt, prefix, P-tuning): its own forward adds virtual tokens (prepended
    embeddings, or keys and values in every attention) that the profiled stack, run without the wrapper so that
    heads are skipped, would leave out: every activation would be the base model's, with no error. X-LoRA and aLoRA
    models, whose adapters take effect from that forward, likewise (:func:`check_no_forward_adapters`)."""
    check_no_forward_adapters(model)
    config = getattr(model, "peft_config", None)
    adapter = getattr(model, "active_adapter", None)
    active = config.get(adapter) if isinstance(config, dict) and isinstance(adapter, str) else None
    if getattr(active, "is_prompt_learning", False):
        kind = getattr(active, "peft_type", None)
        raise ModelError(
            f"{type(model).__name__} runs a PEFT {getattr(kind, 'value', kind) or 'prompt-learning'} adapter, whose "
            "virtual tokens hf_txray's forward pass does not add (it runs the transformer stack without the PEFT "
            "wrapper, whose forward adds them): the profile would be the base model's. Profile the base model, or "
            "a LoRA/IA3-adapted one (adapters on the layers themselves are read).")


def check_no_forward_adapters(model: nn.Module) -> None:
    """Refuse a PEFT model whose adapters take their effect from the ``PeftModel``'s own forward, which hf_txray
    does not run (it runs the transformer stack, or a layer alone for output effects, so that heads are skipped):

    * X-LoRA: its forward first runs the model with its LoRA adapters disabled, has its classifier compute per-token
      scalings of the adapters from those hidden states, and injects them into every LoRA layer for the real pass.
      Run without it, each layer applies every adapter at full weight (a tiny Llama's profile moved 118 cells
      against its own forward's activations);
    * Activated LoRA (aLoRA, ``alora_invocation_tokens``) in a ``PeftModel``: its forward finds the invocation
      tokens in each text and passes the offset from which the adapter applies to the LoRA layers; run without it,
      the adapter never applies (a tiny Llama's profile was the base model's, 36 cells away from its own forward's).

    Both gave another model's numbers with no error.

    Raises:
        ModelError: `model` is such a model.
    """
    config = getattr(model, "peft_config", None)
    if not isinstance(config, dict):
        return
    where = "hf_txray does not run it (it runs the transformer stack, or a layer, without the PEFT wrapper)"
    if any(getattr(getattr(c, "peft_type", None), "value", None) == "XLORA" for c in config.values()):
        raise ModelError(
            f"{type(model).__name__} runs a PEFT X-LoRA adapter, whose scalings of its LoRA adapters its own forward "
            f"computes (a first pass with the adapters disabled, then its classifier), and {where}: every adapter "
            "would be read at full weight. Profile one of its LoRA adapters (a PeftModel of it alone, which can be "
            "merged), or the base model.")
    if not callable(getattr(model, "get_base_model", None)):
        return  # a transformers model given adapters with load_adapter: its forward applies no aLoRA offsets either
    try:
        active = model.active_adapters
    except (AttributeError, ValueError):
        active = getattr(model, "active_adapter", None)
    names = [active] if isinstance(active, str) else list(active) if isinstance(active, (list, tuple)) else []
    alora = [name for name in names if getattr(config.get(name), "alora_invocation_tokens", None)]
    if alora:
        raise ModelError(
            f"{type(model).__name__} runs an Activated LoRA (aLoRA) adapter ({alora[0]!r}, with "
            "alora_invocation_tokens), which applies only from its invocation tokens on: its own forward finds them "
            f"in each text and passes where they start to the LoRA layers, and {where}: the adapter would never "
            "apply, and the profile would be the base model's. Profile the base model, or the adapter as plain "
            "LoRA (the same weights in a LoraConfig without alora_invocation_tokens), which applies at every token.")


def profiled_body(model: nn.Module, sites: list[Site]) -> nn.Module:
    """The part of `model` that runs: a composite model's text model (:func:`~hf_txray.sites.text_model`: fed text
    alone, as the composite feeds it text without an image; BLIP-2's and Kosmos-2's own forward needs an image), else
    ``model.base_model`` (so heads are skipped), when it holds every hooked module; else `model` itself."""
    inner = unwrap_peft(model)
    for body in (text_model(inner), getattr(inner, "base_model", model)):
        if body is None or body is model or not isinstance(body, nn.Module):
            continue
        inside = {id(m) for m in body.modules()}
        if all(id(site.module) in inside for site in sites):
            return body
    return model


def check_sites_in_stack(model: nn.Module, stack: str, root: nn.Module, sites: list[Site]) -> None:
    """Refuse sites outside the profiled stack of an encoder-decoder: an encoder module never runs in a decoder-only
    pass of the other stack, or runs on the text's grid while the decoder's positions are read (a wrong profile)."""
    inside = {id(m) for m in root.modules()}
    outside = [site.name for site in sites if id(site.module) not in inside]
    if outside:
        other = "decoder" if stack == "encoder" else "encoder"
        other_root = getattr(model, f"get_{other}", lambda: None)()
        first = next(site.module for site in sites if site.name == outside[0])
        if other_root is not None and any(m is first for m in other_root.modules()):
            advice = (f"Pass stack={other!r} to profile the {other}, or a module_pattern matching modules of the "
                      f"{stack} only.")
        else:  # a head (lm_head) or a module of neither stack
            advice = f"It lies in neither stack: pass a module_pattern matching modules of the {stack}."
        raise ModelError(
            f"{outside[0]!r} is not inside the {stack} stack of {type(model).__name__}, which stack={stack!r} "
            f"profiles. {advice}"
        )


def _module_shift(model: nn.Module) -> Callable | None:
    """The ``shift_tokens_right`` of the module that defines `model`'s class (or a base class), if any."""
    for cls in type(model).__mro__:
        shift = getattr(sys.modules.get(cls.__module__), "shift_tokens_right", None)
        if shift is not None:
            return shift
    return None


def _wraps_last_token(shift: Callable) -> bool:
    """Whether a ``shift_tokens_right`` starts the decoder from each text's last token (mBART's and PLBart's: the
    language id wraps to the front) rather than from a ``decoder_start_token_id`` it is given."""
    return "decoder_start_token_id" not in inspect.signature(shift).parameters


def _own_shift(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The model's own method that shifts token ids right and reads its start token itself: ``_shift_right`` (T5,
    T5Gemma), else, where the model's module defines no ``shift_tokens_right``,
    ``prepare_decoder_input_ids_from_labels`` (T5Gemma2's only shift: its ``_shift_right`` under transformers' name,
    starting from ``config.decoder.bos_token_id``); None for the others."""
    if hasattr(model, "_shift_right"):
        return model._shift_right
    prepare = getattr(model, "prepare_decoder_input_ids_from_labels", None)
    return prepare if callable(prepare) and _module_shift(model) is None else None


def _shift_function(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's own right shift of decoder inputs, as a function of the token ids."""
    own = _own_shift(model)
    if own is not None:
        return own
    config, shift = model.config, _module_shift(model)
    if shift is None:
        raise ModelError(
            f"{type(model).__name__} defines neither `_shift_right`, `shift_tokens_right` nor "
            "`prepare_decoder_input_ids_from_labels`: hf_txray cannot build its decoder inputs the way the model "
            "does. Profile stack='encoder'."
        )
    if _wraps_last_token(shift):
        return lambda ids: shift(ids, config.pad_token_id)
    return lambda ids: shift(ids, config.pad_token_id, config.decoder_start_token_id)


def check_decoder_inputs(model: nn.Module) -> None:
    """Refuse, before any forward pass, a decoder whose inputs cannot be built (no pad or start token id)."""
    config = model.config
    _shift_function(model)
    if config.pad_token_id is None:
        raise ModelError(f"{type(model).__name__}'s config has no pad_token_id, needed to build its decoder inputs: "
                         "set model.config.pad_token_id.")
    own = _own_shift(model)
    if own is not None:
        # the model's own shift reads its start token where the model keeps it (T5's decoder_start_token_id,
        # T5Gemma's decoder.bos_token_id): asked, it says what is missing
        try:
            own(torch.full((1, 2), config.pad_token_id))
        except (ValueError, TypeError, RuntimeError) as err:
            raise ModelError(f"{type(model).__name__}'s own {own.__name__} cannot build its decoder inputs ({err}): "
                             "set the start token it reads (T5 uses the pad id as decoder_start_token_id) to profile "
                             "the decoder.") from err
    # mBART and PLBart start from the text's own last token (its language id), and never read
    # decoder_start_token_id: a PLBart config without one was refused, asking for a setting the model ignores
    elif not _wraps_last_token(_module_shift(model)) and getattr(config, "decoder_start_token_id", None) is None:
        raise ModelError(f"{type(model).__name__}'s config has no decoder_start_token_id: set it (T5 uses the pad "
                         "id) to profile the decoder.")


def decoder_inputs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing decoder inputs for a right-padded batch: the text shifted right by the model's own function.

    Args:
        model (`nn.Module`): the encoder-decoder model.
        input_ids (`torch.Tensor`): ``(batch, seq)``, right-padded (padding may hold any id).
        attention_mask (`torch.Tensor`): ``(batch, seq)``, 1 on real tokens.

    Returns:
        ``(decoder_input_ids, decoder_attention_mask)``, both ``(batch, seq + 1)``: position ``j + 1`` holds token
        ``j``, position 0 the start token.
    """
    pad = model.config.pad_token_id
    real = attention_mask.bool()
    ids = torch.where(real, input_ids, torch.full_like(input_ids, pad))
    # mBART's shift finds each row's last real token (its language id) by counting the ids that are not the pad id:
    # a text holding the pad id itself ("<pad>" typed in it) moved that count, and its decoder was started from
    # another token (</s>: masses 1% off, silently). The shift sees a placeholder there, and in a text without tokens
    # (which needs one to wrap); the text's own ids are put back after it.
    placeholder = 0 if pad != 0 else 1
    seen = torch.where(real & (ids == pad), torch.full_like(ids, placeholder), ids)
    seen[~real.any(dim=1), 0] = placeholder
    room = ids.new_full((ids.shape[0], 1), pad)  # for the last token
    shifted = _shift_function(model)(torch.cat([seen, room], dim=1))
    shifted[:, 1:] = ids  # position j + 1 is fed token j as the text holds it
    if _own_shift(model) is None and _wraps_last_token(_module_shift(model)):
        # the wrapped start token is the text's own last token, also where that token is the pad id itself: the
        # shift saw the placeholder there, and started such a text from it (a PLBart text ending in its pad id "!":
        # masses 0.5% off, no error)
        last = (real.sum(dim=1) - 1).clamp(min=0)
        rows = real.any(dim=1)
        shifted[rows, 0] = ids[rows, last[rows]]
    mask = torch.cat([attention_mask.new_ones((attention_mask.shape[0], 1)), attention_mask], dim=1)
    return shifted, mask


def encoder_states(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The encoder's output as the model hands it to its decoder's cross-attention.

    An ``EncoderDecoderModel`` whose two stacks differ in hidden size projects the encoder's output with
    ``enc_to_dec_proj`` (a layer that exists only then) in its own forward: fed unprojected, the decoder failed on
    its first text (a BERT-32 encoder and a BERT-24 decoder: ``mat1 and mat2 shapes cannot be multiplied``)."""
    project = getattr(model, "enc_to_dec_proj", None)
    return project(hidden) if isinstance(project, nn.Module) else hidden


def decoder_positions(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Flat ``(batch, seq)`` positions of input tokens -> flat ``(batch, seq + 1)`` decoder positions fed them."""
    row, column = torch.div(positions, width, rounding_mode="floor"), positions % width
    return row * (width + 1) + column + 1


def _names(module: nn.Module, argument: str) -> bool:
    """Whether `module`'s forward takes `argument` by name (not only through ``**kwargs``)."""
    try:
        return argument in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):  # a forward without a signature (a compiled or C-level callable)
        return False


class StackForward:
    """Runs the profiled stack of `model` on a batch of model inputs.

    Args:
        model (`nn.Module`): the loaded model.
        stack (`str`, *optional*): ``"encoder"``/``"decoder"`` for encoder-decoders, None for one-stack models.
        sites (`list[Site]`): the hooked sites (they must lie in the part of the model that runs).

    Raises:
        ModelError: a hooked module lies outside the chosen stack of an encoder-decoder (it would not run, or run
            on another grid of positions), or the decoder's inputs cannot be built; before any forward pass.
    """

    def __init__(self, model: nn.Module, stack: str | None, sites: list[Site]):
        check_no_virtual_tokens(model)
        check_unchunked(model, sites)
        self.model = model
        self.stack, root = resolve_stack(model, stack)
        if self.stack is not None:
            check_sites_in_stack(model, self.stack, root, sites)
        if self.stack == "decoder":
            check_decoder_inputs(model)
        self.body = profiled_body(model, sites) if self.stack is None else None
        # No key/value cache: nothing reads it, it costs memory, and some hybrid models' cache cannot be built
        # without attention layers (Bamba with Mamba blocks only failed inside transformers' cache_utils).
        self.extra: dict[str, Any] = {"use_cache": False} if self.body is not None and _names(self.body, "use_cache") else {}
        # The decoder is fed the start token before the text: its position tables hold one text token less.
        self.shifted: nn.Module | None = root if self.stack == "decoder" else None
        # The part that runs, whose position tables bound a text (a decoder that does not run bounds nothing).
        self.runs: nn.Module = root if self.stack == "encoder" else model
        for called in self._called():
            refuse_skipped_pre_hooks(model, called, {None: "its body alone, heads left out",
                                                     "encoder": "its encoder alone, not its own forward",
                                                     "decoder": "its encoder, then its decoder, not its own forward"
                                                     }[self.stack])
        self._autocast_noted = False  # an autocast context around the forward was turned off and reported

    def _called(self) -> list[nn.Module]:
        """The modules :meth:`_run` calls: the body, or an encoder-decoder's encoder (and decoder)."""
        if self.stack is None:
            return [self.body]
        return [self.model.get_encoder()] + ([self.model.get_decoder()] if self.stack == "decoder" else [])

    @property
    def read_weights(self) -> nn.Module:
        """The module whose weights produce the activations read: the body that runs (heads left out), or an
        encoder-decoder's chosen stack (what a probe's and a stack profile's weights sample hash cover)."""
        if self.body is not None:
            return self.body
        return self.shifted if self.stack == "decoder" and self.shifted is not None else self.runs

    @property
    def model_weights(self) -> nn.Module:
        """The weights every stack's activations depend on: the body that runs (heads left out), or an
        encoder-decoder's encoder and decoder together, since its decoder stack also reads the encoder's output
        (cross-attention), so the decoder's own weights (:attr:`read_weights`) do not fix its activations. The two
        stacks are gathered in a new container, without the model's own prefix and LM head: BART's
        ``BartModel`` and ``BartForConditionalGeneration`` of one checkpoint (``model.`` prefix,
        ``final_logits_bias``), or an untied T5 with and without ``lm_head``, hold the same such weights."""
        if self.body is not None:
            return self.body
        get_encoder, get_decoder = (getattr(self.model, name, None) for name in ("get_encoder", "get_decoder"))
        if get_encoder is None or get_decoder is None:
            return self.model
        project = getattr(self.model, "enc_to_dec_proj", None)  # between the stacks: see encoder_states
        extra = [project] if isinstance(project, nn.Module) else []
        return nn.ModuleList([get_encoder(), get_decoder(), *extra])

    def positions(self, positions: torch.Tensor, width: int) -> torch.Tensor:
        """Where the hooks find the input tokens at flat `positions` of the ``(batch, width)`` input grid."""
        return decoder_positions(positions, width) if self.stack == "decoder" else positions

    def hooked_grid(self, rows: int, width: int) -> tuple[int, int]:
        """``(batch, sequence)`` of a hooked activation for a ``(rows, width)`` input grid: the decoder stack reads
        one position more than the text (its start token)."""
        return rows, (width + 1 if self.stack == "decoder" else width)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> Any:
        # A torch.autocast context around analyze (or a Trainer's evaluation) ran the model in half precision while
        # the profile recorded the weights' dtype (a float32 tiny Llama under CPU bf16 autocast: 40 of 88 neurons'
        # counts moved, masses up to 11% off, recorded 'float32'): run it in its own precision, as own_forward
        # does for Accelerate's autocast wrapper, and say so once.
        active = active_autocasts()
        if active and not self._autocast_noted:
            self._autocast_noted = True
            held = weights_dtype(self.model)
            logger.warning(
                "torch.autocast(%s) is active around the profiled forward pass; hf_txray turns it off and runs the "
                "model in the dtype of its weights (%s), which the profile records and reproduce reloads. To profile "
                "in half precision, load the model in it (dtype='bfloat16', or model.to(torch.bfloat16)).",
                ", ".join(f"{device!r}, {str(dtype).removeprefix('torch.')}" for device, dtype in active),
                str(held).removeprefix("torch."))
        with own_precision(active):
            return self._run(inputs)

    def _run(self, inputs: dict[str, torch.Tensor]) -> Any:
        if self.stack is None:
            with own_forward(self.body):
                return self.body(**inputs, **self.extra)
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        encoded = self.model.get_encoder()(input_ids=ids, attention_mask=mask)
        if self.stack == "encoder":
            return encoded
        decoder_ids, decoder_mask = decoder_inputs(self.model, ids, mask)
        return self.model.get_decoder()(input_ids=decoder_ids, attention_mask=decoder_mask,
                                        encoder_hidden_states=encoder_states(self.model, encoded[0]),
                                        encoder_attention_mask=mask, use_cache=False)
