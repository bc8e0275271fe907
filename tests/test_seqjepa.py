"""The world model: shapes, any number of views, EMA, parameter count, data alignment,
learning on tiny data, exact resume and checkpoint errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from experiments.collect import CollectConfig
from experiments.collect import run as collect
from seqjepa.augment import augment_views, hue_rotate
from seqjepa.data import SequenceDataset, StepBatchSampler, relative_rotations, subset_actions
from seqjepa.model import (
    BLANK_LEVEL,
    ModelConfig,
    SeqJEPA,
    count_parameters,
    ema_momentum,
    relative_cosine,
)
from seqjepa.resnet import ResNet
from seqjepa.rollouts import RolloutDataset
from seqjepa.train import (
    PRESETS,
    check_numbers,
    latest_checkpoint,
    load_checkpoint,
    lr_at,
    make_optimizer,
    preset_config,
    relative_scale,
    train,
)

TINY = ModelConfig(
    widths=(8, 16, 16, 32),
    depths=(1, 1, 1, 1),
    stem="cheap",
    action_proj_dim=16,
    layers=1,
    heads=2,
    ffn_mult=2,
    predictor_hidden=32,
)


def views(batch: int, m: int, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (batch, m, size, size, 3), dtype=torch.uint8)


@pytest.mark.parametrize("action_dim", [2, 4, 6])
def test_shapes_for_every_action_dimension(action_dim):
    model = SeqJEPA(ModelConfig(**{**TINY.__dict__, "action_dim": action_dim}))
    loss, extras = model.loss(views(3, 4), torch.randn(3, 4, action_dim))
    assert loss.shape == () and 0 <= loss.item() <= 2
    assert extras["z"].shape == (3, 3, 32) and extras["z_agg"].shape == (3, 32 + 16)
    assert extras["prediction"].shape == extras["target"].shape == (3, 32)
    with pytest.raises(ValueError, match="transitions"):
        model.aggregate(views(3, 4), torch.randn(3, 2, action_dim))
    with pytest.raises(TypeError, match="uint8"):
        model.encode(torch.rand(2, 16, 16, 3))


def test_any_number_of_views_at_evaluation():
    model = SeqJEPA(TINY).eval()
    with torch.no_grad():
        for m in range(1, 9):
            z_agg, z = model.aggregate(views(2, m), torch.randn(2, m - 1, 4))
            assert z_agg.shape == (2, 48) and z.shape == (2, m, 32)


def test_ema_target_gets_no_gradient_and_follows_the_online_encoder():
    model = SeqJEPA(TINY)
    loss, _ = model.loss(views(4, 3), torch.randn(4, 3, 4))
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target_encoder.parameters())
    assert any(p.grad is not None for p in model.encoder.parameters())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target_encoder.parameters()]
    model.update_target(0.9)
    for b, t, o in zip(before, model.target_encoder.parameters(), model.encoder.parameters(),
                       strict=True):  # fmt: skip
        assert torch.allclose(t, 0.9 * b + 0.1 * o)
    assert ema_momentum(0, 100) == pytest.approx(0.996) and ema_momentum(100, 100) == 1.0
    assert ema_momentum(50, 100) == pytest.approx(0.998)


def test_paper_preset_has_the_papers_parameter_count():
    model = SeqJEPA(PRESETS["paper"]["model"])
    assert count_parameters(model) == pytest.approx(27.3e6, rel=0.01)  # ANCHORS.md
    assert count_parameters(model.encoder) == pytest.approx(11.2e6, rel=0.01)
    assert count_parameters(model.aggregator) == pytest.approx(14.8e6, rel=0.01)


def test_grid_pooling_keeps_where_global_pooling_forgets():
    """Swapping the left and right halves of the last map leaves global average pooling
    unchanged; a 2 x 2 grid pool tells them apart. The default keeps the paper's encoder."""
    torch.manual_seed(0)
    encoder = ResNet((8, 16), (1, 1), "cheap", pool_grid=2)
    assert [n for n, _ in ResNet((8, 16), (1, 1), "cheap").named_parameters()][-1].startswith(
        "blocks"
    )  # pool_grid 1 adds no parameters: old checkpoints load unchanged
    fmap = torch.randn(2, 16, 4, 4)
    swapped = torch.cat([fmap[..., 2:], fmap[..., :2]], dim=-1)
    global_pool = ResNet((8, 16), (1, 1), "cheap").pool
    assert torch.allclose(global_pool(fmap), global_pool(swapped), atol=1e-6)
    assert not torch.allclose(encoder.pool(fmap), encoder.pool(swapped), atol=1e-3)
    assert encoder(torch.rand(3, 3, 16, 16)).shape == (3, 16)
    model = SeqJEPA(dataclasses.replace(TINY, pool_grid=2))
    loss, extras = model.loss(views(3, 4), torch.randn(3, 4, 4))
    assert extras["z"].shape == (3, 3, 32) and torch.isfinite(loss)
    with pytest.raises(ValueError, match="pool_grid"):
        ResNet((8, 16), (1, 1), "cheap", pool_grid=0)


