"""Run by test_analyze.py under `torchrun --nproc_per_node N`: profiles with more processes than texts.

For each case (1, 2 and 5 texts through `analyze`, and 1 text through `Profiler.run`, the path Trainer snapshots
take) rank 0 saves the gathered profile to ``OUT/<case>``. Every rank writes ``rank-<r>.json`` with a fingerprint
of each profile it holds, so the test can check that empty ranks joined every collective and hold the same result.
All cases run in one launch (process start-up dominates); the script ends by leaving the process group cleanly.
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist
import hf_txray
from hf_txray.distributed import close_process_group
from hf_txray.loading import load_corpus
from models import SAMPLE_TEXTS, fingerprint, tiny

TEXTS = [t for t in SAMPLE_TEXTS if t.strip()]

FEATURES = ("token", "word")


def main(model_dir: str, output_dir: str) -> None:
    out = Path(output_dir)
    held = {}
    for count in (1, 2, 5):
        held[f"analyze-{count}"] = hf_txray.analyze(model_dir, TEXTS[:count], features=FEATURES,
                                                    batch_size=2, show_progress=False)
    model, tokenizer = tiny("bert")
    profiler = hf_txray.Profiler(model, tokenizer, hf_txray.ProfilerConfig(features=FEATURES, batch_size=2))
    corpus, column, _ = load_corpus(TEXTS[:1])
    held["profiler-1"] = profiler.run(corpus, text_column=column, show_progress=False)
    rank = dist.get_rank()
    if rank == 0:
        for case, profile in held.items():
            profile.save_pretrained(out / case)
    summary = {"world_size": dist.get_world_size(), "fingerprints": {c: fingerprint(p) for c, p in held.items()}}
    (out / f"rank-{rank}.json").write_text(json.dumps(summary, indent=2))
    close_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
