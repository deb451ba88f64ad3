"""Benchmarks (`wmfm bench twin|model|decode|xapp`): scripts that print figures and write JSON + PNG,
each with its baseline measured in the same run."""

import json
from collections.abc import Callable
from pathlib import Path


def save(report: dict, out: Path, plot: Callable[[dict, Path], Path]) -> None:
    """`out` (JSON) and the chart `plot` draws next to it (same name, .png)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    png = plot(report, out.with_suffix(".png"))
    print(f"wrote {out} and {png}")
