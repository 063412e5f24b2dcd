"""The rule for the names users give (stage names, user feature names): they are written into markdown headings and
tables, folder and report names, figures and the terminal, where a control character or a line separator breaks the
line it is in (a newline splits a heading) or is obeyed (ESC turns the terminal red)."""

from __future__ import annotations

import unicodedata

__all__ = ["control_characters", "one_line_name"]


def control_characters(name: str) -> list[str]:
    """The control characters (a newline, a tab, ESC...) and line or paragraph separators in `name`, each once, in
    order of appearance: a name holding any is refused (``options.check_stage_name``,
    ``features.registry.check_user_feature``)."""
    return [c for c in dict.fromkeys(name) if unicodedata.category(c) in ("Cc", "Zl", "Zp")]


def one_line_name(name: str) -> str:
    """`name` as one line of text, for a refusal to suggest: its control characters and separators as spaces, runs
    of whitespace as one (``"n\\x1b[31mx"`` -> ``"n [31mx"``, ``"a\\nb"`` -> ``"a b"``)."""
    return " ".join("".join(c if c.isprintable() else " " for c in name).split())
