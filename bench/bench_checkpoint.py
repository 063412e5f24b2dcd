"""Checkpoint cost: builder state (this version) against a whole profile per checkpoint (before), on MiniLM.

    python bench/bench_checkpoint.py [--num-texts 3000] [--checkpoint-every 16]

Profiles PTB sentences with MiniLM (features token and pos, the defaults) with checkpoints on, timing every
checkpoint write (``ProfileBuilder.state_dict`` + ``state.npz`` + ``progress.json``, written atomically) and the
resume read (``state.npz`` into a fresh builder). Against it, in the same run, what one checkpoint cost before:
``ProfileBuilder.to_profile`` of the interval + ``Profile.merge`` into the base + ``Profile.save_pretrained`` (the
dataset layout), measured on the final profile (the size of the last checkpoint), and the dataset-layout
save/load times of that profile on their own. Writes the "Checkpoint cost" section of bench/RESULTS.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import timeit
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import bench_parser, publish  # noqa: E402

import hf_txray  # noqa: E402
import hf_txray.analyze  # noqa: E402
from hf_txray import corpora  # noqa: E402
from hf_txray.credit import ProfileBuilder  # noqa: E402
from hf_txray.features import Vocabulary  # noqa: E402
from hf_txray.tables import markdown_table  # noqa: E402


def timed(times: list[float], function):
    """`function`, recording the seconds of each call in `times`."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)
    return wrapper


def best_of(repeats: int, function) -> float:
    """Wall seconds of the fastest of `repeats` calls (I/O included, so wall time, not CPU time)."""
    return min(timeit.repeat(function, number=1, repeat=repeats))


def main() -> None:
    args = bench_parser(__doc__, note=True, num_texts=3000, checkpoint_every=16, batch_size=32).parse_args()
    torch.manual_seed(0)
    corpus = corpora.penn_treebank("valid", num_samples=args.num_texts)
    saves, to_profile = [], []
    state_class = sys.modules["hf_txray.analyze"]._CheckpointState  # timed in place, inside a real run
    original_save, original_to_profile = state_class.save, ProfileBuilder.to_profile
    state_class.save = timed(saves, original_save)
    ProfileBuilder.to_profile = timed(to_profile, original_to_profile)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        profile = hf_txray.analyze(corpora.default_model_path(), corpus, features=("token", "pos"),
                                   batch_size=args.batch_size, checkpoint_dir=tmp / "state",
                                   checkpoint_every=args.checkpoint_every, show_progress=False)
        run_seconds = time.perf_counter() - start
        state_class.save, ProfileBuilder.to_profile = original_save, original_to_profile
        state_bytes = sum(p.stat().st_size for p in (tmp / "state").rglob("*") if p.is_file())
        # the run's own identity, as recorded beside its state: what load() checks the state against
        progress = json.loads((tmp / "state" / "rank-0-of-1" / "progress.json").read_text())
        state = state_class(tmp / "state", 0, 1, progress["run_key"], stream_head=progress.get("stream_head"),
                            stream_pipeline=progress.get("stream_pipeline"), run_parts=progress.get("run_parts"))

        def load_state():
            _, saved = state.load()
            ProfileBuilder(len(profile.layers), profile.num_neurons, {ft: Vocabulary() for ft in ("token", "pos")},
                           profile.meta.max_examples_per_neuron).load_state_dict(saved.builder)

        load_new = best_of(3, load_state)
        save_old = best_of(3, lambda: profile.save_pretrained(tmp / "profile"))
        profile_bytes = sum(p.stat().st_size for p in (tmp / "profile").rglob("*") if p.is_file())
        load_old = best_of(3, lambda: hf_txray.Profile.from_pretrained(tmp / "profile"))
        # before, a checkpoint merged the saved part with the new one: the profile with itself stands in for two
        # disjoint parts (merge now refuses overlapping reads; its checks are metadata only, not the cost measured)
        with mock.patch.object(hf_txray.Profile, "_check_mergeable", lambda self, other: None):
            merge_old = best_of(3, lambda: profile.merge(profile))
    old_checkpoint = to_profile[-1] + merge_old + save_old
    new_checkpoint = float(np.median(saves))
    rows = [
        {"what": "one checkpoint, before: to_profile + Profile.merge + save_pretrained (dataset layout)",
         "seconds": f"{old_checkpoint:.3f}", "MB on disk": f"{profile_bytes / 1e6:.1f}"},
        {"what": "one checkpoint, now: builder state_dict + state.npz + progress.json (median)",
         "seconds": f"{new_checkpoint:.3f}", "MB on disk": f"{state_bytes / 1e6:.1f}"},
        {"what": "resume read, before: Profile.from_pretrained", "seconds": f"{load_old:.3f}", "MB on disk": ""},
        {"what": "resume read, now: state.npz into a fresh builder", "seconds": f"{load_new:.3f}", "MB on disk": ""},
        {"what": "  parts of before: to_profile / merge / save_pretrained",
         "seconds": f"{to_profile[-1]:.3f} / {merge_old:.3f} / {save_old:.3f}", "MB on disk": ""},
    ]
    body = (
        f"MiniLM (all-MiniLM-L6-v2, 6 x 1536 neurons), {args.num_texts} PTB valid sentences, features token + pos, "
        f"batch {args.batch_size}, a checkpoint every {args.checkpoint_every} batches ({len(saves)} checkpoints; the "
        f"run took {run_seconds:.1f} s with them). Best of 3 for the one-off timings; 2 shared CPU cores.\n\n"
        f"{markdown_table(pd.DataFrame(rows))}\n\n"
        f"A checkpoint now costs {old_checkpoint / new_checkpoint:.0f}x less than before "
        f"({new_checkpoint * len(saves):.2f} s for all {len(saves)} checkpoints of this run, against about "
        f"{old_checkpoint * len(saves):.1f} s), and the profile is built once, at the end. The dataset layout "
        f"(save {save_old:.2f} s, load {load_old:.2f} s) stays the format of finished profiles."
    )
    publish("Checkpoint cost", body, args)


if __name__ == "__main__":
    main()
