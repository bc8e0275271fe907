"""The evaluation suite: metrics against hand-computed values, probes on planted signal, the
baselines' mechanics, and a tiny collect -> train -> eval run whose metrics.json validates."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from experiments.collect import CollectConfig
from experiments.collect import run as collect
from seqjepa.data import SequenceDataset
from seqjepa.evaluate import (
    FOREIGN,
    EvalConfig,
    absolute_pose,
    evaluate,
    foreign_aggregates,
    load_episodes,
    load_model,
    recalibrate_batchnorm,
    relative_pose,
)
from seqjepa.methods import build_model
from seqjepa.metrics import effective_rank, geodesic_deg, r2_score
from seqjepa.model import ModelConfig, normalise_target, quaternion_matrix
from seqjepa.probes import MLPProbeConfig, Samples, fit_linear_classifier, fit_mlp_regressor
from seqjepa.rollouts import RolloutDataset
from seqjepa.train import PRESETS, preset_config, train
from seqjepa.vicreg import vicreg_loss
from tests.conftest import env_kwargs

TINY: ModelConfig = PRESETS["tiny"]["model"]
SCHEMA = json.loads((Path(__file__).parents[1] / "seqjepa" / "metrics.schema.json").read_text())


def test_r2_geodesic_and_effective_rank_match_hand_computed_values():
    target = torch.tensor([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]])
    prediction = torch.tensor([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    # column 0: SS_res 1, SS_tot 2 -> 0.5; column 1: SS_res 1, SS_tot 8 -> 0.875; mean 0.6875
    assert r2_score(prediction, target) == pytest.approx(0.6875)
    with pytest.raises(ValueError, match="constant"):
        r2_score(prediction, torch.ones(3, 2))
    # a constant dimension (a fixed axis) is left out of the mean, not a crash
    fixed = torch.cat([target[:, :1], torch.ones(3, 1)], dim=1)
    assert r2_score(prediction, fixed) == pytest.approx(0.5)
    quarter = torch.tensor(Rotation.from_euler("z", 90, degrees=True).as_quat())
    identity = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert float(geodesic_deg(quarter, identity)) == pytest.approx(90)
    # sign-blind, and the prediction is normalised first
    assert float(geodesic_deg(-3 * quarter, quarter)) == pytest.approx(0, abs=1e-5)
    # effective rank: k orthogonal directions of equal spread give exactly k
    basis = torch.eye(16)[:5]
    z = torch.cat([basis, -basis]) * 3  # centred already
    assert effective_rank(z) == pytest.approx(5, rel=1e-5)
    assert effective_rank(torch.cat([z, z[:1] * 0])) < 5.01


def test_quaternion_targets_are_sign_canonical():

    class Ep:  # the fields relative_pose reads
        poses = Rotation.random((10 * 3), random_state=1).as_quat().reshape(10, 3, 4)
        pose_kind = "rotation"

    e, i, j = np.arange(10), np.zeros(10, int), np.full(10, 2)
    rel = relative_pose(Ep, e, i, j)
    assert (rel[:, 3] >= 0).all()
    absolute = absolute_pose(Ep, e, j)
    assert (absolute[:, 3] >= 0).all() and np.allclose(np.abs(absolute), np.abs(Ep.poses[:, 2]))
    expected = Rotation.from_quat(Ep.poses[:, 0]).inv() * Rotation.from_quat(Ep.poses[:, 2])
    assert np.allclose(np.abs((rel * expected.as_quat()).sum(1)), 1)


def _split(x: torch.Tensor, y: torch.Tensor) -> tuple[Samples, Samples, Samples]:
    return Samples(x[:600], y[:600]), Samples(x[600:800], y[600:800]), Samples(x[800:], y[800:])


def test_probes_find_planted_signal_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 32, generator=generator)
    labels = (x[:, :4] @ torch.randn(4, 5, generator=generator)).argmax(-1)
    assert fit_linear_classifier(*_split(x, labels), num_classes=5)["top1"] > 0.9
    noise = torch.randint(0, 5, (1000,), generator=generator)
    assert fit_linear_classifier(*_split(x, noise), num_classes=5)["top1"] < 0.35
    config = MLPProbeConfig(hidden=(64, 64), steps=300, eval_every=50)
    target = torch.stack([torch.sin(2 * x[:, 0]), x[:, 1] * x[:, 2]], dim=1)
    planted, _ = fit_mlp_regressor(*_split(x[:, :6], target), config)
    assert planted["r2"] > 0.6, planted
    unrelated, _ = fit_mlp_regressor(
        *_split(x[:, :6], torch.randn(1000, 2, generator=generator)), config
    )
    assert unrelated["r2"] < 0.05 and unrelated["fit_r2"] > unrelated["r2"]  # overfits, caught
    in_bf16, _ = fit_mlp_regressor(*_split(x[:, :6], target), config, bf16=True)
    assert abs(in_bf16["r2"] - planted["r2"]) < 0.03, (in_bf16, planted)
    assert in_bf16["r2"] != planted["r2"]  # it did run in bf16


def test_a_feature_silent_on_the_fit_samples_does_not_blow_up_the_probe():
    # a spatial feature map has units no fit sample fires; dividing by their ~0 std made one
    # held-out activation an outlier of a million (test R^2 of -300 before the fix)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 8, generator=generator)
    target = x[:, :2].clone()
    x[:800, 7] = 0.0  # silent on fit and held samples, firing on the test samples
    config = MLPProbeConfig(hidden=(64, 64), steps=300, eval_every=50)
    scores, prediction = fit_mlp_regressor(*_split(x, target), config)
    assert scores["r2"] > 0.8, scores
    assert prediction.abs().max() < 10


def test_methods_no_action_m1_and_vicreg():
    views = torch.randint(0, 256, (4, 4, 16, 16, 3), dtype=torch.uint8)
    actions = torch.randn(4, 4, 4)
    blind = build_model("no-action", TINY).eval()
    with torch.no_grad():
        z_agg, _ = blind.aggregate(views[:, :3], actions[:, 1:3])
        again, _ = blind.aggregate(views[:, :3], torch.randn(4, 2, 4))
        assert torch.equal(z_agg, again)
        assert torch.equal(blind.predict(z_agg, actions[:, 1]), blind.predict(z_agg, actions[:, 2]))
    seeing = build_model("seqjepa", TINY).eval()
    with torch.no_grad():
        z_agg, _ = seeing.aggregate(views[:, :3], actions[:, 1:3])
        assert not torch.equal(z_agg, seeing.aggregate(views[:, :3], torch.randn(4, 2, 4))[0])
    vicreg = build_model("vicreg", TINY)
    loss, extras = vicreg.loss(views, actions)
    loss.backward()
    assert extras["z_agg"].shape == (4, vicreg.z_dim)
    assert all(p.grad is not None for p in vicreg.encoder.parameters() if p.requires_grad)
    a = torch.randn(64, 8)
    # identical views: no invariance term; unit-variance independent dims: small covariance
    assert vicreg_loss(a, a) < vicreg_loss(a, torch.randn(64, 8))
    # hand-computed: two identical columns of variance 4 (std >= 1: no variance term) have
    # off-diagonal covariances 4 and 4 -> (16 + 16) / 2 dims = 16 per branch, 32 for two
    x = torch.tensor([-2.0, 2.0] * 32)
    x = x * (2 / x.std())
    pair = torch.stack([x, x], dim=1)
    assert float(vicreg_loss(pair, pair)) == pytest.approx(32, rel=1e-4)
    with pytest.raises(ValueError, match="unknown method"):
        build_model("simclr", TINY)


def test_target_normalisation_centres_the_batch():
    target = torch.randn(32, 8) + 5
    centred = normalise_target(target, ModelConfig(target_norm="center"))
    assert centred.mean(0).abs().max() < 1e-5
    standard = normalise_target(target, ModelConfig(target_norm="standardise"))
    assert torch.allclose(standard.std(0), torch.ones(8), atol=1e-4)
    assert torch.equal(normalise_target(target, ModelConfig()), target)


def test_batchnorm_recalibration_changes_statistics_only():
    model = build_model("seqjepa", TINY)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    views = torch.randint(0, 256, (8, 4, 16, 16, 3), dtype=torch.uint8)
    recalibrate_batchnorm(model, [(views, torch.randn(8, 4, 4))] * 2, batches=2)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items() if "num_batches" not in k)
    stem_mean = next(v for k, v in state.items() if k.endswith("running_mean"))
    assert stem_mean.abs().sum() > 0 and not model.training


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    """Objects from every split, 5 random views each."""
    root = tmp_path_factory.mktemp("eval") / "data"
    kwargs = {"image_size": 16, "action_mode": "absolute", "initial_orientation": "3diebench",
              "split": None}  # fmt: skip
    collect(CollectConfig(out=str(root), env_kwargs=json.dumps(kwargs), policy="uniform-views",
                          episodes=60, episode_length=4, shard_episodes=30, seed=2))  # fmt: skip
    return root


def small_eval(checkpoint, data, out, **overrides) -> dict:
    probe = MLPProbeConfig(hidden=(32, 32), steps=20, eval_every=10)
    cfg = EvalConfig(checkpoint=str(checkpoint), data=str(data), out=str(out), probe=probe,
                     m_vals=(1, 2, 3), path_m_vals=(2, 3), batch_size=16, **overrides)  # fmt: skip
    return evaluate(cfg)


@pytest.mark.filterwarnings("ignore:representation collapse")  # 4 steps of batch 8, M_tr = 1
def test_collect_train_eval_writes_a_valid_metrics_json(eval_data, tmp_path):
    cfg = preset_config("tiny", data=str(eval_data), out=str(tmp_path / "run"), steps=4,
                        batch_size=8, views=2)  # fmt: skip
    # 1 observed view + 3 targets per training sequence (with the relative-target term, a
    # training loss only); evaluated one view at a time
    model = dataclasses.replace(cfg.model, targets=3, relative_weight=0.5)
    checkpoint = train(dataclasses.replace(cfg, model=model))
    logged = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert -1 <= logged[-1]["relative_cosine"] <= 1
    metrics = small_eval(checkpoint, eval_data, tmp_path / "eval", foreign_views=True)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    jsonschema.validate(written, SCHEMA)
    assert written == json.loads(json.dumps(metrics))
    assert set(written["classification"]["aggregate"]) == {"1", "2", "3"}
    for condition in ("actions_only", FOREIGN):
        assert set(written["path_integration"][condition]["per_m"]) == {"2", "3"}
    assert written["model"]["step"] == 4 and written["action_use"] is not None
    assert written["model"]["targets"] == 3
    data = written["data"]
    assert data["episodes"]["test"] > 0 and data["views_per_episode"] == 3
    # the random encoder: same architecture, untrained, still a valid metrics.json
    random = small_eval(tmp_path / "run", eval_data, tmp_path / "random", random_encoder=True)
    jsonschema.validate(json.loads(json.dumps(random)), SCHEMA)
    assert random["model"]["method"] == "random-encoder" and random["model"]["step"] == 0
    assert math.isfinite(random["effective_rank"]["value"])


@pytest.mark.filterwarnings("ignore:representation collapse")  # a 1-step training
def test_foreign_views_pair_each_episodes_actions_with_the_next_episodes_views(eval_data, tmp_path):
    cfg = preset_config("tiny", data=str(eval_data), out=str(tmp_path / "run"), steps=1,
                        batch_size=8, views=3)  # fmt: skip
    train(cfg)
    # batches of 16 over 60 episodes: the roll must cross batch boundaries and wrap around
    ecfg = EvalConfig(checkpoint=cfg.out, data=str(eval_data), path_m_vals=(2, 3), m_vals=(1,),
                      batch_size=16, foreign_views=True)  # fmt: skip
    model, train_cfg, _ = load_model(ecfg)
    model.eval()
    episodes = load_episodes(RolloutDataset(eval_data), 3, train_cfg)
    # distinct views per episode (a 1-step model's z barely differ from one view to the next)
    z = torch.randn(len(episodes.views), 3, model.z_dim, generator=torch.Generator().manual_seed(0))
    foreign = foreign_aggregates(model, z, episodes, ecfg, torch.device("cpu"))
    transitions = torch.from_numpy(episodes.transitions)[:, 1:]
    total = len(z)
    with torch.no_grad():
        for e in (0, 15, 16, total - 1):
            for m in (2, 3):
                moves = transitions[e : e + 1, : m - 1]
                expected = model.aggregate_z(z[(e + 1) % total][None, :m], moves)[0]
                own = model.aggregate_z(z[e][None, :m], moves)[0]
                assert torch.allclose(foreign[m][e], expected, atol=1e-5)
                assert not torch.allclose(foreign[m][e], own, atol=1e-3)


@pytest.mark.filterwarnings("ignore:representation collapse")  # a 1-step training
def test_eval_names_unusable_inputs(eval_data, tmp_path):
    train_only = tmp_path / "train-only"
    collect(CollectConfig(out=str(train_only), env_kwargs=json.dumps({"image_size": 16}),
                          episodes=4, episode_length=3, shard_episodes=4))  # fmt: skip
    checkpoint = train(preset_config("tiny", data=str(train_only), out=str(tmp_path / "run"),
                                     steps=1, batch_size=4, views=3))  # fmt: skip
    with pytest.raises(ValueError, match="val/test-split episodes"):
        small_eval(checkpoint, train_only, tmp_path / "e")
    with pytest.raises(ValueError, match="no checkpoint"):
        small_eval(tmp_path, eval_data, tmp_path / "e")
    with pytest.raises(ValueError, match="held-out fraction"):
        small_eval(checkpoint, eval_data, tmp_path / "e", heldout=0.0)
    with pytest.raises(ValueError, match="precision must be auto, bf16 or fp32, got 'fp8'"):
        small_eval(checkpoint, eval_data, tmp_path / "e", precision="fp8")


def test_matrix_action_encoding_matches_scipy_and_is_sign_blind():
    q = torch.tensor(Rotation.random(20, random_state=3).as_quat(), dtype=torch.float32)
    expected = torch.tensor(Rotation.from_quat(q.numpy()).as_matrix(), dtype=torch.float32)
    assert torch.allclose(quaternion_matrix(q), expected, atol=1e-5)
    assert torch.allclose(quaternion_matrix(-q), expected, atol=1e-5)
    model = build_model("seqjepa", ModelConfig(**{**TINY.__dict__, "action_encoding": "matrix"}))
    loss, _ = model.loss(torch.randint(0, 256, (3, 3, 16, 16, 3), dtype=torch.uint8),
                         torch.cat([q[:9].reshape(3, 3, 4)], dim=1))  # fmt: skip
    assert torch.isfinite(loss)
    # "views without actions" zeroes the encoded action: no identity matrix sneaks in
    model.eval()
    with torch.no_grad():
        z = torch.randn(3, 3, model.z_dim)
        blind = [model.aggregate_z(z, q[i : i + 6].reshape(3, 2, 4), blind=True) for i in (0, 6)]
        assert torch.equal(*blind)
        assert not torch.equal(blind[0], model.aggregate_z(z, q[:6].reshape(3, 2, 4)))
    with pytest.raises(ValueError, match="quaternion actions"):
        build_model("seqjepa", ModelConfig(**{**TINY.__dict__, "action_encoding": "matrix",
                                              "action_dim": 2}))  # fmt: skip


def test_film_predictor_learns_from_the_action():
    model = build_model("seqjepa", ModelConfig(**{**TINY.__dict__, "predictor_film": True}))
    views = torch.randint(0, 256, (4, 3, 16, 16, 3), dtype=torch.uint8)
    loss, _ = model.loss(views, torch.randn(4, 3, 4))
    loss.backward()
    assert model.film.weight.grad.abs().sum() > 0  # the action modulates the hidden units
    with torch.no_grad():
        model.film.weight.normal_()
        model.eval()
        z_agg = torch.randn(2, model.d_model)
        actions = torch.randn(2, 4)
        assert not torch.allclose(model.predict(z_agg, actions), model.predict(z_agg, -actions))


def test_glimpse_models_are_probed_by_displacement(tmp_path):
    kwargs = {**env_kwargs("SeqJEPA-Saccade-v0"), "split": None}
    data = tmp_path / "glimpses"
    collect(CollectConfig(env="SeqJEPA-Saccade-v0", out=str(data), env_kwargs=json.dumps(kwargs),
                          policy="saliency-ior", episodes=40, episode_length=3,
                          shard_episodes=20, seed=4))  # fmt: skip
    checkpoint = train(preset_config("tiny", data=str(data), out=str(tmp_path / "run"), steps=2,
                                     batch_size=8, mode="window", views=3))  # fmt: skip
    metrics = small_eval(checkpoint, data, tmp_path / "eval")
    jsonschema.validate(json.loads(json.dumps(metrics)), SCHEMA)
    assert metrics["data"]["pose"] == "displacement"
    assert "error" in metrics["relative_pose"]["random_pairs"]
    assert set(metrics["path_integration"]["views_actions"]["per_m"]) == {"2", "3"}
    subset = train(preset_config("tiny", data=str(data), out=str(tmp_path / "subset"), steps=1,
                                 batch_size=4, mode="subset", views=3))  # fmt: skip
    with pytest.raises(ValueError, match="--mode window"):
        small_eval(subset, data, tmp_path / "eval-subset")


def test_rotation_and_colour_actions_and_latent_probes(tmp_path):
    data = tmp_path / "colour"
    kwargs = {"image_size": 16, "split": None}
    collect(CollectConfig(env="SeqJEPA-Rotate3DIEBench-v0", out=str(data), episodes=40,
                          env_kwargs=json.dumps(kwargs), policy="uniform-views",
                          episode_length=3, shard_episodes=20, seed=6))  # fmt: skip
    sequences = SequenceDataset(data, 3, mode="subset-colour", seed=1, split=None)
    views, actions, _ = sequences[(0, 5)]
    assert sequences.action_dim == 6 and actions.shape == (3, 6)
    episode = RolloutDataset(data).episode(int(sequences._items[5]))
    frames = [int(np.flatnonzero((episode["views"] == v.numpy()).all(axis=(1, 2, 3)))[0])
              for v in views]  # fmt: skip
    hues = episode["latents"][frames][:, 3]
    change = (np.diff(hues) + 0.5) % 1 - 0.5
    assert np.allclose(actions[1:, 4].numpy(), change, atol=1e-6) and (actions[0, 4:] == 0).all()
    assert (np.abs(actions[:, 4:].numpy()) <= 0.5).all()
    checkpoint = train(preset_config("tiny", data=str(data), out=str(tmp_path / "run"), steps=2,
                                     batch_size=8, views=3, mode="subset-colour"))  # fmt: skip
    metrics = small_eval(checkpoint, data, tmp_path / "eval")
    assert set(metrics["latents"]["per_latent_r2"]) == {
        "floor_hue", "light_theta", "light_phi", "light_hue"}  # fmt: skip
    jsonschema.validate(json.loads(json.dumps(metrics)), SCHEMA)
