import json

import pytest

from studio.augment import PRESET_NAMES, PRESETS, AugmentConfig, preset
from studio.errors import StudioError


def test_default_config_is_light_preset():
    assert AugmentConfig() == preset("light")
    assert AugmentConfig().preset == "light"


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_round_trips_through_json(name):
    cfg = AugmentConfig.preset_config(name)
    assert cfg.preset == name
    data = json.loads(json.dumps(cfg.to_dict()))
    assert AugmentConfig.from_dict(data) == cfg


def test_presets_are_moderate():
    for values in PRESETS.values():
        assert values["rotate"] <= 30 and values["scale"] >= 0.4 and values["color_jitter"] <= 0.3
    assert preset("randaugment").randaugment_n == 2 and preset("randaugment").randaugment_m == 9
    assert not preset("none").mixing and not preset("light").mixing


def test_preset_overrides_are_applied_and_validated():
    cfg = preset("medium", rotate=5, hflip=0)
    assert (cfg.rotate, cfg.hflip, cfg.scale) == (5.0, 0.0, 0.6)
    with pytest.raises(StudioError, match="rotate"):
        preset("medium", rotate=500)
    with pytest.raises(StudioError, match="Unknown augmentation setting"):
        preset("medium", rotation=5)


def test_from_dict_fills_missing_fields_from_named_preset():
    cfg = AugmentConfig.from_dict({"preset": "medium", "blur": 0.3})
    assert cfg.rotate == 15.0 and cfg.blur == 0.3
    custom = AugmentConfig.from_dict({"preset": "custom", "vflip": 0.5})
    assert custom.vflip == 0.5 and custom.hflip == preset("light").hflip


@pytest.mark.parametrize(
    "data, match",
    [
        ({"preset": "extreme"}, "Unknown augmentation preset"),
        ({"flip": 0.5}, "Unknown augmentation setting"),
        ({"hflip": 1.5}, "between 0 and 1"),
        ({"scale": 0.0}, "scale"),
        ({"color_jitter": 0.9}, "color_jitter"),
        ({"randaugment_m": 31}, "randaugment_m"),
        ({"randaugment_n": 1.5}, "whole number"),
        ({"cutmix": -1}, "cutmix"),
        ({"mix_prob": "often"}, "must be a number"),
        ({"hflip": True}, "must be a number"),
        ({"rotate": float("nan")}, "must be a number"),
    ],
)
def test_from_dict_rejects_bad_settings(data, match):
    with pytest.raises(StudioError, match=match):
        AugmentConfig.from_dict(data)


def test_from_dict_rejects_non_dict():
    with pytest.raises(StudioError, match="JSON object"):
        AugmentConfig.from_dict(["light"])


def test_whole_number_floats_become_ints():
    assert AugmentConfig.from_dict({"randaugment_n": 2.0}).randaugment_n == 2
    assert isinstance(AugmentConfig.from_dict({"randaugment_n": 2.0}).randaugment_n, int)
