"""The `seqjepa-gym` command: one subcommand per job. Each job is a config dataclass (its field
docstrings become the --help text, CleanRL-style) and a ``run(config)`` function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tyro

from experiments import bench, collect, demo, export

JOBS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "demo": (demo.DemoConfig, demo.run),
    "bench": (bench.BenchConfig, bench.run),
    "collect": (collect.CollectConfig, collect.run),
    "export-3diebench": (export.ExportConfig, export.run),
}


def main(args: list[str] | None = None) -> None:
    """Parse ``args`` (default: sys.argv) and run the chosen job."""
    config = tyro.extras.subcommand_cli_from_dict(
        {name: cls for name, (cls, _) in JOBS.items()}, prog="seqjepa-gym", args=args
    )
    for cls, run in JOBS.values():
        if isinstance(config, cls):
            run(config)
            return


if __name__ == "__main__":
    main()
