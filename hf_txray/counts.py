"""The one rule for the counts the API takes (``num_samples``, ``top_k``, ``max_sentences``, ``k``...), for its
on/off arguments (:func:`check_switch`) and for its text arguments (:func:`check_text`).

Without it, each caller's own test let something through: pandas' ``head(-3)`` and list slicing read 0 or a negative
count as "all" or "from the end", ``islice`` and ``range`` cut 2.5 to 2 or round it up, and ``True`` passed as 1.
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Sequence

from .errors import ConfigurationError


def as_int(value: Any) -> int | None:
    """`value` as a Python int when it is one integer, else None: an int, a numpy int, or a 0-d integer array or
    tensor (``scores.argmax()``, ``np.array(3)``, ``torch.tensor(3)``: what numpy and torch hand out for one index),
    never a bool (``True`` would otherwise pass as 1; numpy bools are not Integral) nor a float, whole ones included
    (torch, numpy and ``range`` refuse ``2.0`` as an index or a count too). The one rule for a single index or count:
    :func:`is_int` and :func:`check_count` read it."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # a 0-d array or tensor, or a numpy scalar: its Python value (a bool stays a bool)
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None


def is_int(value: Any) -> bool:
    """Whether `value` is one integer (:func:`as_int`): an int, a numpy int or a 0-d integer array or tensor, not a
    bool."""
    return as_int(value) is not None


def check_count(name: str, value: Any, *, minimum: int = 1, none: str | None = None, note: str = "") -> int | None:
    """`value` as a Python int, or a ConfigurationError unless it is an int >= `minimum` (a numpy int or a 0-d
    integer array or tensor too, :func:`as_int`; never a bool or a float), or None where `none` says what None
    means (then None is returned).

    Args:
        name (`str`): the argument as the caller spells it (``"max_sentences"``, ``"txray_steps"``).
        value: the count given.
        minimum (`int`, defaults to 1): the smallest count accepted.
        none (`str`, *optional*): what None stands for (``"all"``); None is refused when not given.
        note (`str`, *optional*): what the count means, said in the message (``"0 skips the subsets"``).

    Raises:
        ConfigurationError: ``"<name> must be an int >= <minimum> (<note>; or None for <none>), got <value>."``
    """
    if value is None and none is not None:
        return None
    count = as_int(value)
    if count is None or count < minimum:
        said = "; ".join(part for part in (note, none and f"or None for {none}") if part)
        whole = (f" (write {int(value)}: a count is an int)" if isinstance(value, float) and value.is_integer()
                 else "")
        raise ConfigurationError(f"{name} must be an int >= {minimum}{f' ({said})' if said else ''}, got "
                                 f"{value!r}{whole}.")
    return count


