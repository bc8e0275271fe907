"""Policies that choose rotations and glimpses, with randomness owned per episode.

The interface is two calls: ``begin(env, rng)`` at the start of an episode (after reset) and
``act(obs, info)`` for each step. ``rng`` is derived from (seed, episode index) by the caller
(``episode_rng``), so an episode's actions do not depend on which worker ran it or on what ran
before - the property recorded datasets rely on. For vector envs, ``BatchActor`` keeps one
policy per slot and gives ``act`` a batched signature.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from envs.fovea import sample_from_map
from envs.glimpse import to_pixels
from envs.rotations import sample_3diebench


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    """The generator of one episode: independent streams for every (seed, episode) pair."""
    return np.random.default_rng([int(seed), int(episode)])


def sample_space(space: gym.Space, rng: np.random.Generator) -> Any:
    """A uniform sample of a Box or Discrete space, drawn from ``rng`` (not the space's own)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    if isinstance(space, gym.spaces.Box):
        return rng.uniform(space.low, space.high).astype(space.dtype)
    raise TypeError(f"cannot sample {type(space).__name__} spaces")


class Policy:
    """Base class: subclasses implement ``act``; ``begin`` stores the env and the rng."""

    #: Registry name (``seqjepa-gym collect --policy NAME``).
    name = "policy"

    def begin(self, env: gym.Env, rng: np.random.Generator) -> None:
        """Start an episode in ``env`` (already reset) with this episode's ``rng``."""
        self.env = env
        self.rng = rng

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> Any:
        raise NotImplementedError


class RandomPolicy(Policy):
    """Uniform in the env's action space."""

    name = "random"

    def act(self, obs, info):
        return sample_space(self.env.action_space, self.rng)


class UniformViewsPolicy(Policy):
    """3DIEBench-style random views: every step jumps to a new, independent orientation.

    Needs ``action_mode="absolute"`` (SeqJEPA-Rotate3DIEBench-v0). ``euler_range`` draws each
    extrinsic xyz Euler angle uniformly in [-r, r] (3DIEBench: pi/2); None is uniform on SO(3).
    """

    name = "uniform-views"

    def __init__(self, euler_range: float | None = np.pi / 2, ood: bool = False) -> None:
        self.euler_range = euler_range
        self.ood = ood

    def begin(self, env, rng):
        if getattr(env.unwrapped, "turner", None) is None or env.unwrapped.turner.action_mode != (
            "absolute"
        ):
            raise ValueError("uniform-views needs a Rotate env with action_mode='absolute'")
        super().begin(env, rng)

    def act(self, obs, info):
        if self.ood:
            q = sample_3diebench(self.rng, ood=True)
        elif self.euler_range is None:
            q = Rotation.random(random_state=self.rng).as_quat()
        else:
            angles = self.rng.uniform(-self.euler_range, self.euler_range, 3)
            q = Rotation.from_euler("xyz", angles).as_quat()
        return q.astype(np.float32)


class OODViewsPolicy(UniformViewsPolicy):
    """Out-of-distribution views: rotations outside 3DIEBench's Euler range (see
    envs.rotations.sample_3diebench for why not seq-JEPA's recipe). Collect with it (and
    ``initial_orientation="3diebench-ood"``) to evaluate a model trained on 3DIEBench's range
    on rotations it never saw."""

    name = "uniform-views-ood"

    def __init__(self) -> None:
        super().__init__(ood=True)


class SaliencyIORPolicy(Policy):
    """Saccades sampled from the scene's saliency map with inhibition of return (the paper's
    STL-10 protocol): after each fixation a square the size of the fovea, centred on it, is
    zeroed and the map renormalised; the next fixation is drawn from what is left.

    Works on the glimpse envs; in relative mode a target further than ``max_saccade`` is
    approached as far as one saccade goes.
    """

    name = "saliency-ior"

    def begin(self, env, rng):
        unwrapped = env.unwrapped
        if not hasattr(unwrapped, "fovea"):
            raise ValueError("saliency-ior needs a glimpse env (Saccade, SaccadeImage, ...)")
        super().begin(env, rng)
        self.fovea = unwrapped.fovea
        self.map = unwrapped.saliency().astype(np.float64).copy()
        self._inhibit(unwrapped._position)

    def act(self, obs, info):
        target = sample_from_map(self.map, self.rng)
        self._inhibit(target)
        position = np.asarray(self.env.unwrapped._position, np.float64)  # also under tasks
        if self.fovea.action_mode == "absolute":
            return target.astype(np.float32)
        if self.fovea.action_mode == "discrete":
            grid = self.fovea.grid
            col, row = np.clip(((target + 1) / 2 * grid).astype(int), 0, grid - 1)
            return int(row * grid + col)
        step = np.clip((target - position) / self.fovea.max_saccade, -1, 1)
        return step.astype(np.float32)

    def _inhibit(self, position: np.ndarray) -> None:
        size = self.map.shape[0]
        x, y = to_pixels(position, size)
        half = self.fovea.glimpse_size / 2
        x0, x1 = int(max(np.floor(x - half), 0)), int(min(np.ceil(x + half), size))
        y0, y1 = int(max(np.floor(y - half), 0)), int(min(np.ceil(y + half), size))
        self.map[y0:y1, x0:x1] = 0.0
        total = self.map.sum()
        if total <= 0:  # everything visited: start over with a uniform map
            self.map[:] = 1.0
            total = self.map.sum()
        self.map /= total


#: Coverage's candidate turns: the 26 neighbours of the origin in {-1, 0, 1}^3 (Box units).
_COVERAGE_MOVES = (
    np.array([m for m in np.ndindex(3, 3, 3) if m != (1, 1, 1)], dtype=np.float64) - 1.0
)


class CoveragePolicy(Policy):
    """Turn toward the least-seen side of the object.

    It keeps the directions it has looked from, in the object's initial frame, computed from its
    own commands (no vision, no ground truth): with camera-frame commands composed into C, the
    viewing direction is C^-1 (0, 0, 1). Each step it picks, among the 26 full-strength turns
    of {-1, 0, 1}^3, the one whose new viewing direction is furthest (in angle) from every
    direction seen so far; ties go to the episode's rng. Needs a Rotate env with relative,
    camera-frame actions.
    """

    name = "coverage"

    def begin(self, env, rng):
        turner = getattr(env.unwrapped, "turner", None)
        if turner is None or turner.action_mode != "relative" or turner.action_frame != "camera":
            raise ValueError("coverage needs a Rotate env with relative, camera-frame actions")
        super().begin(env, rng)
        self.moves = Rotation.from_rotvec(_COVERAGE_MOVES * turner.max_step_angle)
        self.composed = Rotation.identity()
        self.seen = [np.array([0.0, 0.0, 1.0])]

    def act(self, obs, info):
        candidates = self.moves * self.composed  # each turn applied after the path so far
        directions = candidates.inv().apply([0.0, 0.0, 1.0])
        nearest = (directions @ np.array(self.seen).T).max(axis=1)  # cosine to the closest seen
        best = np.flatnonzero(nearest <= nearest.min() + 1e-9)
        choice = int(self.rng.choice(best))
        self.composed = candidates[choice]
        self.seen.append(directions[choice])
        return _COVERAGE_MOVES[choice].astype(np.float32)


class DeadReckoningPolicy(Policy):
    """Homing without vision: apply the inverse of the composed commanded path
    (agents.homing.Homing.dead_reckoning_action), as far as one step allows, along the
    straight line. On a residual homing task it sends no correction."""

    name = "dead-reckoning"

    def begin(self, env, rng):
        try:
            self.task = env.get_wrapper_attr("dead_reckoning_action").__self__
        except AttributeError:
            raise ValueError("dead-reckoning needs a Homing task") from None
        super().begin(env, rng)

    def act(self, obs, info):
        if self.task.residual > 0:
            return np.zeros(self.env.action_space.shape, np.float32)
        return self.task.dead_reckoning_action().astype(np.float32)


class VisualHomingPolicy(DeadReckoningPolicy):
    """Dead reckoning corrected by vision: once the commanded path puts the object within
    ``gate_deg`` of home, move by ``alpha`` x what visual odometry says (the task's
    ``visual_path``, undone) + (1 - alpha) x what dead reckoning says. Needs a Homing task
    with ``odometry``. The defaults were picked on train-split objects (docs/agents.md)."""

    name = "visual-homing"

    def __init__(self, alpha: float = 0.8, gate_deg: float = 30.0) -> None:
        self.alpha = float(alpha)
        self.gate = np.radians(gate_deg)

    def begin(self, env, rng):
        super().begin(env, rng)
        if getattr(self.task, "odometry", None) is None:
            raise ValueError("visual-homing needs a Homing task with odometry (odometry=...)")

    def act(self, obs, info):
        move = self.task.dead_reckoning()
        if np.linalg.norm(move) < self.gate:
            move = self.alpha * -info["visual_path"] + (1 - self.alpha) * move
        action = self.task.move_action(move)
        if self.task.residual > 0:  # the same move, as a correction of dead reckoning
            action = (action - self.task.dead_reckoning_action()) / self.task.residual
        return np.clip(action, -1, 1).astype(np.float32)


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (
        RandomPolicy,
        UniformViewsPolicy,
        OODViewsPolicy,
        SaliencyIORPolicy,
        CoveragePolicy,
        DeadReckoningPolicy,
        VisualHomingPolicy,
    )
}


