"""Backbones: the registry users choose from and pretrained-weight resolution (file, bundled, hub)."""

from studio.models.registry import BACKBONES, DEFAULT_BACKBONE, BackboneInfo, check_backbone
from studio.models.weights import WeightsSource, create_backbone, data_config

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "BackboneInfo",
    "WeightsSource",
    "check_backbone",
    "create_backbone",
    "data_config",
]
