"""The YAML dialect of cvlab's configuration (grid files, `--option KEY=VALUE`, `--only`):
PyYAML's safe loader, reading `1e-3` as a float as YAML 1.2 does."""

from __future__ import annotations

import re
from typing import Any

import yaml


class GridYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-3` as a float as YAML 1.2 does (PyYAML reads a string)."""


GridYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Plain values (no Python objects) from YAML text, in cvlab's dialect."""
    return yaml.load(text, Loader=GridYamlLoader)  # noqa: S506 - a SafeLoader subclass


__all__ = ["GridYamlLoader", "parse_yaml"]
