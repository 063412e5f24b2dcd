"""The embedded-default demo behind `make demo`: TX-Ray's transfer settings on the MiniLM model, offline.

1. *pretrained*: MiniLM profiled on Penn Treebank text (the general-domain corpus);
2. *zero-shot*: the same model profiled on held-out BBC News articles (a new domain);
3. *fine-tuned*: the model fine-tuned on BBC News topic classification with `TXRayTrainer`, profiled on the same
   held-out articles;
with the transfer reports 1 -> 2 (zero-shot transfer), 2 -> 3 (supervised adaptation) and 1 -> 3. Profiles go to
``out/profiles/<stage>/``, reports to ``out/reports/<a>__<b>/``, the fine-tuning run (model, TX-Ray timeline,
plots, model card) to ``out/finetune/``, and the whole analysis as a Hub-ready dataset folder to ``out/hub/``.
The corpora are written to ``out/data/`` first and profiled from there, so every profile is pinned to local files
by content hash and ``hf-txray reproduce out/hub`` recomputes all three stages.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from . import corpora

from .analyze import analyze
from .display import report_text
from .profile import Profile
from .reproduce import pin_model
from .report import TransferReport, compare
from .tables import shell_command

FEATURES = ("token", "word", "pos")
# Wall time of the whole demo on this project's 2-core CPU machine (README, "Two commands").
DURATION = {"full": "5 to 25 minutes, by the cores' load", "quick": "2 to 15 minutes, by the cores' load"}


def _write_corpus(dataset, path: Path) -> str:
    """The text column as a parquet file: the demo profiles files, which reproduce() finds by content hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.select_columns(["text"]).to_parquet(str(path))
    return str(path)


def _profile(model, dataset, stage: str, out: Path, max_length: int, max_positions: int | None = None) -> Profile:
    profile = analyze(model, dataset, features=FEATURES, max_length=max_length, batch_size=32, stage=stage,
                      model_id=corpora.DEFAULT_MODEL_ID, max_positions=max_positions)
    profile.save_pretrained(out / "profiles" / stage)
    print(profile)
    return profile


def _report(a: Profile, b: Profile, out: Path) -> TransferReport:
    report = compare(a, b)
    report.save_pretrained(out / "reports" / f"{a.stage}__{b.stage}")
    print("\n" + report_text(report) + "\n")
    return report


