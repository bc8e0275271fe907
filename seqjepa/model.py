"""seq-JEPA (Ghaemi et al. 2025): encode views, aggregate them with their actions, predict the
representation of the next, unseen view. Architecture as in ../shared/ANCHORS.md.

Alignment (CONVENTIONS.md): a sequence holds M+1 views ``views[:, 0..M]`` and the actions that
produced them, ``actions[:, t]`` being the action that led to view t (``actions[:, 0]`` is the
identity and unused). The model observes views 0..M-1 and predicts view M. Token i carries
z_i and the projected transition a_i = ``actions[:, i+1]`` (from view i to view i+1); the last
observed token carries zeros in its action slot; the predictor gets z_AGG and a_{M-1} =
``actions[:, M]``, the action leading to the target. There is no positional encoding: order is
carried by the actions alone, so any number of views works at evaluation time.
With ``ModelConfig.targets`` K > 1 a sequence holds M+K views and each of the last K is
predicted from z_AGG of the first M, by its action from view M-1 (seqjepa.data builds those).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqjepa.resnet import ResNet


@dataclass
class ModelConfig:
    """Architecture of one seq-JEPA model (defaults: the paper's)."""

    action_dim: int = 4
    """Dimension of an action: 4 (rotation quaternion), 2 (saccade), 6 (rotation + saccade)."""
    widths: tuple[int, ...] = (64, 128, 256, 512)
    """ResNet stage widths; the last is the dimension of z."""
    depths: tuple[int, ...] = (2, 2, 2, 2)
    """BasicBlocks per stage (ResNet-18: 2, 2, 2, 2)."""
    stem: str = "standard"
    """ResNet stem: standard (7x7/2 + max-pool), small (3x3/1), cheap (3x3/2)."""
    pool_grid: int = 1
    """Pooling of the last feature map into z: 1 is global average pooling (the paper); g > 1
    averages g x g cells and projects their concatenation linearly to z, so z keeps where
    things are in the view (a pose cue that global pooling discards). An option for the
    equivariance study."""
    action_proj_dim: int = 128
    """Width of the action projection (Linear without bias + BatchNorm without affine)."""
    layers: int = 3
    """Transformer encoder layers of the aggregator."""
    heads: int = 4
    """Attention heads of the aggregator."""
    ffn_mult: int = 4
    """Aggregator feed-forward width, in multiples of d_model (the paper: 4, 2560 for 640)."""
    dropout: float = 0.1
    """Aggregator dropout."""
    predictor_hidden: int = 1024
    """Hidden width of the predictor MLP."""
    action_encoding: str = "raw"
    """How the action enters the projector: raw (the paper: the quaternion, or displacement, as
    is) or matrix (a quaternion's 3x3 rotation matrix, flattened: continuous in the rotation,
    where q and -q, and the w >= 0 canonicalisation at w = 0, make the quaternion jump)."""
    target_norm: str = "none"
    """Normalise the EMA target over the batch before the cosine: none (the paper), center
    (subtract the batch mean: the shared direction of all z no longer dominates the loss), or
    standardise (also divide by the per-dimension std). An option for the equivariance study."""
    predictor_film: bool = False
    """Condition the predictor by FiLM (the projected action scales and shifts its hidden
    units) instead of concatenation. An option for the equivariance study."""
    use_actions: bool = True
    """Condition on actions. False is the paper's no-action ablation: every action the
    aggregator and the predictor see is zero (so is every projected action)."""
    prefixes: bool = False
    """Also predict from every shorter context, as a sequence model is trained at every
    position: the first p < M observed views predict view p (by the action from view p-1).
    The loss is the mean over context lengths 1..M of each one's mean loss, so every view's z
    must carry what predicting from it alone needs (M_tr = 1's stronger per-view signal) while
    the aggregator still learns to read M views. Costs M-1 more target encodings and
    aggregator passes per sequence, no more online encodings. Not the paper's design."""
    targets: int = 1
    """Unseen views predicted from one context (the paper: 1). K > 1: a sequence holds M + K
    views; the model observes the first M and predicts each of the last K from the same z_AGG,
    each by its action from the last observed view (seqjepa.data builds those): K predictions
    per encoder pass over the context. An option for the demo's short budgets."""
    relative_weight: float = 0.0
    """Weight of a relative-target term added to the loss (0: the paper's loss; needs
    targets >= 2): 1 - cos between each prediction's deviation from the mean of its sequence's
    K predictions and its target's deviation from the mean of the K targets. The K targets show
    one object in one scene, so their deviations are the part of z that depends on the view
    alone, which the plain loss lets the predictor ignore (docs/equivariance.md). A model
    without actions (use_actions False) makes K equal predictions and skips the term, so the
    no-action twin trains exactly as without it. An option for the equivariance study."""
    view_dropout: float = 0.0
    """Probability that each observed view of a training context is replaced by a blank view
    (uniform grey, BLANK_LEVEL: the evaluation's "actions without views" input) before
    encoding; targets stay real. Predicting past a blank view needs the actions since the
    last seen one composed, the path integration that fully seen contexts never ask of z_AGG
    (docs/equivariance.md). An option for the equivariance study."""


#: The grey level of a blank view: no object, no scene (ModelConfig.view_dropout, evaluation).
BLANK_LEVEL = 128


class SeqJEPA(nn.Module):
    """Encoder, EMA target encoder, action projector, [AGG] token, aggregator and predictor."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.targets < 1:
            raise ValueError(f"targets must be >= 1, got {config.targets}")
        if not config.relative_weight >= 0 or (config.relative_weight > 0 and config.targets < 2):
            raise ValueError(
                "relative_weight must be >= 0 and needs targets >= 2 (deviations from the "
                f"mean of one target are zero); got {config.relative_weight} with "
                f"targets={config.targets}"
            )
        if not 0 <= config.view_dropout < 1:
            raise ValueError(f"view_dropout must be in [0, 1), got {config.view_dropout}")
        self.encoder = ResNet(config.widths, config.depths, config.stem, config.pool_grid)
        self.target_encoder = copy.deepcopy(self.encoder)
        for p in self.target_encoder.parameters():
            p.requires_grad_(False)
        z_dim = self.encoder.out_dim
        self.z_dim = z_dim
        self.d_model = z_dim + config.action_proj_dim
        if config.action_encoding not in ACTION_ENCODINGS:
            raise ValueError(
                f"action_encoding must be one of {ACTION_ENCODINGS}, got {config.action_encoding!r}"
            )
        if config.action_encoding == "matrix" and config.action_dim != 4:
            raise ValueError("action_encoding='matrix' needs quaternion actions (action_dim 4)")
        encoded_dim = 9 if config.action_encoding == "matrix" else config.action_dim
        self.action_proj = nn.Sequential(
            nn.Linear(encoded_dim, config.action_proj_dim, bias=False),
            nn.BatchNorm1d(config.action_proj_dim, affine=False),
        )
        self.agg_token = nn.Parameter(torch.zeros(1, 1, self.d_model))
        layer = nn.TransformerEncoderLayer(
            self.d_model,
            config.heads,
            config.ffn_mult * self.d_model,
            config.dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )
        self.aggregator = nn.TransformerEncoder(
            layer, config.layers, norm=nn.LayerNorm(self.d_model), enable_nested_tensor=False
        )
        if config.predictor_film:
            # FiLM: the action scales and shifts the predictor's hidden units (a multiplicative
            # interaction), instead of entering only as concatenated input.
            self.predictor = nn.Sequential(
                nn.Linear(self.d_model, config.predictor_hidden, bias=False),
                nn.BatchNorm1d(config.predictor_hidden),
            )
            self.film = nn.Linear(config.action_proj_dim, 2 * config.predictor_hidden)
            nn.init.zeros_(self.film.weight)  # starts as the identity modulation
            nn.init.zeros_(self.film.bias)
            self.predictor_out = nn.Linear(config.predictor_hidden, z_dim)
        else:
            self.predictor = nn.Sequential(
                nn.Linear(
                    self.d_model + config.action_proj_dim, config.predictor_hidden, bias=False
                ),
                nn.BatchNorm1d(config.predictor_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(config.predictor_hidden, z_dim),
            )

    # -- public API

    @staticmethod
    def prepare(views: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) views -> float (N, 3, H, W) in [-1, 1], channels_last memory.

        Views stay uint8 until here (a quarter of float32's bytes on the data path)."""
        if views.dtype != torch.uint8:
            raise TypeError(f"views must be uint8 (..., H, W, 3), got {views.dtype}")
        flat = views.reshape(-1, *views.shape[-3:]).permute(0, 3, 1, 2)
        x = flat.float().div_(127.5).sub_(1.0)
        return x.contiguous(memory_format=torch.channels_last)

    def encode(self, views: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Per-view representations z: (..., H, W, 3) uint8 -> (..., z_dim)."""
        encoder = self.target_encoder if target else self.encoder
        z = encoder(self.prepare(views))
        return z.reshape(*views.shape[:-3], self.z_dim)

    def aggregate(
        self, views: torch.Tensor, transitions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z_AGG (B, d_model) and z (B, M, z_dim) from M observed views (B, M, H, W, 3) and the
        M-1 transitions between them (B, M-1, action_dim): transitions[:, i] leads from view i
        to view i+1. Any M >= 1."""
        z = self.encode(views)
        return self.aggregate_z(z, transitions), z

    def aggregate_z(
        self, z: torch.Tensor, transitions: torch.Tensor, blind: bool = False
    ) -> torch.Tensor:
        """z_AGG from precomputed per-view z (B, M, z_dim) and transitions (B, M-1, A).

        ``blind`` zeroes the encoded transitions (the "views without actions" evaluation)."""
        batch, m, _ = z.shape
        if transitions.shape[:2] != (batch, m - 1):
            raise ValueError(
                f"{m} views need {m - 1} transitions per sequence, got {tuple(transitions.shape)}"
            )
        slots = torch.zeros(batch, m, self.config.action_proj_dim, device=z.device, dtype=z.dtype)
        if m > 1:
            flat = transitions.reshape(-1, transitions.shape[-1]).to(z)
            projected = self._project(flat, blind)
            slots[:, :-1] = projected.reshape(batch, m - 1, -1)
        tokens = torch.cat([z, slots], dim=-1)
        tokens = torch.cat([self.agg_token.expand(batch, -1, -1).to(z), tokens], dim=1)
        return self.aggregator(tokens)[:, 0]

    def predict(self, z_agg: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The predicted representation of the view that ``action`` (B, A) leads to."""
        projected = self._project(action.to(z_agg))
        if not self.config.predictor_film:
            return self.predictor(torch.cat([z_agg, projected], dim=-1))
        scale, shift = self.film(projected).chunk(2, dim=-1)
        hidden = self.predictor(z_agg) * (1 + scale) + shift
        return self.predictor_out(torch.relu(hidden))

    def predict_targets(self, z_agg: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predictions (B*K, z_dim) of K views from each z_AGG (B, d_model), one per action
        (B, K, A), in the order of ``actions.flatten(0, 1)``."""
        k = actions.shape[1]
        return self.predict(z_agg.repeat_interleave(k, dim=0), actions.flatten(0, 1))

    def _project(self, actions: torch.Tensor, blind: bool = False) -> torch.Tensor:
        """Encode (action_encoding) and project; blind (or use_actions=False) zeroes the encoded
        action, so that no encoding smuggles information in (a zero quaternion would become
        the identity matrix)."""
        if self.config.action_encoding == "matrix":
            actions = quaternion_matrix(actions).flatten(-2)
        if blind or not self.config.use_actions:
            actions = torch.zeros_like(actions)
        return self.action_proj(actions)

    def loss(
        self, views: torch.Tensor, actions: torch.Tensor, relative_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean 1 - cos(prediction, stop-grad target) over a batch of sequences (with
        ModelConfig.prefixes averaged with every shorter context's), plus
        ``relative_scale * relative_weight`` times the relative-target term
        (ModelConfig.relative_weight; the scale is the training's warm-up ramp of that term).

        views (B, M+K, H, W, 3) uint8; actions (B, M+K, A) aligned with the views (module
        docstring; K = ``config.targets``, each target's action leading from view M-1).
        Returns the loss and detached tensors for monitoring (per target: (B*K, ...)).
        """
        k = self.config.targets
        if views.shape[1] < k + 1 or actions.shape[:2] != views.shape[:2]:
            raise ValueError(
                f"need views (B, M+{k}, H, W, 3) with M >= 1 and actions (B, M+{k}, A); got "
                f"{tuple(views.shape)} and {tuple(actions.shape)}"
            )
        m = views.shape[1] - k
        z_agg, z = self.aggregate(self._drop_views(views[:, :m]), actions[:, 1:m])
        prediction = self.predict_targets(z_agg, actions[:, m:])
        with torch.no_grad():
            target = self.encode(views[:, m:].flatten(0, 1), target=True).float()
            target = normalise_target(target, self.config)
        # in fp32: under bf16 autocast a cosine near 1 is quantised to steps of 1/256
        cosine = F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1)
        loss = (1 - cosine).mean()
        extras = {
            "z": z.detach(),
            "z_agg": z_agg.detach(),
            "prediction": prediction.detach(),
            "target": target.detach(),
            "cosine": cosine.detach(),
        }
        if self.config.prefixes and m > 1:
            prefix_cosine = self._prefix_cosines(z, views[:, 1:m], actions[:, 1:m])
            extras["prefix_cosine"] = prefix_cosine.detach()
            loss = (loss + (1 - prefix_cosine).mean(dim=0).sum()) / m
        # A no-action model's K predictions are equal: the term is constant for it in exact
        # arithmetic, but its per-target gradients only cancel up to rounding, and under bf16
        # that residue wrecked a twin (session 9, with a floor of 1e-3).
        if self.config.relative_weight > 0 and self.config.use_actions:
            relative = relative_cosine(prediction.float(), target.detach().float(), k)
            extras["relative_cosine"] = relative.detach()
            weight = relative_scale * self.config.relative_weight
            loss = loss + weight * (1 - relative).mean()
        return loss, extras

    def _drop_views(self, views: torch.Tensor) -> torch.Tensor:
        """``views`` (B, M, H, W, 3) with each replaced by a blank one with probability
        view_dropout, in training only (torch's global generator draws it, as augmentation)."""
        if not (self.training and self.config.view_dropout > 0):
            return views
        dropped = torch.rand(views.shape[:2], device=views.device) < self.config.view_dropout
        return views.masked_fill(dropped[:, :, None, None, None], BLANK_LEVEL)

    def _prefix_cosines(
        self, z: torch.Tensor, next_views: torch.Tensor, transitions: torch.Tensor
    ) -> torch.Tensor:
        """cos (B, M-1) of each prefix's prediction of the view after it (ModelConfig.prefixes):
        z (B, M, z_dim) of the observed views, next_views (B, M-1, ...) views 1..M-1, and
        transitions (B, M-1, A), [:, i] leading from view i to view i+1."""
        predictions = [
            self.predict(self.aggregate_z(z[:, :p], transitions[:, : p - 1]), transitions[:, p - 1])
            for p in range(1, z.shape[1])
        ]
        with torch.no_grad():
            target = self.encode(next_views.flatten(0, 1), target=True).float()
            target = normalise_target(target, self.config).reshape(*next_views.shape[:2], -1)
        prediction = torch.stack(predictions, dim=1).float()
        return F.cosine_similarity(prediction, target, dim=-1)

    def forward(
        self, views: torch.Tensor, actions: torch.Tensor, relative_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss (``loss``), so that DistributedDataParallel can wrap the model."""
        return self.loss(views, actions, relative_scale)

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA step of the target encoder: target = m * target + (1 - m) * online; buffers
        (BatchNorm statistics) are copied."""
        for target, online in zip(
            self.target_encoder.parameters(), self.encoder.parameters(), strict=True
        ):
            target.lerp_(online.detach(), 1.0 - momentum)
        for target, online in zip(
            self.target_encoder.buffers(), self.encoder.buffers(), strict=True
        ):
            target.copy_(online)


TARGET_NORMS = ("none", "center", "standardise")
#: relative_cosine's floor on a prediction's deviation, in norms of the mean prediction. It was
#: 1e-3 in session 9's first runs, which amplified rounding noise 1000-fold (docs/equivariance.md).
RELATIVE_FLOOR = 0.1
ACTION_ENCODINGS = ("raw", "matrix")


def quaternion_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyzw quaternions (normalised here) -> (..., 3, 3) rotation matrices.

    Written out because it runs inside the model on (batched, autocast) tensors, where scipy's
    Rotation cannot; tests/test_evaluate.py checks it against scipy."""
    x, y, z, w = torch.nn.functional.normalize(q.float(), dim=-1).unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2).to(q.dtype)


def normalise_target(target: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The target as ModelConfig.target_norm says (batch statistics, no gradient)."""
    if config.target_norm not in TARGET_NORMS:
        raise ValueError(f"target_norm must be one of {TARGET_NORMS}, got {config.target_norm!r}")
    if config.target_norm == "none" or len(target) < 2:
        return target
    target = target - target.mean(dim=0)
    if config.target_norm == "standardise":
        target = target / target.std(dim=0).clamp_min(1e-6)
    return target


def relative_cosine(prediction: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """cos between each of K predictions' deviation from their sequence's mean and the matching
    target's deviation from its sequence's mean: (B*K, D) rows in sequence order -> (B*K,).

    A prediction's deviation is divided by its norm, but by no less than RELATIVE_FLOOR times
    the norm of the mean prediction: near-equal predictions (early in training, or equal but
    for rounding: a batched matmul need not round identical rows alike) then score ~0 with a
    bounded gradient, instead of a cosine of rounding noise with a gradient of 1/|deviation|.
    The targets' deviations are about half their mean's norm (cos 0.82 between two views of
    an object), so a predictor that does reproduce them is scored by the plain cosine."""

    def deviations(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, k, x.shape[-1])
        mean = x.mean(dim=1, keepdim=True)
        deviation = x - mean
        floor = RELATIVE_FLOOR * mean.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return (deviation / deviation.norm(dim=-1, keepdim=True).maximum(floor)).flatten(0, 1)

    return (deviations(prediction) * deviations(target)).sum(dim=-1)


def ema_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """Cosine schedule from ``base`` at step 0 to 1 at ``total_steps`` (BYOL, seq-JEPA)."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def count_parameters(module: nn.Module, trainable: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)
