"""Loading a (pruned) model with the class its config names, so task heads are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelError
from ..loading import UNPROFILED_MODULES, hub_adapter_folder, load_checked, refuse_adapter_for_whole_model, \
    resolve_model_path


def load_pretrained_with_head(name_or_path: str, *, head_used: bool = True, **kwargs: Any) -> nn.Module:
    """Load a saved model with the class named in its config (``architectures``), so task heads are kept.

    Falls back to ``AutoModel``. Used by the CLI; raises :class:`ModelError` when nothing loads, or when the
    checkpoint lacks weights of the class (a head initialised at random would be pruned, saved or evaluated).

    Args:
        name_or_path (`str`): a Hub id or local folder.
        head_used (`bool`, *optional*, defaults to `True`): whether the task head's output is used. When it is not
            (``hf-txray ablate --metric probe`` reads the body's activations only), the head's weights may be
            missing, as for :func:`hf_txray.analyze`; the body's may not.
    """
    import transformers
    from transformers import AutoConfig, AutoModel

    if Path(name_or_path).expanduser().is_dir():  # a PEFT adapter folder: refused before any weight is read
        refuse_adapter_for_whole_model(str(name_or_path), str(Path(name_or_path).expanduser()))
    # a missing path, a file or a folder without a model: said as analyze says it, before transformers' own words
    name_or_path, gguf_file = resolve_model_path(str(name_or_path), kwargs.pop("gguf_file", None))
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    try:
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        if gguf_file is None and not Path(name_or_path).exists():  # a Hub repo: an adapter's has no config.json
            adapter = hub_adapter_folder(name_or_path, None, kwargs.get("token"), missing_ok=True)
            if adapter is not None:
                refuse_adapter_for_whole_model(name_or_path, adapter)
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err
    cls = None
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            break
    # a head initialised at random would be pruned, saved or evaluated: no weight is exempt when it is used
    exempt, purpose = (((), "what is pruned, saved or evaluated") if head_used
                       else (UNPROFILED_MODULES, "the probe's accuracy under ablation"))
    try:
        return load_checked(cls or AutoModel, name_or_path, str(name_or_path), exempt=exempt, purpose=purpose,
                            **kwargs)
    except ModelError:  # the checkpoint's own refusal (a ValueError too): as it is
        raise
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err