def test_schedule_and_weight_decay_groups():
    cfg = preset_config("tiny", steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-5) and lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(55, cfg) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    assert relative_scale(5, cfg) == 1.0  # no relative warm-up: the term's full weight at once
    ramp = dataclasses.replace(cfg, relative_warmup=40)
    assert [relative_scale(t, ramp) for t in (0, 10, 40, 90)] == [0.0, 0.25, 1.0, 1.0]
    with pytest.raises(ValueError, match="relative-weight > 0"):  # nothing to ramp
        check_numbers(ramp)
    groups = make_optimizer(SeqJEPA(TINY), cfg).param_groups  # encoder, then the rest
    for decay, no_decay in (groups[0:2], groups[2:4]):
        assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.04
        assert all(p.ndim < 2 for p in no_decay["params"]) and no_decay["weight_decay"] == 0


@pytest.fixture(scope="module")
def rotate_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "rotate"
    collect(CollectConfig(out=str(root), env_kwargs=json.dumps({"image_size": 32}),
                          episodes=48, episode_length=7, shard_episodes=16, seed=1))  # fmt: skip
    return root


def test_sequences_are_aligned_with_the_recording(rotate_data):
    data = RolloutDataset(rotate_data)
    window = SequenceDataset(data, 4, mode="window")
    assert len(window) == 48 * 5 and window.action_dim == 4
    v, a, label = window[7]  # episode 1, start 2
    episode = data.episode(1)
    assert torch.equal(v, torch.from_numpy(np.array(episode["views"][2:6])))
    assert torch.equal(a, torch.from_numpy(np.array(episode["actions"][2:6])))
    assert int(label) == episode["label"]
    subset = SequenceDataset(data, 4, mode="subset", seed=3)
    v, a, _ = subset[(5, 2)]
    assert torch.equal(v, subset[(5, 2)][0]) and not torch.equal(v, subset[(6, 2)][0])
    episode = data.episode(2)
    # every view is one of the episode's, and each action turns the previous view's orientation
    # into the next one's
    recorded = np.asarray(episode["views"])
    frames = [int(np.flatnonzero((recorded == x.numpy()).all(axis=(1, 2, 3)))[0]) for x in v]
    orientations = Rotation.from_quat(np.asarray(episode["orientations"][frames], np.float64))
    for t in range(1, 4):
        composed = (orientations[t - 1] * Rotation.from_quat(a[t].numpy())).as_quat()
        assert abs(abs(np.dot(composed, orientations[t].as_quat())) - 1) < 1e-5
    # subset-pose: the same views (same seed), each action the orientation of its own view
    poses = SequenceDataset(data, 4, mode="subset-pose", seed=3)
    pv, pa, _ = poses[(5, 2)]
    assert torch.equal(pv, v) and poses.action_dim == 4
    expected = orientations.as_quat()
    expected[expected[:, 3] < 0] *= -1
    assert np.allclose(pa.numpy(), expected, atol=1e-6)
    assert np.allclose(relative_rotations(np.tile([0, 0, 0, 1.0], (3, 1))), [0, 0, 0, 1])
    random = Rotation.random(50, random_state=0)
    expected = (random[:-1].inv() * random[1:]).as_quat()
    expected[expected[:, 3] < 0] *= -1
    assert np.allclose(relative_rotations(random.as_quat())[1:], expected, atol=1e-6)


