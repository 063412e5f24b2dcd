"""Run by test_checkpoints.py under `torchrun --nproc_per_node 2`: checkpoint, interrupt and resume on every rank.

In one launch (process start-up dominates): an uninterrupted run with checkpoints, then a run that every rank
interrupts at its `fail_at`-th text (before any collective, so no rank waits on another), then its resume. Rank 0
saves the two gathered profiles to ``OUT/full`` and ``OUT/resumed``; ``OUT/calls.json`` has each rank's count of
texts encoded after the resume.
"""

import json
import sys
from pathlib import Path

import datasets
import torch.distributed as dist

import hf_txray
from hf_txray import UserFeature
from hf_txray.distributed import close_process_group
from models import Interrupted, SpanCounter, tiny


def main(corpus: str, output_dir: str, fail_at: int) -> None:
    out, spans = Path(output_dir), SpanCounter()
    model, tokenizer = tiny("bert")

    def run(state: str, resume: bool = False):
        stream = datasets.load_dataset("json", data_files=corpus, split="train", streaming=True)
        return hf_txray.analyze(model, stream, tokenizer=tokenizer, features=("token", UserFeature("span", spans)),
                                batch_size=2, checkpoint_every=1, max_examples_per_neuron=3, show_progress=False,
                                checkpoint_dir=out / state, resume=resume)

    full = run("full-state")
    spans.calls, spans.fail_at = 0, fail_at
    try:
        run("state")
        raise SystemExit("the run was not interrupted")
    except Interrupted:
        pass
    spans.calls, spans.fail_at = 0, None
    resumed = run("state", resume=True)
    calls = [None] * dist.get_world_size()
    dist.all_gather_object(calls, spans.calls)
    if dist.get_rank() == 0:
        full.save_pretrained(out / "full")
        resumed.save_pretrained(out / "resumed")
        (out / "calls.json").write_text(json.dumps(calls))
    close_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
