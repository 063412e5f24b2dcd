"""The embedded-default demo behind `make demo`: TX-Ray's transfer settings on the MiniLM model, offline.

1. *pretrained*: MiniLM profiled on Penn Treebank text (the general-domain corpus);
2. *zero-shot*: the same model profiled on BBC News (a new domain);
then the zero-shot transfer report (1 -> 2). Results are written under `out/` in the same layout as
``hf_txray.save_to_disk`` when available: ``profiles/<stage>/`` and ``reports/<a>__<b>/``.
"""

from __future__ import annotations

from pathlib import Path

from . import corpora
from .analyze import analyze
from .display import report_text
from .profile import Profile
from .report import TransferReport, compare

FEATURES = ("token", "word", "pos")


def _profile(model, dataset, stage: str, out: Path, max_length: int) -> Profile:
    profile = analyze(model, dataset, features=FEATURES, max_length=max_length, batch_size=32, stage=stage,
                      model_id=corpora.DEFAULT_MODEL_ID)
    profile.save_pretrained(out / "profiles" / stage)
    print(profile)
    return profile


def _report(a: Profile, b: Profile, out: Path) -> TransferReport:
    report = compare(a, b)
    report.save_pretrained(out / "reports" / f"{a.stage}__{b.stage}")
    print("\n" + report_text(report) + "\n")
    return report


def run_demo(out: Path, quick: bool = False) -> dict[str, TransferReport]:
    """Profile the embedded model on PTB and BBC News and compare; returns the reports by name."""
    model = corpora.default_model_path()
    ptb = corpora.penn_treebank("train", num_samples=300 if quick else 3000)
    bbc = corpora.bbc_news(num_samples=40 if quick else 400)
    pretrained = _profile(model, ptb, "pretrained-ptb", out, max_length=64)
    zero_shot = _profile(model, bbc, "zeroshot-bbc", out, max_length=128)
    reports = {"zero-shot transfer": _report(pretrained, zero_shot, out)}
    print(f"Results are in {out.resolve()}:")
    for path in sorted(out.glob("*/*")):
        print(f"  {path}")
    print(f"Summarise them again with: hf-txray show {out}")
    return reports