def test_several_targets_lead_from_the_last_observed_view(rotate_data, tmp_path):
    data = RolloutDataset(rotate_data)
    many = SequenceDataset(data, 7, mode="subset", seed=3, targets=4)
    v, a, _ = many[(5, 2)]
    recorded = np.asarray(data.episode(2)["views"])
    frames = [int(np.flatnonzero((recorded == x.numpy()).all(axis=(1, 2, 3)))[0]) for x in v]
    orientations = Rotation.from_quat(np.asarray(data.episode(2)["orientations"][frames]))
    for t in range(1, 7):  # observed views: from the previous one; targets: from view 2
        start = orientations[t - 1] if t <= 3 else orientations[2]
        composed = (start * Rotation.from_quat(a[t].numpy())).as_quat()
        assert abs(abs(np.dot(composed, orientations[t].as_quat())) - 1) < 1e-5, t
    with pytest.raises(ValueError, match="subset mode"):
        SequenceDataset(data, 4, mode="window", targets=2)
    with pytest.raises(ValueError, match="targets"):
        SequenceDataset(data, 4, mode="subset", targets=4)
    # synthetic and live sequences carry consecutive actions only
    live = preset_config("tiny", synthetic=8, out=str(tmp_path / "run"), steps=1)
    live = dataclasses.replace(live, model=dataclasses.replace(live.model, targets=2))
    with pytest.raises(ValueError, match="needs recorded data"):
        train(live)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("mode", ["subset", "subset-colour", "subset-pose"])
@pytest.mark.parametrize("targets", [1, 2, 4])
def test_each_target_action_is_the_pair_action_from_the_last_observed_view(mode, targets):
    """Every mode's target actions equal subset_actions of the pair (last observed, target),
    hue changes included (the batched computation of them must not mix the pairs up)."""
    rng = np.random.default_rng(targets)
    orientations = Rotation.random(7, random_state=targets).as_quat()
    latents = rng.random((7, 9)) if mode == "subset-colour" else None
    dataset = SequenceDataset.__new__(SequenceDataset)  # only length, targets and mode matter
    dataset.length, dataset.targets, dataset.mode = 7, targets, mode
    actions = dataset._subset_actions(orientations, latents)

    def pair_actions(rows: list[int]) -> np.ndarray:
        return subset_actions(orientations[rows], None if latents is None else latents[rows], mode)

    last = 7 - targets - 1  # the observed views' actions lead from the view before each
    assert np.array_equal(actions[: last + 1], pair_actions(list(range(last + 1))))
    for k in range(last + 1, 7):
        expected = pair_actions([last, k])
        assert np.array_equal(actions[k], expected[1]), k


def test_several_targets_average_their_single_target_losses():
    model = SeqJEPA(dataclasses.replace(TINY, targets=3)).eval()  # eval: batch-free BatchNorm
    single = SeqJEPA(TINY).eval()
    single.load_state_dict(model.state_dict())
    seq, actions = views(4, 5), torch.randn(4, 5, 4)
    with torch.no_grad():
        loss, extras = model.loss(seq, actions)
        losses = [single.loss(seq[:, [0, 1, k]], actions[:, [0, 1, k]])[0] for k in range(2, 5)]
    assert extras["prediction"].shape == (12, 32) and extras["z"].shape == (4, 2, 32)
    assert torch.allclose(loss, torch.stack(losses).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="targets"):
        SeqJEPA(dataclasses.replace(TINY, targets=0))


def test_prefixes_average_the_loss_of_every_context_length():
    model = SeqJEPA(dataclasses.replace(TINY, targets=2, prefixes=True)).eval()
    plain = SeqJEPA(dataclasses.replace(TINY, targets=2)).eval()
    single = SeqJEPA(TINY).eval()  # one view after the context: a prefix's own loss
    plain.load_state_dict(model.state_dict())
    single.load_state_dict(model.state_dict())
    seq, actions = views(4, 5), torch.randn(4, 5, 4)  # M = 3 observed, K = 2 targets
    with torch.no_grad():
        loss, extras = model.loss(seq, actions)
        prefixes = [single.loss(seq[:, : p + 1], actions[:, : p + 1])[0] for p in (1, 2)]
        main = plain.loss(seq, actions)[0]
    assert extras["prefix_cosine"].shape == (4, 2)
    assert torch.allclose(loss, (main + sum(prefixes)) / 3, atol=1e-6)
    assert not torch.allclose(loss, main)


