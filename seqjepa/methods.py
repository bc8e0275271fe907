"""The training methods the evaluation suite compares, sharing encoder, data and probes.

- ``seqjepa``: the model as the paper trains it.
- ``no-action``: seq-JEPA blind to actions (every action zeroed): the paper's ablation, the
  twin that tells what action conditioning adds.
- ``m1``: seq-JEPA with M_tr = 1 (one context view predicts the next; 2 views per sequence).
- ``vicreg``: an invariance-only two-view method (seqjepa/vicreg.py says why VICReg).

The random-encoder baseline needs no training: ``seqjepa-gym eval --random-encoder``.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from seqjepa.model import ModelConfig, SeqJEPA
from seqjepa.vicreg import VICReg

METHODS = ("seqjepa", "no-action", "m1", "vicreg")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def method_model_config(method: str, config: ModelConfig) -> ModelConfig:
    """The architecture ``method`` trains (no-action switches action conditioning off)."""
    check_method(method)
    return dataclasses.replace(config, use_actions=config.use_actions and method != "no-action")


def method_views(method: str, views: int) -> int:
    """Views per training sequence under ``method`` (m1: one context view + the target)."""
    check_method(method)
    return 2 if method == "m1" else views


def build_model(method: str, config: ModelConfig) -> nn.Module:
    """An untrained model of ``method`` (SeqJEPA or VICReg; both offer encode/aggregate/loss)."""
    config = method_model_config(method, config)
    return VICReg(config) if method == "vicreg" else SeqJEPA(config)
