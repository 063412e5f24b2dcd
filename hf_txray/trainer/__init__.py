"""TX-Ray during training: `TXRayArguments`, `TXRayCallback` and `TXRayTrainer`.

- `arguments.py`: :class:`TXRayArguments` (the ``txray_*`` options) and their checks;
- `callback.py`: :class:`TXRayCallback`, which takes the profiles and writes ``output_dir/txray/``;
- `trainer.py`: :class:`TXRayTrainer` and its model card section;
- `plots.py`: the timeline plots.

Importing this package imports `transformers.Trainer` (slow): `hf_txray` loads it lazily, on first use.
"""

from ..options import parse_layers
from .arguments import REFERENCES, STRATEGIES, TEXT_FEATURES, TXRAY_DIR, TXRayArguments
from .callback import TXRayCallback
from .plots import write_plots
from .trainer import TXRayTrainer, model_card_section

__all__ = ["TXRayArguments", "TXRayCallback", "TXRayTrainer", "model_card_section", "parse_layers", "write_plots",
           "TXRAY_DIR", "STRATEGIES", "REFERENCES", "TEXT_FEATURES"]
