"""Neuron and layer indices given by users: the one rule for what counts as an index.

A cast to int64 turns a boolean mask into indices 1 and 0, a fraction into the index below it and inf into
INT64_MIN: each would name other neurons without an error. Whole floats (3.0, as a pandas merge or a CSV makes
them) are indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigurationError


def whole_numbers(values: Any, what: str) -> np.ndarray:
    """`values` (a sequence, array or tensor of indices) as a flat int64 array.

    Args:
        values: ints, or floats that are whole numbers.
        what (`str`): what the values are, for the error message (e.g. ``"Fill's neuron indices"``).

    Raises:
        [`ConfigurationError`]: for a bool, a fraction, inf or NaN, or anything that is not a number.
    """
    if hasattr(values, "detach"):  # a torch tensor, on any device
        values = values.detach().cpu().numpy()
    listed = values if isinstance(values, np.ndarray) else list(values)
    array = np.asarray(listed)
    # np.asarray([True, 2]) is [1, 2]: look at the entries themselves
    if array.dtype == bool or (listed is not values and any(isinstance(v, (bool, np.bool_)) for v in listed)):
        raise ConfigurationError(f"{what} must be indices, got a boolean mask of {array.size} entries: pass the "
                                 "indices of its True entries, np.flatnonzero(mask).")
    if array.size and array.dtype.kind not in "iu":
        whole = array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (array == np.round(array))))
        if not whole:
            bad = next((v for v in array.reshape(-1).tolist() if not _is_whole(v)), array.reshape(-1)[0])
            raise ConfigurationError(f"{what} must hold whole numbers, got {bad!r} ({array.dtype}): a fraction would "
                                     "be cut to another index.")
    return array.astype(np.int64).reshape(-1)


def _is_whole(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and bool(np.isfinite(value)) and float(value).is_integer())
