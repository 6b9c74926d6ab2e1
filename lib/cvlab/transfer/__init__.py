"""Transfer learning: a pretrained network's features for a simple classifier (book ch. 3, 10.6)."""

from cvlab.transfer.features import extract_features, extract_index_features
from cvlab.transfer.linear_probe import LinearProbe, train_linear_probe

__all__ = ["LinearProbe", "extract_features", "extract_index_features", "train_linear_probe"]
