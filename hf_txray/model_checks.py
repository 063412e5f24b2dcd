"""The options checked against a model's structure (the layers, the neurons a `top_k` must not exceed, the positions
a `max_length` must not exceed), once on the loaded model and, where it is safe, before its weights load.

:func:`check_model_options` holds the checks (and their messages). :func:`check_before_loading` runs the same
function on a skeleton of the model built from its config alone on the meta device (no weight is read or allocated:
a few hundredths of a second, where loading a large model or dequantising a GGUF file takes minutes), and lets a
refusal out only where that skeleton is the model analyze loads: a model of one text stack whose config says all
(no remote code, adapter, quantization, mixture-of-experts layers, encoder-decoder or composite config, nor a
`model_kwargs` key that could change the config). Anything else, or any failure to build the skeleton, leaves the
checks to the loaded model, which always runs them again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigurationError, TXRayError
from .forward import StackForward
from .lengths import WINDOWED, resolve_max_length
from .loading import has_own_weights_and_adapter, load_tokenizer, resolve_model_path
from .logging import get_logger
from .options import ProfilerConfig, parse_layers
from .sites import Site, check_one_kind, find_sites, text_config

logger = get_logger(__name__)

# model_kwargs keys that change how the weights load or where they go, never the config (depth, widths, positions):
# any other key may override a config attribute (from_pretrained(..., num_hidden_layers=3)), so the skeleton is not
# built then.
LOADING_ONLY_KWARGS = frozenset({"dtype", "torch_dtype", "device_map", "gguf_file", "token", "attn_implementation",
                                 "low_cpu_mem_usage", "max_memory", "offload_folder", "offload_state_dict",
                                 "use_safetensors", "local_files_only", "cache_dir"})


@dataclass
class ModelChecks:
    """What :func:`check_model_options` found: the sites to hook, the stack's forward and the tokens per text."""

    sites: list[Site]
    forward: StackForward
    max_length: int


def check_model_options(model: nn.Module, tokenizer: Any, config: ProfilerConfig) -> ModelChecks:
    """Check the options that depend on the model's modules: the layers (:func:`~hf_txray.sites.find_sites`), the
    sites' kind and width, `top_k` against a layer's neurons (and the units a mixture-of-experts token reaches), and
    `max_length` against the positions (:func:`~hf_txray.lengths.resolve_max_length`).

    Raises:
        ConfigurationError: a layer out of range, `top_k` above a layer's neurons, `max_length` beyond the positions.
        ModelError: a model whose sites cannot be read.
    """
    sites = find_sites(model, config.site, config.module_pattern, config.stack, config.layers)
    forward = StackForward(model, config.stack, sites)  # checks decoder inputs before any work
    check_one_kind(sites)
    if config.top_k > sites[0].width:
        raise ConfigurationError(f"top_k={config.top_k} exceeds the {sites[0].width} neurons of a layer.")
    check_top_k_reachable(model, sites, config.top_k)
    max_length = resolve_max_length(model, tokenizer, config.max_length, forward.shifted, WINDOWED, forward.runs)
    return ModelChecks(sites, forward, max_length)


def check_top_k_reachable(model: nn.Module, sites: list[Site], top_k: int) -> None:
    """A MoE token competes only among its chosen experts' units: top_k must not exceed how many were computed."""
    routed = getattr(text_config(getattr(model, "config", None)), "num_experts_per_tok", None)
    for site in sites:
        if site.experts is not None and isinstance(routed, int):
            computed = (routed + site.experts.num_shared) * site.experts.width
            if top_k > computed:
                raise ConfigurationError(
                    f"top_k={top_k} exceeds the {computed} units a token reaches in {site.name!r} ({routed} routed "
                    f"experts x {site.experts.width} units, plus shared experts): choose top_k <= {computed}."
                )


