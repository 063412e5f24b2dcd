"""torchrun whose workers fork from a launcher that has imported torch, transformers' modelling code and datasets.

``python tests/preloaded_torchrun.py TORCHRUN_ARGS... SCRIPT ARGS...`` is ``python -m torch.distributed.run
--start-method fork --run-path TORCHRUN_ARGS... SCRIPT ARGS...``: torchrun's own launcher, agent, rendezvous and
worker environment; each worker runs SCRIPT as ``__main__`` (torchrun's ``run_script_path``) in a process forked from
this one, so it skips the imports above (about 10 CPU-s a worker). hf_txray and the tests' helpers are imported by
the script in each worker, as in a fresh process.
"""

import importlib
import sys

PRELOADED = ("torch", "transformers", "transformers.modeling_utils", "transformers.masking_utils", "datasets")

if __name__ == "__main__":
    for module in PRELOADED:
        importlib.import_module(module)
    from torch.distributed.run import main

    main(["--start-method", "fork", "--run-path", *sys.argv[1:]])
