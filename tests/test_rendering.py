"""The scene: objects visible, views that change with pose and only with pose, latents, extra
outputs, and bounded memory through renderer recycling."""

from __future__ import annotations

import numpy as np
import psutil
import pytest
from scipy.spatial.transform import Rotation

from assets import ProceduralCatalog
from envs.rotate import RotateEnv
from envs.scene import Lighting, Scene

CATALOG = ProceduralCatalog()
QUARTER = Rotation.from_euler("z", 90, degrees=True).as_quat()


def show(scene: Scene, category: str, instance: int = 0) -> None:
    spec = CATALOG.spec(category, instance)
    scene.show(spec.key, lambda: CATALOG.build(spec))


@pytest.mark.parametrize("category", CATALOG.categories)
def test_every_category_is_visible_and_changes_when_turned(category):
    scene = Scene(image_size=48)
    show(scene, category)
    a = scene.render([0, 0, 0, 1], mask=True, depth=True)
    b = scene.render(QUARTER, mask=True)
    assert a["mask"].sum() > 0.03 * 48 * 48, "object covers too little of the view"
    # pixels on the object differ from the background, which is one colour
    background = a["view"][a["mask"] == 0]
    assert (background == background[0]).all()
    assert np.abs(a["view"][a["mask"] == 1].astype(int) - background[0]).sum(axis=1).mean() > 20
    # nearer than the background, and the object turned
    assert a["depth"][a["mask"] == 1].max() < a["depth"][a["mask"] == 0].min()
    assert np.abs(a["view"].astype(int) - b["view"].astype(int)).mean() > 2
    scene.close()


def test_equal_orientations_give_equal_views_across_scenes():
    first, second = Scene(image_size=48), Scene(image_size=48)
    q = Rotation.random(random_state=3).as_quat()
    show(first, "guitar")
    show(second, "lamp")  # load something else first: must not matter
    show(second, "guitar")
    a = first.render(q)["view"]
    first.render(QUARTER)
    assert np.array_equal(first.render(q)["view"], a)
    assert np.array_equal(second.render(q)["view"], a)
    assert np.array_equal(first.render(-q)["view"], a)  # q and -q: one rotation


def test_floor_and_lights_change_pixels_and_latents():
    env = RotateEnv(image_size=48, floor=True, light_direction=True, light_hue=True, latents="step")
    obs, info = env.reset(seed=0)
    assert np.isfinite(info["latents"]).all()
    views, latents = [obs["view"]], [info["latents"]]
    for _ in range(3):
        obs, _, _, _, info = env.step(np.zeros(3, np.float32))
        views.append(obs["view"])
        latents.append(info["latents"])
    # no rotation, yet every step redraws floor hue and light: pixels and latents 3..6 change
    for k in range(1, 4):
        assert np.allclose(latents[k][:3], latents[0][:3], atol=1e-5)
        assert not np.allclose(latents[k][3:], latents[0][3:])
        assert np.abs(views[k].astype(int) - views[0].astype(int)).mean() > 3
    env.close()
    env = RotateEnv(image_size=48, floor=True)
    env.reset(seed=0)
    hues = {float(env.step(np.zeros(3, np.float32))[4]["latents"][3]) for _ in range(3)}
    assert len(hues) == 1  # per-episode latents hold still
    env.close()


def test_floor_latent_is_drawn_on_the_floor():
    scene = Scene(image_size=32, floor=True)
    show(scene, "mug")
    red = scene.render([0, 0, 0, 1], Lighting(floor_hue=0.0), mask=True)
    blue = scene.render([0, 0, 0, 1], Lighting(floor_hue=0.66), mask=True)
    floor = red["mask"] == 0
    assert red["view"][floor][:, 0].mean() > red["view"][floor][:, 2].mean() + 20
    assert blue["view"][floor][:, 2].mean() > blue["view"][floor][:, 0].mean() + 20


def test_recycling_keeps_memory_bounded_and_renders_unchanged():
    budget = 5_000
    scene = Scene(image_size=32, max_loaded_faces=budget)
    reference = Scene(image_size=32)
    q = Rotation.random(random_state=0).as_quat()
    for instance in range(100):
        show(scene, CATALOG.categories[instance % 12], instance)
        assert scene.loaded_faces <= budget + 2_000
    assert scene.reconnects > 3
    show(reference, CATALOG.categories[99 % 12], 99)
    assert np.array_equal(scene.render(q)["view"], reference.render(q)["view"])


def test_memory_stays_bounded_over_many_distinct_instances():
    """PyBullet never frees a visual shape but on disconnect; the face budget must bound RSS.
    Without recycling this loop grows RSS by ~70 MiB (measured); with a 20k-face budget, a few."""
    env = RotateEnv(image_size=16, max_loaded_faces=20_000)
    process = psutil.Process()
    env.reset(seed=0)
    for _ in range(100):  # warm: allocator pools, first recycles
        env.reset()
    warm = process.memory_info().rss
    for _ in range(400):
        env.reset()
    growth_mib = (process.memory_info().rss - warm) / 2**20
    assert env.scene.reconnects >= 5
    assert growth_mib < 25, f"RSS grew {growth_mib:.1f} MiB over 400 distinct instances"
    env.close()


@pytest.mark.slow
def test_egl_renderer_agrees_with_tiny_renderer():
    """The EGL opt-in (software Mesa here, a GPU elsewhere) shows the same silhouette."""
    kwargs = {"image_size": 48, "mask": True, "initial_orientation": "identity"}
    options = {"category": "chair", "instance": 3}
    tiny = RotateEnv(**kwargs)
    try:
        egl = RotateEnv(renderer="egl", **kwargs)
        egl_obs, _ = egl.reset(seed=0, options=options)
    except RuntimeError as err:
        pytest.skip(f"no EGL here: {err}")
    tiny_obs, _ = tiny.reset(seed=0, options=options)
    a, b = tiny_obs["mask"].astype(bool), egl_obs["mask"].astype(bool)
    assert (a & b).sum() / (a | b).sum() > 0.85
    egl.close()
    egl.close()
    tiny.close()


def test_supersampling_averages_a_finer_render():
    options = {"category": "chair", "instance": 0, "orientation": [0.3, 0.2, 0.1, 0.9]}
    fine = RotateEnv(image_size=48, mask=True)
    smooth = RotateEnv(image_size=24, supersample=2, mask=True)
    big, _ = fine.reset(seed=0, options=options)
    small, _ = smooth.reset(seed=0, options=options)
    expected = big["view"].reshape(24, 2, 24, 2, 3).mean(axis=(1, 3))
    assert small["view"].shape == (24, 24, 3) and small["view"].dtype == np.uint8
    assert np.abs(small["view"] - expected).max() <= 0.5 + 1e-6
    # anti-aliased: edge pixels take values between object and background
    assert len(np.unique(small["view"].reshape(-1, 3), axis=0)) > len(
        np.unique(big["view"][::2, ::2].reshape(-1, 3), axis=0)
    )
    assert np.array_equal(small["mask"], big["mask"][1::2, 1::2])
    assert smooth.render() is None  # no render_mode: the human view is unaffected
    for bad in (0, 9, 1.5):
        with pytest.raises(ValueError, match="supersample"):
            RotateEnv(image_size=24, supersample=bad)
