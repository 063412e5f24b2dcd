"""``python -m hf_txray``: the ``hf-txray`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
