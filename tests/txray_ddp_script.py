"""Run by test_trainer.py under `torchrun --nproc_per_node 2`: TXRayTrainer on CPU/gloo, batch 2 per process.

Each rank writes ``rank-<r>.json`` into the output folder: world size, stages, how many files it wrote and a
fingerprint of every profile it holds, so the test can check that all ranks hold the same gathered profiles and
that only the saving rank wrote.
"""

import gc
import json
import sys
from pathlib import Path

import torch.distributed as dist
from models import fingerprint
from test_trainer import build_data, ddp_options, train

from hf_txray.distributed import close_process_group


def trained_summary(out: Path) -> dict:
    trainer, _ = train(out.parent, out.name, data=build_data(), dropout=0.0, **ddp_options(per_device_batch=2))
    callback = trainer.txray_callback
    return {
        "world_size": dist.get_world_size(), "should_save": trainer.args.should_save,
        "stages": list(trainer.txray_profiles), "files_written": callback.files_written,
        "fingerprints": {stage: fingerprint(p) for stage, p in trainer.txray_profiles.items()},
    }


def main(output_dir: str) -> None:
    out = Path(output_dir)
    summary = trained_summary(out)
    (out / f"rank-{dist.get_rank()}.json").write_text(json.dumps(summary, indent=2))
    # The trainer (its DDP-wrapped model holds the process group) is gone before the group is destroyed: while it
    # lived, destroy_process_group left gloo's threads running, and tearing them down at interpreter exit aborted
    # a rank now and then ("terminate called without an active exception").
    gc.collect()
    close_process_group()  # barrier, then destroy: no rank exits with a live gloo group


if __name__ == "__main__":
    main(sys.argv[1])
