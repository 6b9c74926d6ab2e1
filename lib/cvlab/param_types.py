"""Annotations a notebook's `parameters` cell uses to declare that a parameter names a registry
entry, so a grid or `cvlab.run_notebook` checks its values before any kernel starts:

    from cvlab.param_types import DatasetName, ModelName
    dataset: DatasetName = "cifar10"
    net: ModelName = "resnet"

papermill's inspector reads the annotation (`inferred_type_name`); the quoted form
(`net: "ModelName" = "resnet"`) works without the import.
"""

from __future__ import annotations

from typing import Annotated, Any

# Each alias is a plain `str` (or a schedule mapping) for Python; the metadata names the registry.
ModelName = Annotated[str, "a model of cvlab.models.names()"]
DatasetName = Annotated[str, "a data set of cvlab.data.names()"]
OptimizerName = Annotated[str, "an optimizer of cvlab.train.OPTIMIZERS"]
ScheduleName = Annotated[Any, "a schedule of cvlab.train.SCHEDULES, or a mapping {name: ...}"]
DataDirectory = Annotated[Any, "a folder of image files, checked against the data set's layout"]

# Annotation name -> the registry kind it declares (the grid layer maps kinds to registries).
KINDS: dict[str, str] = {
    "ModelName": "model",
    "DatasetName": "data set",
    "OptimizerName": "optimizer",
    "ScheduleName": "schedule",
    "DataDirectory": "data directory",
}

__all__ = ["KINDS", "DataDirectory", "DatasetName", "ModelName", "OptimizerName", "ScheduleName"]
