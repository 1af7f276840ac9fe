import pytest
import timm
import torch

from studio.errors import StudioError
from studio.models import BACKBONES, DEFAULT_BACKBONE, check_backbone
from studio.models.groups import block_groups


def test_registry_lists_the_required_backbones():
    for name in [
        "tf_efficientnet_lite0",
        "efficientnet_b0",
        "resnet50",
        "convnext_tiny",
        "vit_base_patch16_224",
    ]:
        assert name in BACKBONES
        assert check_backbone(name) == name
    assert DEFAULT_BACKBONE == "tf_efficientnet_lite0"
    assert BACKBONES[DEFAULT_BACKBONE].bundled


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "efficientnet_b0", "resnet50"])
def test_registry_parameter_counts_match_timm(name):
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    actual = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(actual - BACKBONES[name].params_m) / actual < 0.03


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(StudioError, match="Did you mean: .*resnet50"):
        check_backbone("resnet5O")
    assert check_backbone("resnet50.a1_in1k") == "resnet50.a1_in1k"


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "convnext_tiny", "vit_tiny_patch16_224"])
def test_block_groups_cover_every_parameter_once_with_head_last(name):
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=3)
    groups = block_groups(model)
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in groups[-1]} == {id(p) for p in model.get_classifier().parameters()}
    assert len(groups) >= 4  # stem, several stages, head
