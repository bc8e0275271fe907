"""torch Datasets of (M+1 views, their actions, label) sequences, and a resumable batch order.

Sources: recorded rollouts (seqjepa.rollouts) and 3DIEBench folders (seqjepa.iebench).
Two ways to cut sequences:

- ``"window"``: M+1 consecutive observations of a trajectory, with the recorded actions
  (``action_key="actions"``: the executed command in its frame) or ``"rel_quats"``;
- ``"subset"``: M+1 distinct observations of one episode (or 3DIEBench object) in random order
  (3DIEBench style), with relative rotations R_{t-1}^-1 R_t computed from the orientations;
- ``"subset-colour"``: the same, with the paper's rotation + colour actions (the relative
  rotation, then the changes of floor hue and light hue: 6-d);
- ``"subset-pose"``: the same views, but each "action" is the orientation of the view it leads
  to (absolute, 4-d). Not the paper's design: a diagnostic of the equivariance study. The
  predictor is told the target's pose outright, so it needs no pose of the context views to
  compose a relative rotation with (docs/equivariance.md).

Either way ``actions[t]`` is what leads to ``views[t]`` (CONVENTIONS.md; ``actions[0]`` is the
identity, except in subset-pose, where it is view 0's orientation; the model never reads it),
except that with ``targets`` K > 1 each of the last K actions leads from the last observed view.
Items are addressed by (step, index): the randomness of step k's batch comes from
(seed, k), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from seqjepa.iebench import IEBenchDataset
from seqjepa.rollouts import SPLITS, RolloutDataset

MODES = ("window", "subset", "subset-colour", "subset-pose")
#: Columns of the CONVENTIONS.md ``latents`` whose changes the rotation + colour actions carry.
COLOUR_LATENTS = (3, 6)  # floor_hue, light_hue
IDENTITY = np.array([0.0, 0.0, 0.0, 1.0], np.float32)


def subset_actions(
    orientations: np.ndarray, latents: np.ndarray | None = None, mode: str = "subset"
) -> np.ndarray:
    """Actions of views taken in the given order, as ``mode`` (a subset mode) defines them:
    relative rotations (4-d); for subset-colour plus the paper's rotation + colour setting's
    change of floor hue and of light hue (6-d; hues are circular: their change is wrapped into
    [-0.5, 0.5)); for subset-pose each view's own orientation (canonical sign)."""
    if mode == "subset-pose":  # numpy, not envs.rotations: training never imports envs
        q = np.asarray(orientations, np.float64)
        return (q * np.where(q[:, 3:] < 0, -1.0, 1.0)).astype(np.float32)
    actions = relative_rotations(orientations)
    if mode != "subset-colour":
        return actions
    hues = np.asarray(latents, np.float64)[:, COLOUR_LATENTS]
    if not np.isfinite(hues).all():
        raise ValueError(
            "rotation + colour actions need floor and light hues in every view's latents "
            "(collect SeqJEPA-Rotate3DIEBench-v0, or floor=True, light_hue=True)"
        )
    change = np.diff(hues, axis=0, prepend=hues[:1])
    change = (change + 0.5) % 1.0 - 0.5
    return np.concatenate([actions, change.astype(np.float32)], axis=1)


def relative_rotations(orientations: np.ndarray) -> np.ndarray:
    """(n, 4) unit orientations (xyzw) -> (n, 4) actions: identity, then R_{t-1}^-1 R_t, w >= 0.

    The Hamilton product written out in numpy: scipy's Rotation costs ~65 us per call here, 60%
    of a training item's cost; this is ~5 us (tests/test_seqjepa.py checks it against scipy).
    """
    q = np.asarray(orientations, dtype=np.float64)
    ax, ay, az, aw = -q[:-1, 0], -q[:-1, 1], -q[:-1, 2], q[:-1, 3]  # conjugate = inverse
    bx, by, bz, bw = q[1:, 0], q[1:, 1], q[1:, 2], q[1:, 3]
    rel = np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=1,
    )
    rel[rel[:, 3] < 0] *= -1
    return np.concatenate([IDENTITY[None], rel]).astype(np.float32)