def test_relative_target_term_scores_the_view_dependent_part_only():
    torch.manual_seed(0)
    target = torch.randn(6, 8)  # 2 sequences x 3 targets
    shared = torch.randn(2, 1, 8).expand(2, 3, 8).reshape(6, 8)
    assert torch.allclose(relative_cosine(target + shared, target, 3), torch.ones(6))
    equal = target.reshape(2, 3, 8).mean(1, keepdim=True).expand(2, 3, 8).reshape(6, 8)
    assert torch.equal(relative_cosine(equal, target, 3), torch.zeros(6))
    rounding = (equal + 1e-7 * torch.randn(6, 8)).requires_grad_()
    score = relative_cosine(rounding, target, 3)
    assert score.abs().max() < 1e-3
    score.sum().backward()  # bounded: a 1e-3 floor gave gradients ~100 times larger
    assert rounding.grad.abs().max() < 20
    seq, actions = views(4, 5), torch.randn(4, 5, 4)
    plain = SeqJEPA(dataclasses.replace(TINY, targets=3)).eval()
    weighted = SeqJEPA(dataclasses.replace(TINY, targets=3, relative_weight=0.5)).eval()
    weighted.load_state_dict(plain.state_dict())
    with torch.no_grad():
        loss, _ = plain.loss(seq, actions)
        total, extras = weighted.loss(seq, actions)
    assert torch.allclose(total, loss + 0.5 * (1 - extras["relative_cosine"]).mean())
    with torch.no_grad():  # the warm-up's scale multiplies the term only
        ramped, _ = weighted.loss(seq, actions, relative_scale=0.25)
        off, _ = weighted.loss(seq, actions, relative_scale=0.0)
    assert torch.allclose(ramped, loss + 0.125 * (1 - extras["relative_cosine"]).mean())
    assert torch.allclose(off, loss)
    blind = SeqJEPA(dataclasses.replace(TINY, targets=3, relative_weight=0.5, use_actions=False))
    blind_plain = SeqJEPA(dataclasses.replace(TINY, targets=3, use_actions=False))
    blind.eval().load_state_dict(plain.state_dict())
    blind_plain.eval().load_state_dict(plain.state_dict())
    with torch.no_grad():  # no actions, K equal predictions: the twin trains as without it
        assert torch.equal(blind.loss(seq, actions)[0], blind_plain.loss(seq, actions)[0])
    with pytest.raises(ValueError, match="targets >= 2"):
        SeqJEPA(dataclasses.replace(TINY, relative_weight=0.5))
    with pytest.raises(ValueError, match="relative_weight"):
        SeqJEPA(dataclasses.replace(TINY, targets=3, relative_weight=float("nan")))


def test_view_dropout_blanks_whole_observed_views_in_training_only():
    torch.manual_seed(0)
    seq, actions = views(64, 6), torch.randn(64, 6, 4)
    model = SeqJEPA(dataclasses.replace(TINY, targets=2, view_dropout=0.5))
    dropped = model._drop_views(seq[:, :4])
    blank = (dropped == BLANK_LEVEL).flatten(2).all(-1)
    kept = (dropped == seq[:, :4]).flatten(2).all(-1)
    assert torch.all(blank ^ kept)  # each view is whole or blank, never partly
    assert 0.4 < blank.float().mean() < 0.6
    assert torch.equal(model.eval()._drop_views(seq), seq)
    plain = SeqJEPA(dataclasses.replace(TINY, targets=2)).train()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        _, with_drop = model.train().loss(seq, actions)
        _, without = plain.loss(seq, actions)
    assert torch.equal(with_drop["target"], without["target"])  # targets stay real
    assert not torch.allclose(with_drop["z"], without["z"])
    with pytest.raises(ValueError, match="view_dropout"):
        SeqJEPA(dataclasses.replace(TINY, view_dropout=1.0))


