"""Run by test_robustness.py under `torchrun --nproc_per_node 2`: one rank fails, the script catches it and goes on.

Each case makes one rank fail where the other does not: a bad row in rank 1's part of a stream (a DatasetError in
the middle of its shard), a user feature that raises on rank 0 alone (an error of the user's own type), a data file
that rank 1 lacks (it fails while loading), a stream that fails on rank 1 before the processes compare their
corpora, a checkpoint folder that rank 1 cannot write (through Profiler.run, as a Trainer's snapshots run), and rank
1's checkpoint made unusable before a resume. Every rank catches what it gets and goes on to the next case, as a script that skips a bad corpus would; a
last, clean run shows that the ranks are still in step. Each rank writes ``OUT/rank-<r>.json``: per case, the type
names of the error it caught (its class's whole MRO), its message and its ``rank`` attribute; and the fingerprint of
the last profile. The process group gets a short timeout: a rank left waiting fails the launch instead of hanging it.
"""

import json
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import datasets
import torch.distributed as dist

import hf_txray
from hf_txray import UserFeature
from hf_txray.distributed import close_process_group
from hf_txray.loading import load_corpus
from models import SAMPLE_TEXTS, fingerprint, tiny

TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]


class FeatureFailed(Exception):
    """The user feature's own error (not one of hf_txray's)."""


def main(output_dir: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=40))
    rank, out = dist.get_rank(), Path(output_dir)
    model, tokenizer = tiny("bert")
    common = dict(tokenizer=tokenizer, features=("token",), batch_size=2, show_progress=False)
    caught = {}

    def attempt(case, run):
        try:
            run()
            caught[case] = None
        except Exception as err:  # noqa: BLE001  (what each rank got is the test's subject)
            caught[case] = {"types": [c.__name__ for c in type(err).__mro__], "message": str(err),
                            "rank": getattr(err, "rank", None)}

    rows = [{"text": TEXTS[i % len(TEXTS)]} for i in range(40)]
    rows[33]["text"] = None  # row 33: rank 1's (rows are interleaved), past the first texts both ranks read
    bad = out / "bad.jsonl"
    if rank == 0:
        bad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    dist.barrier()
    attempt("bad_row", lambda: hf_txray.analyze(
        model, datasets.load_dataset("json", data_files=str(bad), split="train", streaming=True), **common))

    def label(text):
        if rank == 0 and text == TEXTS[0]:
            raise FeatureFailed("no label for this text")
        return [(0, len(text), "all")]

    attempt("user_feature", lambda: hf_txray.analyze(
        model, TEXTS, **{**common, "features": ("token", UserFeature("span", label))}))

    mine = out / f"texts-{rank}.txt"  # a data file that rank 1 lacks: its analyze fails before the run
    if rank == 0:
        mine.write_text("\n".join(TEXTS) + "\n")
    attempt("load", lambda: hf_txray.analyze(model, str(mine), **common))

    def texts():
        if rank == 1:
            raise OSError("the source cannot be read on this node")
        yield from TEXTS

    attempt("before_check", lambda: hf_txray.analyze(model, texts(), **common))

    # Profiler.run (a Trainer's snapshots): a checkpoint_dir that cannot be written on rank 1 alone
    blocked = out / "blocked"
    if rank == 0:
        blocked.write_text("a file where rank 1's checkpoint folder should go")
    dist.barrier()
    profiler = hf_txray.Profiler(model, tokenizer, hf_txray.ProfilerConfig(features=("token",), batch_size=2))
    corpus, column, _ = load_corpus(TEXTS)
    attempt("profiler_run", lambda: profiler.run(corpus, text_column=column, show_progress=False,
                                                 checkpoint_dir=blocked if rank == 1 else out / "free"))

    state = out / "state"
    hf_txray.analyze(model, TEXTS * 2, checkpoint_dir=state, checkpoint_every=1, **common)
    dist.barrier()
    if rank == 1:  # a partial copy of rank 1's checkpoint: its resume refuses it, rank 0's resumes
        (state / "rank-1-of-2" / "state.npz").unlink()
    dist.barrier()
    attempt("resume", lambda: hf_txray.analyze(model, TEXTS * 2, checkpoint_dir=state, checkpoint_every=1,
                                               resume=True, **common))
    last = hf_txray.analyze(model, TEXTS, **common)
    (out / f"rank-{rank}.json").write_text(json.dumps({"caught": caught, "last": fingerprint(last),
                                                       "num_examples": last.meta.num_examples}, indent=2))
    if rank == 0:
        shutil.rmtree(state)
    close_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
