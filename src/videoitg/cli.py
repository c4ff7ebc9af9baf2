"""The `videoitg` command: thin argparse front over plain functions.

Each command lives in the module that does its job; that module exposes `add_cli(subparsers)`, which
adds its sub-parser and sets `func(args) -> int`. Modules keep heavy imports inside functions so that
`videoitg --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order here is the order in `videoitg --help`.
COMMAND_MODULES = (
    "videoitg.inference",
    "videoitg.hub",
    "videoitg.train.cli",
    "videoitg.train.vision_tagging",
    "videoitg.convert",
    "videoitg.evaluation.synth",
    "videoitg.evaluation.runner",
    "videoitg.dataset_builder.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videoitg", description="VideoITG: instruction-guided frame selection for video LLMs.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .video import InvalidInputError

    try:
        return int(args.func(args) or 0)
    except InvalidInputError as error:
        # Bad input: one readable line, no traceback, exit code 2 (as argparse does for bad flags).
        print(f"videoitg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"videoitg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
