"""The `cvlab` command: `cvlab models [PATTERN]` (the models by name), `cvlab data ...` (data
sets), `cvlab grid ...` (= run_grid.py) and
`cvlab predict run:<id> PATH...` (classify new images with a finished run) and `cvlab report`
(a self-contained copy of the leaderboard to share)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from cvlab.errors import CvlabError

USAGE = """\
usage: cvlab COMMAND ...

commands:
  models   the models cvlab.models.build knows:  cvlab models [PATTERN] [--no-options]
  data     install, list and prepare data sets:  cvlab data import NAME PATH | fetch NAME
           | list [PATTERN] | build NAME   (cvlab data --help)
  grid     run a notebook over a YAML grid:       cvlab grid GRID.yaml [options]  (= run_grid.py)
  predict  classify images with a finished run:   cvlab predict run:<id> PATH... [--top K] [--json]
           (cvlab predict --help)
  report   a shareable, offline copy of grids:    cvlab report [GRID...] --out DIR [--from DIR]
  serve    the leaderboard on localhost, live:     cvlab serve [--out DIR] [--port N] [--host H]
  export   runs into an MLflow tracking store:     cvlab export mlflow [GRID...] --tracking-uri URI
           [--out DIR] [--artifact-root DIR]   (needs the [mlflow] extra)
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
    from cvlab.runs.load import UnreadableImageError, image_files, load  # lazy: pandas

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


def _models_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvlab models",
        description="The models cvlab.models.build(NAME, **options) knows, with the options "
        "each takes (the same rows as cvlab.models.list_models(PATTERN)).",
    )
    parser.add_argument("pattern", nargs="?", help="a shell pattern, e.g. 'res*' or '*net'")
    parser.add_argument(
        "--no-options", dest="options", action="store_false", help="one line per model"
    )
    return parser


def models_main(argv: list[str]) -> int:
    """`cvlab models [PATTERN]`: name and description, then the options (no Keras loaded)."""
    from cvlab.models import list_models  # lazy: pandas (through cvlab.runs)

    args = _models_parser().parse_args(argv)
    rows = list_models(args.pattern)
    if not rows:
        print(f"no model matches {args.pattern!r} (`cvlab models` lists them all)")
        return 0
    width = max(len(row.name) for row in rows) + 2
    for row in rows:
        print(f"{row.name:<{width}}{row.description}")
        if args.options:
            print(f"{'':<{width}}options: {row.options_text()}")
    return 0


def _report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvlab report",
        description="Write a self-contained copy of the leaderboard (page, figures, executed "
        "notebooks as HTML, CSV) to share: it opens from a folder, with no network.",
    )
    parser.add_argument("grids", nargs="*", metavar="GRID", help="grid names (default: all)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the report to")
    parser.add_argument(
        "--from", dest="source", default=".", metavar="DIR",
        help="the workspace the grids ran in (their --out; default: the current folder)",
    )  # fmt: skip
    return parser


def report_main(argv: list[str]) -> int:
    from cvlab.report.static_report import ReportError, write_report  # lazy: scipy

    args = _report_parser().parse_args(argv)
    try:
        index = write_report(args.grids or None, args.out, source=args.source)
    except ReportError as exc:
        print(f"cvlab report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


def serve_main(argv: list[str]) -> int:
    from cvlab.report.serve import serve  # lazy: pandas

    parser = argparse.ArgumentParser(
        prog="cvlab serve",
        description="Serve the workspace on localhost: experiments/index.html then shows the "
        "runs in progress and updates by itself at each epoch's end.",
    )
    parser.add_argument("--out", default=".", metavar="DIR", help="the workspace (a grid's --out)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: a free one; default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    args = parser.parse_args(argv)
    try:
        serve(args.out, args.host, args.port)
    except OSError as exc:
        print(f"cvlab serve: cannot serve on {args.host}:{args.port}: {exc}. Fix: give another "
              "--port (0 picks a free one)", file=sys.stderr)  # fmt: skip
        return 2
    return 0


def export_main(argv: list[str]) -> int:
    """`cvlab export mlflow`: exit 0, or 2 with what to do (no MLflow, bad store, no grid)."""
    parser = argparse.ArgumentParser(
        prog="cvlab export",
        description="Send the leaderboard's runs to an MLflow tracking store: parameters, "
        "per-epoch metrics as steps, final metrics, tags and the run's files. Exporting again "
        "updates the same MLflow runs.",
    )
    parser.add_argument("target", choices=["mlflow"], help="where to: mlflow")
    parser.add_argument("grids", nargs="*", metavar="GRID", help="grid names (default: all)")
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"), metavar="URI",
        help="the MLflow store: sqlite:///mlflow.db, http://host:5000, ... "
        "(default: $MLFLOW_TRACKING_URI)",
    )  # fmt: skip
    parser.add_argument("--out", default=".", metavar="DIR", help="the workspace (a grid's --out)")
    parser.add_argument(
        "--artifact-root", default=None, metavar="DIR",
        help="where new experiments keep their files (default: beside a SQLite store)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        print("cvlab export mlflow: give --tracking-uri URI (e.g. sqlite:///mlflow.db) or set "
              "MLFLOW_TRACKING_URI", file=sys.stderr)  # fmt: skip
        return 2
    from cvlab.report.mlflow_export import export_to_mlflow  # lazy: mlflow, pandas
    from cvlab.workspace import Workspace  # lazy: with the export, after the URI check

    try:
        done = export_to_mlflow(
            Workspace.at(args.out), args.tracking_uri, args.grids, artifact_root=args.artifact_root
        )
    except CvlabError as exc:
        print(f"cvlab export mlflow: {exc}", file=sys.stderr)
        return 2
    print(
        f"exported {len(done.created) + len(done.updated)} runs to {args.tracking_uri}: "
        f"{len(done.created)} new, {len(done.updated)} updated, {done.metric_points} new metric "
        f"points, {done.artifacts} files"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "models":
        return models_main(rest)
    if command == "data":
        from cvlab.data.__main__ import main as data_main  # lazy: pandas

        return data_main(rest)
    if command == "grid":
        from cvlab.grid.cli import main as grid_main  # lazy: pandas

        return grid_main(rest)
    if command == "predict":
        return predict_main(rest)
    if command == "report":
        return report_main(rest)
    if command == "serve":
        return serve_main(rest)
    if command == "export":
        return export_main(rest)
    print(f"cvlab: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
