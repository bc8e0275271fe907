"""Benchmark reports: Markdown tables and matplotlib plots from evaluation metrics.json files.

Used by `seqjepa-gym demo` and `seqjepa-gym report`; every figure comes from the metrics passed
in, nothing is recomputed here.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from experiments.io import atomic_path
from seqjepa.evaluate import CONDITIONS, ERROR_KEY, FOREIGN
from seqjepa.rollouts import write_text_atomic

Metrics = dict[str, Any]
#: How the path-integration conditions read in tables and legends.
CONDITION_LABELS = {
    "views_actions": "views + actions",
    "views_only": "views only",
    "actions_only": "actions only",
    FOREIGN: "actions + another episode's views",
}


@dataclass
class Target:
    """A figure the issue asks the demo to reach: ``value(metrics) >= threshold``."""

    name: str
    threshold: float
    value: float

    @property
    def met(self) -> bool:
        return self.value >= self.threshold


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main_table(runs: dict[str, Metrics]) -> str:
    """The paper-style table: one row per model."""
    ms = sorted({int(m) for r in runs.values() for m in r["classification"]["aggregate"]})
    shown = [m for m in (1, 3, 5, 8) if m in ms] or ms
    head = (
        ["method", "single-view top-1"]
        + [f"z_AGG top-1 M={m}" for m in shown]
        + ["rel. R^2 (random pairs)", "rel. error", "rel. R^2 (consecutive)", "indiv. R^2"]
        + ["eff. rank", "action-use gap"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in runs.items():
        c, rel = r["classification"], r["relative_pose"]
        error = ERROR_KEY[r["data"]["pose"]]
        gap = (r.get("action_use") or {}).get("gap")
        row = [name, _fmt(c["single_view"]["top1"])]
        row += [_fmt(c["aggregate"].get(str(m), {}).get("top1")) for m in shown]
        row += [
            _fmt(rel["random_pairs"]["r2"]),
            _fmt(rel["random_pairs"][error], 1),
            _fmt(rel["consecutive_pairs"]["r2"]),
            _fmt(r["individual_pose"]["r2"]),
            _fmt(r["effective_rank"]["value"], 1),
            _fmt(gap, 4),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _conditions(run: Metrics) -> tuple[str, ...]:
    """The three conditions, and the foreign-views control where it was evaluated."""
    return (*CONDITIONS, *([FOREIGN] if FOREIGN in run["path_integration"] else []))


def path_table(runs: dict[str, Metrics]) -> str:
    """Path-integration R^2 per method, condition and M_val."""
    ms = sorted(
        {int(m) for r in runs.values() for d in r["path_integration"].values() for m in d["per_m"]}
    )
    head = ["method", "condition"] + [f"M={m}" for m in ms]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in runs.items():
        for condition in _conditions(r):
            per_m = r["path_integration"].get(condition, {}).get("per_m", {})
            cells = [_fmt(per_m.get(str(m), {}).get("r2")) for m in ms]
            lines.append("| " + " | ".join([name, CONDITION_LABELS[condition], *cells]) + " |")
    return "\n".join(lines)


def plot_top1(runs: dict[str, Metrics], path: Path) -> None:
    """Top-1 of the z_AGG probe against M_val, one line per model (single view dashed)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, (name, r) in enumerate(runs.items()):
        agg = r["classification"]["aggregate"]
        ms = sorted(int(m) for m in agg)
        line = ax.plot(ms, [agg[str(m)]["top1"] for m in ms], marker="o", label=name)[0]
        single = r["classification"]["single_view"]["top1"]
        ax.axhline(single, color=line.get_color(), linestyle="--", linewidth=0.8, zorder=-i)
    ax.set_xlabel("observed views M_val")
    ax.set_ylabel("top-1 (held-out instances)")
    ax.set_title("Class from z_AGG (dashed: single-view z)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_paths(runs: dict[str, Metrics], path: Path) -> None:
    """Path-integration R^2 against M_val: one panel per model, one line per condition."""
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.2), squeeze=False)
    for ax, (name, r) in zip(axes[0], runs.items(), strict=True):
        for condition in _conditions(r):
            per_m = r["path_integration"].get(condition, {}).get("per_m", {})
            ms = sorted(int(m) for m in per_m)
            r2 = [per_m[str(m)]["r2"] for m in ms]
            ax.plot(ms, r2, marker="o", label=CONDITION_LABELS[condition])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("observed views M_val")
        lowest = min(
            [-0.1] + [v["r2"] for d in r["path_integration"].values() for v in d["per_m"].values()]
        )
        ax.set_ylim(lowest - 0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("path-integration R^2")
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, 0.0
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(
    out: Path,
    title: str,
    runs: dict[str, Metrics],
    notes: Sequence[str] = (),
    targets: Sequence[Target] = (),
) -> Path:
    """report.md with the tables, plus top1_vs_mval.png and path_integration.png, in ``out``."""
    plot_top1(runs, out / "top1_vs_mval.png")
    plot_paths(runs, out / "path_integration.png")
    first = next(iter(runs.values()))
    data = first["data"]
    parts = [
        f"# {title}",
        "",
        f"Machine: {machine()}.",
        f"Data: `{data['env_id']}`, {data['categories']} categories, episodes of "
        f"{data['views_per_episode']} views; probes fitted on {data['episodes']['fit']} train "
        f"episodes (hyper-parameters chosen on {data['episodes']['held']} episodes of held-out "
        f"train instances), scored on {data['episodes']['test']} val/test-split episodes.",
        "R^2 is the mean over output dimensions (sklearn's uniform average); errors are mean "
        "geodesic degrees (rotations) or distances (glimpses).",
        "",
        *(f"- {note}" for note in notes),
        "",
        "## Representations",
        "",
        main_table(runs),
        "",
        "![top-1 against M_val](top1_vs_mval.png)",
        "",
        "## Path integration (R^2 of the path from the first view, from z_AGG)",
        "",
        path_table(runs),
        "",
        "![path integration](path_integration.png)",
    ]
    if targets:
        parts += ["", "## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        parts += [
            f"| {t.name} | >= {t.threshold:.3g} | {t.value:.3f} | {'yes' if t.met else 'NO'} |"
            for t in targets
        ]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(parts) + "\n")
    return path