def make_policy(name: str, **kwargs: Any) -> Policy:
    """A policy by registry name; ValueError lists the valid names."""
    if name == "curiosity":  # imported on demand: it needs torch and stable-baselines3
        from agents.curiosity import CuriosityPolicy

        return CuriosityPolicy(**kwargs)
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICIES)}, curiosity")
    return POLICIES[name](**kwargs)


class BatchActor:
    """Drive a vector env with one policy per slot, each seeded per episode.

    ``start(slot, env, episode)`` begins a new episode in slot ``slot`` (``env`` being that
    slot's single env, for policies that read it); ``act(obs, infos)`` returns the batch of
    actions. Episode indices, not slots, seed the policies.
    """

    def __init__(self, name: str, num_envs: int, seed: int, **kwargs: Any) -> None:
        self.seed = int(seed)
        self.policies = [make_policy(name, **kwargs) for _ in range(num_envs)]

    def start(self, slot: int, env: gym.Env, episode: int) -> None:
        self.policies[slot].begin(env, episode_rng(self.seed, episode))

    def act(self, obs: dict[str, np.ndarray], infos: dict[str, Any]) -> np.ndarray:
        actions = []
        for slot, policy in enumerate(self.policies):
            single_obs = {key: value[slot] for key, value in obs.items()}
            single_info = {k: v[slot] for k, v in infos.items() if not k.startswith("_")}
            actions.append(policy.act(single_obs, single_info))
        return np.stack([np.asarray(a) for a in actions])
