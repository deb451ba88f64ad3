"""The `wmfm` command: one entry point, sub-commands registered by each package.

Errors a user can fix (bad config, bad scenario, existing output) end the command with one
line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys

from wmfm.config import ConfigError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileExistsError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    from wmfm.model import cli as model_cli
    from wmfm.sim import cli as sim_cli

    parser = argparse.ArgumentParser(prog="wmfm", description="WMFM xApp: twin, dataset, model, xApp.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim_cli.register(sub)
    model_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from wmfm.sim.scenario import ScenarioError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (*USER_ERRORS, ScenarioError) as exc:
        print(f"wmfm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