def _finetune(bbc_train, bbc_probe, out: Path, max_length: int) -> tuple[Profile, Profile, float]:
    """Fine-tune on BBC topics with TXRayTrainer; returns (zero-shot, fine-tuned) probe profiles and accuracy."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from .loading import load_checked
    from .trainer import TXRayArguments, TXRayTrainer

    path = corpora.default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    topics = bbc_train.features["label"].names
    tokenize = lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length)  # noqa: E731
    set_seed(0)  # the classification head is drawn at load, before the Trainer seeds (it varied from run to run)
    # the new classifier head is expected: checked (only it may be missing), and transformers' load-report table,
    # which lists it as MISSING, stays out of the demo's output
    model = load_checked(AutoModelForSequenceClassification, path, "the embedded MiniLM", purpose="the fine-tuning",
                         num_labels=len(topics))
    args = TXRayArguments(
        output_dir=str(out / "finetune"), num_train_epochs=2, learning_rate=1e-4, per_device_train_batch_size=16,
        use_cpu=True, report_to="none", save_strategy="no", logging_steps=10, disable_tqdm=True, seed=0,
        txray_strategy="epoch", txray_features=list(FEATURES), txray_max_length=max_length,
        txray_max_samples=len(bbc_probe))
    probe_file = _write_corpus(bbc_probe, out / "data" / "bbc-probe.parquet")
    trainer = TXRayTrainer(model=model, args=args, processing_class=tokenizer, txray_dataset=probe_file,
                           train_dataset=bbc_train.map(tokenize, batched=True, remove_columns=["text"]))
    trainer.train()
    trainer.save_model()
    trainer.create_model_card(model_name="minilm-bbc-topics", finetuned_from=corpora.DEFAULT_MODEL_ID)
    logits = trainer.predict(bbc_probe.map(tokenize, batched=True, remove_columns=["text"])).predictions
    accuracy = float((np.argmax(logits, axis=-1) == np.asarray(bbc_probe["label"])).mean())
    stages = list(trainer.txray_profiles.values())
    # The last snapshot is of the weights just saved: record that folder (by content hash) as its model.
    stages[-1] = pin_model(stages[-1], out / "finetune")
    return (_renamed(stages[0], "zeroshot-bbc", corpora.DEFAULT_MODEL_ID),
            _renamed(stages[-1], "finetuned-bbc", "minilm-bbc-topics"), accuracy)


def _renamed(profile: Profile, stage: str, model_id: str) -> Profile:
    """The same profile (every statistic kept) under another stage name and model id."""
    out = copy.copy(profile)
    out.meta = dataclasses.replace(profile.meta, stage=stage, model_id=model_id)
    return out


# What the demo writes into its folder (module docstring): an earlier run's output, which a new run writes over.
DEMO_ENTRIES = ("data", "finetune", "profiles", "reports", "hub")


def check_demo_out(out: Path) -> None:
    """Refuse, before any work, a demo folder that holds anything but an earlier demo's output (:data:`DEMO_ENTRIES`):
    the demo wrote its folders beside other files, and into a saved profile's or report's folder, which the next
    ``save_pretrained`` there (``hf-txray analyze --out`` of the same folder) replaces whole, the demo's output with it.

    Raises:
        ConfigurationError: naming the folder, what it holds and the fix.
    """
    from .artifact import artifact_type_of
    from .errors import ConfigurationError

    held = artifact_type_of(out) if out.is_dir() else None
    others = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES) if out.is_dir() else []
    if held is None and not others:
        return
    holds = f"holds a saved {held.replace('_', ' ')}" if held else f"holds other files ({', '.join(others[:3])}" + (
        ", ..." if len(others) > 3 else "") + ")"
    raise ConfigurationError(f"{out} {holds}: hf-txray demo writes {', '.join(DEMO_ENTRIES)} into its folder, so it "
                             "must be a new or empty folder, or an earlier demo's: give another one (CLI: --out), e.g. "
                             "results/demo.")


def run_demo(out: Path, quick: bool = False) -> dict[str, TransferReport]:
    """Profile the embedded model on PTB, zero-shot on BBC News and after fine-tuning; returns the reports.

    PTB is profiled without its ``<unk>``/``N`` placeholders, and stopped at exactly as many credited positions as
    the BBC probe has (``max_positions``), so the three stages have equal sizes.
    """
    from .export import save_to_disk
    from .io_utils import check_writable

    check_demo_out(out)
    check_writable(out / "corpora", shown=out)  # before minutes of work, not at its first file
    model = corpora.default_model_path()
    bbc = corpora.bbc_news(num_samples=120 if quick else 800).train_test_split(test_size=0.25, seed=0)
    print(f"hf_txray demo ({DURATION['quick' if quick else 'full']} on 2 CPU cores):\n"
          f"  1/3 fine-tuning MiniLM on {len(bbc['train'])} BBC News articles with TXRayTrainer; its first snapshot "
          f"profiles the {len(bbc['test'])} held-out articles zero-shot, its last one after fine-tuning (the longest "
          "step)", flush=True)
    zero_shot, finetuned, accuracy = _finetune(bbc["train"], bbc["test"], out, max_length=128)
    print(f"  2/3 profiling PTB at the BBC probe's size ({zero_shot.meta.num_positions} positions)", flush=True)
    ptb = _sentences_for(corpora.penn_treebank("train"), zero_shot.meta.num_positions, model)
    pretrained = _profile(model, _write_corpus(ptb, out / "data" / "ptb.parquet"), "pretrained-ptb", out,
                          max_length=64, max_positions=zero_shot.meta.num_positions)
    for profile in (zero_shot, finetuned):
        profile.save_pretrained(out / "profiles" / profile.stage)
        print(profile)
    print("  3/3 comparing the stages and writing the reports and the Hub-ready folder", flush=True)
    reports = {"zero-shot transfer": _report(pretrained, zero_shot, out),
               "supervised adaptation": _report(zero_shot, finetuned, out),
               "pretrained -> fine-tuned": _report(pretrained, finetuned, out)}
    save_to_disk(out / "hub", profiles=[pretrained, zero_shot, finetuned], reports=list(reports.values()),
                 pretty_name="TX-Ray: all-MiniLM-L6-v2, PTB -> BBC News -> fine-tuned")
    print(f"Held-out BBC topic accuracy after fine-tuning on {len(bbc['train'])} articles: {accuracy:.3f}")
    print(f"Results are in {out.resolve()}:")
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        print(f"  {folder}/  {_describe(folder.name)}")
        if folder.name in ("profiles", "reports"):
            for path in sorted(folder.iterdir()):
                print(f"    {path.name}")
    print(next_steps(out))
    return reports


def next_steps(out: Path) -> str:
    """The demo's closing hint: the commands that show, browse, share and recheck its results in `out`, each quoted
    (``tables.shell_command``): a ``--out`` path holding a space or a quote printed ``hf-txray view my demo/hub``,
    which pasted as another command."""
    cli = cli_name()
    return (f"Summarise them again with: {shell_command(cli, 'show', f'{out}/reports')}; browse them with: "
            f"{shell_command(cli, 'view', f'{out}/hub')}; share them with: "
            f"{shell_command(cli, 'push', 'USER/REPO', f'{out}/hub')}; recompute and check them "
            f"with: {shell_command(cli, 'reproduce', f'{out}/hub')}")


def cli_name() -> str:
    """How the user's shell runs this installation's ``hf-txray``: the bare name where ``PATH`` finds it, else its
    path (relative to the working directory when below it). ``make demo`` runs ``.venv/bin/hf-txray`` without
    activating the venv, so the closing hint's bare ``hf-txray show ...`` was "command not found" in the shell that
    ran it (or another installation's command)."""
    here = Path(sys.executable).parent / "hf-txray"  # the venv's bin folder, not the interpreter's symlink target
    found = shutil.which("hf-txray")
    if not here.is_file() or (found is not None and Path(found).resolve() == here.resolve()):
        return "hf-txray"
    relative = os.path.relpath(here)
    return str(here) if relative.startswith("..") else relative


def _sentences_for(ptb, positions: int, model: str):
    """The first PTB sentences holding at least `positions` text tokens (+5%), so that the PTB profile can stop at
    exactly the BBC probe's size (``max_positions``) instead of running out of text first."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lengths = [len(ids) for ids in tokenizer(list(ptb["text"]), add_special_tokens=False)["input_ids"]]
    enough = int(np.searchsorted(np.cumsum(lengths), positions * 1.05)) + 1
    return ptb.select(range(min(enough, len(ptb))))


def _describe(kind: str) -> str:
    """What a folder of the demo's output holds, in a few words."""
    return {
        "profiles": "one profile per stage (Profile.from_pretrained(folder); hf-txray show folder)",
        "reports": "one transfer report per pair of stages (TransferReport.from_pretrained(folder); hf-txray show)",
        "data": "the corpora as parquet files: the pinned inputs of the profiles (hf-txray reproduce)",
        "finetune": "the fine-tuned model (weights, model card) with its TX-Ray timeline and plots under txray/",
        "hub": "the Hub-ready dataset: README.md is the dataset card, the folders are its parquet configs; "
               "the viewer's input (hf-txray view) and what hf-txray push uploads",
    }.get(kind, "")
