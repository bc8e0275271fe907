"""`seqjepa-gym report` (`make report`): every baseline on the same data, the (M_tr, M_val)
heatmap and the equivariance study over seeds, as Markdown + PNG under runs/<timestamp>/.

Sized for about an hour on 2 CPU cores at the defaults. Every stage's output stays in the run
folder and a finished training is reused, so ``--resume-dir runs/<timestamp>`` continues an
interrupted report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments.pipeline import (
    Job,
    PipelineConfig,
    Stages,
    collect_views,
    evaluate_checkpoint,
    train_method,
)
from experiments.report import interval, save_figure, write_report
from seqjepa.rollouts import write_text_atomic


@dataclass
class ReportConfig:
    """What `seqjepa-gym report` runs."""

    out: str = "runs"
    """Parent folder; the report writes to <out>/<timestamp>/."""
    resume_dir: str = ""
    """Continue the report in this folder instead (finished stages are reused)."""
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    """Data, training and probe settings shared by every model."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds of seq-JEPA and its no-action twin (the equivariance study)."""
    m_tr: tuple[int, ...] = (1, 3, 5)
    """Context views of the seq-JEPA runs in the (M_tr, M_val) heatmap (3 is the main run)."""


def plot_heatmap(rows: dict[int, dict[str, Any]], path: Path) -> None:
    """Top-1 of the z_AGG probe over (M_tr, M_val)."""
    m_trs = sorted(rows)
    m_vals = sorted(int(m) for m in rows[m_trs[0]]["classification"]["aggregate"])
    grid = np.array(
        [[rows[t]["classification"]["aggregate"][str(v)]["top1"] for v in m_vals] for t in m_trs]
    )
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(m_vals), 1 + 0.6 * len(m_trs)))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(m_vals)), m_vals)
    ax.set_yticks(range(len(m_trs)), m_trs)
    ax.set_xlabel("M_val (views at evaluation)")
    ax.set_ylabel("M_tr (context views in training)")
    ax.set_title("seq-JEPA z_AGG top-1", fontsize=9)
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)


def equivariance_table(seeds: dict[str, list[dict[str, Any]]]) -> str:
    """seq-JEPA vs its no-action twin over seeds: mean +- 95% interval."""
    some = next(iter(seeds.values()))[0]
    m_class = min(5, max(int(m) for m in some["classification"]["aggregate"]))
    m_path = min(3, max(int(m) for m in some["path_integration"]["views_actions"]["per_m"]))
    figures = {
        "relative-rotation R^2 (random pairs)": lambda r: r["relative_pose"]["random_pairs"]["r2"],
        "individual-rotation R^2": lambda r: r["individual_pose"]["r2"],
        "action-use gap": lambda r: (r["action_use"] or {}).get("gap", float("nan")),
        f"path R^2, views + actions, M={m_path}": lambda r: r["path_integration"]["views_actions"][
            "per_m"
        ][str(m_path)]["r2"],
        f"path R^2, actions only, M={m_path}": lambda r: r["path_integration"]["actions_only"][
            "per_m"
        ][str(m_path)]["r2"],
        f"z_AGG top-1, M={m_class}": lambda r: r["classification"]["aggregate"][str(m_class)][
            "top1"
        ],
    }
    names = list(seeds)
    lines = [
        "| figure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, get in figures.items():
        cells = []
        for name in names:
            mean, half = interval([get(r) for r in seeds[name]])
            cells.append(f"{mean:.3f} +- {half:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(cfg: ReportConfig) -> Path:
    """Run (or continue) the report; returns its folder."""
    run_dir = Path(cfg.resume_dir or Path(cfg.out) / time.strftime("%Y%m%d-%H%M%S"))
    run_dir.mkdir(parents=True, exist_ok=True)
    pipe = cfg.pipeline
    extra_m_tr = [m for m in cfg.m_tr if m not in (1, 3)]
    plan: list[tuple[str, str, int, dict]] = [
        (f"{name} seed {seed}", method, seed, {})
        for seed in cfg.seeds
        for name, method in (("seq-JEPA", "seqjepa"), ("no-action", "no-action"))
    ]
    plan += [("M_tr=1", "m1", cfg.seeds[0], {}), ("VICReg", "vicreg", cfg.seeds[0], {})]
    plan += [(f"M_tr={m}", "seqjepa", cfg.seeds[0], {"views": m + 1}) for m in extra_m_tr]
    stages = Stages(1 + 2 * len(plan) + 1, "report")
    data = stages.run("collect", collect_views, pipe, run_dir / "dataset")
    folders = {name: run_dir / name.replace(" ", "-").replace("=", "") for name, *_ in plan}
    trainings = {
        name: Job(train_method, (pipe, data, folders[name], method, seed), overrides)
        for name, method, seed, overrides in plan
    }
    checkpoints = stages.run_side_by_side("train", trainings, pipe.side_by_side)
    first = f"seq-JEPA seed {cfg.seeds[0]}"
    evaluations = {
        name: Job(evaluate_checkpoint, (pipe, checkpoint, data, folders[name] / "eval"))
        for name, checkpoint in checkpoints.items()
    }
    evaluations["random encoder"] = Job(
        evaluate_checkpoint, (pipe, folders[first], data, run_dir / "random-encoder", True)
    )
    metrics = stages.run_side_by_side("eval", evaluations, pipe.side_by_side)
    stages.close()
    main = {
        "seq-JEPA (M_tr=3)": metrics[first],
        "no-action": metrics[f"no-action seed {cfg.seeds[0]}"],
        "M_tr=1": metrics["M_tr=1"],
        "VICReg": metrics["VICReg"],
        "random encoder": metrics["random encoder"],
    }
    by_m_tr = {1: metrics["M_tr=1"], 3: metrics[first]}
    by_m_tr |= {m: metrics[f"M_tr={m}"] for m in extra_m_tr}
    heat = {m: by_m_tr[m] for m in sorted(cfg.m_tr)}
    plot_heatmap(heat, run_dir / "heatmap_top1.png")
    seeds = {
        "seq-JEPA": [metrics[f"seq-JEPA seed {s}"] for s in cfg.seeds],
        "no-action": [metrics[f"no-action seed {s}"] for s in cfg.seeds],
    }
    notes = [
        pipe.describe(),
        stages.summary(),
    ]
    report = write_report(run_dir, "seq-JEPA Gym benchmark report", main, notes)
    text = report.read_text()
    text += (
        "\n## Top-1 over (M_tr, M_val)\n\n![heatmap](heatmap_top1.png)\n"
        f"\n## Equivariance: seq-JEPA vs its no-action twin ({len(cfg.seeds)} seeds, "
        "mean +- 95% t-interval)\n\n" + equivariance_table(seeds) + "\n"
    )
    write_text_atomic(report, text)
    print(text)
    print(f"wrote {run_dir}")
    return run_dir
