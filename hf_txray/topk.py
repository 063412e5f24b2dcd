"""The per-position reduction of one layer's activations to its top-k neurons (the hooks' device work)."""

from __future__ import annotations

import numpy as np
import torch

# numpy's argmax is vectorised (SIMD) for these dtypes; torch's CPU ``max(dim=-1)`` with indices is not, and costs
# about 4x more (measured on MiniLM's 1536-wide MLP: 5.5 ms against 1.4 ms per 4096 positions, one thread).
_NUMPY_ARGMAX = (torch.float32, torch.float64)


def top_k_per_row(activations: torch.Tensor, k: int = 1, rows: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest values of every row (or of the chosen `rows`) and their column indices.

    Args:
        activations (`torch.Tensor`): ``(rows, neurons)``, on any device, without gradient.
        k (`int`, *optional*, defaults to 1): winners per row.
        rows (`torch.Tensor`, *optional*): int64 indices of the rows to return, on the activations' device
            (all rows when omitted). Every row is reduced first: one pass over the activations, then a tiny
            selection.

    Returns:
        ``(values, indices)``, both ``(len(rows), k)``, values in descending order. Exactly
        ``activations.max(-1, keepdim=True)`` for ``k == 1`` (ties go to the first index, a NaN wins as in torch)
        and ``activations.topk(k, -1)`` otherwise, then ``index_select(0, rows)``.
    """
    if k == 1 and activations.device.type == "cpu" and activations.dtype in _NUMPY_ARGMAX \
            and not activations.requires_grad:
        array = activations.numpy()
        index = array.argmax(axis=1)  # the first maximum, like torch; numpy's argmax also stops at the first NaN
        chosen = np.arange(len(array)) if rows is None else rows.numpy()
        index = index[chosen]
        return torch.from_numpy(array[chosen, index][:, None]), torch.from_numpy(index.astype(np.int64)[:, None])
    values, indices = activations.topk(k, dim=-1) if k > 1 else activations.max(dim=-1, keepdim=True)
    if rows is not None:
        values, indices = values.index_select(0, rows), indices.index_select(0, rows)
    return values, indices
