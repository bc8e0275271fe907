"""Observations -> a frozen seq-JEPA's representations, for agents.

``RepresentationWrapper`` turns a Rotate / Saccade / RotateSaccade env into one whose observation
is ``{"z_agg": z_AGG over the views so far, "z": the latest view's z}`` (plus any base keys asked
for). It is incremental: each step encodes only the new view and re-runs the small aggregator
over the cached per-view z (the aggregator has no causal mask: adding a view changes the
previous token's action slot, so its output cannot be cached). The result equals the batch
computation ``model.aggregate(views, transitions)`` on the same episode (tests check it).

Vector envs batch the encoder over envs:
- ``RepresentationVectorWrapper`` wraps a Gymnasium VectorEnv. It relies on "next-step"
  autoreset (Gymnasium's default and envs.vector's): the step after an episode ends returns the
  reset observation of that env, which starts a new cache for it.
- ``RepresentationVecEnv`` wraps a stable-baselines3 VecEnv. SB3 resets inside the step that
  ends an episode: the returned observation is already the new episode's first view, and the
  last view is in ``infos[i]["terminal_observation"]``. That view is folded into the old cache
  first, so that ``terminal_observation`` holds the representation SB3 bootstraps from.
Single-env wrappers also work inside SB3's DummyVecEnv / SubprocVecEnv (make_vec_env's
``wrapper_class``); the VecEnv version is the faster one (one encoder call per step).

The transition fed to the aggregator is read the way the model was trained: in ``subset`` mode
the relative rotation R_{t-1}^-1 R_t from the info's orientations (plus hue changes in
``subset-colour``), in ``window`` mode ``obs["action"]`` (or ``info["rel_quat"]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from seqjepa.data import subset_actions
from seqjepa.methods import build_model
from seqjepa.train import (
    TrainConfig,
    config_from_dict,
    latest_checkpoint,
    load_checkpoint,
    resolve_device,
)


@dataclass
class WorldModel:
    """A frozen model, its training config and what it was trained on (``train.data_spec``)."""

    model: torch.nn.Module
    train_cfg: TrainConfig
    spec: dict[str, Any]
    path: Path
    device: torch.device

    @property
    def z_dim(self) -> int:
        return int(self.model.z_dim)

    @property
    def d_model(self) -> int:
        return int(self.model.d_model)

    @property
    def action_dim(self) -> int:
        return int(self.train_cfg.model.action_dim)


def load_world_model(checkpoint: str | Path, device: str = "auto") -> WorldModel:
    """A checkpoint file (or a run folder: its latest checkpoint), frozen in eval mode."""
    path = Path(checkpoint)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise ValueError(f"{path}: no checkpoint in this run folder")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = load_checkpoint(path)
    train_cfg = config_from_dict(state["config"])
    model = build_model(train_cfg.method, train_cfg.model)
    model.load_state_dict(state["model"])
    target = resolve_device(device)
    model = model.to(target).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    spec = state.get("data") or _spec_from_recording(train_cfg)
    return WorldModel(model, train_cfg, spec, path, target)


def _spec_from_recording(train_cfg: TrainConfig) -> dict[str, Any]:
    """The data spec of a checkpoint written before checkpoints kept one: from its dataset's
    dataset.json when that is still there, else only the action dimension."""
    spec: dict[str, Any] = {"action_dim": train_cfg.model.action_dim}
    meta_path = Path(train_cfg.data) / "dataset.json" if train_cfg.data else None
    if meta_path is not None and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        spec |= {"env_id": meta["env_id"], "env_kwargs": meta["env_kwargs"]}
        size = meta["env_kwargs"].get("image_size")
        if size is not None:
            spec["image_size"] = int(size)
    return spec


def env_class_name(env_id: str) -> str:
    """The class behind a registered id (``envs.rotate:RotateEnv`` -> ``RotateEnv``)."""
    entry = gym.spec(env_id).entry_point
    return entry.split(":")[-1] if isinstance(entry, str) else entry.__name__


def check_compatible(world: WorldModel, observation_space: gym.Space, env_class: str) -> None:
    """ValueError naming the mismatch unless a single env of class ``env_class`` with this
    observation space gives views and transitions the model was trained on."""
    where = f"checkpoint {world.path}"
    if not isinstance(observation_space, gym.spaces.Dict) or "view" not in observation_space.spaces:
        raise ValueError(f"{where}: the env has no 'view' observation to encode")
    size = observation_space["view"].shape[0]
    trained_size = world.spec.get("image_size")
    if trained_size is not None and size != trained_size:
        raise ValueError(
            f"{where} was trained on {trained_size} px views; this env renders {size} px "
            f"(pass image_size={trained_size}, or scene/glimpse sizes that give it)"
        )
    env_id = world.spec.get("env_id")
    if env_id is not None and env_class_name(env_id) != env_class:
        raise ValueError(
            f"{where} was trained on {env_id} ({env_class_name(env_id)}); this env is "
            f"{env_class}: its views and actions mean something else"
        )
    if world.train_cfg.mode.startswith("subset"):
        if env_class not in ("RotateEnv", "RotateSaccadeEnv"):
            raise ValueError(
                f"{where} was trained on relative rotations (mode {world.train_cfg.mode}); "
                f"{env_class} does not turn the object"
            )
        return
    dim = observation_space["action"].shape[0]
    if dim != world.action_dim:
        raise ValueError(
            f"{where} expects {world.action_dim}-d actions; this env's obs['action'] is {dim}-d"
        )


class TransitionReader:
    """Per slot, the transition into each new view, read as the model was trained (module
    docstring). Works on batched infos (dicts of arrays indexed like the slots given)."""

    def __init__(self, train_cfg: TrainConfig, num_slots: int) -> None:
        self.mode = train_cfg.mode
        self.action_key = train_cfg.action_key
        self.orientations = np.zeros((num_slots, 4))
        self.latents = np.zeros((num_slots, 7))

    def start(self, slots: np.ndarray, infos: dict[str, Any]) -> None:
        """Episodes begin in ``slots``; ``infos`` are their reset infos (rows = slots)."""
        if self.mode.startswith("subset"):
            self.orientations[slots] = np.asarray(infos["orientation"], np.float64)
            self.latents[slots] = np.asarray(infos["latents"], np.float64)

    def next(self, slots: np.ndarray, actions: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
        """(len(slots), A) transitions into the views just observed in ``slots``."""
        if not self.mode.startswith("subset"):
            source = actions if self.action_key == "actions" else infos["rel_quat"]
            return np.asarray(source, np.float32).reshape(len(slots), -1)
        orientations = np.asarray(infos["orientation"], np.float64)
        latents = np.asarray(infos["latents"], np.float64)
        rows = [
            subset_actions(
                np.stack([self.orientations[s], orientations[k]]),
                np.stack([self.latents[s], latents[k]]),
                self.mode,
            )[1]
            for k, s in enumerate(slots)
        ]
        self.orientations[slots] = orientations
        self.latents[slots] = latents
        return np.stack(rows).astype(np.float32)


class Representer:
    """Batched, incremental z_AGG: one cache of per-view z and transitions per slot.

    Args:
        world: the frozen model.
        num_slots: envs served (1 for a single env).
        window: keep only the last ``window`` views per slot (None: the whole episode).
    """

    def __init__(self, world: WorldModel, num_slots: int, window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 view, got {window}")
        self.world = world
        self.window = window
        self.z: list[torch.Tensor] = [torch.empty(0, world.z_dim)] * num_slots
        self.moves: list[torch.Tensor] = [torch.empty(0, world.action_dim)] * num_slots

    @torch.no_grad()
    def start(self, slots: np.ndarray, views: np.ndarray) -> None:
        """New episodes in ``slots`` whose first views are ``views`` (len(slots), H, W, 3)."""
        z = self._encode(views)
        for k, slot in enumerate(slots):
            self.z[slot] = z[k : k + 1]
            self.moves[slot] = torch.empty(0, self.world.action_dim, device=z.device)

    @torch.no_grad()
    def observe(self, slots: np.ndarray, views: np.ndarray, transitions: np.ndarray) -> None:
        """Append the views reached by ``transitions`` in ``slots``."""
        z = self._encode(views)
        moves = torch.as_tensor(transitions, dtype=torch.float32, device=z.device)
        for k, slot in enumerate(slots):
            self.z[slot] = torch.cat([self.z[slot], z[k : k + 1]])
            self.moves[slot] = torch.cat([self.moves[slot], moves[k : k + 1]])
            if self.window is not None and len(self.z[slot]) > self.window:
                self.z[slot] = self.z[slot][1:]
                self.moves[slot] = self.moves[slot][1:]

    @torch.no_grad()
    def features(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        """{"z_agg": (n, d_model), "z": (n, z_dim)} for ``slots``; slots holding the same
        number of views share one aggregator call."""
        z_agg = np.zeros((len(slots), self.world.d_model), np.float32)
        by_length: dict[int, list[int]] = {}
        for k, slot in enumerate(slots):
            by_length.setdefault(len(self.z[slot]), []).append(k)
        for rows in by_length.values():
            chosen = [slots[k] for k in rows]
            z = torch.stack([self.z[s] for s in chosen])
            moves = torch.stack([self.moves[s] for s in chosen])
            z_agg[rows] = self.world.model.aggregate_z(z, moves).float().cpu().numpy()
        last = torch.stack([self.z[s][-1] for s in slots]).float().cpu().numpy()
        return {"z_agg": z_agg, "z": last}

    def views_seen(self, slot: int) -> int:
        return len(self.z[slot])

    def _encode(self, views: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(views)).to(self.world.device)
        return self.world.model.encode(batch).float()


def representation_space(world: WorldModel, base: gym.spaces.Dict, keep: tuple[str, ...]):
    """The wrapped observation space: z_agg, z and the kept base keys."""
    missing = [key for key in keep if key not in base.spaces]
    if missing:
        raise ValueError(f"keep names keys the env does not observe: {missing}")
    spaces = {
        "z_agg": gym.spaces.Box(-np.inf, np.inf, (world.d_model,), np.float32),
        "z": gym.spaces.Box(-np.inf, np.inf, (world.z_dim,), np.float32),
    }
    return gym.spaces.Dict(spaces | {key: base[key] for key in keep})


def _world(checkpoint: str | Path | WorldModel, device: str) -> WorldModel:
    if isinstance(checkpoint, WorldModel):
        return checkpoint
    return load_world_model(checkpoint, device)


def _batched(info: dict[str, Any]) -> dict[str, Any]:
    """A single env's info as a batch of one."""
    return {key: np.asarray(value)[None] for key, value in info.items()}


