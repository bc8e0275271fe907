"""The benchmark report end to end at toy size (the demo's test is in test_cli.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from agents.ppo import AgentConfig
from experiments import benchmark, explore, explore_data
from experiments.pipeline import Job, PipelineConfig, run_side_by_side

TOY = PipelineConfig(image_size=16, supersample=1, episodes=40, views=4, workers=1, steps=2,
                     batch_size=8, probe_steps=4)  # fmt: skip


def test_report_runs_every_baseline_and_resumes(tmp_path):
    pipeline = dataclasses.replace(
        TOY,
        relative_weight=0.5,
        relative_warmup=1,
        action_encoding="matrix",
        augment="hue",
        layers=3,
        dropout=0.2,
        head_lr_scale=0.25,
        predictor_hidden=48,
        view_dropout=0.25,
    )
    cfg = benchmark.ReportConfig(out=str(tmp_path), pipeline=pipeline, seeds=(0, 1), m_tr=(1, 3, 2))
    run_dir = benchmark.run(cfg)
    report = (run_dir / "report.md").read_text()
    for row in ("VICReg", "M_tr=1", "no-action", "random encoder", "Equivariance"):
        assert row in report
    assert (run_dir / "heatmap_top1.png").stat().st_size > 0
    # every view of a 4-view episode beyond the context is a target (VICReg: n/a)
    models = {
        path.parent.name: json.loads(path.read_text())["model"]
        for path in run_dir.glob("*/config.json")
    }
    targets = {name: model["targets"] for name, model in models.items()}
    assert targets == {"seq-JEPA-seed-0": 1, "seq-JEPA-seed-1": 1, "no-action-seed-0": 1,
                       "no-action-seed-1": 1, "M_tr1": 3, "M_tr2": 2, "VICReg": 1}  # fmt: skip
    # the relative-target term only where there are two targets or more to compare
    weighted = {name for name, model in models.items() if model["relative_weight"] > 0}
    assert weighted == {"M_tr1", "M_tr2"}
    warmups = {
        path.parent.name
        for path in run_dir.glob("*/config.json")
        if json.loads(path.read_text())["relative_warmup"]
    }
    assert warmups == weighted  # the term's warm-up where there is a term
    # the aggregator's size, dropouts and predictor reach every model, over the preset's
    aggregators = {
        (m["layers"], m["dropout"], m["predictor_hidden"], m["view_dropout"])
        for m in models.values()
    }
    assert aggregators == {(3, 0.2, 48, 0.25)}, aggregators
    configs = [json.loads(p.read_text()) for p in run_dir.glob("*/config.json")]
    assert {(c["lr"], c["head_lr_scale"]) for c in configs} == {(TOY.lr, 0.25)}
    assert {m["prefixes"] for m in models.values()} == {True}  # the preset's is False
    encodings = {name: model["action_encoding"] for name, model in models.items()}
    assert set(encodings.values()) == {"matrix"}, encodings
    augments = {json.loads(p.read_text())["augment"] for p in run_dir.glob("*/config.json")}
    assert augments == {"hue"}  # every model, VICReg and the twins too, sees augmented views
    with pytest.raises(ValueError, match="targets"):
        dataclasses.replace(TOY, targets=0)
    with pytest.raises(ValueError, match="relative-weight"):
        dataclasses.replace(TOY, relative_weight=float("nan"))
    with pytest.raises(ValueError, match="action-encoding"):
        dataclasses.replace(TOY, action_encoding="euler")
    with pytest.raises(ValueError, match="view-dropout"):
        dataclasses.replace(TOY, view_dropout=1.0)
    with pytest.raises(ValueError, match="relative-warmup"):
        dataclasses.replace(TOY, relative_warmup=TOY.steps + 1)
    with pytest.raises(ValueError, match="unknown augment"):
        dataclasses.replace(TOY, augment="blur")
    with pytest.raises(ValueError, match="layers"):
        dataclasses.replace(TOY, layers=0)
    with pytest.raises(ValueError, match="dropout"):
        dataclasses.replace(TOY, dropout=1.0)
    with pytest.raises(ValueError, match="head-lr-scale"):
        dataclasses.replace(TOY, head_lr_scale=0.0)
    # a finished report continued: every training is reused, nothing retrains
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint-*.pt")}
    benchmark.run(benchmark.ReportConfig(resume_dir=str(run_dir), pipeline=pipeline,
                                         seeds=(0, 1), m_tr=(1, 3, 2)))  # fmt: skip
    assert stamps == {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint-*.pt")}
    with pytest.raises(ValueError, match="other settings"):  # never reuse another recipe's run
        benchmark.run(benchmark.ReportConfig(resume_dir=str(run_dir), pipeline=TOY, seeds=(0, 1),
                                             m_tr=(1, 3, 2)))  # fmt: skip


@pytest.mark.slow
def test_exploration_benchmarks_run_end_to_end(tmp_path):
    """explore-data (4 collection policies, curiosity PPO included) then explore (recognition
    and homing: random, heuristic and PPO policies) over one of its models, at toy size."""
    data_cfg = explore_data.ExploreDataConfig(out=str(tmp_path), pipeline=TOY, curiosity_steps=64)
    data_dir = explore_data.run(data_cfg)
    table = (data_dir / "report.md").read_text()
    for policy in explore_data.POLICIES:
        assert f"| {policy} |" in table
    agent = AgentConfig(n_steps=32, batch_size=32, epochs=1, envs=2)
    cfg = explore.ExploreConfig(
        checkpoint=str(data_dir / "models" / "uniform-views"),
        out=str(tmp_path),
        seeds=(0, 1),
        episodes=3,
        ppo_steps=64,
        classifier_episodes=12,
        odometry_pairs=24,
        budget=4,
        agent=agent,
        pipeline=TOY,
    )
    run_dir = explore.run(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    turns = results["recognition"]["SeqJEPA-Recognition-Rotate-v0"]
    assert set(turns) == {"random", "coverage", "ppo"}
    assert len(turns["ppo"]["accuracy"]) == 4  # the budget, not the registered 5
    absolute = results["recognition"]["SeqJEPA-Recognition-RotateAbsolute-v0"]
    assert set(absolute) == {"random", "uniform-views", "ppo"}
    assert "ppo - uniform-views" in (run_dir / "report.md").read_text()
    poses = results["recognition"]["SeqJEPA-Recognition-RotatePoses-v0"]
    assert set(poses) == {"random", "ppo"}
    glimpses = results["recognition"]["SeqJEPA-Recognition-Saccade-v0"]
    assert set(glimpses) == {"random", "saliency-ior", "ppo"}
    assert set(results["homing"]["SeqJEPA-Homing-RotateNoisy-v0"]) == {
        "random",
        "dead-reckoning",
        "ppo",
    }
    vision = results["homing"][f"{explore.NOISY} (residual, vision)"]
    assert set(vision) == {"dead-reckoning", "visual-homing", "ppo"}
    assert Path(results["odometry"]["odometry"]).is_file()
    for name in ("accuracy_vs_views.png", "homing_error.png", "recognition-saccade-v0-ppo.gif"):
        assert (run_dir / name).stat().st_size > 0


def test_explore_finds_the_latest_demo_or_report_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="make demo"):
        explore.find_demo_checkpoint(tmp_path)
    for run in ("20261125-130502/seq-JEPA-seed-0", "20261204-143951/train-seqjepa"):
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "checkpoint-0001000.pt").write_bytes(b"")
    assert explore.find_demo_checkpoint(tmp_path) == tmp_path / "20261204-143951/train-seqjepa"


def test_explore_refuses_an_unknown_recognition_task_before_writing(tmp_path):
    cfg = explore.ExploreConfig(checkpoint=str(tmp_path), out=str(tmp_path), recognition=("x",))
    with pytest.raises(ValueError, match="unknown recognition task 'x'"):
        explore.run(cfg)
    with pytest.raises(ValueError, match="budget must be >= 1 view"):
        explore.run(dataclasses.replace(cfg, recognition=(), budget=-1))
    assert not list(tmp_path.iterdir())


def test_side_by_side_jobs_match_one_after_another_and_failures_surface():
    jobs = {"a": Job(math.pow, (2, 3)), "b": Job(math.sqrt, (16,)), "c": Job(abs, (-5,))}
    assert run_side_by_side(jobs, 2) == run_side_by_side(jobs, 1) == {"a": 8, "b": 4, "c": 5}
    with pytest.raises(ValueError, match="math domain error"):
        run_side_by_side({"ok": Job(abs, (1,)), "bad": Job(math.sqrt, (-1,))}, 2)
