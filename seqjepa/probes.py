"""Probes: what a frozen representation makes decodable.

- ``OnlineProbes``: cheap linear heads the training loop trains on detached features. They tell,
  while training runs, whether z_AGG carries the class and whether (z_1, z_2) carries the action
  between two views. Each step they score the current batch *before* learning from it.
- ``fit_linear_classifier`` and ``fit_mlp_regressor``: the evaluation suite's probes. Both are
  fitted on a "fit" set, choose their hyper-parameters on a held-out set (weight decay for the
  linear probe, the early-stopping step for the MLP) and only then score the test set once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqjepa.metrics import r2_score


class OnlineProbes(nn.Module):
    """Class from z_AGG (linear, cross-entropy) and the first transition from concat(z_1, z_2)
    (linear, mean squared error; reported as R^2, CONVENTIONS.md's uniform average)."""

    def __init__(self, agg_dim: int, z_dim: int, num_classes: int, action_dim: int) -> None:
        super().__init__()
        self.classify = nn.Linear(agg_dim, num_classes)
        self.relative = nn.Linear(2 * z_dim, action_dim)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)

    def step(
        self, z_agg: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, actions: torch.Tensor
    ) -> dict[str, float]:
        """Score on this batch, then learn from it. z (B, M, D) needs M >= 2 for the action."""
        z_agg, z = z_agg.detach().float(), z.detach().float()
        logits = self.classify(z_agg)
        loss = F.cross_entropy(logits, labels)
        out = {"probe_class_top1": float((logits.argmax(-1) == labels).float().mean())}
        if z.shape[1] >= 2:
            target = actions[:, 1].float()  # the transition from view 0 to view 1
            prediction = self.relative(torch.cat([z[:, 0], z[:, 1]], dim=-1))
            loss = loss + F.mse_loss(prediction, target)
            residual = ((prediction.detach() - target) ** 2).sum(0)
            total = ((target - target.mean(0)) ** 2).sum(0).clamp_min(1e-8)
            out["probe_relative_r2"] = float((1 - residual / total).mean())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return out


