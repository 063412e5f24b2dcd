"""Text tables of results frames: GitHub markdown for cards and result files, plain text for the terminal.

Both are drawn by pandas ``DataFrame.to_markdown`` (tabulate). Cells are formatted here first and tabulate's number
parsing is off, so a feature value such as ``"1.5"`` or ``"nan"`` stays text; numeric columns are right-aligned.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

MISSING = "–"
# Every character str.splitlines() breaks at (\v, \f, U+0085, U+2028... besides \r and \n), and tabs
LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029]")


def one_line(text: Any) -> str:
    """`text` with every line break (and tab) as a space: an example or a cell stays on one line."""
    return LINE_BREAKS.sub(" ", str(text))


def shown_example(left: Any, token: Any, right: Any) -> tuple[str, str, str]:
    """A top example's left context, token and right context as shown on one line: line breaks as spaces, and
    the combining marks that open the right context (an accent the tokenizer stripped from the token's offsets)
    moved onto the token, so the accent stays on its letter."""
    left, token, right = one_line(left), one_line(token), one_line(right)
    accent = marks_at(right, 0)
    return left, token + right[:accent], right[accent:]


def marks_at(text: str, start: int) -> int:
    """How many combining marks (Unicode categories M*) `text` has from `start` on: a tokenizer that strips accents
    gives a token offsets that end before its letter's accent, and a highlight should carry the accent with it."""
    end = start
    while end < len(text) and unicodedata.category(text[end]).startswith("M"):
        end += 1
    return end - start


def _cell(value: Any, floatfmt: str, markdown: bool) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    text = one_line(value)  # a line break would end the row
    return text.replace("|", "\\|") if markdown else text  # a "|" would end a markdown cell


def _render(frame: pd.DataFrame, floatfmt: str, tablefmt: str) -> str:
    markdown = tablefmt == "pipe"
    cells = pd.DataFrame({i: [_cell(v, floatfmt, markdown) for v in frame[c]] for i, c in enumerate(frame.columns)})
    cells.columns = [_cell(c, floatfmt, markdown) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    if not len(frame.columns):
        return ""
    return cells.to_markdown(index=False, tablefmt=tablefmt, disable_numparse=True,
                             colalign=["right" if n else "left" for n in numeric])


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured markdown table of `frame` (no index).

    Args:
        frame (`pd.DataFrame`): the rows to show.
        floatfmt (`str`, *optional*, defaults to `".3f"`): format of float cells; NaN and None show as "–".

    Returns:
        `str`: a pipe table; "|" inside a cell is escaped and newlines become spaces.

    Example:
        ```python
        >>> print(markdown_table(report.layers[["layer", "share_lost"]]))
        ```
    """
    return _render(frame, floatfmt, "pipe")


def text_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """The same table as plain columns for the terminal (tabulate's ``simple`` format, no index)."""
    return _render(frame, floatfmt, "simple")
