"""Run the benchmarks of `make bench` (SCRIPTS below, not every script in bench/) one after another (they share 2
    cores badly), each updating bench/RESULTS.md."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_profiling.py", "bench_trainer.py", "bench_space.py", "bench_pruning.py", "bench_probing.py",
           "bench_reproduce.py", "bench_neuron_pages.py", "bench_checkpoint.py", "bench_sink.py",
           "bench_top_examples.py"]

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__ + " Runs: " + ", ".join(SCRIPTS) + ".").parse_args()
    failed = []
    for name in SCRIPTS:
        if (HERE / name).exists():
            print(f"== {name}", flush=True)
            if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode:
                failed.append(name)
    print("failed: " + ", ".join(failed) if failed else f"all benchmarks written to {HERE / 'RESULTS.md'}")
    sys.exit(1 if failed else 0)