class SequenceDataset(Dataset):
    """Sequences of ``length`` = M+1 views from a recorded dataset or a 3DIEBench folder.

    Args:
        source: a RolloutDataset, an IEBenchDataset, or a path to either (a folder with
            dataset.json is a recording; one with train_images.npy is 3DIEBench).
        length: views per sequence, M+1 (M observed, one target).
        mode: "window" (recordings only) or "subset".
        action_key: "actions" or "rel_quats" (recordings, window mode).
        seed: the randomness of subsets.
        targets: views at the end of each sequence that the model predicts from the views
            before them (seqjepa.model.ModelConfig.targets). K > 1 (subset modes only): the
            actions of the last K views lead from the last observed view, view length-K-1,
            not from the view before each.
        split: the episodes to use: a recording's split ("train", "val", "test"; None for all),
            or the 3DIEBench split when ``source`` is a path ("train" or "val").
    """

    def __init__(
        self,
        source: RolloutDataset | IEBenchDataset | str | Path,
        length: int,
        mode: str = "window",
        action_key: str = "actions",
        seed: int = 0,
        split: str | None = "train",
        targets: int = 1,
    ) -> None:
        if isinstance(source, (str, Path)):
            source = (
                RolloutDataset(source)
                if (Path(source) / "dataset.json").exists()
                else IEBenchDataset(source, split)
            )
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if not 1 <= targets < length:
            raise ValueError(
                f"a sequence of {length} views holds 1..{length - 1} targets (M >= 1 observed "
                f"views before them), got {targets}"
            )
        if targets > 1 and mode == "window":
            raise ValueError("targets > 1 needs a subset mode: window mode records no action "
                             "from the last observed view to the later ones")  # fmt: skip
        self.source = source
        self.length = int(length)
        self.mode = mode
        self.action_key = action_key
        self.seed = int(seed)
        self.targets = int(targets)
        if isinstance(source, IEBenchDataset):
            if mode != "subset":
                raise ValueError("3DIEBench folders are read with mode='subset'")
            self._items = np.arange(len(source))
            self.action_dim = 4
            self.num_classes = int(source.labels.max(initial=0)) + 1
            return
        if action_key not in ("actions", "rel_quats"):
            raise ValueError(f"action_key must be 'actions' or 'rel_quats', got {action_key!r}")
        self.num_classes = len(source.meta.get("categories") or []) or 1000
        lengths = self._episode_lengths()
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)} or None")
            lengths[self.episode_splits() != SPLITS.index(split)] = 0  # never drawn
        if mode == "window":
            self._items = np.array(
                [(e, s) for e, n in enumerate(lengths) for s in range(n - self.length + 1)],
                dtype=np.int64,
            ).reshape(-1, 2)
        else:
            self._items = np.flatnonzero(lengths >= self.length)
        if len(self._items) == 0:
            raise ValueError(f"no episode of split {split!r} holds {self.length} observations")
        first = source.shard_arrays(0)
        needed = {
            "window": [action_key],
            "subset": ["orientations"],
            "subset-colour": ["orientations", "latents"],
            "subset-pose": ["orientations"],
        }[mode]
        for key in needed:
            if key not in first:
                raise ValueError(f"the dataset has no {key!r} (needed for mode={mode!r})")
        dims = {"subset": 4, "subset-colour": 6, "subset-pose": 4}
        self.action_dim = dims.get(mode) or int(first[action_key].shape[1])

    def _episode_lengths(self) -> np.ndarray:
        return self._per_episode(lambda a: np.diff(a["offsets"]))

    def episode_splits(self) -> np.ndarray:
        """Each episode's split, as an index into seqjepa.rollouts.SPLITS."""
        return self._per_episode(lambda a: a["splits"])

    def _per_episode(self, field) -> np.ndarray:
        shards = range(len(self.source._shards))
        return np.concatenate([field(self.source.shard_arrays(k)) for k in shards]).astype(np.int64)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, key: tuple[int, int] | int):
        """``(step, index)`` (or a bare index, step 0) -> (views, actions, label) tensors."""
        step, index = key if isinstance(key, tuple) else (0, key)
        if isinstance(self.source, IEBenchDataset):
            return self._iebench_item(step, index)
        if self.mode == "window":
            episode, start = self._items[index]
            data = self.source.episode(int(episode))
            window = slice(int(start), int(start) + self.length)
            views = np.asarray(data["views"][window])
            actions = np.array(data[self.action_key][window], dtype=np.float32)
        else:
            data = self.source.episode(int(self._items[index]))
            chosen = self._choose(step, index, len(data["views"]))
            views = np.asarray(data["views"][chosen])
            colour = self.mode == "subset-colour"
            actions = self._subset_actions(
                np.asarray(data["orientations"][chosen], np.float64),
                np.asarray(data["latents"][chosen]) if colour else None,
            )
        return _tensors(views, actions, data["label"])

    def _subset_actions(self, orientations: np.ndarray, latents: np.ndarray | None) -> np.ndarray:
        """subset_actions of the chosen views; with K > 1 targets, target k's action is the
        one from the last observed view (the pair's second action)."""
        actions = subset_actions(orientations, latents, self.mode)
        last = self.length - self.targets - 1
        later = np.arange(last + 2, self.length)
        if len(later):
            # one call for all the pairs (last, k): in the sequence last, k1, last, k2, ... the
            # action leading to each k is the one from view `last` (per-pair calls were a third of
            # a 4-target item's time; the arithmetic, and so every value, is the same)
            pairs = np.stack([np.full_like(later, last), later], axis=1).ravel()
            paired = subset_actions(
                orientations[pairs], None if latents is None else latents[pairs], self.mode
            )
            actions[later] = paired[1::2]
        return actions

    def _choose(self, step: int, index: int, available: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(step), int(index)])
        return rng.choice(available, self.length, replace=False)  # distinct, in random order

    def _iebench_item(self, step: int, index: int):
        source = self.source
        chosen = self._choose(step, index, source.num_views(int(index)))
        pairs = [source.view(int(index), int(k)) for k in chosen]
        views = np.stack([view for view, _ in pairs])
        orientations = np.stack([IEBenchDataset.orientation(latent) for _, latent in pairs])
        actions = self._subset_actions(orientations, None)
        return _tensors(views, actions, source.labels[index])


