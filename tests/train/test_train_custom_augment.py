"""Custom augmentation strengths (the Augment tab's, a JSON file, or a dict) reach the training pipeline."""

from __future__ import annotations

import json

import pytest
from train_helpers import TINY_BACKBONE, tiny_config

from studio.augment import (
    AugmentConfig,
    preset,
    resolve_augment_choice,
    save_project_augment,
    training_setting,
)
from studio.cli import main
from studio.errors import StudioError
from studio.train import loop, train

CUSTOM = {"preset": "custom", "hflip": 0.0, "vflip": 1.0, "rotate": 20.0, "scale": 0.5, "color_jitter": 0.3,
          "blur": 0.0, "randaugment_n": 0, "randaugment_m": 9.0, "cutmix": 0.5, "mixup": 0.0, "mix_prob": 0.5}


@pytest.fixture
def built_transforms(monkeypatch):
    """Every AugmentConfig the training loop builds its train transform from."""
    seen: list[AugmentConfig] = []
    real = loop.build_train_transform

    def spy(config, *args, **kwargs):
        seen.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(loop, "build_train_transform", spy)
    return seen


def test_dict_of_strengths_trains_with_exactly_those(project, built_transforms):
    events = []
    result = train(project, tiny_config(augment=dict(CUSTOM)), callback=lambda e: events.append(e.to_dict()))
    assert built_transforms and all(c == AugmentConfig.from_dict(CUSTOM) for c in built_transforms)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["config"]["augment"] == CUSTOM  # the run reproduces without the project's file
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any("vertical flip 100%" in m and "rotate ±20°" in m and "CutMix α0.5 on 50% of batches" in m
               for m in logs)


def test_preset_names_still_work_and_cutmix_overrides(project, built_transforms):
    train(project, tiny_config(augment="medium", cutmix=1.0))
    assert built_transforms[0] == preset("medium")


def test_training_setting_keeps_preset_names_readable():
    assert training_setting(preset("heavy")) == "heavy"
    changed = preset("heavy", rotate=5.0)
    setting = training_setting(changed)
    assert setting["preset"] == "custom" and setting["rotate"] == 5.0
    assert AugmentConfig.from_dict(setting) == AugmentConfig(**{**changed.to_dict(), "preset": "custom"})


@pytest.mark.parametrize("bad, message", [
    ("wild", "Unknown augmentation 'wild'"),
    ({"rotate": 999}, "rotate"),
    ({"spin": 1}, "Unknown augmentation setting"),
])
def test_bad_augmentation_is_refused_with_the_fix(bad, message):
    with pytest.raises(StudioError, match=message):
        tiny_config(augment=bad)


def test_project_choice_reads_what_the_augment_tab_saved(project, tmp_path):
    assert resolve_augment_choice("project", project.root) == "light"  # nothing saved yet: the default
    save_project_augment(project.root, AugmentConfig.from_dict(CUSTOM))
    assert resolve_augment_choice("project", project.root) == CUSTOM
    with pytest.raises(StudioError, match="does not exist"):
        resolve_augment_choice(str(tmp_path / "missing.json"), project.root)
    (tmp_path / "broken.json").write_text("{rotate: 5")
    with pytest.raises(StudioError, match="Cannot read augmentation settings from .*broken.json"):
        resolve_augment_choice(str(tmp_path / "broken.json"), project.root)
    with pytest.raises(StudioError, match="'project' for the settings saved in the Augment tab"):
        resolve_augment_choice("strong", project.root)


def test_cli_trains_with_project_settings_and_json_files(project, tmp_path, capsys):
    tiny = ["--backbone", TINY_BACKBONE, "--no-pretrained", "--image-size", "64", "--epochs", "1",
            "--batch-size", "4", "--device", "cpu", "--quiet", "--json"]
    save_project_augment(project.root, AugmentConfig.from_dict(CUSTOM))
    assert main(["train", str(project.root), *tiny, "--augment", "project"]) == 0
    run_dir = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"]
    assert json.loads((tmp_path / run_dir / "config.json").read_text())["config"]["augment"] == CUSTOM

    settings = tmp_path / "strong.json"
    settings.write_text(json.dumps({"preset": "heavy", "rotate": 10}))
    assert main(["train", str(project.root), *tiny, "--augment", str(settings)]) == 0
    run_dir = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"]
    saved = json.loads((tmp_path / run_dir / "config.json").read_text())["config"]["augment"]
    assert saved == {**preset("heavy", rotate=10.0).to_dict(), "preset": "custom"}

    assert main(["train", str(project.root), *tiny, "--augment", "wild"]) != 0
    assert "Unknown augmentation 'wild'" in capsys.readouterr().err
