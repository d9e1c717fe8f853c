"""``python -m producers.loadgen ARGS``: the same as ``sipscope loadgen ARGS``."""

from __future__ import annotations

import argparse
import sys

from producers.loadgen.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producers.loadgen")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["loadgen", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