class RepresentationWrapper(gym.Wrapper):
    """One env's observations -> {"z_agg", "z", *keep} from a frozen seq-JEPA.

    Args:
        env: a Rotate, Saccade or RotateSaccade env (or one wrapped).
        checkpoint: a checkpoint file, a run folder, or an already loaded WorldModel.
        keep: base observation keys to pass through (e.g. ("position",)).
        window: aggregate only the last ``window`` views (None: the whole episode).
        device: where the model runs ("auto": CUDA when available).
    """

    def __init__(
        self,
        env: gym.Env,
        checkpoint: str | Path | WorldModel,
        keep: tuple[str, ...] = (),
        window: int | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(env)
        self.world = _world(checkpoint, device)
        check_compatible(self.world, env.observation_space, type(env.unwrapped).__name__)
        self.keep = tuple(keep)
        self.observation_space = representation_space(self.world, env.observation_space, keep)
        self.representer = Representer(self.world, 1, window)
        self.transitions = TransitionReader(self.world.train_cfg, 1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.representer.start(np.array([0]), obs["view"][None])
        self.transitions.start(np.array([0]), _batched(info))
        return self._observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        slot = np.array([0])
        moves = self.transitions.next(slot, obs["action"][None], _batched(info))
        self.representer.observe(slot, obs["view"][None], moves)
        return self._observation(obs), reward, terminated, truncated, info

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.last_view = obs["view"]  # for whoever draws the episode (GIFs)
        features = self.representer.features(np.array([0]))
        out = {key: value[0] for key, value in features.items()}
        return out | {key: obs[key] for key in self.keep}


class RepresentationVectorWrapper(gym.vector.VectorWrapper):
    """A Gymnasium VectorEnv's observations -> batched {"z_agg", "z", *keep} (one encoder call
    per step). Needs next-step autoreset (module docstring)."""

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        checkpoint: str | Path | WorldModel,
        keep: tuple[str, ...] = (),
        window: int | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode != gym.vector.AutoresetMode.NEXT_STEP:
            raise ValueError(f"RepresentationVectorWrapper needs next-step autoreset, got {mode}")
        self.world = _world(checkpoint, device)
        env_class = env_class_name(env.spec.id) if env.spec is not None else "unknown"
        check_compatible(self.world, env.single_observation_space, env_class)
        self.keep = tuple(keep)
        self.single_observation_space = representation_space(
            self.world, env.single_observation_space, keep
        )
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, env.num_envs
        )
        self.representer = Representer(self.world, env.num_envs, window)
        self.transitions = TransitionReader(self.world.train_cfg, env.num_envs)
        self.slots = np.arange(env.num_envs)
        self.ended = np.zeros(env.num_envs, bool)

    def reset(self, *, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self.representer.start(self.slots, obs["view"])
        self.transitions.start(self.slots, infos)
        self.ended[:] = False
        return self._observation(obs), infos

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        fresh, going = self.slots[self.ended], self.slots[~self.ended]
        if len(fresh):
            self.representer.start(fresh, obs["view"][fresh])
            self.transitions.start(fresh, _rows(infos, fresh))
        if len(going):
            moves = self.transitions.next(going, obs["action"][going], _rows(infos, going))
            self.representer.observe(going, obs["view"][going], moves)
        self.ended = np.logical_or(terminated, truncated)
        return self._observation(obs), rewards, terminated, truncated, infos

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.representer.features(self.slots) | {key: obs[key] for key in self.keep}


def _rows(infos: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """The rows of a vector env's batched infos (keys without a batch dimension dropped)."""
    return {
        key: np.asarray(value)[rows]
        for key, value in infos.items()
        if not key.startswith("_") and np.ndim(value) > 0
    }


class RepresentationVecEnv(VecEnvWrapper):
    """A stable-baselines3 VecEnv's observations -> batched {"z_agg", "z", *keep} (SB3's
    same-step autoreset; module docstring)."""

    def __init__(
        self,
        venv: VecEnv,
        checkpoint: str | Path | WorldModel,
        keep: tuple[str, ...] = (),
        window: int | None = None,
        device: str = "auto",
    ) -> None:
        self.world = _world(checkpoint, device)
        base = venv.observation_space
        env_class = type(venv.get_attr("unwrapped", [0])[0]).__name__
        check_compatible(self.world, base, env_class)
        self.keep = tuple(keep)
        super().__init__(venv, observation_space=representation_space(self.world, base, keep))
        self.representer = Representer(self.world, venv.num_envs, window)
        self.transitions = TransitionReader(self.world.train_cfg, venv.num_envs)
        self.slots = np.arange(venv.num_envs)

    def reset(self):
        obs = self.venv.reset()
        self.representer.start(self.slots, obs["view"])
        self.transitions.start(self.slots, _stack(self.venv.reset_infos))
        return self._observation(obs, self.slots)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        done = np.flatnonzero(dones)
        if len(done):  # fold each finished episode's last view into its old cache
            last = {
                key: np.stack([infos[i]["terminal_observation"][key] for i in done])
                for key in ("view", "action")
            }
            moves = self.transitions.next(done, last["action"], _stack([infos[i] for i in done]))
            self.representer.observe(done, last["view"], moves)
            final = self.representer.features(done)
            for k, i in enumerate(done):
                kept = {key: infos[i]["terminal_observation"][key] for key in self.keep}
                infos[i]["terminal_observation"] = {n: v[k] for n, v in final.items()} | kept
            self.representer.start(done, obs["view"][done])
            self.transitions.start(done, _stack([self.venv.reset_infos[i] for i in done]))
        going = np.flatnonzero(~dones)
        if len(going):
            moves = self.transitions.next(
                going, obs["action"][going], _stack([infos[i] for i in going])
            )
            self.representer.observe(going, obs["view"][going], moves)
        return self._observation(obs, self.slots), rewards, dones, infos

    def _observation(self, obs: dict[str, np.ndarray], slots: np.ndarray):
        return self.representer.features(slots) | {key: obs[key][slots] for key in self.keep}


def _stack(infos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A list of per-env infos as a batch (only the keys the transitions read)."""
    keys = ("orientation", "latents", "rel_quat")
    return {key: np.stack([np.asarray(i[key]) for i in infos]) for key in keys if key in infos[0]}
