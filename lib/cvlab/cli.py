"""The `cvlab` command: `cvlab data ...` (data sets), `cvlab grid ...` (= run_grid.py) and
`cvlab predict run:<id> PATH...` (classify new images with a finished run)."""

from __future__ import annotations

import argparse
import json
import os
import sys

USAGE = """\
usage: cvlab COMMAND ...

commands:
  data     install, list and prepare data sets:  cvlab data import NAME PATH | fetch NAME | list
           | build NAME   (cvlab data --help)
  grid     run a notebook over a YAML grid:       cvlab grid GRID.yaml [options]  (= run_grid.py)
  predict  classify images with a finished run:   cvlab predict run:<id> PATH... [--top K] [--json]
           (cvlab predict --help)
"""


def _predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvlab predict",
        description=(
            "Classify image files with the model a finished run saved, prepared exactly as the "
            "run prepared its own images (size, resize mode, pixel scale, means): nothing is "
            "retrained. One line per image."
        ),
    )
    parser.add_argument("run", help="run:<run_id> or run:<grid>/<run_id> (as on the leaderboard)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders of them")
    parser.add_argument(
        "--top", type=int, default=1, metavar="K", help="the K most probable classes"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--root",
        default=None,
        help="the folder the grid wrote to (its --out; default: the project)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per model call")
    return parser


def predict_main(argv: list[str]) -> int:
    """`cvlab predict`: exit 0, or 2 with a message for a run or an image that cannot be used."""
    args = _predict_parser().parse_args(argv)
    if args.top < 1:
        print("cvlab predict: --top must be at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    from cvlab.errors import CvlabError
    from cvlab.runs.load import UnreadableImageError, image_files, load

    files = image_files(args.paths)
    missing = [str(p) for p in files if not p.is_file()]
    if missing or not files:
        reason = f"no such file: {', '.join(missing)}" if missing else "no image files given"
        print(f"cvlab predict: {reason}", file=sys.stderr)
        return 2
    try:
        loaded = load(args.run, root=args.root)
    except (CvlabError, ValueError) as exc:
        print(f"cvlab predict: {exc}", file=sys.stderr)
        return 2
    try:
        results = loaded.predict_top(files, args.top, batch_size=args.batch_size)
    except UnreadableImageError as exc:
        print(f"cvlab predict: {exc}", file=sys.stderr)
        return 2
    for path, top in zip(files, results, strict=True):
        if args.json:
            row = {"path": str(path), "predictions": [p._asdict() for p in top]}
            print(json.dumps(row), flush=True)
        else:
            shown = ", ".join(f"{p.label} {p.probability:.2%}" for p in top)
            print(f"{path}\t{shown}", flush=True)
    return 0


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
    if command == "predict":
        return predict_main(rest)
    print(f"cvlab: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
