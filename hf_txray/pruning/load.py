"""Loading a (pruned) model with the class its config names, so task heads are kept."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ModelError
from ..loading import check_loaded_weights, quiet_load_report


def load_pretrained_with_head(name_or_path: str, **kwargs: Any) -> nn.Module:
    """Load a saved model with the class named in its config (``architectures``), so task heads are kept.

    Falls back to ``AutoModel``. Used by the CLI; raises :class:`ModelError` when nothing loads, or when the
    checkpoint lacks weights of the class (a head initialised at random would be pruned, saved or evaluated).
    """
    import transformers
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err
    cls = None
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            break
    try:
        with quiet_load_report():
            model, info = (cls or AutoModel).from_pretrained(name_or_path, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err
    check_loaded_weights(str(name_or_path), type(model).__name__, info, exempt=())  # a random head evaluates wrong
    return model
