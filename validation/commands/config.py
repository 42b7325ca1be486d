"""``batchrmt config``: list the built-in configs, or print one to start your own from.

batchrmt config list
batchrmt config show default > my-study.json     # edit, then: batchrmt run --config my-study.json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from validation.commands.common import UsageError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "config",
        help="list or print the built-in configs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="names of the built-in configs").set_defaults(func=main)
    show = sub.add_parser("show", help="print a built-in config (or a config file) as stored")
    show.add_argument("name", help="a built-in config name or a .toml/.json file")
    show.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from validation.config import ConfigError, available_configs, show_config

    if args.action == "list":
        print("\n".join(available_configs()))
        return 0
    try:
        sys.stdout.write(show_config(args.name))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return 0
