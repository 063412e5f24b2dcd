"""Benchmark of TX-Ray-guided pruning (issue 6): the experiment of `examples/pruning_experiment.py`, written up.

Fine-tunes MiniLM on BBC News topics (several seeds), prunes 5/10/20% of the MLP neurons by each TX-Ray strategy and
at random, reports held-out accuracy / macro-F1 (mean ± std) and a shifted-input check, and measures the size and
speed of `mode="remove"` against the unpruned model in the same run. Usage:
    python bench/bench_pruning.py            # full run (~10-15 min on 2 CPU cores); rewrites "## Pruning"
    python bench/bench_pruning.py --quick    # smoke test; prints only, RESULTS.md untouched
    python bench/bench_pruning.py --speed-only   # re-measure remove-mode speed/size, keep the stored accuracy rows
    python bench/bench_pruning.py --from-stored  # rewrite the section and plot from the stored results
    python bench/bench_pruning.py --no-write     # a full run, printed only: RESULTS.md and the plot untouched
Writes the "## Pruning" section of bench/RESULTS.md and bench/pruning_accuracy.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

import pruning_experiment as experiment  # noqa: E402
from results_file import update_section  # noqa: E402

PLOT = HERE / "pruning_accuracy.png"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small sizes; does not touch RESULTS.md.")
    parser.add_argument("--speed-only", action="store_true",
                        help="Keep the stored accuracy results of the last run; re-measure only remove-mode speed/size.")
    parser.add_argument("--from-stored", action="store_true",
                        help="Only rewrite the section and plot from the stored results of the last run.")
    parser.add_argument("--no-write", action="store_true",
                        help="Print only; leave bench/RESULTS.md and bench/pruning_accuracy.png alone.")
    args = parser.parse_args(argv)
    config = experiment.quick_config() if args.quick else experiment.ExperimentConfig()
    if args.from_stored:
        outcome = experiment.load_outcome(config)
    elif args.speed_only:
        outcome = experiment.load_outcome(config)
        outcome["speed"] = experiment.remeasure_speed(config)
        experiment.store_speed(config, outcome["speed"])
    else:
        outcome = experiment.run(config)
    body = experiment.markdown(outcome)
    plot = experiment.write_plot(outcome, Path(config.out) / "accuracy.png")
    print("\n" + body)
    if args.quick or args.no_write:
        return
    shutil.copyfile(plot, PLOT)
    body += (f"\n\n![accuracy vs fraction pruned]({PLOT.name})\n\nRaw rows: `{config.out}/results.csv` "
             "(not committed). Rerun with `python bench/bench_pruning.py`.")
    update_section("Pruning", body)
    print(f"\nwrote the 'Pruning' section of {HERE / 'RESULTS.md'} and {PLOT}")


if __name__ == "__main__":
    main()
