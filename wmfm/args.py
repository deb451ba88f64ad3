"""The command line's parser and value types: one rule for every `wmfm` sub-command.

- No abbreviations (`--scene 10` is an error, not `--scenes 10`).
- Every flag's help shows its default.
- An error is one line on stderr naming the sub-command, exit status 2:
  `wmfm twin generate: error: argument --scenes: must be >= 1, got -5 (see wmfm twin generate --help)`,
  unrecognised arguments included (argparse would report those with the top-level usage).
- Numbers are range-checked where they are parsed (`positive_int`, `port`, ...), so a bad value
  never reaches the code as a traceback.
"""

from __future__ import annotations

import argparse
import math


class UsageError(Exception):
    """A command-line error; the message is the whole line to print (exit status 2)."""


class DefaultsFormatter(argparse.HelpFormatter):
    """Help with "(default: X)" after every option that has a default (none for flags, required
    options, or help that already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if (d is None or d is False or d is argparse.SUPPRESS or action.required or "default" in text
                or not action.option_strings or isinstance(action, argparse._HelpAction)):
            return text
        shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else d
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:          # a leaf command: its own error, its own name
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if not hasattr(ns, "prog"):                      # the deepest command's name, for run-time errors
            ns.prog = self.prog
        return ns, extras


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_range(lo: int | None = None, hi: int | None = None):
    """An int type for argparse that accepts lo <= value <= hi (either bound optional)."""
    def parse(text: str) -> int:
        v = _number(int, text)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(_bounds(lo, hi, v))
        return v
    parse.__name__ = "int"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    """A finite float type for argparse within [lo, hi] (open ends where asked)."""
    def parse(text: str) -> float:
        v = _number(float, text)
        if lo is not None and (v <= lo if lo_open else v < lo) or hi is not None and (v >= hi if hi_open else v > hi):
            raise argparse.ArgumentTypeError(_bounds(lo, hi, v, lo_open, hi_open))
        return v
    parse.__name__ = "float"
    return parse


def _bounds(lo, hi, v, lo_open=False, hi_open=False) -> str:
    def f(x):
        return str(x) if isinstance(x, int) else f"{x:g}"
    if lo is not None and hi is not None:
        return f"must be in {'(' if lo_open else '['}{f(lo)}, {f(hi)}{')' if hi_open else ']'}, got {f(v)}"
    if lo is not None:
        return f"must be {'>' if lo_open else '>='} {f(lo)}, got {f(v)}"
    return f"must be {'<' if hi_open else '<='} {f(hi)}, got {f(v)}"


positive_int = int_range(1)
seed = int_range(0, 2**32 - 1)
positive_float = float_range(0, lo_open=True)
non_negative_float = float_range(0)
probability = float_range(0, 1, hi_open=True)
fraction = float_range(0, 1, lo_open=True)


def frame_size(text: str) -> tuple[int, int]:
    """"1280x720" -> (1280, 720): a camera frame's width x height, each 16..8192."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT (e.g. 1280x720), got {text!r}")
    if not (16 <= int(w) <= 8192 and 16 <= int(h) <= 8192):
        raise argparse.ArgumentTypeError(f"width and height must be in 16..8192, got {text!r}")
    return int(w), int(h)
