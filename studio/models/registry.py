"""The backbones a user can pick from, with what they need to choose one.

Any other timm model name is accepted too; these are the ones we describe and test.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from functools import lru_cache

from studio.errors import StudioError

DEFAULT_BACKBONE = "tf_efficientnet_lite0"


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    params_m: float  # millions of parameters, ImageNet head included
    input_size: int  # default square input size in pixels
    imagenet_top1: float  # ImageNet-1k top-1 accuracy (%) of the pretrained weights timm ships
    note: str
    bundled: bool = False  # ImageNet weights come with an installed package: works offline

    def to_dict(self) -> dict:
        return asdict(self)


BACKBONES: dict[str, BackboneInfo] = {
    info.name: info
    for info in [
        BackboneInfo(
            "tf_efficientnet_lite0", 4.65, 224, 74.8,
            "Default. Small and fast on a laptop CPU; ImageNet weights bundled, works offline.", True,
        ),
        BackboneInfo(
            "tf_efficientnet_lite1", 5.42, 240, 76.6,
            "A little larger and more accurate than Lite0; weights bundled, works offline.", True,
        ),
        BackboneInfo(
            "tf_efficientnet_lite2", 6.09, 260, 77.5,
            "The most accurate offline choice; about 2x the compute of Lite0.", True,
        ),
        BackboneInfo(
            "efficientnet_b0", 5.29, 224, 77.7,
            "Strong small model; weights downloaded from the Hugging Face hub on first use.",
        ),
        BackboneInfo(
            "resnet50", 25.6, 224, 80.4,
            "The classic; robust to fine-tune, slower on CPU. Hub download.",
        ),
        BackboneInfo(
            "convnext_tiny", 28.6, 224, 82.1,
            "Modern CNN, very good transfer; best with a GPU. Hub download.",
        ),
        BackboneInfo(
            "vit_base_patch16_224", 86.6, 224, 85.1,
            "Vision Transformer (ImageNet-21k pretrained); excellent features, needs a GPU. Hub download.",
        ),
    ]
}


@lru_cache(maxsize=1)
def _timm_names() -> frozenset[str]:
    import timm  # lazy: listing the registry must not load torch

    return frozenset(timm.list_models())


def check_backbone(name: str) -> str:
    """Return the architecture name if timm knows it; otherwise a StudioError listing close names.

    A pretrained tag (`resnet50.a1_in1k`) is allowed: only the architecture part is checked.
    """
    architecture = name.split(".", 1)[0].strip()
    if architecture in _timm_names():
        return name.strip()
    close = difflib.get_close_matches(architecture, sorted(_timm_names()), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise StudioError(
        f"Unknown backbone '{name}'.{hint} Run `studio backbones` for the recommended ones "
        f"(default: {DEFAULT_BACKBONE}); any timm model name works."
    )
