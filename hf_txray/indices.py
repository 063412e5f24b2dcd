"""Neuron and layer indices given by users: the one rule for what counts as an index.

A cast to int64 turns a boolean mask into indices 1 and 0, a fraction into the index below it and inf into
INT64_MIN: each would name other neurons without an error. Whole floats (3.0, as a pandas merge or a CSV makes
them) are indices.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .counts import as_number
from .errors import ConfigurationError


def whole_numbers(values: Any, what: str, beyond: Callable[[int], str] | None = None) -> np.ndarray:
    """`values` (a sequence, array or tensor of indices, or one index) as a flat int64 array.

    Args:
        values: ints, or floats that are whole numbers.
        what (`str`): what the values are, for the error message (e.g. ``"Fill's neuron indices"``).
        beyond (`Callable[[int], str]`, *optional*): the error message for a value beyond int64, given the value
            (e.g. naming the layers that exist, as an index out of range is refused); default: one naming `what`.

    Raises:
        [`ConfigurationError`]: for a bool, a fraction, inf or NaN, or anything that is not a number.
    """
    if hasattr(values, "detach"):  # a torch tensor, on any device
        values = values.detach().cpu().numpy()
    if np.ndim(values) == 0 and not isinstance(values, (str, bytes)):  # one index: Fill(3) failed "not iterable"
        values = [values.item() if isinstance(values, np.ndarray) else values]
        if isinstance(values[0], (bool, np.bool_)):  # was "a boolean mask of 1 entries"
            raise ConfigurationError(f"{what} must be an integer, got {bool(values[0])!r}.")
    listed = values if isinstance(values, np.ndarray) else list(values)
    array = np.asarray(listed)
    # np.asarray([True, 2]) is [1, 2]: look at the entries themselves
    if array.dtype == bool or (listed is not values and any(isinstance(v, (bool, np.bool_)) for v in listed)):
        raise ConfigurationError(f"{what} must be indices, got a boolean mask of {array.size} entries: pass the "
                                 "indices of its True entries, np.flatnonzero(mask).")
    if array.size and array.dtype.kind not in "iu":
        if array.dtype.kind == "O":  # ints of a table of mixed columns (frame.values), Python ints beyond int64
            whole = all(_is_whole(v) for v in array.reshape(-1).tolist())
        else:
            whole = array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (array == np.round(array))))
        if not whole:
            bad = next((v for v in array.reshape(-1).tolist() if not _is_whole(v)), array.reshape(-1)[0])
            why = ("a fraction would be cut to another index" if isinstance(bad, (float, np.floating))
                   else "indices are ints, or whole floats such as 3.0")
            raise ConfigurationError(f"{what} must hold whole numbers, got {bad!r} ({array.dtype}): {why}.")
    # a cast to int64 wraps 2**64 - 1 (uint64) to -1, the last neuron where negative indices count from the end
    huge = next((v for v in array.reshape(-1).tolist() if not _INT64.min <= int(v) <= _INT64.max), None)
    if huge is not None and beyond is not None:
        raise ConfigurationError(beyond(int(huge)))
    if huge is not None:
        raise ConfigurationError(f"{what} must be indices of neurons, got {huge!r}, beyond any model's width (a cast to "
                                 "int64 would make it another index).")
    return array.astype(np.int64).reshape(-1)


_INT64 = np.iinfo(np.int64)


def whole_number(value: Any, what: str, beyond: Callable[[int], str] | None = None) -> int:
    """One index (a neuron's, a layer's) as :func:`whole_numbers` reads indices: an int, or a whole float such as 3.0
    (a DataFrame's row gives one); numpy's and 0-d arrays or tensors too (:func:`~hf_txray.counts.as_number`).

    Args:
        value: the index.
        what (`str`): what the value is, for the error message (e.g. ``"A neuron's layer"``).
        beyond (`Callable[[int], str]`, *optional*): the error message for a value beyond int64 (:func:`whole_numbers`).

    Raises:
        [`ConfigurationError`]: for a bool, a fraction, inf or NaN, several values, or anything that is not a number.
    """
    if np.ndim(value) != 0:
        raise ConfigurationError(f"{what} must be one integer, got {value!r}.")
    number = as_number(value)  # None for a bool, a text, None
    if number is None:
        item = value.item() if callable(getattr(value, "item", None)) else value  # np.True_, tensor(True): True
        shown = bool(item) if isinstance(item, (bool, np.bool_)) else value
        raise ConfigurationError(f"{what} must be an integer, got {shown!r}.")
    return int(whole_numbers(number, what, beyond)[0])


def _is_whole(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):  # np.isfinite refuses a Python int beyond int64 (2**70)
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value)) and float(value).is_integer()
