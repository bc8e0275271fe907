"""The benchmark report end to end at toy size (the demo's test is in test_cli.py)."""

from __future__ import annotations

from experiments import benchmark
from experiments.pipeline import PipelineConfig

TOY = PipelineConfig(image_size=16, supersample=1, episodes=40, views=4, workers=1, steps=2,
                     batch_size=8, probe_steps=4)  # fmt: skip


def test_report_runs_every_baseline_and_resumes(tmp_path):
    cfg = benchmark.ReportConfig(out=str(tmp_path), pipeline=TOY, seeds=(0, 1), m_tr=(1, 3, 2))
    run_dir = benchmark.run(cfg)
    report = (run_dir / "report.md").read_text()
    for row in ("VICReg", "M_tr=1", "no-action", "random encoder", "Equivariance"):
        assert row in report
    assert (run_dir / "heatmap_top1.png").stat().st_size > 0
    # a finished report continued: every training is reused, nothing retrains
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint-*.pt")}
    benchmark.run(benchmark.ReportConfig(resume_dir=str(run_dir), pipeline=TOY, seeds=(0, 1),
                                         m_tr=(1, 3, 2)))  # fmt: skip
    assert stamps == {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint-*.pt")}
