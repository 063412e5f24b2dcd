"""Markdown and terminal tables (pandas to_markdown): cells kept apart, numbers formatted, text never parsed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hf_txray.tables import markdown_table, text_table


def _rows(table: str) -> list[list[str]]:
    """Split a pipe table back into cells (an escaped "\\|" stays inside its cell)."""
    rows = []
    for line in table.splitlines():
        cells = line.strip().strip("|").replace("\\|", "\0").split("|")
        rows.append([c.strip().replace("\0", "|") for c in cells])
    return rows


def test_markdown_table_round_trips_cells():
    frame = pd.DataFrame({"feature": ["a|b", "1.5", "two\nlines"], "mass": [0.12345, np.nan, 2.0],
                          "count": [3, 4, 5], "top": [None, "x", "y"]})
    rows = _rows(markdown_table(frame))
    assert rows[0] == ["feature", "mass", "count", "top"]
    assert set(rows[1][0]) <= {"-", ":"} and rows[1][1].endswith(":")  # numbers right-aligned
    assert rows[2:] == [["a|b", "0.123", "3", "–"], ["1.5", "–", "4", "x"], ["two lines", "2.000", "5", "y"]]
    assert _rows(markdown_table(frame[["mass"]], floatfmt=".1f"))[2:] == [["0.1"], ["–"], ["2.0"]]


def test_text_table_has_the_same_cells_in_columns():
    frame = pd.DataFrame({"layer": [0, 11], "share": [0.5, 0.25], "tag": ["NOUN", "1e3"]})
    lines = text_table(frame, ".2f").splitlines()
    assert lines[0].split() == ["layer", "share", "tag"] and set(lines[1].replace(" ", "")) == {"-"}
    assert [line.split() for line in lines[2:]] == [["0", "0.50", "NOUN"], ["11", "0.25", "1e3"]]
