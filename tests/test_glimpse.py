"""Glimpse geometry, saliency, the Fovea's actions, and the glimpse envs' specifics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from assets.images import ImageSource
from envs.fovea import Fovea, sample_from_map
from envs.glimpse import GlimpseSampler, box_blur, saliency_map, to_pixels, to_position
from envs.rotate_saccade import RotateSaccadeEnv
from envs.saccade import SaccadeEnv
from tests.conftest import image_source

RNG = np.random.default_rng(0)
SCENE = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_positions_follow_the_pixel_edge_convention():
    assert np.allclose(to_pixels([-1, -1], 64), [0, 0])  # top-left corner
    assert np.allclose(to_pixels([1, 1], 64), [64, 64])  # bottom-right corner
    assert np.allclose(to_pixels([0, 0], 64), [32, 32])
    p = RNG.uniform(-1, 1, (10, 2))
    assert np.allclose(to_position(to_pixels(p, 96), 96), p)


def test_glimpse_at_a_pixel_edge_is_the_exact_crop():
    sampler = GlimpseSampler(SCENE, 16)
    for x, y in [(8, 8), (20, 33), (48, 56)]:
        expected = SCENE[y - 8 : y + 8, x - 8 : x + 8]
        assert np.array_equal(sampler.glimpse(np.array([x, y])), expected)


def test_moving_the_fixation_moves_the_content():
    sampler = GlimpseSampler(SCENE, 16)
    a = sampler.glimpse(np.array([30.0, 30.0]))
    for dx, dy in [(3, 0), (0, 5), (-4, 2)]:
        b = sampler.glimpse(np.array([30.0 + dx, 30.0 + dy]))
        # content moves by -d in the glimpse: b[r, c] == a[r + dy, c + dx]
        ys, xs = slice(max(dy, 0), 16 + min(dy, 0)), slice(max(dx, 0), 16 + min(dx, 0))
        yb, xb = slice(max(-dy, 0), 16 + min(-dy, 0)), slice(max(-dx, 0), 16 + min(-dx, 0))
        assert np.array_equal(b[yb, xb], a[ys, xs])


def test_sub_pixel_fixations_interpolate_bilinearly():
    sampler = GlimpseSampler(SCENE, 8)
    left = sampler.crop(np.array([20.0, 20.0]))
    right = sampler.crop(np.array([21.0, 20.0]))
    half = sampler.crop(np.array([20.5, 20.0]))
    assert np.allclose(half, (left + right) / 2, atol=1e-4)
    quarter = sampler.crop(np.array([20.25, 20.75]))
    down = sampler.crop(np.array([20.0, 21.0]))
    diagonal = sampler.crop(np.array([21.0, 21.0]))
    expected = 0.75 * 0.25 * left + 0.25 * 0.25 * right + 0.75 * 0.75 * down
    expected += 0.25 * 0.75 * diagonal
    assert np.allclose(quarter, expected, atol=1e-3)


def test_outside_the_scene_is_padding_and_scales_average():
    sampler = GlimpseSampler(SCENE, 16, scales=(1, 2))
    corner = sampler.glimpse(np.array([0.0, 0.0]))
    assert (corner[:8].sum(), corner[:, :8].sum()) == (0, 0)  # above and left of the scene
    assert np.array_equal(corner[8:, 8:], SCENE[:8, :8])
    coarse = sampler.crop(np.array([32.0, 32.0]), scale=2)
    block = SCENE[16:48, 16:48].astype(np.float32).reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    assert np.allclose(coarse, block)
    with pytest.raises(ValueError, match="outside"):
        sampler.glimpse(np.array([500.0, 0.0]))


def test_saliency_is_a_distribution_that_prefers_the_object_and_edges():
    flat = np.full((32, 32, 3), 120, np.uint8)
    flat[10:20, 10:20] = 250
    mask = np.zeros((32, 32), np.uint8)
    mask[10:20, 10:20] = 1
    s = saliency_map(flat, mask, 16)
    assert s.dtype == np.float32 and np.isclose(s.sum(), 1) and (s > 0).all()
    assert s[10:20, 10:20].sum() > 10 * s[25:, 25:].sum()
    without_mask = saliency_map(flat, None, 16)
    assert without_mask[10, 10:20].mean() > without_mask[15, 15]  # edges beat the flat inside
    assert np.allclose(box_blur(np.ones((5, 5)), 2), 1)


def test_sampling_from_a_map_lands_where_the_mass_is():
    probabilities = np.zeros((16, 16))
    probabilities[3, 12] = 1.0
    for _ in range(20):
        x, y = to_pixels(sample_from_map(probabilities, RNG), 16)
        assert 12 <= x < 13 and 3 <= y < 4


def test_fovea_actions():
    fovea = Fovea(glimpse_size=8, action_mode="discrete", grid=4)
    assert fovea.action_space.n == 16
    assert np.allclose(fovea.move(0, np.zeros(2)), [-0.75, -0.75])  # top-left cell centre
    assert np.allclose(fovea.move(6, np.zeros(2)), [0.25, -0.25])  # row 1, column 2
    with pytest.raises(ValueError, match="discrete saccade"):
        fovea.move(16, np.zeros(2))
    relative = Fovea(glimpse_size=8, max_saccade=0.5)
    assert np.allclose(relative.move(np.array([1.0, -0.5]), np.array([0.2, 0.0])), [0.7, -0.25])
    assert np.allclose(relative.move(np.array([5.0, 5.0]), np.array([0.9, 0.9])), [1, 1])
    for bad, message in [([np.nan, 0], "NaN"), ([0, 0, 0], "shape")]:
        with pytest.raises(ValueError, match=message):
            relative.move(np.array(bad, float), np.zeros(2))
    with pytest.raises(ValueError, match="scales"):
        Fovea(scales=(2, 1))


def test_saccade_env_observation_info_and_alignment():
    env = SaccadeEnv(scene_size=64, glimpse_size=16, scales=(1, 2), periphery_size=8)
    obs, info = env.reset(seed=0, options={"category": "car", "instance": 0})
    assert set(obs) == {"view", "view_x2", "periphery", "position", "action"}
    assert obs["view"].shape == (16, 16, 3) and obs["periphery"].shape == (8, 8, 3)
    assert np.array_equal(obs["action"], [0, 0]) and np.array_equal(obs["position"], [0, 0])
    assert np.allclose(info["fixation"], [32, 32]) and 0 < info["coverage"] <= 1
    for key in ("category", "category_name", "instance", "split", "orientation", "latents"):
        assert key in info
    first = obs["position"].astype(float)
    total = np.zeros(2)
    for _ in range(5):
        obs, _, _, _, info = env.step(env.action_space.sample())
        total += obs["action"]
        assert np.allclose(info["path_displacement"], obs["position"] - first, atol=1e-6)
    assert np.allclose(total, obs["position"] - first, atol=1e-5)
    assert np.isclose(env.saliency().sum(), 1)
    obs, info = env.reset(seed=0, options={"position": [-1.0, -1.0]})
    assert np.allclose(info["fixation"], [0, 0])
    with pytest.raises(ValueError, match="position"):
        env.reset(options={"position": [2.0, 0.0]})
    env.close()


def test_saliency_initial_fixations_favour_the_object():
    env = SaccadeEnv(scene_size=64, glimpse_size=16, initial_fixation="saliency")
    coverages = [env.reset(seed=s)[1]["coverage"] for s in range(30)]
    centre = SaccadeEnv(scene_size=64, glimpse_size=16, initial_fixation="uniform")
    uniform = [centre.reset(seed=s)[1]["coverage"] for s in range(30)]
    assert np.mean(coverages) > np.mean(uniform)


def test_rotate_saccade_renders_only_when_turning():
    env = RotateSaccadeEnv(scene_size=64, glimpse_size=16)
    obs, info = env.reset(seed=0)
    assert obs["action"].shape == (6,) and env.renders == 1
    obs, _, _, _, info = env.step(np.array([0, 0, 0, 0.5, 0.0], np.float32))
    assert env.renders == 1 and np.allclose(obs["action"][:4], [0, 0, 0, 1])
    assert np.allclose(obs["action"][4:], [0.25, 0])
    obs, _, _, _, info = env.step(np.array([0.5, 0, 0, 0, 0], np.float32))
    assert env.renders == 2 and not np.allclose(info["rel_quat"], [0, 0, 0, 1])
    assert np.allclose(info["path_displacement"], [0.25, 0])
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    env.close()


def test_image_source_from_folder_and_npz(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for k in range(3):
            Image.fromarray(RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(
                tmp_path / name / f"{k}.png"
            )
    (tmp_path / "dogs" / "notes.txt").write_text("ignored")
    folder = ImageSource(tmp_path, size=24)
    assert folder.categories == ("cats", "dogs") and len(folder) == 6
    assert folder.image(4).shape == (24, 24, 3)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    with_broken = ImageSource(tmp_path, size=24)
    with pytest.raises(ValueError, match=r"broken\.png"):
        with_broken.image(len(with_broken) - 1)  # sorted last among the dogs
    npz = ImageSource(image_source(), size=40)
    assert npz.categories == ("stripes", "checks", "blobs") and len(npz) == 90
    assert set(npz.indices("train")).isdisjoint(npz.indices("test"))
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(2))
    with pytest.raises(ValueError, match="uint8"):
        ImageSource(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="not an image folder"):
        ImageSource(tmp_path / "missing.npz")


def test_saccade_image_env_sees_the_image():
    env = gym.make("SeqJEPA-SaccadeImage-v0", source=str(image_source()), image_size=40,
                   glimpse_size=40, split=None)  # fmt: skip
    obs, info = env.reset(seed=0, options={"index": 5})
    assert info["category_name"] == "stripes" and info["instance"] == 5
    source = ImageSource(image_source(), size=40)
    assert np.array_equal(obs["view"], source.image(5))  # a centred, full-size glimpse
    env.close()
