"""Visual odometry and the homing task that observes it: the file round-trips and its errors
name the problem; the observation carries the estimate; and the policy that trusts vision homes
through actuation noise when vision is right, where dead reckoning drifts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from agents.homing import Homing
from agents.odometry import VisualOdometry, default_odometry_path, feature_maps, fit_odometry
from agents.policies import DeadReckoningPolicy, VisualHomingPolicy
from agents.representation import load_world_model
from envs.rotations import conjugate_by, quat_mul
from envs.scene import CAMERA_TO_WORLD
from seqjepa.probes import MLPProbeConfig
from tests.conftest import homing_success, tiny_checkpoint

SMALL_PROBE = MLPProbeConfig(hidden=(16,), steps=20, eval_every=10)


@pytest.fixture(scope="module")
def rotate(tmp_path_factory):
    """A tiny Rotate checkpoint with an odometry fitted beside it (the summary)."""
    checkpoint = tiny_checkpoint(
        tmp_path_factory.mktemp("odometry") / "model.pt", "SeqJEPA-Rotate-v0", 24
    )
    return checkpoint, fit_odometry(checkpoint, pairs=30, probe=SMALL_PROBE)


def test_odometry_round_trips_and_its_errors_name_the_problem(rotate, tmp_path):
    checkpoint, summary = rotate
    world = load_world_model(checkpoint)
    assert summary["odometry"] == str(default_odometry_path(world))
    assert summary["test_median_turn_deg"] < 30.0 and np.isfinite(summary["test_r2"])
    odometry = VisualOdometry.load(summary["odometry"], world)
    views = np.random.default_rng(0).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    maps = feature_maps(world, views, odometry.stages)
    assert maps.shape[0] == 2 and maps.shape[1] == odometry.feature_dim(24)
    copy = VisualOdometry.load(odometry.save(tmp_path / "copy.npz"), world)
    np.testing.assert_array_equal(
        odometry.estimate(maps[:1], maps[1:]), copy.estimate(maps[:1], maps[1:])
    )
    with pytest.raises(FileNotFoundError, match="seqjepa-gym odometry"):
        VisualOdometry.load(tmp_path / "none.npz", world)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not an odometry file"):
        VisualOdometry.load(tmp_path / "bad.npz", world)
    other = load_world_model(tiny_checkpoint(tmp_path / "m.pt", "SeqJEPA-Rotate-v0", 16))
    with pytest.raises(ValueError, match="fit it again"):
        VisualOdometry.load(summary["odometry"], other)
    with pytest.raises(ValueError, match="one step"):
        fit_odometry(checkpoint, pairs=8, max_deg=45.0, probe=SMALL_PROBE)
    for bad in ({"pairs": 0}, {"pairs": 2.5}, {"max_deg": float("nan")}, {"max_deg": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit_odometry(checkpoint, **({"pairs": 8} | bad), probe=SMALL_PROBE)


def test_homing_observes_what_vision_says_the_path_is(rotate, tmp_path):
    checkpoint, summary = rotate
    env = Homing(checkpoint, odometry=summary["odometry"])
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and "view" not in obs
    np.testing.assert_allclose(obs["visual_path"], np.clip(info["visual_path"] / np.pi, -1, 1))
    obs, *_, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="visual-homing needs"):
        VisualHomingPolicy().begin(Homing(checkpoint), np.random.default_rng(0))
    glimpses = {"scene_size": 64, "glimpse_size": 16}
    saccade = tiny_checkpoint(tmp_path / "s.pt", "SeqJEPA-Saccade-v0", 16, "window", 2, glimpses)
    with pytest.raises(ValueError, match="reads turns"):
        Homing(saccade, "SeqJEPA-Saccade-v0", odometry=summary["odometry"])


class TrueVision(Homing):
    """Homing whose 'vision' is the true camera-frame path from the first view."""

    def _see(self, obs):
        base = self.env.unwrapped
        world_path = quat_mul(base._orientation, base._initial_inv)  # R_t R_0^-1
        self._visual = Rotation.from_quat(conjugate_by(CAMERA_TO_WORLD.T, world_path)).as_rotvec()


@pytest.mark.parametrize("residual", [0.0, 0.5])
def test_trusting_right_vision_homes_through_noise_where_dead_reckoning_drifts(rotate, residual):
    checkpoint, summary = rotate
    noisy = {"action_noise": np.radians(5.0)}
    env = TrueVision(checkpoint, odometry=summary["odometry"], base_kwargs=noisy, residual=residual)
    seeing = homing_success(env, VisualHomingPolicy(alpha=1.0), 12)
    blind = homing_success(env, DeadReckoningPolicy(), 12)
    assert seeing >= 0.75 and blind <= 0.5, (seeing, blind)
