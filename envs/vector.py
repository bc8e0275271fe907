"""Vector envs with several envs per worker process: ``gym.make_vec(id, num_envs, workers=W)``.

Why not only gymnasium's AsyncVectorEnv: it runs one env per process, and on this project's
2-core machines its fixed cost per batch step (pipe round trips, pickled infos, process wake-ups:
measured 0.3-0.6 ms) exceeds a whole 64 px render (~0.4 ms), so 2 async workers were slower than
one env. Here each worker steps its whole share of envs per message, so that cost is paid once
per worker per batch, and views travel through shared memory (gymnasium's own helpers).

Semantics are gymnasium's: observations and actions batched with ``batch_space``, infos merged by
``VectorEnv._add_info``, and "next-step" autoreset (the step after an episode ends resets that
env, ignoring its action, and returns reward 0 with terminated = truncated = False).
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import (
    batch_space,
    create_shared_memory,
    read_from_shared_memory,
)
from gymnasium.wrappers import TimeLimit

from envs.rotate import RotateEnv
from envs.rotate_saccade import RotateSaccadeEnv
from envs.saccade import SaccadeEnv
from envs.saccade_image import SaccadeImageEnv

#: Seconds between liveness checks while waiting for a worker.
_POLL_S = 1.0


class _EnvGroup:
    """Envs ``indices`` of the batch, stepped in one process, writing into shared arrays."""

    def __init__(
        self,
        env_cls: type[gym.Env],
        indices: list[int],
        kwargs: dict[str, Any],
        max_episode_steps: int | None,
    ):
        self.indices = indices
        self.envs: list[gym.Env] = []
        for _ in indices:
            env: gym.Env = env_cls(**kwargs)
            if max_episode_steps is not None:
                env = TimeLimit(env, max_episode_steps)
            self.envs.append(env)
        self.needs_reset = [False] * len(indices)

    def reset(self, out: dict, seeds: list[int | None], options: dict | None) -> list[dict]:
        infos = []
        for k, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            obs, info = env.reset(seed=seed, options=options)
            self._write(out, k, obs)
            infos.append(info)
        self.needs_reset = [False] * len(self.envs)
        return infos

    def step(self, out: dict, actions: list) -> tuple[list, list, list, list]:
        rewards, terminated, truncated, infos = [], [], [], []
        for k, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self.needs_reset[k]:
                obs, info = env.reset()
                reward, term, trunc = 0.0, False, False
            else:
                obs, reward, term, trunc, info = env.step(action)
            self.needs_reset[k] = term or trunc
            self._write(out, k, obs)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
            infos.append(info)
        return rewards, terminated, truncated, infos

    def _write(self, out: dict, k: int, obs: dict) -> None:
        row = self.indices[k]
        for key, value in obs.items():
            out[key][row] = value

    def render(self) -> list:
        return [env.render() for env in self.envs]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _spin_until_readable(conn: Connection, spin_s: float = 0.002) -> None:
    """Busy-poll briefly before blocking: the next command usually arrives within a millisecond,
    and a worker that went to sleep takes ~0.3-1 ms to be woken on a VM's vCPU (measured)."""
    deadline = time.perf_counter() + spin_s
    while time.perf_counter() < deadline:
        if conn.poll(0):
            return


def _worker(conn: Connection, group_args: tuple, space: gym.Space, shm: Any, num_envs: int) -> None:
    """Serve one _EnvGroup: commands in, results out; an exception is reported, not raised."""
    try:
        group = _EnvGroup(*group_args)
        out = read_from_shared_memory(space, shm, num_envs)
        conn.send(("ok", None))
        while True:
            _spin_until_readable(conn)
            command, data = conn.recv()
            if command == "close":
                group.close()
                conn.send(("ok", None))
                return
            try:
                if command == "reset":
                    result = group.reset(out, *data)
                elif command == "step":
                    result = group.step(out, data)
                elif command == "render":
                    result = group.render()
                else:
                    raise RuntimeError(f"unknown command {command!r}")
                conn.send(("ok", result))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    except Exception:
        conn.send(("error", traceback.format_exc()))


class BatchedVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` envs of one class spread over ``workers`` processes (0: all in this process).

    Args:
        env_cls: the env class (RotateEnv, SaccadeEnv, ...); every env gets ``kwargs``.
        num_envs: batch size.
        workers: worker processes; envs are dealt out round-robin (env i -> worker i % workers).
            0 steps every env in the calling process.
        max_episode_steps: truncation, as a TimeLimit per env (make_vec passes the spec's).
        context: multiprocessing start method (None: the platform default).
        **kwargs: the env's keyword arguments, shared by every env.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        env_cls: type[gym.Env],
        num_envs: int = 1,
        workers: int = 0,
        max_episode_steps: int | None = None,
        context: str | None = None,
        **kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if not 0 <= workers <= num_envs:
            raise ValueError(f"workers must be in 0..num_envs ({num_envs}), got {workers}")
        probe = env_cls(**kwargs)  # validates kwargs here, with a clear error, before forking
        self.num_envs = num_envs
        self.workers = workers
        self.render_mode = probe.render_mode
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        probe.close()
        self._closed = False
        groups = [list(range(w, num_envs, max(workers, 1))) for w in range(max(workers, 1))]
        self._groups_indices = groups
        if workers == 0:
            self._local = _EnvGroup(env_cls, groups[0], kwargs, max_episode_steps)
            self._out = {
                key: np.zeros((num_envs, *space.shape), space.dtype)
                for key, space in self.single_observation_space.items()
            }
            return
        ctx = mp.get_context(context)
        self._shm = create_shared_memory(self.single_observation_space, num_envs, ctx)
        self._out = read_from_shared_memory(self.single_observation_space, self._shm, num_envs)
        self._conns: list[Connection] = []
        self._processes: list[mp.Process] = []
        for w, indices in enumerate(groups):
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=_worker,
                name=f"seqjepa-gym-worker-{w}",
                args=(
                    child,
                    (env_cls, indices, kwargs, max_episode_steps),
                    self.single_observation_space,
                    self._shm,
                    num_envs,
                ),
                daemon=True,
            )
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)
        self._gather(None)  # every worker built its envs

    # -- Gymnasium VectorEnv API

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        per_group = [[seeds[i] for i in indices] for indices in self._groups_indices]
        results = self._run("reset", [(s, options) for s in per_group])
        infos: dict[str, Any] = {}
        for indices, group_infos in zip(self._groups_indices, results, strict=True):
            for i, info in zip(indices, group_infos, strict=True):
                infos = self._add_info(infos, info, i)
        return self._observations(), infos

    def step(self, actions):
        actions = list(actions) if not isinstance(actions, np.ndarray) else actions
        if len(actions) != self.num_envs:
            raise ValueError(f"got {len(actions)} actions for {self.num_envs} envs")
        per_group = [[actions[i] for i in indices] for indices in self._groups_indices]
        results = self._run("step", per_group)
        rewards = np.zeros(self.num_envs, np.float64)
        terminated = np.zeros(self.num_envs, np.bool_)
        truncated = np.zeros(self.num_envs, np.bool_)
        infos: dict[str, Any] = {}
        for indices, (r, term, trunc, group_infos) in zip(
            self._groups_indices, results, strict=True
        ):
            rewards[indices], terminated[indices], truncated[indices] = r, term, trunc
            for i, info in zip(indices, group_infos, strict=True):
                infos = self._add_info(infos, info, i)
        return self._observations(), rewards, terminated, truncated, infos

    def render(self) -> tuple | None:
        if self.render_mode is None:
            return None
        frames: list = [None] * self.num_envs
        for indices, group_frames in zip(
            self._groups_indices, self._run("render", None), strict=True
        ):
            for i, frame in zip(indices, group_frames, strict=True):
                frames[i] = frame
        return tuple(frames)

    def close(self, **kwargs: Any) -> None:
        if self._closed:
            return
        self._closed = True
        if self.workers == 0:
            self._local.close()
            return
        for conn, process in zip(self._conns, self._processes, strict=True):
            if process.is_alive():
                try:
                    conn.send(("close", None))
                    if conn.poll(5):
                        conn.recv()
                except (BrokenPipeError, EOFError, ConnectionResetError):
                    pass
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
            conn.close()

    # -- internals

    def _observations(self) -> dict[str, np.ndarray]:
        return {key: value.copy() for key, value in self._out.items()}

    def _run(self, command: str, per_group: list | None) -> list:
        if self._closed:
            raise RuntimeError("the vector env is closed")
        if self.workers == 0:
            group = self._local
            data = per_group[0] if per_group is not None else None
            if command == "reset":
                return [group.reset(self._out, *data)]
            if command == "step":
                return [group.step(self._out, data)]
            return [group.render()]
        for w, conn in enumerate(self._conns):
            conn.send((command, per_group[w] if per_group is not None else None))
        return self._gather(command)

    def _gather(self, command: str | None) -> list:
        """One reply per worker; a worker's exception or death becomes a RuntimeError naming it."""
        results, errors = [], []
        for w, (conn, process) in enumerate(zip(self._conns, self._processes, strict=True)):
            where = f"worker {w} (pid {process.pid}, envs {self._groups_indices[w]})"
            while not conn.poll(_POLL_S):
                if not process.is_alive():
                    self.close()
                    raise RuntimeError(f"{where} died (exit code {process.exitcode})")
            try:
                status, payload = conn.recv()
            except (EOFError, ConnectionResetError):
                self.close()
                raise RuntimeError(f"{where} died (exit code {process.exitcode})") from None
            if status == "error":
                errors.append(f"{where} failed during {command or 'start-up'}:\n{payload}")
            results.append(payload)
        if errors:
            if command is None:
                self.close()
            raise RuntimeError("\n".join(errors))
        return results


# The ids' vector entry points (gym.make_vec(id, num_envs, workers=W)).
RotateEnvVector = partial(BatchedVectorEnv, RotateEnv)
SaccadeEnvVector = partial(BatchedVectorEnv, SaccadeEnv)
SaccadeImageEnvVector = partial(BatchedVectorEnv, SaccadeImageEnv)
RotateSaccadeEnvVector = partial(BatchedVectorEnv, RotateSaccadeEnv)
