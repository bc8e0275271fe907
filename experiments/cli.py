"""The `seqjepa-gym` command: one subcommand per job. Each job is a config dataclass (its field
docstrings become the --help text, CleanRL-style) and a ``run(config)`` function. Named
defaults are read first so that the other flags override them whatever their order: `train`'s
``--preset`` (torch is imported only for it) and the pipeline jobs' ``--pipeline.recipe``."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import tyro


def jobs() -> dict[str, tuple[type, Callable[[Any], Any]]]:
    """The jobs other than train, imported on demand (they need the renderer; train does not)."""
    from experiments import (
        agents_cli,
        bench,
        benchmark,
        collect,
        demo,
        explore,
        explore_data,
        export,
        soak,
    )
    from seqjepa.evaluate import EvalConfig, evaluate

    return {
        "classifier": (agents_cli.ClassifierConfig, agents_cli.classifier),
        "odometry": (agents_cli.OdometryConfig, agents_cli.odometry),
        "agent": (agents_cli.AgentConfig, agents_cli.agent),
        "agent-eval": (agents_cli.AgentEvalConfig, agents_cli.agent_eval),
        "explore": (explore.ExploreConfig, explore.run),
        "explore-data": (explore_data.ExploreDataConfig, explore_data.run),
        "soak": (soak.SoakConfig, soak.run),
        "demo": (demo.DemoConfig, demo.run),
        "eval": (EvalConfig, evaluate),
        "report": (benchmark.ReportConfig, benchmark.run),
        "bench": (bench.BenchConfig, bench.run),
        "collect": (collect.CollectConfig, collect.run),
        "export-3diebench": (export.ExportConfig, export.run),
    }


def flag_value(args: list[str], flag: str) -> str | None:
    """The value ``args`` give ``flag`` (``--flag VALUE`` or ``--flag=VALUE``; the last wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def train_main(args: list[str]) -> None:
    """`seqjepa-gym train`: ``--preset`` picks the defaults, every other flag overrides them."""
    from seqjepa.train import TrainConfig, preset_config, train

    preset = flag_value(args, "--preset") or "tiny"
    cfg = tyro.cli(TrainConfig, default=preset_config(preset), args=args, prog="seqjepa-gym train")
    last = train(cfg)
    if last is not None:  # rank 0 (or a single process) writes the checkpoints
        print(f"last checkpoint: {last}")


def parse(args: list[str]) -> Any:
    """The config of the job (other than train) that ``args`` name."""
    from experiments.pipeline import recipe_config
    from seqjepa.train import TrainConfig

    table = jobs()
    recipe = flag_value(args, "--pipeline.recipe")
    if recipe is not None and args[0] in table:
        cls = table[args[0]][0]
        if any(f.name == "pipeline" for f in dataclasses.fields(cls)):
            default = dataclasses.replace(cls(), pipeline=recipe_config(recipe))
            return tyro.cli(cls, default=default, args=args[1:], prog=f"seqjepa-gym {args[0]}")
    return tyro.extras.subcommand_cli_from_dict(
        {"train": TrainConfig} | {name: cls for name, (cls, _) in table.items()},
        prog="seqjepa-gym",
        args=args,
    )


def main(args: list[str] | None = None) -> None:
    """Parse ``args`` (default: sys.argv) and run the chosen job."""
    args = sys.argv[1:] if args is None else list(args)
    if args[:1] == ["train"]:
        train_main(args[1:])
        return
    config = parse(args)
    for cls, run in jobs().values():
        if isinstance(config, cls):
            run(config)
            return


if __name__ == "__main__":
    main()