def test_batch_order_depends_on_the_step_only():
    full = list(StepBatchSampler(100, 8, seed=2, start=0, stop=6))
    resumed = list(StepBatchSampler(100, 8, seed=2, start=3, stop=6))
    assert full[3:] == resumed
    halves = [list(StepBatchSampler(100, 8, 2, 0, 6, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves, strict=True)] == full


def test_tiny_training_lowers_the_loss_without_collapse(rotate_data, tmp_path):
    cfg = preset_config("tiny", data=str(rotate_data), out=str(tmp_path), steps=60,
                        batch_size=32, log_every=20, checkpoint_every=60)  # fmt: skip
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 61))
    first, last = np.mean([r["loss"] for r in rows[:5]]), np.mean([r["loss"] for r in rows[-5:]])
    assert last < 0.6 * first
    final = rows[-1]
    assert final["effective_rank"] > 10 and final["z_std"] > 0.01
    assert "action_use_gap" in final and "sequences_per_s" in final
    # the online class probe on z_AGG beats chance (12 classes) well before the end
    probes = [r["probe_class_top1"] for r in rows[-20:]]
    assert np.mean(probes) > 2 / 12, probes


@pytest.mark.parametrize("augment", ["none", "hue"])
def test_resume_continues_exactly(rotate_data, tmp_path, augment):
    common = {"data": str(rotate_data), "steps": 8, "batch_size": 8, "log_every": 4,
              "checkpoint_every": 4, "augment": augment}  # fmt: skip
    straight = train(preset_config("tiny", out=str(tmp_path / "a"), **common))
    train(preset_config("tiny", out=str(tmp_path / "b"), stop_after=4, **common))
    resumed = train(preset_config("tiny", out=str(tmp_path / "b"), resume=True, **common))
    a, b = load_checkpoint(straight)["model"], load_checkpoint(resumed)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == list(range(1, 9))


def test_relative_warmup_starts_from_the_plain_loss(rotate_data, tmp_path):
    common = {"data": str(rotate_data), "steps": 2, "batch_size": 8, "views": 2}
    model = dataclasses.replace(PRESETS["tiny"]["model"], targets=3)
    weighted = dataclasses.replace(model, relative_weight=0.5)

    def losses(name: str, **overrides) -> list[float]:
        train(preset_config("tiny", out=str(tmp_path / name), **common, **overrides))
        rows = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(row)["loss"] for row in rows]

    plain = losses("plain", model=model)
    ramped = losses("ramped", model=weighted, relative_warmup=10)
    full = losses("full", model=weighted)
    assert ramped[0] == plain[0]  # step 0 of the ramp: the term weighs nothing
    assert ramped[1] != plain[1] and full[0] != plain[0]  # then it counts


def test_hue_rotation_turns_colours_and_keeps_greys():
    pixels = [[255, 255, 255], [0, 0, 0], [128, 128, 128], [150, 100, 110]]
    views = torch.tensor(pixels, dtype=torch.uint8).reshape(1, 1, 4, 3).repeat(16, 1, 1, 1)
    torch.manual_seed(0)
    turned = hue_rotate(views)
    torch.manual_seed(0)
    assert torch.equal(hue_rotate(views), turned)  # drawn from torch's seeded generator
    assert torch.equal(turned[:, :, :3], views[:, :, :3])  # greys keep their value
    colour = turned[:, 0, 3].double()
    assert len(torch.unique(colour, dim=0)) >= 12  # its own angle per view (a few round alike)
    grey = colour.mean(dim=1, keepdim=True)  # the distance from grey is kept (up to rounding)
    reference = views[0, 0, 3].double()
    chroma = (reference - reference.mean()).norm()
    assert torch.allclose((colour - grey).norm(dim=1), chroma, atol=1.5)
    assert torch.allclose(grey.squeeze(1), reference.mean(), atol=1.0)
    assert augment_views(views, "none") is views
    # augment "colour": the distance from grey scaled by U[0.2, 1.8], or 0 for a fifth
    distorted = augment_views(views.repeat(50, 1, 1, 1), "colour")
    assert torch.equal(distorted[:, :, :3], views.repeat(50, 1, 1, 1)[:, :, :3])
    colour = distorted[:, 0, 3].double()
    ratio = (colour - colour.mean(dim=1, keepdim=True)).norm(dim=1) / chroma
    assert 0.12 < (ratio < 0.05).double().mean() < 0.28
    assert ratio.max() < 1.8 + 0.05 and ratio.max() > 1.5


