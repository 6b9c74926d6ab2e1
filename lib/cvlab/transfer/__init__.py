"""Transfer learning: a pretrained network's features for a simple classifier (book ch. 3, 10.6),
fine-tuning by network surgery (ch. 5), and progressive resizing (a small model grown into larger
ones). The surgery and progressive helpers import Keras on first use only."""

from cvlab.transfer.features import extract_features, extract_index_features
from cvlab.transfer.linear_probe import LinearProbe, train_linear_probe
from cvlab.transfer.progressive import (
    ProgressiveError,
    downsample,
    grow,
    scratch_model,
    train_progressive,
)
from cvlab.transfer.surgery import (
    Stage,
    SurgeryError,
    attach_head,
    block_table,
    blocks,
    freeze,
    train_stage,
    unfreeze_top,
)

__all__ = [
    "LinearProbe",
    "ProgressiveError",
    "Stage",
    "SurgeryError",
    "attach_head",
    "block_table",
    "blocks",
    "downsample",
    "extract_features",
    "extract_index_features",
    "freeze",
    "grow",
    "scratch_model",
    "train_linear_probe",
    "train_progressive",
    "train_stage",
    "unfreeze_top",
]
