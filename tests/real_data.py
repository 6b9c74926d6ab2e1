"""The real data sets in the data cache, for the `slow` tests: skip, saying how to import them,
on a machine that does not have them; fail in CI, which imports them first (`make import-shared`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def installed_dataset(name: str) -> Path:
    """`<data cache>/<name>`, or skip the test with the command that installs it."""
    from cvlab.data.cache import data_root

    folder = data_root() / name
    if not folder.exists():
        if os.environ.get("CI") == "true":  # CI imports them first: a skip would hide a failure
            pytest.fail(
                f"{name} is not in the data cache {data_root()}: `make import-shared` failed?"
            )
        pytest.skip(
            f"{name} is not in the data cache {data_root()}: import it with "
            f"`cvlab data import {name} PATH` (`make import-shared` imports the team's archives "
            "from ../shared/data)"
        )
    return folder
