"""Loading a (pruned) model with the class its config names, so task heads are kept."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ModelError
from ..loading import load_checked


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
    try:  # a head initialised at random would be pruned, saved or evaluated: no weight is exempt
        return load_checked(cls or AutoModel, name_or_path, str(name_or_path), exempt=(),
                            purpose="what is pruned, saved or evaluated", **kwargs)
    except ModelError:  # the checkpoint's own refusal (a ValueError too): as it is
        raise
    except (OSError, ValueError) as err:
        raise ModelError(f"Could not load model {name_or_path!r}: {str(err).splitlines()[0][:200]}") from err
