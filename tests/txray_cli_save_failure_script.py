"""Run by test_robustness.py under `torchrun --nproc_per_node 2`: ``hf-txray analyze`` whose first process cannot write
its --out folder (a full disk, simulated). The first process alone writes, after the run: the others must exit with
its error, not die in the closing barrier. Each rank writes ``OUT/rank-<r>.json``: the CLI's exit code and stderr."""

import contextlib
import io
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

import hf_txray
from hf_txray import cli
from models import SAMPLE_TEXTS, tiny


def main(output_dir: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=40))
    rank, out = dist.get_rank(), Path(output_dir)
    if rank == 0:
        model, tokenizer = tiny("bert")
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        (out / "texts.txt").write_text("\n".join(t for t in SAMPLE_TEXTS if t.strip()) + "\n")
    dist.barrier()

    def full_disk(self, directory, *args, **kwargs):
        raise OSError(28, "No space left on device", str(directory))

    hf_txray.Profile.save_pretrained = full_disk
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = cli.main(["analyze", str(out / "model"), str(out / "texts.txt"), "--out", str(out / "profile"),
                         "--features", "token", "--batch-size", "2"])
    (out / f"rank-{rank}.json").write_text(json.dumps({"code": code, "stderr": stderr.getvalue()}))


if __name__ == "__main__":
    main(sys.argv[1])
