"""`cvlab data COMMAND ...` (or `python -m cvlab.data COMMAND ...`): data set tools.

    cvlab data import NAME PATH [--layout image-folder] [--force] [--link] [--quiet]
                                                               archive or folder -> data cache
                                                               (NAME not built in: your own set)
    cvlab data fetch NAME [--force] [--quiet]                  download from the official source
    cvlab data list [PATTERN] [--no-options]                   what can be loaded, with options,
                                                               and what is installed
    cvlab data build NAME [--size 64] [--out data/NAME.hdf5] [--aspect] [--no-resume]
                          [--batch-size N] [--option KEY=VALUE ...] [--quiet]

`build` writes `<out stem>_{train,val,test}.hdf5` and `<out stem>_mean.json` (see
`cvlab.data.build`). Each subcommand is a `_cmd_*` function registered in `build_parser`.
Exit codes: 0 done, 1 failed (a download that failed included), 2 bad input (unknown data set,
data set not on this machine, wrong layout, already installed from elsewhere, malformed
option), 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from cvlab.config_yaml import parse_yaml
from cvlab.data import list_datasets
from cvlab.data.build import build_hdf5
from cvlab.data.cache import data_root
from cvlab.data.catalog import CATALOG
from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.data.install import fetch_dataset, import_dataset, other_entries
from cvlab.errors import (
    CvlabError,
    DatasetExistsError,
    DatasetFetchError,
    DatasetLayoutError,
    DatasetNameError,
    DatasetNotFoundError,
    OptionSyntaxError,
    UnknownNameError,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_BadInput = OptionSyntaxError  # a malformed --option (the commands raise it by this name)


def parse_options(items: list[str]) -> dict[str, Any]:
    """`["directory=/x", "limit=200"]` -> `{"directory": "/x", "limit": 200}` (values as YAML)."""

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise _BadInput(f"--option {item!r}: expected KEY=VALUE, e.g. --option limit=200")
        try:
            options[key] = parse_yaml(raw) if raw.strip() else ""
        except Exception as exc:  # noqa: BLE001 - any YAML error is the user's input
            raise _BadInput(f"--option {item!r}: the value is not valid YAML ({exc})") from None
    return options


def _size(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a side (64) or HxW (64x48)") from None


def _cmd_build(args: argparse.Namespace) -> int:
    options = parse_options(args.option)
    paths = build_hdf5(
        args.name,
        args.out,
        size=args.size,
        aspect=args.aspect,
        batch_size=args.batch_size,
        resume=args.resume,
        progress=not args.quiet,
        **options,
    )
    for split in ("train", "val", "test"):
        with HDF5DatasetReader(paths[split]) as reader:
            skipped = int(reader.attrs.get("skipped", 0))
            shape = "x".join(map(str, reader.data.shape[1:]))
            note = f", {skipped} unreadable file(s) skipped" if skipped else ""
            print(f"{split:>5}: {len(reader):>7} images {shape} -> {paths[split]}{note}")
    means = json.loads(Path(paths["mean"]).read_text())
    print(
        "means: " + ", ".join(f"{k}={means[k]:.3f}" for k in ("R", "G", "B"))
        + f" (0-255, training split) -> {paths['mean']}"
    )  # fmt: skip
    return EXIT_OK


def _print_import(result) -> None:
    verb = "already installed (same source; --force re-imports)" if result.skipped else "installed"
    print(f"{result.survey.describe()}\n  {verb}: {result.target}")
    if result.skipped:
        return
    name = result.survey.name
    if name in CATALOG and CATALOG[name].pictures:  # a folder of pictures, not a labelled set
        print(
            f"  load one with cvlab.data.pictures.load_picture({name!r}, NAME), or name it "
            f"'{name}/NAME' in a notebook's parameters (data cache: {data_root()})"
        )
    else:
        print(
            f"  load it with cvlab.data.load({name!r}), or dataset: {name} in a grid "
            f"(data cache: {data_root()})"
        )


def _cmd_import(args: argparse.Namespace) -> int:
    result = import_dataset(
        args.name,
        args.path,
        force=args.force,
        link=args.link,
        progress=not args.quiet,
        layout=args.layout,
    )
    _print_import(result)
    return EXIT_OK


def _cmd_fetch(args: argparse.Namespace) -> int:
    _print_import(fetch_dataset(args.name, force=args.force, progress=not args.quiet))
    return EXIT_OK


def _status(row) -> str:
    if row.survey is not None:
        return row.survey.location
    if row.kind == "built-in":
        return "built in: no import needed"
    why = f"unreadable: {row.problem}" if row.problem else "not installed"
    return f"{why} ({row.how})" if row.how else why


def _cmd_list(args: argparse.Namespace) -> int:
    rows = list_datasets(args.pattern)
    if not rows:
        print(f"no data set matches {args.pattern!r} (`cvlab data list` shows them all)")
        return EXIT_OK
    width = max(16, *(len(row.name) + 2 for row in rows))
    print(f"data cache: {data_root()}  (set $CVLAB_DATA to move it)")
    print(f"{'name':<{width}}{'train':>9}{'val':>9}{'test':>9}{'classes':>9}  location")
    for row in rows:
        s = row.survey
        if s is None:
            counts = f"{'-':>9}" * 4
        else:
            counts = "".join(f"{s.splits.get(k, 0):>9,}" for k in ("train", "val", "test"))
            counts += f"{s.classes:>9}"
        print(f"{row.name:<{width}}{counts}  {_status(row)}")
        if args.options:
            how = "" if row.loadable else " (read with cvlab.data.pictures)"
            print(f"    {row.description}{how}")
            if row.options:
                print(f"    options: {row.options_text()}")
    others = other_entries()
    if others and args.pattern is None:
        print("also in the data cache: " + ", ".join(others))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvlab data",
        description="Data set tools: install data sets into the data cache, list them, build "
        "HDF5 files.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    imp = commands.add_parser(
        "import",
        help="install NAME into the data cache from an archive (.tar, .tar.gz, .zip) or a folder",
        description="Unpack or copy PATH into <data cache>/NAME after checking its layout "
        "(images per split and class, printed). Importing the same source again does nothing.",
    )
    imp.add_argument(
        "name",
        help="cifar10, tiny-imagenet, flowers17, dogs-vs-cats, imagenet-sample, style-images, "
        "content-photos; any other name installs your own data set (see --layout)",
    )
    imp.add_argument("path", type=Path, help="the archive, or the folder that holds the data set")
    imp.add_argument(
        "--layout",
        default=None,
        help="your own data set's layout: image-folder (a folder per class, optionally inside "
        "train/ val/ test/); detected when left out",
    )
    imp.add_argument("--force", action="store_true", help="replace what the cache holds for NAME")
    imp.add_argument(
        "--link", action="store_true", help="(folders) link to PATH instead of copying it"
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bars")
    imp.set_defaults(func=_cmd_import)

    fetch = commands.add_parser(
        "fetch",
        help="download NAME from its official source and import it (needs internet)",
        description="Download the official archive (CIFAR-10's tarball, Tiny ImageNet's zip, "
        "Oxford's 17flowers.tgz) and import it. Offline, says how to import a copy instead.",
    )
    fetch.add_argument("name", help="cifar10, tiny-imagenet or flowers17")
    fetch.add_argument("--force", action="store_true", help="replace what the cache holds")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(func=_cmd_fetch)

    listing = commands.add_parser(
        "list",
        help="the data sets cvlab.data.load knows, with their options, and what is installed",
        description="Every data set: built in (no files needed), importable (installed in the "
        "data cache, or the import/fetch command to get it) and your own imported ones, with "
        "images per split, classes and the options cvlab.data.load takes.",
    )
    listing.add_argument("pattern", nargs="?", help="a shell pattern, e.g. '*cifar*' or 'dogs*'")
    listing.add_argument(
        "--no-options", dest="options", action="store_false", help="one line per data set"
    )
    listing.set_defaults(func=_cmd_list)

    build = commands.add_parser(
        "build",
        help="write NAME's train/val/test HDF5 files and its training RGB means",
        description="Write <out stem>_train.hdf5, _val.hdf5, _test.hdf5 and <out stem>_mean.json "
        "(per-channel means of the training images, 0-255). An interrupted build resumes when "
        "the same command is run again.",
    )
    build.add_argument("name", help="a data set name, e.g. tiny-imagenet, dogs-vs-cats, digits")
    build.add_argument("--size", type=_size, default=64, help="image side, or HxW (default: 64)")
    build.add_argument(
        "--out", type=Path, metavar="PATH",
        help="base path, e.g. data/NAME.hdf5 -> data/NAME_train.hdf5 ... (default: data cache)",
    )  # fmt: skip
    build.add_argument(
        "--aspect", action="store_true", help="resize the short side and centre-crop (no stretch)"
    )
    build.add_argument(
        "--no-resume", dest="resume", action="store_false",
        help="start over instead of continuing an interrupted build or keeping finished files",
    )  # fmt: skip
    build.add_argument(
        "--batch-size", type=int, default=500, metavar="N",
        help="images decoded and written at a time (default: 500)",
    )  # fmt: skip
    build.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="an option for the data set's loader, value as YAML (repeatable), "
        "e.g. --option directory=/data/tiny --option limit=200",
    )  # fmt: skip
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_cmd_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except _BadInput as exc:
        parser.error(str(exc))  # exits 2
    except (
        UnknownNameError,
        DatasetNotFoundError,
        DatasetLayoutError,
        DatasetExistsError,
        DatasetNameError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatasetFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc) and "multiple values" not in str(exc):
            raise
        print(f"error: {exc} (check the --option names)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CvlabError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
