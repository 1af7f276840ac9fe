"""Backbones: the registry users choose from and pretrained-weight resolution (file, bundled, hub)."""

from studio._lazy import lazy_exports

_EXPORTS = {
    "BACKBONES": "studio.models.registry",
    "DEFAULT_BACKBONE": "studio.models.registry",
    "BackboneInfo": "studio.models.registry",
    "check_backbone": "studio.models.registry",
    "WeightsSource": "studio.models.weights",
    "create_backbone": "studio.models.weights",
    "data_config": "studio.models.weights",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
