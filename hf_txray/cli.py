"""`hf-txray`: command-line access to the public API (thin wrappers, no logic of their own).

Runs under ``accelerate launch -m hf_txray.cli analyze ...`` and ``torchrun -m hf_txray.cli analyze ...``:
every process profiles its shard, the states are reduced exactly, and the main process writes the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import TXRayError

EMBEDDED_DATASETS = {"txray:ptb": ("penn_treebank", {}), "txray:ptb-valid": ("penn_treebank", {"split": "valid"}),
                     "txray:bbc": ("bbc_news", {})}


def _resolve_dataset(name: str, num_samples: int | None):
    """`txray:ptb`, `txray:bbc`... name the embedded corpora; anything else goes to `analyze` as is."""
    if name in EMBEDDED_DATASETS:
        from . import corpora

        function, kwargs = EMBEDDED_DATASETS[name]
        return getattr(corpora, function)(num_samples=num_samples, **kwargs)
    return name


def _layers(value: str):
    if value == "all":
        return "all"
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes 'all' or comma-separated ints, got {value!r}") from None


def _add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="Profile a model's neurons on a corpus.",
                       description="Profile MODEL on DATASET. Without arguments: the embedded MiniLM on Penn Treebank.")
    p.add_argument("model", nargs="?", default=None, help="Hub id or local path (default: embedded MiniLM).")
    p.add_argument("dataset", nargs="?", default="txray:ptb",
                   help="Hub dataset id, local file/folder, or txray:ptb / txray:ptb-valid / txray:bbc (default).")
    p.add_argument("--out", required=True, help="Folder to write the profile to.")
    p.add_argument("--text-column")
    p.add_argument("--split")
    p.add_argument("--layers", type=_layers, default="all", help="'all' or comma-separated block indices.")
    p.add_argument("--site", default="mlp", choices=["mlp", "residual"])
    p.add_argument("--features", default="token,pos", help="Comma-separated: token, word, pos, dep, ner.")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--max-length", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-examples-per-neuron", type=int, default=10)
    p.add_argument("--num-samples", type=int)
    p.add_argument("--device")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--module-pattern")
    p.add_argument("--stage", default="default")
    p.add_argument("--revision")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--resume", action="store_true", help="Continue from the state saved in OUT/_checkpoint.")
    p.add_argument("--checkpoint-every", type=int, default=200, help="Batches between saved states.")
    p.set_defaults(handler=_cmd_analyze)


def _cmd_analyze(args) -> int:
    from . import analyze, corpora
    from .distributed import process_info

    out = Path(args.out)
    profile = analyze(
        args.model or corpora.default_model_path(), _resolve_dataset(args.dataset, args.num_samples),
        text_column=args.text_column, split=args.split, layers=args.layers, site=args.site,
        features=tuple(f.strip() for f in args.features.split(",") if f.strip()), top_k=args.top_k,
        max_length=args.max_length, batch_size=args.batch_size, max_examples_per_neuron=args.max_examples_per_neuron,
        num_samples=args.num_samples, device=args.device, dtype=args.dtype, module_pattern=args.module_pattern,
        stage=args.stage, revision=args.revision, trust_remote_code=args.trust_remote_code,
        checkpoint_dir=out / "_checkpoint", checkpoint_every=args.checkpoint_every, resume=args.resume,
    )
    if process_info()[0] == 0:
        profile.save_pretrained(out)
        print(f"{profile}\nsaved to {out}")
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="Compare two saved profiles (stage A -> stage B).")
    p.add_argument("a", help="Profile folder of stage A.")
    p.add_argument("b", help="Profile folder of stage B.")
    p.add_argument("--out", required=True, help="Folder to write the transfer report to.")
    p.set_defaults(handler=_cmd_compare)


def _cmd_compare(args) -> int:
    from . import Profile, compare
    from .display import report_text

    report = compare(Profile.from_pretrained(args.a), Profile.from_pretrained(args.b))
    report.save_pretrained(args.out)
    print(report_text(report))
    print(f"\nsaved to {args.out}")
    return 0


def _add_show(sub) -> None:
    p = sub.add_parser("show", help="Print a readable summary of a saved profile, report or results folder.")
    p.add_argument("path")
    p.set_defaults(handler=_cmd_show)


def _cmd_show(args) -> int:
    from . import Profile, TransferReport
    from .display import profile_text, report_text
    from .errors import ProfileFormatError

    path = Path(args.path)
    found = False
    for marker, load, render in (("txray_profile.json", Profile.from_pretrained, profile_text),
                                 ("txray_report.json", TransferReport.from_pretrained, report_text)):
        for item in sorted(p.parent for p in path.rglob(marker) if "_checkpoint" not in p.parts):
            print(render(load(item)) + "\n")
            found = True
    if not found:
        raise ProfileFormatError(f"No hf_txray profile or report found under {path}.")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="Run the embedded-default demo (pretrained PTB -> zero-shot BBC -> fine-tuned).")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--quick", action="store_true", help="Smaller corpora, for a fast check.")
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), quick=args.quick)
    return 0


COMMANDS: list[Callable] = [_add_analyze, _add_compare, _add_show, _add_demo]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-txray", description="TX-Ray neuron analysis for Hugging Face models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TXRayError as err:
        print(f"hf-txray {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
