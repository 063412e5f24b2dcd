"""Text tables of results frames: GitHub markdown for cards and result files, plain text for the terminal.

Both are drawn by pandas ``DataFrame.to_markdown`` (tabulate). Cells are formatted here first and tabulate's number
parsing is off, so a feature value such as ``"1.5"`` or ``"nan"`` stays text; numeric columns are right-aligned.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

MISSING = "–"
# Every character str.splitlines() breaks at (\v, \f, U+0085, U+2028... besides \r and \n), and tabs
LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029]")
# The other control characters (Unicode category Cc: C0, DEL, C1): a terminal obeys them (ESC starts an escape
# sequence, BS moves back) instead of showing them
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# The characters that start emphasis, code, links, HTML tags, entities or math in markdown ("|" is markdown_table's:
# it escapes it in cells, and outside a table it is text); GitHub reads "$x$" and "$$x$$" as math; "#"s at the end of
# a heading are its closing sequence, not text
MARKDOWN_MARKUP = re.compile(r"([\\`*_\[\]<>&~$#])")


def markdown_text(text: Any) -> str:
    """`text` (a stage, report or feature name) as literal text in markdown: its markup characters backslash-escaped,
    so that a card shows a stage ``pre<b>train</b>`` or ``fine*tuned*`` as it is named (the Hub rendered them bold
    and italic), a feature value ``<img src=x>`` as text, not as an image, and a token ``$x$`` or a stage
    ``v$1 -> v$2`` as written, not as math (GitHub's markdown reads ``$...$`` as inline math: ``$x$`` showed an
    italic x; helper 356), and a stage ``#`` or ``v2 #`` whole in a card's heading (``### a → #`` is read as the
    heading "a →", its "#" a closing sequence); its direction kept to itself (:func:`bidi_isolated`)."""
    return bidi_isolated(MARKDOWN_MARKUP.sub(r"\\\1", one_line(text)))


# The explicit directional formatting characters (embeddings, overrides, isolates and their ends): invisible, and
# each reorders the text after it up to the end of its paragraph
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def bidi_isolated(text: str) -> str:
    """`text` without explicit directional formatting characters, and inside a first-strong isolate (U+2068 ... U+2069)
    when it holds right-to-left letters or Arabic digits, so that a name (a stage, a tag) never reorders the figures
    written after it in the same line: a stage named ``pre\\u202e`` (a right-to-left override) showed the rest of
    the card's headline reversed, ``16.7%`` as ``%7.61``, and an Arabic stage name just before a figure made it an
    Arabic number, drawn before the name (helper 283)."""
    text = BIDI_CONTROLS.sub("", text)
    if any(unicodedata.bidirectional(c) in ("R", "AL", "AN") for c in text):
        return f"\u2068{text}\u2069"
    return text


def markdown_cell(text: Any) -> str:
    """`text` as literal text in a markdown table cell written by hand (:func:`markdown_text`, and "|", which would
    end the cell, escaped as :func:`markdown_table` escapes it)."""
    return markdown_text(text).replace("|", "\\|")


def code_span(text: Any) -> str:
    """`text` as a markdown code span, fenced by more backticks than it holds in a row (a name with a backtick ended
    a one-backtick span early, and the rest of the line was read as markdown)."""
    text = bidi_isolated(one_line(text))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def percent(share: float) -> str:
    """`share` (0 to 1) as a percentage with one decimal, and as many more digits as keep a share other than 0 from
    reading ``0.0%`` and one other than 1 from reading ``100.0%``: one lost neuron of 9216 read "0.0% were
    deactivated (lost)" in the card's headline, and 9215 active of 9216 "100.0%". A share outside 0 to 1 (no share:
    a difference, a rounding error) is written as it is, with its sign, by the same rule (``-0.25`` read ``-25%``,
    ``-1`` raised a math domain error and ``1.5`` read ``150.000000%``).

    Example:
        ```python
        >>> percent(0.25), percent(1 / 9216), percent(9215 / 9216), percent(0), percent(1), percent(1 / 2_293_760)
        ('25.0%', '0.011%', '99.99%', '0.0%', '100.0%', '0.000044%')
        >>> percent(-0.25), percent(-1), percent(1.5), percent(-0.0)
        ('-25.0%', '-100.0%', '150.0%', '0.0%')
        ```
    """
    value = 100 * float(share) + 0.0  # -0.0 as 0.0
    if value < 0:
        return "-" + percent(-share)
    if value != value or value in (0, 100, math.inf):  # NaN, none, all or infinite
        return f"{value:.1f}%"
    if value < 0.1:  # two significant digits, never in exponent form (1 of 2.3M neurons: '4.4e-05%')
        text = f"{value:.2g}"
        if "e" in text:
            text = f"{float(text):.{1 - math.floor(math.log10(float(text)))}f}".rstrip("0")
        return f"{text}%"
    decimals = 1
    while decimals < 6 and float(f"{value:.{decimals}f}") == 100:  # above 100 too (1.5 read 150.000000%)
        decimals += 1
    return f"{value:.{decimals}f}%"


def too_few_credits_text(count: int, left_out: str = "ranked") -> str:
    """How many shared neurons a ranking leaves out, as a clause whose verbs agree with the count: ``"1 shared neuron
    has too few credits and is not ranked"`` (it read "1 shared neurons have ... and are not ranked"), ``"2169 shared
    neurons have too few credits and are not ranked"``; `left_out` ``"listed"`` for a search's table (the viewer's
    Hellinger search)."""
    return (f"{count} shared neuron has too few credits and is not {left_out}" if count == 1 else
            f"{count} shared neurons have too few credits and are not {left_out}")


def shell_command(*argv: Any) -> str:
    """`argv` as one bash command line, each word quoted where the shell would read it otherwise
    (``shlex.quote``): the card's ``hf-txray reproduce REPO --revision R`` and the push's retry hint wrote a branch
    ``a$(b)'c;d`` (which git takes) as it is, so the pasted line ran ``b`` and ``d`` as commands.

    Example:
        ```python
        >>> shell_command("hf-txray", "reproduce", "me/results", "--revision", "a$(b)")
        "hf-txray reproduce me/results --revision 'a$(b)'"
        ```
    """
    return " ".join(shlex.quote(str(word)) for word in argv)


def shell_path(path: str | os.PathLike) -> str:
    """`path` as a command's argument reads it as a path (for :func:`shell_command`): ``./`` before a relative path
    that starts with a dash, which the CLI would read as an option (``hf-txray export -runs --out DIR`` is refused as
    "unrecognized option '-runs'")."""
    text = str(path)
    return f"./{text}" if text.startswith("-") else text


def one_line(text: Any) -> str:
    """`text` with every line break (and tab) as a space, so that an example or a cell stays on one line, and every
    other control character as its Python escape (``\\x1b``, as ``repr`` writes it), so that it is shown, not obeyed:
    a corpus text holding ``ESC [8m`` hid the rest of ``hf-txray show``'s output in the terminal, ``ESC ] ... BEL``
    set the window title and swallowed what it enclosed, and a backspace overwrote the context before it."""
    return CONTROL_CHARS.sub(lambda m: f"\\x{ord(m.group()):02x}", LINE_BREAKS.sub(" ", str(text)))


def shown_example(left: Any, token: Any, right: Any) -> tuple[str, str, str]:
    """A top example's left context, token and right context as shown on one line: line breaks as spaces. The
    token is its recorded span as it is: an accent an accent-stripping tokenizer dropped is already in it (the
    profile's ``char_end`` covers it), and combining marks that open the right context are tokens of their own (a
    byte-level BPE's or byte fallback's pieces of ``"e\u0301"``), which moving onto the token showed as its
    characters."""
    return one_line(left), one_line(token), one_line(right)


GRAPHEME_REACH = 64  # characters read on each side of a context cut to find the grapheme cluster it falls in


def grapheme_cut(text: str, at: int, forward: bool) -> int:
    """`at` moved, if it falls inside a grapheme cluster of `text` (a flag, an emoji ZWJ sequence, a letter with
    combining marks), to the cluster's end (`forward`) or start, so that a context cut from it shows whole characters
    (cutting a run of flags between its two halves pairs every later half wrongly). Clusters by Unicode's rules
    (UAX #29, the ``regex`` module's ``\\X``), read over :data:`GRAPHEME_REACH` characters around the cut, and
    further while the cluster found reaches the edge of what was read (a letter with hundreds of marks)."""
    if at <= 0 or at >= len(text) or (text[at - 1].isascii() and text[at].isascii()):
        return at  # ASCII on both sides: a boundary (\r\n, one cluster, only splits invisibly)
    import regex

    reach = GRAPHEME_REACH
    while True:
        start, end, lo = _cluster_around(text, at, reach)
        # read further when the cluster may begin before what was read: it starts there, or what was read starts
        # inside a cluster (a mark, a skin-tone modifier or a joiner joined to the character before it: left alone,
        # a ZWJ ends a cluster it does not end)
        inside = lo > 0 and len(regex.match(r"\X", text[lo - 1: lo + 1]).group()) == 2
        if 0 < lo == start or end == at + reach < len(text) or inside:
            reach *= 4  # the cluster may go on beyond what was read
            continue
        return at if start == at else (end if forward else start)


def _cluster_around(text: str, at: int, reach: int) -> tuple[int, int, int]:
    """(start, end, lo): the grapheme cluster of ``text[lo: at + reach]`` that holds position `at` (its end may be
    `at`, when `at` is a boundary), and `lo`, `reach` characters back, or further to the start of a run of
    regional indicators (flags pair from the start of the run)."""
    import regex

    lo = max(0, at - reach)
    while lo > 0 and "\U0001F1E6" <= text[lo] <= "\U0001F1FF":
        lo -= 1
    edge = lo
    for cluster in regex.finditer(r"\X", text[lo: at + reach]):
        start, edge = edge, lo + cluster.end()
        if edge > at:
            return start, edge, lo
        if edge == at:
            return at, at, lo
    return at, at, lo


def clip_left(text: str, size: int) -> str:
    """The last `size` characters of `text` or a little more, starting at a grapheme cluster (:func:`grapheme_cut`)."""
    return text if len(text) <= size else text[grapheme_cut(text, len(text) - size, False):]


def clip_right(text: str, size: int) -> str:
    """The first `size` characters of `text` or a little more, ending at a grapheme cluster (:func:`grapheme_cut`)."""
    return text if len(text) <= size else text[: grapheme_cut(text, size, True)]


def covering_pieces(starts: Any, ends: Any, scores: Any) -> list[tuple[int, int, int]]:
    """The characters that tokens cover, cut into highlighted pieces ``(start, end, token)``, in text order: a
    character several tokens cover (an NFKC ligature ``"\ufb02"`` read as ``f`` (9, 10) and ``low`` (9, 12), the
    byte-level pieces of one emoji sharing its offsets) is shown with the token of largest ``|score|`` among them
    (the first in index order on a tie), and a token's consecutive characters are one piece. Each character is shown
    once, and no token's score is lost where it is the strongest (taking the first token of overlapping spans
    showed ``f``'s score on ``"\ufb02"`` and left ``"ow"`` unscored). Empty spans are left out.

    Example:
        ```python
        >>> covering_pieces([9, 9, 13], [10, 12, 14], [0.2, 0.5, 0.1])
        [(9, 12, 1), (13, 14, 2)]
        >>> covering_pieces([9, 9], [10, 12], [0.9, 0.5])
        [(9, 10, 0), (10, 12, 1)]
        ```
    """
    starts, ends = np.asarray(starts, dtype=np.int64).tolist(), np.asarray(ends, dtype=np.int64).tolist()
    strength = np.abs(np.asarray(scores, dtype=np.float64)).tolist()
    order = sorted((i for i in range(len(starts)) if ends[i] > starts[i]), key=lambda i: (starts[i], i))
    bounds = sorted({starts[i] for i in order} | {ends[i] for i in order})
    pieces: list[tuple[int, int, int]] = []
    active: list[int] = []
    taken = 0
    for lo, hi in zip(bounds, bounds[1:]):
        while taken < len(order) and starts[order[taken]] <= lo:
            active.append(order[taken])
            taken += 1
        active = [i for i in active if ends[i] > lo]
        if not active:
            continue
        best = max(active, key=lambda i: (strength[i], -i))
        if pieces and pieces[-1][2] == best and pieces[-1][1] == lo:
            pieces[-1] = (pieces[-1][0], hi, best)
        else:
            pieces.append((lo, hi, best))
    return pieces


def untested_unknown(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each ``changed_<ft>`` flag shown as unknown (None, drawn as :data:`MISSING`) where its
    ``p_hellinger_<ft>`` is missing: the per-neuron test did not judge that neuron (too few credits in a category or a
    half, one category left after pooling), so its False flag means "not tested", which a table read as "unchanged"
    (19 of MiniLM PTB -> BBC's 20 most changed token neurons; helper 191). A copy; the flags of judged neurons stay
    booleans."""
    out = frame.copy()
    for column in frame.columns:
        p = f"p_hellinger_{column[len('changed_'):]}"
        if column.startswith("changed_") and p in frame:
            out[column] = pd.Series([None if pd.isna(q) else bool(c) for c, q in zip(frame[column], frame[p])],
                                    index=frame.index, dtype=object)
    return out


COUNT_PREFIXES = ("neurons_changed_", "neurons_tested_")  # the per-layer counts that may be missing (test not run)


def counts_as_integers(layers: pd.DataFrame) -> pd.DataFrame:
    """`layers` (a per-layer table) with its counts of tested and changed neurons (:data:`COUNT_PREFIXES`) as pandas'
    nullable ``Int64`` (one dtype whether or not the test ran), <NA> where it did not run: they were float64, in
    memory and in the Hub's ``summary`` config. A float column with a fraction (no table hf_txray wrote) stays
    float."""
    cast = {}
    for column in layers.columns:
        values = layers[column]
        if not str(column).startswith(COUNT_PREFIXES) or values.dtype == "Int64":
            continue
        known = values.dropna().to_numpy(dtype=float)
        if pd.api.types.is_integer_dtype(values) or np.all(np.isfinite(known) & (known == np.round(known))):
            cast[column] = "Int64"
    return layers.astype(cast) if cast else layers


def _cell(value: Any, floatfmt: str, markdown: bool) -> str:
    # pd.NA: a missing count of a nullable Int64 column (report.layers' neurons_tested_<ft>), drawn "<NA>"
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    text = one_line(value)  # a line break would end the row
    return text.replace("|", "\\|") if markdown else text  # a "|" would end a markdown cell


def _p_value_cell(value: Any, floatfmt: str, markdown: bool) -> str:
    """A p-value too small for `floatfmt` as ``<0.001`` (for ``.3f``), not ``0.000``, which reads as impossible."""
    digits = int(floatfmt[1:-1]) if re.fullmatch(r"\.\d+f", floatfmt) else None
    if digits is not None and isinstance(value, (float, np.floating)) and 0 <= value < 0.5 * 10.0 ** -digits:
        return f"<{10.0 ** -digits:.{digits}f}"  # no space: a terminal table stays split by whitespace
    return _cell(value, floatfmt, markdown)


def _render(frame: pd.DataFrame, floatfmt: str, tablefmt: str) -> str:
    markdown = tablefmt == "pipe"
    cells = pd.DataFrame({i: [(_p_value_cell if str(c).startswith("p_") else _cell)(v, floatfmt, markdown)
                              for v in frame[c]] for i, c in enumerate(frame.columns)})
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
        floatfmt (`str`, *optional*, defaults to `".3f"`): format of float cells; NaN, None and pandas' NA show as "–", and a
            p-value (a column named ``p_...``) below what the format shows as ``<0.001``.

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


def amount_kind(amount: Any) -> str:
    """What a pruning amount counts: ``"count"`` (an int: neurons), ``"fraction"`` (a float), ``"custom"`` (per
    layer) or ``"list"`` (explicit neurons, no amount); the unpruned row's is ``"none"``. A column of its own, since
    a CSV reads ``1`` and ``1.0`` back alike."""
    if amount is None:
        return "list"
    if isinstance(amount, (int, np.integer)) and not isinstance(amount, bool):
        return "count"
    if isinstance(amount, (float, np.floating)):
        return "fraction"
    return "custom"


def amount_label(amount: Any, kind: str | None = None) -> str:
    """An amount as a group label: a count and a fraction stay apart ("1" vs "1.0": from `kind`, as
    :func:`amount_kind` names it, else from the amount's type), numpy and Python numbers of one value agree (float32
    0.05 is "0.05"), and "custom" stays as it is."""
    if isinstance(amount, str) or amount is None or isinstance(amount, bool):
        return str(amount)
    if isinstance(amount, (float, np.floating)) and np.isnan(amount):
        return "nan"
    kind = kind or amount_kind(amount)
    if kind in ("count", "none") and isinstance(amount, (int, float, np.integer, np.floating)):
        return str(int(amount))
    if isinstance(amount, (int, float, np.integer, np.floating)):
        text = f"{float(amount):.6g}"
        return text if any(c in text for c in ".e") else text + ".0"
    return str(amount)


def amount_labels(table: pd.DataFrame) -> list[str]:
    """:func:`amount_label` of every row of a pruning table (its ``amount``, told apart by ``amount_kind`` where the
    table has that column: a CSV read back holds 1 and 1.0 alike)."""
    kinds = table["amount_kind"] if "amount_kind" in table else [None] * len(table)
    return [amount_label(a, k if isinstance(k, str) else None) for a, k in zip(table["amount"], kinds)]


# The key of a ranking table's ``attrs`` that records the modules it ranked (:meth:`~hf_txray.probing.ProbingResult.
# ranked_modules`): read by :func:`~hf_txray.pruning.plan.table_pairs` and
# :func:`~hf_txray.pruning.masks.check_ranked_modules`.
RANKED_MODULES = "hf_txray_ranked_modules"

# The columns of what the probes say about one neuron (:func:`~hf_txray.probing.results.neuron_probe_rows`, the
# viewer's Neuron tab): here, not in hf_txray.probing (whose import brings torch), so that the viewer's empty table
# and the app's headers cost no torch import.
NEURON_PROBE_COLUMNS = ("probe", "property", "rank", "of", "score", "top_label", "top_weight", "label_ranks")


def with_ranked_modules(frame: pd.DataFrame, site: str, stack: str | None, module_pattern: str | None
                        ) -> pd.DataFrame:
    """`frame` (one row per neuron, ``layer``/``neuron`` columns) recording the modules whose units it numbers, as a
    probe's ranking does: :func:`~hf_txray.pruning.plan.table_pairs` refuses it where its pairs would name other
    units (a residual profile's ``neuron_stats()`` was pruned or ablated as MLP neurons, silently)."""
    frame.attrs[RANKED_MODULES] = {"site": site, "stack": stack, "module_pattern": module_pattern}
    return frame