def check_before_loading(model: Any, tokenizer: Any, config: ProfilerConfig, *, revision: str | None,
                         trust_remote_code: bool, token: Any, model_kwargs: dict[str, Any] | None,
                         adapted: bool, output_effects: bool) -> Any:
    """Run :func:`check_model_options` on a skeleton of `model` (a Hub id or a path) built from its config, before
    the weights load, where that skeleton is sure to be the model loaded (see the module's docstring).

    Args:
        model: what analyze was given (only a Hub id or a path is checked here).
        tokenizer: the tokenizer given, if any.
        config (`ProfilerConfig`): the options.
        revision, trust_remote_code, token, model_kwargs: as the model will be loaded with them.
        adapted (`bool`): the model is a PEFT adapter on a base model (not checked here).
        output_effects (`bool`): the model is loaded with its LM head (another class: not checked here).

    Returns:
        The tokenizer to load the model with: `tokenizer`, or the model's own one, loaded here (as the model's load
        would load it) to check `max_length` against its limit too.

    Raises:
        ConfigurationError: as the loaded model's checks would, with the same message.
    """
    wanted = parse_layers(config.layers) != "all" or config.top_k > 1 or config.max_length is not None
    kwargs = dict(model_kwargs or {})
    if (not wanted or not isinstance(model, (str, Path)) or adapted or output_effects or trust_remote_code
            or config.module_pattern or set(kwargs) - LOADING_ONLY_KWARGS):
        return tokenizer
    try:
        source, gguf_file = resolve_model_path(str(model), kwargs.get("gguf_file"))
        if gguf_file is None and Path(source).is_dir() and (Path(source, "adapter_config.json").is_file()
                                                           or has_own_weights_and_adapter(source)):
            return tokenizer
        skeleton = _skeleton(source, revision, token, gguf_file)
        if skeleton is None:
            return tokenizer
        # every block's MLP, whatever the site: a model with mixture-of-experts layers is left to the loaded model
        if any(site.capture == "experts" for site in find_sites(skeleton, "mlp", None, config.stack)):
            return tokenizer
        given = tokenizer
        if config.max_length is not None and tokenizer is None:
            from transformers import AutoTokenizer

            given = load_tokenizer(AutoTokenizer, source, revision, trust_remote_code, gguf_file, token=token)
    except (TXRayError, OSError, ValueError, TypeError, AttributeError, KeyError, ImportError, RuntimeError) as err:
        logger.debug("Options not checked before loading the weights (%s: %s).", type(err).__name__, err)
        return tokenizer
    if config.max_length is not None and isinstance(given, (str, Path)):
        config = dataclasses.replace(config, max_length=None)  # its tokenizer loads with the model
    try:
        check_model_options(skeleton, given, config)
    except ConfigurationError:
        raise
    except (TXRayError, RuntimeError, ValueError, TypeError, AttributeError) as err:  # the loaded model tells
        logger.debug("Options not checked before loading the weights (%s: %s).", type(err).__name__, err)
    return given


def _skeleton(source: str, revision: str | None, token: Any, gguf_file: str | None) -> nn.Module | None:
    """The model ``AutoModel.from_pretrained`` would build for `source`, on the meta device (no weights), or None
    where its config leaves the structure to anything but itself: remote code, quantization, an encoder-decoder or a
    composite (vision-language) config."""
    from transformers import AutoConfig, AutoModel

    from .loading import gguf_config, is_local_gguf

    kwargs: dict[str, Any] = {"revision": revision}
    if token is not None:
        kwargs["token"] = token
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    if is_local_gguf(source, gguf_file, revision):
        config = gguf_config(source, gguf_file)  # a local file: read once, load_model takes it on
    else:
        config = AutoConfig.from_pretrained(source, **kwargs)
    if (getattr(config, "auto_map", None) or getattr(config, "quantization_config", None) is not None
            or getattr(config, "is_encoder_decoder", False) or text_config(config) is not config):
        return None
    with torch.device("meta"):
        return AutoModel.from_config(config)
