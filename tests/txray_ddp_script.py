"""Run by test_trainer.py under `torchrun --nproc_per_node 2`: TXRayTrainer on CPU/gloo, batch 2 per process.

Each rank writes ``rank-<r>.json`` into the output folder: world size, stages, how many files it wrote and a
fingerprint of every profile it holds, so the test can check that all ranks hold the same gathered profiles and
that only the saving rank wrote.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch.distributed as dist
from test_trainer import build_data, ddp_options, train


def fingerprint(profile) -> str:
    digest = hashlib.sha256(profile.neuron_count.tobytes() + profile.neuron_mass.tobytes())
    for table in profile.tables.values():
        digest.update(table.count.tobytes() + table.mass.tobytes() + "\n".join(table.vocab).encode())
    return digest.hexdigest()


def main(output_dir: str) -> None:
    out = Path(output_dir)
    trainer, _ = train(out.parent, out.name, data=build_data(), dropout=0.0, **ddp_options(per_device_batch=2))
    callback = trainer.txray_callback
    summary = {
        "world_size": dist.get_world_size(), "should_save": trainer.args.should_save,
        "stages": list(trainer.txray_profiles), "files_written": callback.files_written,
        "fingerprints": {stage: fingerprint(p) for stage, p in trainer.txray_profiles.items()},
    }
    (out / f"rank-{dist.get_rank()}.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
