"""Shared helpers for the benchmark scripts: their common command line, and rewriting one `## section` of
bench/RESULTS.md, leaving the others."""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by the scripts in `bench/` (each ratio is against a baseline measured in the same run).\n"


def update_section(title: str, body: str, path: Path = RESULTS) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    section = f"## {title}\n\n_Measured {date.today().isoformat()}._\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def bench_parser(description: str | None = None, *, note: bool = False, **sizes: int) -> argparse.ArgumentParser:
    """The command line every bench script starts from: one int option per keyword (``sentences=400`` gives
    ``--sentences``, default 400), ``--no-write``, and with `note` ``--note`` (the conditions of the run, which
    :func:`publish` appends). Scripts add their own options to it."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in sizes.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, help=f"(default {default})")
    if note:
        parser.add_argument("--note", default="", help="Conditions of the run (e.g. other jobs on the machine).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/RESULTS.md alone.")
    return parser


def publish(title: str, text: str, args: argparse.Namespace) -> None:
    """Print a script's section (with ``Conditions: <--note>`` when given) and, unless ``--no-write``, put it into
    RESULTS.md under `title`."""
    if getattr(args, "note", ""):
        text += f"\n\nConditions: {args.note}"
    print(text)
    if not args.no_write:
        update_section(title, text)
