"""The default token budget of a forward pass (``max_tokens_per_batch``) on a CPU: batches whose widest activation
stays cache-sized.

On a CPU, a batch of a few thousand tokens runs slower per token than a batch of one or two thousand: the MLP's
intermediate activations (tokens x intermediate size) no longer fit in the core's caches, so every layer streams
them through main memory, and so does the hooks' top-k that reads them. Measured on this project's 2-core machine
(bench/RESULTS.md, "Token budget on a CPU"): all-MiniLM-L6-v2's forward over 300 WikiText paragraphs took 0.83 of
its time in batches of 32 texts at 1024 tokens a batch (one thread), a GPT-2-size model's 0.38 at 512 tokens (with
less padding too). Narrow models gain nothing from smaller batches (their per-batch Python overhead dominates), so
the budget follows the widest activation, up to 4096 tokens.

On an accelerator, throughput comes from large batches: batches of 32 short texts (PTB sentences: about 1000
tokens) leave a GPU waiting on the host's per-batch work. There the default is a token budget of 32 windows of
``max_length`` tokens, the most that batches of 32 texts held (so no batch needs more memory than before), with as
many rows as the budget holds (up to :data:`ACCELERATOR_MAX_ROWS`), so short texts fill batches as long texts do.
"""

from __future__ import annotations

import torch
from torch import nn

from .forward import weights_dtype

# Bytes of the widest per-token activation held by a CPU batch, per thread of the forward: about the size of a core's
# L2 cache and a share of the last-level cache (MiniLM's 1536-wide float32 MLP: 1024 tokens a thread).
CPU_BATCH_BYTES_PER_THREAD = 6 << 20
# The most tokens of a CPU batch, whatever the model: narrow models' batches are not cache-bound, but a budget still
# sorts long texts into batches of like lengths (near-free 12 x 32 model on WikiText paragraphs: 10% less time at
# 4096 tokens than in batches of 32 texts, with 17.6% padding instead of 23.1%).
CPU_MAX_TOKENS = 4096


# The row budget (``batch_size``) on a CPU, and on an accelerator when a token budget is given without one.
DEFAULT_ROWS = 32
# The most rows of a default accelerator batch (16-token rows of a 16384-token budget).
ACCELERATOR_MAX_ROWS = 1024
# The narrowest row a default accelerator batch is sized for (a padded width: pad_to_multiple_of's default).
MIN_ROW_TOKENS = 16


def widest_activation(model: nn.Module) -> int:
    """The largest output width of the model's linear layers (the MLP's intermediate size in a transformer),
    leaving out vocabulary-sized heads; 0 when it has none."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    widths = [getattr(module, "out_features", None) or getattr(module, "nf", None) for module in model.modules()
              if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"]  # GPT-2's Conv1D has `nf`
    return max((w for w in widths if isinstance(w, int) and w != vocab), default=0)


def resolve_token_budget(requested: int | None, model: nn.Module, device: torch.device, max_length: int,
                         batch_size: int | None, window_width: int | None = None) -> int | None:
    """`requested`, or the default ``max_tokens_per_batch``.

    On a CPU the default is the largest power of two of tokens whose widest activation
    (:func:`widest_activation`, in the model's dtype) takes at most :data:`CPU_BATCH_BYTES_PER_THREAD` per torch
    thread, at most :data:`CPU_MAX_TOKENS`, and never less than `window_width` (a window must fit); None where that
    budget would not bind (``batch_size`` rows of up to `max_length` tokens hold less). On an accelerator it is
    ``DEFAULT_ROWS * max_length`` tokens when `batch_size` is not given either; None (``batch_size`` rows alone)
    when it is.

    Args:
        batch_size (`int`, *optional*): the requested row budget; None for the default (:func:`resolve_batch_size`).
        window_width (`int`, *optional*): one window's padded width (`max_length` rounded up to
            ``pad_to_multiple_of``); defaults to `max_length`.

    Returns:
        `int` or `None`: tokens (rows x padded width) per forward pass.
    """
    if requested is not None:
        return requested
    if device.type != "cpu":
        return None if batch_size is not None else DEFAULT_ROWS * max_length
    batch_size = DEFAULT_ROWS if batch_size is None else batch_size
    width = widest_activation(model)
    tokens = CPU_MAX_TOKENS
    if width:
        dtype = weights_dtype(model) or torch.float32
        fitting = CPU_BATCH_BYTES_PER_THREAD * torch.get_num_threads() // (width * dtype.itemsize)
        tokens = min(tokens, 1 << max(fitting.bit_length() - 1, 0))
    # floored at the padded width: a max_length of 600 gave a 600-token budget, below every 608-wide batch
    window = max(max_length, window_width or 0)
    tokens = max(tokens, window)
    return tokens if tokens < batch_size * window else None


def resolve_batch_size(requested: int | None, device: torch.device, max_tokens_per_batch: int | None) -> int:
    """`requested`, or the default ``batch_size`` (rows per forward pass): :data:`DEFAULT_ROWS`, and on an
    accelerator with a token budget as many rows as it holds at :data:`MIN_ROW_TOKENS` a row (up to
    :data:`ACCELERATOR_MAX_ROWS`; rows are sorted by length, so a batch of short rows is cut by the budget, not by
    the row count)."""
    if requested is not None:
        return requested
    if device.type == "cpu" or max_tokens_per_batch is None:
        return DEFAULT_ROWS
    return max(DEFAULT_ROWS, min(ACCELERATOR_MAX_ROWS, max_tokens_per_batch // MIN_ROW_TOKENS))
