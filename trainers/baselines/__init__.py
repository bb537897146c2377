"""Structural-pruning baselines (structural-pruning-via-nas.txt, §4.2), each returning a table of
pruned models (params, accuracy, config): layer dropping, head pruning
by gradient importance, and retraining-free pruning with Fisher information."""
from trainers.baselines.common import BaselineData
from trainers.baselines.fisher_pruning import FisherPruningOptions, fisher_pruning
from trainers.baselines.head_pruning import HeadPruningOptions, head_importance, head_pruning
from trainers.baselines.layer_dropping import LayerDroppingOptions, layer_dropping

__all__ = [
    "BaselineData",
    "FisherPruningOptions",
    "HeadPruningOptions",
    "LayerDroppingOptions",
    "fisher_pruning",
    "head_importance",
    "head_pruning",
    "layer_dropping",
]
