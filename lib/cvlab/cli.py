"""The `cvlab` command: `cvlab data ...` (data sets) and `cvlab grid ...` (= run_grid.py)."""

from __future__ import annotations

import sys

USAGE = """\
usage: cvlab COMMAND ...

commands:
  data   install, list and prepare data sets:  cvlab data import NAME PATH | fetch NAME | list
         | build NAME   (cvlab data --help)
  grid   run a notebook over a YAML grid:       cvlab grid GRID.yaml [options]  (= run_grid.py)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "data":
        from cvlab.data.__main__ import main as data_main

        return data_main(rest)
    if command == "grid":
        from cvlab.grid.cli import main as grid_main

        return grid_main(rest)
    print(f"cvlab: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