def as_number(value: Any) -> int | float | None:
    """`value` as a Python int or float when it is one real number, else None: a Python or numpy number, or a 0-d
    array or tensor (``np.float32(0.1)``, ``torch.tensor(0.1)``: what numpy and torch hand out for one number), its
    kind kept (an int stays an int: a pruning amount's 1 is a count, 1.0 a fraction); never a bool (``l1=True`` would
    otherwise pass as 1.0), a complex number or text. The one rule for a single number, as :func:`as_int` is for a
    single int: :func:`check_number` reads it."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # a 0-d array or tensor, or a numpy scalar: its Python value (a bool stays a bool)
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else None


def check_number(name: str, value: Any, low: float, strict: bool = False, note: str = "") -> float:
    """`value` as a Python float, or a ConfigurationError unless it is a finite number (:func:`as_number`: numpy's
    and 0-d arrays or tensors too, never a bool) >= `low` (> `low` when `strict`).

    Args:
        name (`str`): the argument as the caller spells it (``"l1"``).
        value: the number given.
        low (`float`): the smallest number accepted (excluded when `strict`).
        note (`str`, *optional*): what the number means, said in the message.

    Raises:
        ConfigurationError: ``"<name> must be a number >= <low> (finite; not a bool), got <value>."``
    """
    number = as_number(value)
    if number is None or not math.isfinite(number) or number < low or (strict and number == low):
        said = f"; {note}" if note else ""
        raise ConfigurationError(f"{name} must be a number {'>' if strict else '>='} {low:g} (finite, not a "
                                 f"bool{said}), got {value!r}.")
    return float(number)


def check_byte_size(name: str, value: Any, note: str = "") -> int | float:
    """`value` as a size in bytes >= 0: an int, a whole float (``2e9``, as a byte size is often written) as its int,
    or ``float("inf")`` (never reached); a ConfigurationError otherwise (a bool, a fraction such as 1.5, NaN, a
    negative size or text).

    Raises:
        ConfigurationError: ``"<name> must be a size in bytes >= 0 ... got <value>."``
    """
    if is_int(value) and value >= 0:
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)) and float(value) >= 0:
        if math.isinf(float(value)):
            return math.inf
        if float(value).is_integer():
            return int(value)
    said = f" ({note})" if note else ""
    raise ConfigurationError(f"{name} must be a size in bytes >= 0{said}: an int, a whole float such as 2e9, or "
                             f"float('inf'); got {value!r}.")


def is_switch(value: Any) -> bool:
    """A bool or a 0 or 1 (numpy's too), alone or as a 0-d array or tensor (``np.True_``, ``torch.tensor(True)``):
    what an on/off argument takes as the bool it stands for. (A torch tensor's dtype has no numpy ``kind``: reading
    one ended in a bare AttributeError.)"""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()
    return isinstance(value, bool) or (is_int(value) and value in (0, 1))


def check_switch(name: str, value: Any, *, none: str | None = None) -> bool | None:
    """`value` of the on/off argument `name` as a bool, or a ConfigurationError: a string (``per_layer="no"``) is
    truthy and turned the switch on. A bool, a numpy or torch bool, or a 0 or 1 (numpy's too) stands for the bool it is
    (:func:`is_switch`), as :func:`~hf_txray.options.check_switches` reads options.

    Args:
        name (`str`): the argument as the caller spells it (``"per_layer"``).
        value: the value given.
        none (`str`, *optional*): what None stands for where the argument takes it (``"detect"``): None is then
            returned as None; it is refused when not given.

    Raises:
        ConfigurationError: ``"<name> must be True or False, got 'no' (str)."`` (``"True, False or None
        (<none>)"`` where None is taken).
    """
    if value is None and none is not None:
        return None
    if is_switch(value):
        return bool(value)
    allowed = "True or False" if none is None else f"True, False or None ({none})"
    raise ConfigurationError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__}).")


def check_text(name: str, value: Any, *, optional: bool = True, width: int | None = None, note: str = "") -> None:
    """Refuse `value` of the text argument `name` unless it is a string, or None where `optional`: ``stage=2020`` (a
    number read from a YAML file) reached the saved tables, whose writer failed only after the whole run;
    ``pretty_name=['x']`` titled the card ``['x']``, and ``commit_message=3`` went on to the Hub's commit (helper
    369). The fix shows the value as text (a compiled regex: its pattern).

    Args:
        name (`str`): the argument as the caller spells it (``"stage"``).
        value: the value given.
        optional (`bool`, defaults to `True`): whether None is taken.
        width (`int`, *optional*): the most characters of the value (and of the fix) the message shows; all when
            None.
        note (`str`, *optional*): a sentence the message ends with (``"Nothing was written."``).

    Raises:
        ConfigurationError: ``"<name> must be a string (or None), got 3 (int): write it as text, e.g. <name>='3'."``
    """
    if isinstance(value, str) or (optional and value is None):
        return
    given, text = repr(value), repr(value.pattern if isinstance(value, re.Pattern) else str(value))
    if width is not None:
        given, text = given[:width], text[:width]
    note = f" {note}" if note else ""
    raise ConfigurationError(f"{name} must be a string{' (or None)' if optional else ''}, got {given} "
                             f"({type(value).__name__}): write it as text, e.g. {name}={text}.{note}")


def refuse_repeats(name: str, one: str, values: Sequence[Any], labels: Sequence[str] | None = None,
                   note: str = "") -> None:
    """Refuse a list of runs' settings (a sweep's amounts, strategies or seeds; an ablation's seeds) that repeats
    one: the same run twice reads as two runs of one setting (n=2, std 0).

    Args:
        name (`str`): the list as the caller spells it (``"seeds"``); `one`: one of its items (``"seed"``).
        values: the list given.
        labels (*optional*): what tells two items apart (default: ``str`` of each).
        note (`str`, *optional*): more for the message (``" (an int is a count of neurons, a float a fraction)"``).

    Raises:
        ConfigurationError: ``"<name> [...] repeat <item>: each <one> once<note>."``
    """
    labels = [str(v) for v in values] if labels is None else list(labels)
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigurationError(f"{name} {list(values)} repeat {', '.join(repeated)}: each {one} once{note}.")
