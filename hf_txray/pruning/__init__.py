"""TX-Ray-guided pruning of MLP neurons: choose neurons from a transfer report or a profile, then mask or remove them.

A neuron here is what TX-Ray profiles at the ``"mlp"`` site: one input feature of a block's MLP down projection
(BERT ``intermediate`` output, GPT-2 ``mlp.c_proj`` input, Llama ``mlp.down_proj`` input), addressed by
``(layer, index)`` exactly as in :class:`~hf_txray.TransferReport` and :class:`~hf_txray.Profile`.

Choosing (:func:`plan_pruning`) and applying (:func:`apply_plan`) are separate steps joined by :func:`prune`; the
:class:`PruningPlan` in between records exactly what was chosen, saves as JSON and can be applied again.

Two modes:

- ``"mask"``: a forward pre-hook on the down projection zeroes the planned activations. Parameters are untouched,
  so the model's weights, ``state_dict`` and saved files do not change and :func:`unprune` restores the original
  model bit for bit. :func:`masked` is the same mechanism as a context manager, for ablation studies.
- ``"remove"``: the MLP weights are sliced (the up/gate projections lose output rows, the down projection loses input
  columns), so the intermediate size really shrinks; the config's intermediate size is updated and the model saves
  with ``save_pretrained`` and reloads with the Auto classes. BERT, GPT-2 and Llama configs hold *one* intermediate
  size for all layers, so ``remove`` needs the same number of pruned neurons in every layer (``per_layer=True``
  plans over all layers). For uneven plans, ``uneven="zero"`` removes the common count from every layer and zeroes
  the down-projection columns of the remaining planned neurons (still exact, still a normal saved model).
"""

from ..sites import find_sites  # hf_txray.pruning.find_sites worked before the package split
from .apply import apply_plan, prune
from .load import load_pretrained_with_head
from .masks import MaskHandle, active_masks, edit_neurons, mask_neurons, masked, mlp_sites, unprune
from .plan import PruningPlan, explicit_neurons, plan_pruning
from .remove import remove_neurons
from .strategies import (
    STRATEGIES,
    PruningStrategy,
    RankingInput,
    get_pruning_strategy,
    is_random_strategy,
    pruning_strategies,
    register_pruning_strategy,
)

__all__ = [
    "PruningPlan", "prune", "plan_pruning", "apply_plan", "mask_neurons", "masked", "unprune", "remove_neurons",
    "active_masks", "MaskHandle", "STRATEGIES", "load_pretrained_with_head", "edit_neurons",
    "register_pruning_strategy", "pruning_strategies", "get_pruning_strategy", "is_random_strategy", "PruningStrategy", "RankingInput",
    "find_sites", "mlp_sites", "explicit_neurons",  # used by hf_txray.probing and the examples
]