def _tensors(views: np.ndarray, actions: np.ndarray, label: int):
    # memory-mapped slices are read-only: copy them (only then) into writable arrays
    return (
        torch.from_numpy(np.require(views, requirements=["C", "W"])),
        torch.from_numpy(np.require(actions, np.float32, requirements=["C", "W"])),
        torch.tensor(int(label)),
    )


class StepBatchSampler(Sampler):
    """Batches of (step, index) keys for steps ``start .. stop-1``: step k's indices are drawn
    without replacement from a generator seeded by (seed, k), so batch k is the same whether a
    run got there in one go or resumed (and whichever DataLoader worker builds it).

    With ``rank``/``world_size`` each rank takes its slice of the global batch (DDP).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} ranks")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.stop = start, stop
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_rank = self.batch_size // self.world_size
        for step in range(self.start, self.stop):
            rng = np.random.default_rng([self.seed, step, 0x5EED])
            indices = rng.choice(self.size, self.batch_size, replace=self.batch_size > self.size)
            mine = indices[self.rank * per_rank : (self.rank + 1) * per_rank]
            yield [(step, int(i)) for i in mine]


class SyntheticSequences:
    """Random in-memory sequences, made once: the data-free baseline of throughput figures
    (``train --synthetic SIZE``), with the interface of LiveSequences (``batch``)."""

    def __init__(
        self, length: int, image_size: int, action_dim: int = 4, num_classes: int = 12, seed=0
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.action_dim, self.num_classes = action_dim, num_classes
        self._views = torch.randint(
            0, 256, (64, length, image_size, image_size, 3), dtype=torch.uint8, generator=generator
        )
        self._actions = torch.randn(64, length, action_dim, generator=generator)
        self._labels = torch.randint(0, num_classes, (64,), generator=generator)

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        per_rank = batch_size // world_size
        index = torch.arange(rank * per_rank, (rank + 1) * per_rank) % len(self._views)
        return self._views[index], self._actions[index], self._labels[index]
