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


def test_a_missing_count_of_a_nullable_integer_column_shows_as_missing():
    """Brief 438: report.layers holds neurons_tested_<ft> / neurons_changed_<ft> as pandas' nullable Int64, <NA>
    where the per-neuron test did not run (compare(test=False)); markdown_table (its docstring's example is
    report.layers) and text_table drew that cell as "<NA>" beside the "–" of the NaN share next to it (silent)."""
    frame = pd.DataFrame({"layer": [0, 1], "neurons_tested_pos": pd.array([5, None], dtype="Int64"),
                          "share_changed_pos": [0.2, np.nan]})
    assert _rows(markdown_table(frame))[2:] == [["0", "5", "0.200"], ["1", "–", "–"]]
    assert _rows(markdown_table(frame))[1][1].endswith(":")  # still a number column
    assert [line.split() for line in text_table(frame).splitlines()[2:]] == [["0", "5", "0.200"], ["1", "–", "–"]]


def test_a_p_value_too_small_for_the_format_shows_as_below_it():
    """Helper 191: a p-value of 2e-5 printed as 0.000 in the card's most-changed table (now <0.001)."""
    frame = pd.DataFrame({"p_hellinger_pos": [2e-5, 0.0004, 0.0006, np.nan], "mass": [2e-5, 0.0, 1.0, 2.0]})
    rows = _rows(markdown_table(frame))[2:]
    assert [r[0] for r in rows] == ["<0.001", "<0.001", "0.001", "–"]
    assert [r[1] for r in rows] == ["0.000", "0.000", "1.000", "2.000"]  # other columns as they are
    assert _rows(markdown_table(frame, ".4f"))[2][0] == "<0.0001"


def test_text_table_has_the_same_cells_in_columns():
    frame = pd.DataFrame({"layer": [0, 11], "share": [0.5, 0.25], "tag": ["NOUN", "1e3"]})
    lines = text_table(frame, ".2f").splitlines()
    assert lines[0].split() == ["layer", "share", "tag"] and set(lines[1].replace(" ", "")) == {"-"}
    assert [line.split() for line in lines[2:]] == [["0", "0.50", "NOUN"], ["11", "0.25", "1e3"]]


