"""The ``sipscope`` command. Each stage registers its own subcommands (``<stage>/cli.py: register``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from sipscope import __version__

# modules that expose ``register(subparsers)``; a stage not built yet is simply absent
_COMMAND_MODULES = [
    "sipscope.stack",
    "producers.cli",
    "producers.loadgen.cli",
    "streams.cli",
    "streams.capacity_cli",
    "indexers.cli",
    "indexers.web.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipscope", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sipscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # that stage's commands are not installed
            raise
        module.register(sub)
    return parser


def tune_gc(young: int) -> None:
    """Collect the young generation every ``young`` allocations instead of Python's 700 (see the setting
    ``gc_young_threshold``); the older generations keep their ratios."""
    import gc

    if young > 0:
        _, mid, old = gc.get_threshold()
        gc.set_threshold(young, mid, old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from sipscope.logs import configure_logging
    from sipscope.settings import get_settings

    configure_logging()
    tune_gc(get_settings().gc_young_threshold)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
