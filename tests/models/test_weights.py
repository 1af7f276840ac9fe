"""Pretrained-weight resolution: user file, bundled package, hub path (through timm's file override)."""

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from studio.errors import StudioError
from studio.models import create_backbone, data_config
from studio.models.weights import BUNDLED_WEIGHTS, bundled_weights_path, load_bundled_state_dict

TINY = "resnet10t"  # a real timm architecture small enough for fast tests


def _imagenet_top5(model: torch.nn.Module, image: np.ndarray) -> list[int]:
    cfg = data_config(model)
    transform = timm.data.create_transform(
        cfg["image_size"], interpolation=cfg["interpolation"], crop_pct=cfg["crop_pct"],
        mean=cfg["mean"], std=cfg["std"],
    )
    with torch.inference_mode():
        logits = model.eval()(transform(Image.fromarray(image).convert("RGB"))[None])
    return logits[0].topk(5).indices.tolist()


def test_bundled_lite0_weights_are_real_imagenet_weights():
    skimage_data = pytest.importorskip("skimage.data")
    model, source = create_backbone("tf_efficientnet_lite0", num_classes=1000)
    assert source.kind == "bundled"
    cat_top5 = _imagenet_top5(model, skimage_data.chelsea())
    coffee_top5 = _imagenet_top5(model, skimage_data.coffee())
    assert 281 <= cat_top5[0] <= 285, cat_top5  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee_top5[0] == 967, coffee_top5  # espresso


@pytest.mark.parametrize("name", sorted(BUNDLED_WEIGHTS))
def test_every_bundled_file_maps_onto_timm_with_matching_shapes(name):
    path = bundled_weights_path(name)
    assert path is not None, f"{BUNDLED_WEIGHTS[name][0]} should be installed"
    model = timm.create_model(name, pretrained=False)
    mapped = load_bundled_state_dict(model, path)
    assert list(mapped) == list(model.state_dict())
    assert all(mapped[k].shape == v.shape for k, v in model.state_dict().items())


def test_bundled_backbone_gets_a_new_head_or_none():
    features, _ = create_backbone("tf_efficientnet_lite0", num_classes=0)
    assert features(torch.zeros(1, 3, 64, 64)).shape == (1, 1280)
    classifier, _ = create_backbone("tf_efficientnet_lite0", num_classes=3)
    assert classifier(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    # The body keeps the pretrained weights when the head is replaced.
    assert torch.equal(features.conv_stem.weight, classifier.conv_stem.weight)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_user_weights_file_is_loaded_and_head_adapted(tmp_path: Path, suffix):
    reference = timm.create_model(TINY, pretrained=False)
    torch.nn.init.constant_(reference.conv1[0].weight, 0.125)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    else:
        torch.save({"state_dict": reference.state_dict()}, path)  # a training checkpoint wrapping it
    model, source = create_backbone(TINY, num_classes=4, weights=path)
    assert source.kind == "file" and source.detail == str(path)
    assert torch.equal(model.conv1[0].weight, reference.conv1[0].weight)
    assert model.get_classifier().out_features == 4


def test_user_weights_file_errors_are_clear(tmp_path: Path):
    with pytest.raises(StudioError, match="does not exist"):
        create_backbone(TINY, num_classes=2, weights=tmp_path / "missing.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StudioError, match="safetensors"):
        create_backbone(TINY, num_classes=2, weights=tmp_path / "notes.txt")
    other = timm.create_model("resnet18", pretrained=False)
    wrong = tmp_path / "resnet18.pth"
    torch.save(other.state_dict(), wrong)
    with pytest.raises(StudioError, match="does not fit backbone"):
        create_backbone(TINY, num_classes=2, weights=wrong)
    # not tensor files under tensor-file names: a plain message, not a traceback or torch's advice to
    # load pickles (which would run their code)
    (tmp_path / "fake.safetensors").write_text("garbage")
    (tmp_path / "photo.pth").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    for fake in ("fake.safetensors", "photo.pth"):
        with pytest.raises(StudioError, match="is not a state_dict of tensors") as caught:
            create_backbone(TINY, num_classes=2, weights=tmp_path / fake)
        assert "weights_only" not in str(caught.value)


def test_hub_path_through_timm_local_file_override(tmp_path: Path):
    reference = timm.create_model(TINY, pretrained=False)
    path = tmp_path / "mirror.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model, source = create_backbone(TINY, num_classes=2, pretrained_cfg_overlay={"file": str(path)})
    assert source.kind == "hub"
    assert str(path) in source.detail
    assert torch.equal(model.conv1[0].weight, reference.conv1[0].weight)


def test_no_weights_anywhere_names_the_three_ways():
    # The test session runs with HF_HUB_OFFLINE=1 and an empty cache for this model: the hub path fails.
    with pytest.raises(StudioError) as info:
        create_backbone(TINY, num_classes=2)
    message = str(info.value)
    assert "--weights" in message and "bundled" in message and "hub" in message
    assert "--no-pretrained" in message


def test_random_weights_only_when_asked():
    model, source = create_backbone(TINY, num_classes=2, pretrained=False)
    assert source.kind == "none"
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_data_config_of_default_backbone():
    model, _ = create_backbone("tf_efficientnet_lite0", num_classes=0)
    cfg = data_config(model)
    assert cfg["image_size"] == 224 and cfg["mean"] == [0.5, 0.5, 0.5] and cfg["interpolation"] == "bicubic"


def test_a_file_that_would_leave_the_network_random_is_refused(tmp_path: Path):
    # timm loads non-strictly when the head is replaced: these all "loaded" before, leaving random weights
    junk = tmp_path / "junk.pth"
    torch.save({"a": torch.zeros(3)}, junk)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    listed = tmp_path / "list.pth"
    torch.save([1, 2, 3], listed)
    junk_safetensors = tmp_path / "junk.safetensors"
    save_file({"x": torch.ones(4)}, str(junk_safetensors))
    for path in (junk, empty, listed, junk_safetensors):
        with pytest.raises(StudioError, match="does not fit backbone"):
            create_backbone(TINY, num_classes=2, weights=path)


def test_weights_of_a_sibling_architecture_are_refused(tmp_path: Path):
    # Lite1 in timm's own layout fills every Lite0 tensor by name and shape; its 90 extra tensors (deeper
    # stages) were dropped without a word: a truncated Lite1, not Lite0
    lite1, _ = create_backbone("tf_efficientnet_lite1", num_classes=0)
    path = tmp_path / "lite1.pth"
    torch.save(lite1.state_dict(), path)
    with pytest.raises(StudioError, match="have no place in this network"):
        create_backbone("tf_efficientnet_lite0", num_classes=2, weights=path)
    with pytest.raises(StudioError, match=r"only \d+ of the network's \d+ tensors"):  # and the other way
        create_backbone("tf_efficientnet_lite1", num_classes=2,
                        weights=_saved(create_backbone("tf_efficientnet_lite0", num_classes=0)[0], tmp_path))
    lite0 = _saved(create_backbone("tf_efficientnet_lite0", num_classes=0)[0], tmp_path)
    model, source = create_backbone("tf_efficientnet_lite0", num_classes=2, weights=lite0)  # its own: fine
    assert source.kind == "file" and model.get_classifier().out_features == 2


def _saved(model: torch.nn.Module, folder: Path) -> Path:
    path = folder / "saved.pth"
    torch.save(model.state_dict(), path)
    return path
