"""What pinning costs and what reproducing costs, on the embedded MiniLM and Penn Treebank text (CPU).

Baseline: one `analyze` of MiniLM on PTB lines from a parquet file (features token + pos), measured in this run.
Measured against it: the provenance work inside it (content hash of the model folder, cold and remembered; content
hash of the data file; hash of the texts), and `hf_txray.reproduce` of the saved profile (checks + rerun + compare).
Writes the `Reproducibility` section of bench/RESULTS.md (``--no-write``: print only; ``--num-texts``: corpus size).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hf_txray  # noqa: E402
from hf_txray import corpora  # noqa: E402
from hf_txray.loading import resolve_dataset_source, resolve_model_source  # noqa: E402
from hf_txray.hashes import texts_hash  # noqa: E402
from results_file import bench_parser, publish  # noqa: E402


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    args = bench_parser(__doc__, num_texts=1000).parse_args()
    num_texts = args.num_texts
    model = corpora.default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HF_TXRAY_CACHE"] = str(Path(tmp) / "cache")  # cold hash cache
        data = Path(tmp) / "ptb.parquet"
        ptb = corpora.penn_treebank("train", num_samples=num_texts)
        ptb.to_parquet(str(data))
        _, cold = timed(lambda: resolve_model_source(model))
        _, warm = timed(lambda: resolve_model_source(model))
        _, data_hash = timed(lambda: resolve_dataset_source(str(data)))
        _, text_hash = timed(lambda: texts_hash(ptb, "text"))
        profile, baseline = timed(lambda: hf_txray.analyze(model, str(data), features=("token", "pos"), max_length=64,
                                                            show_progress=False, stage="ptb"))
        profile.save_pretrained(Path(tmp) / "saved")
        result, again = timed(lambda: hf_txray.reproduce(Path(tmp) / "saved"))
    size = sum(p.stat().st_size for p in Path(model).iterdir() if p.is_file()) / 2**20
    rows = [
        ("`analyze` (baseline, includes the pinning below)", baseline, 1.0),
        (f"content hash of the model folder ({size:.0f} MiB), first time", cold, cold / baseline),
        ("content hash of the model folder, remembered (path, size, mtime)", warm, warm / baseline),
        ("content hash of the data file", data_hash, data_hash / baseline),
        (f"hash of the {num_texts} texts profiled", text_hash, text_hash / baseline),
        (f"`reproduce` of the saved profile (verdict: {result.verdict})", again, again / baseline),
    ]
    table = "\n".join(["| step | seconds | ratio to `analyze` |", "| --- | --- | --- |"]
                      + [f"| {name} | {seconds:.3f} | {ratio:.3f} |" for name, seconds, ratio in rows])
    body = (f"MiniLM (embedded), {num_texts} PTB lines from a parquet file, features token + pos, max_length 64, "
            f"CPU. Largest mass difference of the reproduced profile: {result.stages[0].max_mass_difference:.1e}.\n\n"
            + table)
    publish("Reproducibility", body, args)


if __name__ == "__main__":
    main()