def test_augment_is_applied_in_training_and_checked(rotate_data, tmp_path):
    common = {"data": str(rotate_data), "steps": 1, "batch_size": 8}

    def loss(name: str, augment: str) -> float:
        train(preset_config("tiny", out=str(tmp_path / name), augment=augment, **common))
        return json.loads((tmp_path / name / "metrics.jsonl").read_text())["loss"]

    assert loss("plain", "none") != loss("hue", "hue")
    with pytest.raises(ValueError, match="unknown augment 'jitter'"):
        train(preset_config("tiny", out=str(tmp_path / "bad"), augment="jitter", **common))
    with pytest.raises(ValueError, match="subset-colour's actions describe"):
        train(preset_config("tiny", out=str(tmp_path / "bad"), augment="colour",
                            mode="subset-colour", **common))  # fmt: skip


def test_bad_checkpoints_are_named_and_the_previous_one_survives(rotate_data, tmp_path):
    cfg = preset_config("tiny", data=str(rotate_data), out=str(tmp_path), steps=4, batch_size=8,
                        checkpoint_every=2)  # fmt: skip
    last = train(cfg)
    good = sorted(tmp_path.glob("checkpoint-*.pt"))
    assert len(good) == 2 and (tmp_path / "latest").read_text() == last.name
    with pytest.raises(ValueError, match="different config"):
        train(preset_config("tiny", data=str(rotate_data), out=str(tmp_path), steps=4,
                            batch_size=16, resume=True))  # fmt: skip
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(last)
    assert load_checkpoint(good[0])["step"] == 2
    torch.save({"format": "other"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a seqjepa-gym checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_a_checkpoint_renamed_into_place_counts_before_its_pointer(rotate_data, tmp_path):
    """A kill between a checkpoint's rename and the `latest` update loses no work."""
    common = {"data": str(rotate_data), "steps": 6, "batch_size": 8, "checkpoint_every": 2}
    straight = train(preset_config("tiny", out=str(tmp_path / "a"), **common))
    out = tmp_path / "b"
    train(preset_config("tiny", out=str(out), stop_after=4, **common))
    (out / "latest").write_text("checkpoint-0000002.pt")  # as if killed before the pointer moved
    (out / ".checkpoint-0000006.pt.tmp-1").write_bytes(b"half a file")  # killed mid-write
    assert latest_checkpoint(out) == out / "checkpoint-0000004.pt"
    inode = (out / "checkpoint-0000004.pt").stat().st_ino
    resumed = train(preset_config("tiny", out=str(out), resume=True, **common))
    assert (out / "checkpoint-0000004.pt").stat().st_ino == inode  # step 4 was not redone
    a, b = load_checkpoint(straight)["model"], load_checkpoint(resumed)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    (out / "latest").unlink()
    assert latest_checkpoint(out) == out / "checkpoint-0000006.pt"


def test_training_imports_no_renderer(rotate_data):
    script = (
        "import sys\n"
        "from seqjepa.data import SequenceDataset\n"
        "from seqjepa.train import train\n"
        f"SequenceDataset({str(rotate_data)!r}, 4)[0]\n"
        "print(sorted(m for m in ('pybullet', 'envs', 'assets') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_two_gloo_ranks_match_one_process_accumulating(rotate_data, tmp_path):
    """torchrun with 2 CPU processes (gloo) == 1 process accumulating the same 2 micro-batches."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ["--preset", "tiny", "--data", str(rotate_data), "--steps", "3", "--batch-size", "8",
             "--precision", "fp32", "--checkpoint-every", "3"]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(port),
         "-m", "experiments.cli", "train", *flags, "--out", str(tmp_path / "ddp")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    single = train(preset_config("tiny", data=str(rotate_data), steps=3, batch_size=8,
                                 precision="fp32", checkpoint_every=3, accumulate=2,
                                 out=str(tmp_path / "one")))  # fmt: skip

    def losses(run):
        rows = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(row)["loss"] for row in rows]

    assert np.allclose(losses("ddp"), losses("one"), rtol=1e-5, atol=0)
    a = load_checkpoint(tmp_path / "ddp" / "checkpoint-0000003.pt")["model"]
    b = load_checkpoint(single)["model"]
    cfg = preset_config("tiny", steps=3)
    # Adam's first steps move each weight by about +-lr whatever the gradient's size, so an
    # entry whose gradient is ~0 and differs in its last bits (the ranks sum in another order)
    # can move the other way: at most 2 * sum(lr) apart, and only a few entries.
    bound = 2 * sum(lr_at(t, cfg) for t in range(3)) + 1e-7
    differing = total = 0
    for key in a:
        if "running" in key or "num_batches" in key:
            continue  # BatchNorm statistics are per rank (rank 0 saw only its half)
        diff = (a[key] - b[key]).abs()
        assert diff.max() <= bound, key
        differing += int((diff > 1e-6).sum())
        total += diff.numel()
    assert differing < 0.005 * total  # measured: 0.02%


@pytest.mark.filterwarnings("ignore:representation collapse")  # 3 steps on 16 px views
def test_live_streaming_is_seeded_by_the_step_and_trains(tmp_path):
    from seqjepa.stream import LiveSequences

    source = LiveSequences("SeqJEPA-Rotate-v0", 4, {"image_size": 16}, seed=3, num_envs=3)
    a_views, a_actions, labels = source.batch(5, 4)
    assert labels.shape == (4,) and labels.dtype == torch.int64
    b_views, _, _ = source.batch(6, 4)
    again, again_actions, _ = source.batch(5, 4)
    assert a_views.shape == (4, 4, 16, 16, 3) and a_actions.shape == (4, 4, 4)
    assert torch.equal(a_views, again) and torch.equal(a_actions, again_actions)
    assert not torch.equal(a_views, b_views)
    halves = [source.batch(5, 4, rank=r, world_size=2)[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), a_views)  # ranks take disjoint shares of batch 5
    assert torch.equal(a_actions[:, 0], torch.tensor([0.0, 0, 0, 1]).expand(4, 4))
    source.close()
    cfg = preset_config("tiny", env="SeqJEPA-Rotate-v0", env_kwargs='{"image_size": 16}',
                        out=str(tmp_path), steps=3, batch_size=8)  # fmt: skip
    assert load_checkpoint(train(cfg))["step"] == 3
    with pytest.raises(ValueError, match="exactly one"):
        train(preset_config("tiny", out=str(tmp_path / "x"), steps=1))


def test_tensorboard_logging_when_installed(rotate_data, tmp_path):
    pytest.importorskip("tensorboard")
    train(preset_config("tiny", data=str(rotate_data), out=str(tmp_path), steps=2, batch_size=8))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_synthetic_training_for_throughput_checks(tmp_path):
    cfg = preset_config("tiny", synthetic=16, out=str(tmp_path), steps=2, batch_size=8)
    assert load_checkpoint(train(cfg))["config"]["synthetic"] == 16


def test_the_head_learns_at_its_scale_of_the_encoders_rate(tmp_path):
    cfg = preset_config("tiny", synthetic=16, out=str(tmp_path), steps=3, batch_size=8,
                        head_lr_scale=0.25, stop_after=2)  # fmt: skip
    path = train(cfg)
    state = load_checkpoint(path)
    groups = state["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 0.25, 0.25]
    last = lr_at(1, cfg)  # the rate of the last step taken
    assert last > 0 and [g["lr"] for g in groups] == pytest.approx([last] * 2 + [last / 4] * 2)
    encoder = len(list(SeqJEPA(cfg.model).encoder.parameters()))
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == encoder
    with pytest.raises(ValueError, match="head-lr-scale"):
        check_numbers(dataclasses.replace(cfg, head_lr_scale=0.0))
    # a checkpoint of the older two-group optimizer evaluates but does not resume
    state["optimizer"]["param_groups"] = [
        {**groups[0], "params": groups[0]["params"] + groups[2]["params"]},
        {**groups[1], "params": groups[1]["params"] + groups[3]["params"]},
    ]
    torch.save(state, path)
    with pytest.raises(ValueError, match="older seqjepa-gym"):
        train(dataclasses.replace(cfg, resume=True))
