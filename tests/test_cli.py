"""The seqjepa-gym command: help, the demo pipeline at toy size, a tiny bench run."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from experiments.cli import main, parse
from experiments.pipeline import RECIPES, PipelineConfig


def test_help_lists_every_job(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(job in out for job in ("demo", "bench", "collect", "train", "eval", "report"))


@pytest.mark.parametrize("job", ["report", "demo", "explore-data"])
def test_a_named_recipe_sets_defaults_that_the_other_flags_override_in_any_order(job):
    config = parse([job, "--pipeline.targets", "4", "--pipeline.recipe", "earlier"])
    earlier = RECIPES["earlier"]
    assert config.pipeline.recipe == "earlier" and config.pipeline.targets == 4
    assert {k: getattr(config.pipeline, k) for k in earlier if k != "targets"} == {
        k: v for k, v in earlier.items() if k != "targets"
    }
    current = parse([job, "--pipeline.recipe=current"]).pipeline
    assert current == PipelineConfig() != config.pipeline
    with pytest.raises(ValueError, match="unknown pipeline recipe 'later'"):
        parse([job, "--pipeline.recipe", "later"])


def test_demo_runs_the_pipeline_and_writes_every_artefact(tmp_path):
    toy = ["--pipeline.image-size", "16", "--pipeline.supersample", "1", "--pipeline.episodes",
           "40", "--pipeline.views", "4", "--pipeline.workers", "1", "--pipeline.steps", "2",
           "--pipeline.batch-size", "8", "--pipeline.probe-steps", "4"]  # fmt: skip
    main(["demo", "--out", str(tmp_path), "--episode-steps", "5", "--gif-size", "64",
          "--instances-per-category", "2", "--sheet-size", "32", *toy])  # fmt: skip
    (run,) = tmp_path.iterdir()
    gif = iio.imread(run / "episode.gif")
    assert gif.shape[0] == 6 and gif.shape[1:3] == (64, 128)  # 6 frames, human | agent view
    assert (gif[0] != gif[-1]).any()
    sheet = iio.imread(run / "categories.png")
    assert sheet.ndim == 3 and sheet.shape[0] > sheet.shape[1]  # 12 rows of 2
    for name in ("report.md", "top1_vs_mval.png", "path_integration.png", "dataset/dataset.json"):
        assert (run / name).stat().st_size > 0, name
    for method in ("seqjepa", "no-action"):
        assert (run / f"train-{method}" / "checkpoint-0000002.pt").exists()
    seq = json.loads((run / "eval" / "seq-JEPA" / "metrics.json").read_text())
    twin = json.loads((run / "eval" / "no-action-twin" / "metrics.json").read_text())
    # the twin's z_AGG ignores actions: its "views only" probe is its "views + actions" one
    assert twin["path_integration"]["views_only"] == twin["path_integration"]["views_actions"]
    assert seq["path_integration"]["views_only"] != seq["path_integration"]["views_actions"]
    report = (run / "report.md").read_text()
    assert f"{seq['classification']['single_view']['top1']:.3f}" in report
    assert "random encoder" in report and "## Targets" in report
    assert not list(run.rglob(".*tmp*"))  # atomic writes leave no temporaries


@pytest.mark.slow
def test_tiny_bench_prints_tables_and_saves_a_record(tmp_path, capsys):
    main(["bench", "--out", str(tmp_path), "--sizes", "32", "--steps", "10", "--blocks", "1",
          "--vector-steps", "40", "--envs-per-worker", "2", "--memory-instances", "5",
          "--collect-episodes", "4", "--train-steps", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert "| 32 | False |" in out and "BatchedVectorEnv" in out
    (record,) = tmp_path.glob("bench-*.json")
    data = json.loads(record.read_text())
    assert len(data["env_vs_bare"]) == 2 and data["memory"]["instances"] == 5
    assert [r["workers"] for r in data["collection"]] == [1, 2]
    assert [r["config"] for r in data["training"]] == ["tiny", "paper-64"]
