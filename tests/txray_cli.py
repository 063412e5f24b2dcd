"""The ``hf-txray`` command as a script (what the console script runs: ``sys.exit(main())``), for tests that start it
under torchrun through :func:`models.torchrun` (``torchrun(2, "txray_cli.py", "analyze", ...)``): each worker forks
from a launcher that has imported torch, transformers and datasets, instead of ``python -m torch.distributed.run ...
-m hf_txray.cli`` starting a fresh interpreter per worker."""

import sys

from hf_txray.cli import main

if __name__ == "__main__":
    sys.exit(main())