def test_context_cuts_keep_grapheme_clusters_whole():
    """Helper 117: top-example contexts were cut at exactly 60 code points, so a left context could open with the
    second half of a flag, pairing every later flag wrongly (Germany France ... shown as RG BE ...), or with a lone
    combining mark or the middle of a ZWJ sequence."""
    from hf_txray.tables import clip_left, clip_right, grapheme_cut

    clusters = ["🇩🇪", "🇫🇷", "🇬🇧"] * 3 + ["e\u0301\u0301", "x", " ", "👨\u200d👩\u200d👧", " ", "o", "k", "\r\n", "é"]
    text = "".join(clusters)
    edges = np.cumsum([0] + [len(c) for c in clusters]).tolist()
    for at in range(len(text) + 1):
        after, before = grapheme_cut(text, at, True), grapheme_cut(text, at, False)
        if at in edges:
            assert after == before == at
        elif text[at - 1: at + 1] != "\r\n":  # CRLF is one cluster, left as it is (ASCII on both sides)
            i = next(k for k, e in enumerate(edges) if e > at)
            assert (before, after) == (edges[i - 1], edges[i]), at
    assert clip_left(text, 10) == "👨\u200d👩\u200d👧 ok\r\né" and clip_right(text, 3) == "🇩🇪🇫🇷"
    # Helper 119: a cluster longer than the 64 characters read around the cut (a letter with 100 or 5,000 marks)
    # was cut inside
    for marks in (100, 5000):
        long = "ab" + "e" + "\u0301" * marks + "cd"
        for at in (3, 40, 3 + marks // 2, 2 + marks):
            assert (grapheme_cut(long, at, False), grapheme_cut(long, at, True)) == (2, 3 + marks), (marks, at)
        assert clip_right(long, 60) == long[:3 + marks] and clip_left(long, 60) == long[2:]
    # helper 123: an emoji, 100 variation selectors, a ZWJ and an emoji are one cluster of 103
    family = "ab" + "\U0001F468" + "\uFE0F" * 100 + "\u200D\U0001F469" + "cd"
    for at in (3, 50, 103, 104):
        assert (grapheme_cut(family, at, False), grapheme_cut(family, at, True)) == (2, 105), at
    # in a profile's examples: the left context of a token after 31 flags starts with a whole flag
    import hf_txray
    from models import tiny

    model, tokenizer = tiny("bert")
    flags = "🇩🇪🇫🇷🇬🇧🇪🇸🇮🇹" * 6 + "🇩🇪"
    profile = hf_txray.analyze(model, [flags + " one two three", "another text ."], tokenizer=tokenizer,
                               features=("token",), show_progress=False)
    ex = profile.examples[(profile.examples.example_id == 0) & (profile.examples.char_start > 60)]
    assert len(ex)
    for left, start in zip(ex["left"], ex["char_start"]):
        assert (flags + " one two three")[:start].endswith(left) and (start - len(left)) % 2 == 0  # at a flag's start


def test_the_readme_s_sample_report_shows_p_values_and_untested_flags_as_text_table_does():
    """Helper 205: the README's `hf-txray compare` output showed p-values of 0.000 and untested neurons flagged False,
    the formats text_table and untested_unknown replaced (p < 0.001 shows as <0.001; a neuron the test did not judge
    has no flag, "–"): a reader took "False" for "unchanged". Rendered rows must look like the command's own."""
    from pathlib import Path

    from hf_txray.tables import MISSING, untested_unknown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    sample = readme.split("```text\nTransfer report pretrained-ptb->zeroshot-bbc", 1)[1].split("```", 1)[0]
    rows = [line.split() for part in sample.split("changed neurons (pos")[1:]
            for line in part.split("\n")[3:] if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 10  # five most and five least changed
    frame = pd.DataFrame({"p_hellinger_pos": [1e-5, float("nan")], "changed_pos": [True, False]})
    shown = [line.split() for line in text_table(untested_unknown(frame)).splitlines()[2:]]
    assert shown == [["<0.001", "True"], [MISSING, MISSING]]
    for row in rows:  # layer, neuron, hellinger, p, changed, ...
        assert row[3] != "0.000" and (row[4] == MISSING) == (row[3] == MISSING), row


def test_control_characters_of_a_corpus_text_are_shown_not_obeyed_by_the_terminal_page():
    """`hf-txray show` printed a top example's context and word as written: ``ESC [8m`` in a corpus text hid the rest
    of the page in the terminal (the highlighted token included), ``ESC ] ... BEL`` set the window title and swallowed
    what it enclosed, a backspace overwrote the context (helper 322). They are shown as escapes, as ``repr`` writes
    them; line breaks stay spaces."""
    import unicodedata

    import hf_txray
    from hf_txray.display import neuron_text
    from hf_txray.tables import one_line, shown_example

    from models import bpe_tokenizer, tiny_gpt2

    assert one_line("a\x1b[8mb\x07c\x08d\x00e\x7ff\x9bg\r\nh") == "a\\x1b[8mb\\x07c\\x08d\\x00e\\x7ff\\x9bg  h"
    assert shown_example("x\x1b", "\x08", " \x00") == ("x\\x1b", "\\x08", " \\x00")
    text = "fine text\x1b[8m concealed \x1b]0;title\x07 rest \x08\x08xx"
    profile = hf_txray.analyze(tiny_gpt2(), [text] * 3, tokenizer=bpe_tokenizer(), features=("token", "word"),
                               max_length=64)
    for layer, neuron in profile.examples[["layer", "neuron"]].drop_duplicates().itertuples(index=False):
        page = neuron_text(profile, int(layer), int(neuron))
        assert not [c for c in page if unicodedata.category(c) == "Cc" and c != "\n"], repr(page)
        assert "\\x1b" in page  # shown in the examples' context


def test_a_top_example_shows_its_own_characters_with_an_accent_stripped_or_kept_by_the_tokenizer():
    """Helper 334: ``shown_example`` moved every combining mark that opens the right context onto the token. Right for
    an uncased BERT (its normalizer drops the accent of NFD ``"cafe\\u0301"``: ``cafe`` ends before it, no token covers
    it), wrong for a byte-level BPE, which gives the accent tokens of their own at (7, 8): its winner ``e`` at (6, 7)
    was shown as ``"e\\u0301"``, characters of other positions. The profile records a token's span over the marks
    no token covers (``char_end``); the display shows the span as recorded."""
    import hf_txray
    from hf_txray.display import neuron_text
    from hf_txray.features import with_stripped_marks
    from hf_txray.tables import shown_example

    from models import tiny

    text = "le cafe\u0301 noir . un the\u0301 ."
    assert shown_example("le caf", "e", "\u0301 noir") == ("le caf", "e", "\u0301 noir")
    # by hand: BERT's cafe (3, 7) and the (19, 22) take their accents; BPE's e (6, 7) and the accent's pieces (7, 8)
    # keep their spans
    bert = np.array([0, 3, 9, 14, 16, 19, 24]), np.array([2, 7, 13, 15, 18, 22, 25])
    assert with_stripped_marks(text, *bert).tolist() == [2, 8, 13, 15, 18, 23, 25]
    assert with_stripped_marks(text, np.array([3, 6, 7, 7, 9]), np.array([6, 7, 8, 8, 13])).tolist() == [6, 7, 8, 8, 13]
    expected = {"bert": {(3, 8, "cafe\u0301", " n"), (19, 23, "the\u0301", " .")},
                "gpt2": {(6, 7, "e", "\u0301 "), (7, 8, "\u0301", " n"), (19, 22, "the", "\u0301 ")}}
    for kind in ("bert", "gpt2"):
        model, tokenizer = tiny(kind)
        profile = hf_txray.analyze(model, [text] * 2, tokenizer=tokenizer, features=("token",), show_progress=False)
        ex = profile.examples
        found = set(zip(ex["char_start"], ex["char_end"], ex["token"], ex["right"].str[:2]))
        assert expected[kind] <= found, (kind, found)
        for start, end, token, right in zip(ex["char_start"], ex["char_end"], ex["token"], ex["right"]):
            assert shown_example("", token, right)[1] == token == text[start:end]
        layer, neuron = ex[["layer", "neuron"]].iloc[0]
        assert neuron_text(profile, int(layer), int(neuron))


def test_dollar_signs_of_names_and_feature_values_are_text_in_markdown_not_math():
    """Helper 356: markdown_text escaped emphasis, code, links and HTML but not "$": a token "$x$" or "$$" and a stage
    "v$1 -> v$2" went into cards as they were, and GitHub's markdown reads "$...$" and "$$...$$" as math (an italic x,
    "1 -> v"). Every "$" is backslash-escaped now, which CommonMark renders as the "$" it was."""
    import html
    import re

    import pytest

    from hf_txray.tables import markdown_cell, markdown_text

    markdown_it = pytest.importorskip("markdown_it")
    for value in ("$x$", "$$", "$", "v$1 -> v$2", "cost$\\x$", "\\$y$"):
        text = markdown_text(value)
        assert not re.search(r"(?<!\\)(?:\\\\)*\$", text), text  # no "$" left unescaped: none starts math
        page = markdown_it.MarkdownIt("commonmark").render(text)
        assert html.unescape(re.sub(r"<[^>]+>", "", page)).strip() == value
        row = markdown_it.MarkdownIt("commonmark").enable("table").render(f"| a |\n|---|\n| {markdown_cell(value)} |\n")
        assert [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] == [value]


def test_a_name_ending_in_hashes_stays_whole_in_a_markdown_heading():
    """Helper 356: a card's report heading is ``### A → B``; a stage B named "#" or "v2 #" ended the line with "#"s,
    which CommonMark reads as the heading's closing sequence: the heading read "a →" and "a → v2"."""
    import html
    import re

    import pytest

    from hf_txray.tables import markdown_text

    markdown_it = pytest.importorskip("markdown_it")
    for name in ("#", "v2 #", "v2 ##", "C#", "# x"):
        page = markdown_it.MarkdownIt("commonmark").render(f"### {markdown_text('a')} → {markdown_text(name)}\n")
        assert html.unescape(re.sub(r"<[^>]+>", "", page)).strip() == f"a → {name}"