@dataclass
class Samples:
    """A probe's inputs and targets. ``inputs`` is a tensor, or a function from a tensor of
    sample indices to their features (pairs are gathered on demand rather than materialised)."""

    inputs: torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def features(self, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            index = torch.arange(len(self))
        if callable(self.inputs):
            return self.inputs(index).float()
        return self.inputs[index].float()


def _standardiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale per feature. A feature constant on the sample (a unit no sample fires,
    common in spatial feature maps) keeps scale 1: dividing by its ~0 std would turn one
    activation on a held-out sample into an outlier of a million."""
    std = x.std(dim=0)
    return x.mean(dim=0), torch.where(std > 1e-6, std, torch.ones_like(std))


@dataclass
class LinearHead:
    """A fitted multinomial logistic-regression probe: standardise, then one linear layer.

    Plain tensors, so that it saves to an ``.npz`` (the recognition task's classifier) and runs
    without the code that fitted it."""

    weight: torch.Tensor  # (classes, features)
    bias: torch.Tensor  # (classes,)
    mean: torch.Tensor  # (features,)
    std: torch.Tensor  # (features,)
    weight_decay: float
    heldout_top1: float

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear((x.float() - self.mean) / self.std, self.weight, self.bias)

    def top1(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return float((self.logits(x).argmax(-1) == y).float().mean())


def fit_linear_head(
    fit: Samples,
    held: Samples,
    num_classes: int,
    decays: tuple[float, ...] = (1e-6, 1e-4, 1e-3, 1e-2),
    iterations: int = 100,
) -> LinearHead:
    """Multinomial logistic regression on standardised features (full-batch L-BFGS).

    The L2 penalty is chosen by held-out top-1; the head is then refitted on fit + held with it.
    """
    x_fit, x_held = fit.features(), held.features()

    def train(x: torch.Tensor, y: torch.Tensor, decay: float) -> LinearHead:
        mean, std = _standardiser(x)
        with torch.random.fork_rng():  # a fixed initialisation, the caller's RNG untouched
            torch.manual_seed(0)
            head = nn.Linear(x.shape[1], num_classes)
        optimizer = torch.optim.LBFGS(
            head.parameters(), max_iter=iterations, line_search_fn="strong_wolfe"
        )
        x = (x - mean) / std

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(head(x), y) + decay * head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return LinearHead(head.weight.detach(), head.bias.detach(), mean, std, decay, 0.0)

    scores = {d: train(x_fit, fit.targets, d).top1(x_held, held.targets) for d in decays}
    best = max(decays, key=lambda d: (scores[d], d))  # ties: the stronger penalty
    final = train(torch.cat([x_fit, x_held]), torch.cat([fit.targets, held.targets]), best)
    final.heldout_top1 = scores[best]
    return final


def fit_linear_classifier(
    fit: Samples, held: Samples, test: Samples, num_classes: int, **kwargs
) -> dict[str, float]:
    """``fit_linear_head`` scored once on ``test``: test top-1, the chosen penalty and its
    held-out top-1."""
    head = fit_linear_head(fit, held, num_classes, **kwargs)
    return {
        "top1": head.top1(test.features(), test.targets),
        "weight_decay": head.weight_decay,
        "heldout_top1": head.heldout_top1,
    }


@dataclass
class MLPProbeConfig:
    """The regression probe: the paper's MLP (1024-1024), regularised and early-stopped."""

    hidden: tuple[int, ...] = (1024, 1024)
    """Hidden layer widths."""
    steps: int = 1000
    """Adam steps at most."""
    batch_size: int = 512
    """Samples per step (what matters is samples seen: 1000 x 512 reached the relative-rotation
    R^2 of 2000 x 256 in 70% of the time; a higher lr did worse)."""
    lr: float = 1e-3
    """Peak learning rate (cosine decay)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    dropout: float = 0.1
    """Dropout after each hidden layer."""
    eval_every: int = 100
    """Steps between held-out checks; the best checkpoint is the one scored on the test set."""
    seed: int = 0
    """Initialisation and batch order."""


class MLPRegressor(nn.Module):
    """The regression probe as one module: standardise the features, MLP, back to target units.

    One module so that a fitted probe can be saved as plain arrays and run without the code
    that fitted it (the homing task's visual odometry, agents.odometry)."""

    def __init__(
        self,
        x_stats: tuple[torch.Tensor, torch.Tensor],
        y_stats: tuple[torch.Tensor, torch.Tensor],
        hidden: tuple[int, ...],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in zip(
            ("x_mean", "x_std", "y_mean", "y_std"), (*x_stats, *y_stats), strict=True
        ):
            self.register_buffer(name, value.float().clone())
        layers: list[nn.Module] = []
        width = self.x_mean.shape[0]
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.mlp = nn.Sequential(*layers, nn.Linear(width, self.y_mean.shape[0]))

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's output in standardised target units (what training fits)."""
        return self.mlp((x - self.x_mean) / self.x_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised(x).float() * self.y_std + self.y_mean


def train_mlp_regressor(
    fit: Samples, held: Samples, config: MLPProbeConfig, bf16: bool = False
) -> tuple[MLPRegressor, dict[str, float]]:
    """Fit standardised targets; keep the step with the best held-out R^2.

    ``bf16`` autocasts the MLP's matrix products (loss, optimiser and R^2 stay fp32): 1.7x
    faster on a CPU core with AVX512-BF16, far slower where bf16 is emulated (``use_bf16``).

    Returns the regressor (in eval mode) and {"heldout_r2", "fit_r2", "best_step"}.
    """
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    x_sample = fit.features(torch.randperm(len(fit), generator=generator)[:4096])
    probe = MLPRegressor(
        _standardiser(x_sample), _standardiser(fit.targets.float()), config.hidden, config.dropout
    )
    optimizer = torch.optim.AdamW(probe.parameters(), config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return probe(x).float()

    def predict(
        samples: Samples, index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if index is None:
            index = torch.arange(len(samples))
        probe.eval()
        with torch.no_grad():
            out = torch.cat([forward(samples.features(i)) for i in index.split(4096)])
        probe.train()
        return out, samples.targets[index]

    best = (-float("inf"), 0, copy.deepcopy(probe.state_dict()))
    for step in range(1, config.steps + 1):
        index = torch.randint(len(fit), (config.batch_size,), generator=generator)
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            output = probe.standardised(fit.features(index)).float()
        loss = F.mse_loss(output, (fit.targets[index].float() - probe.y_mean) / probe.y_std)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % config.eval_every == 0 or step == config.steps:
            score = r2_score(*predict(held))
            if score > best[0]:
                best = (score, step, copy.deepcopy(probe.state_dict()))
    probe.load_state_dict(best[2])
    scores = {
        "heldout_r2": best[0],
        "fit_r2": r2_score(*predict(fit, torch.randperm(len(fit), generator=generator)[:4096])),
        "best_step": best[1],
    }
    return probe.eval(), scores


def fit_mlp_regressor(
    fit: Samples, held: Samples, test: Samples, config: MLPProbeConfig, bf16: bool = False
) -> tuple[dict[str, float], torch.Tensor]:
    """``train_mlp_regressor`` scored once on ``test``.

    Returns ({"r2", "heldout_r2", "fit_r2", "best_step"}, test predictions in target units).
    """
    probe, scores = train_mlp_regressor(fit, held, config, bf16)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        prediction = torch.cat(
            [probe(test.features(i)) for i in torch.arange(len(test)).split(4096)]
        )
    return {"r2": r2_score(prediction.float(), test.targets), **scores}, prediction.float()
