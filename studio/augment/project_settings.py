"""A project's saved augmentation (what the Augment tab stores) and the form a training config takes.

The settings live next to the project database as `augment.json`. A training config holds a preset
name when the strengths are exactly a preset, else every strength, so the run's `config.json`
reproduces the augmentation even after the project's file changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.augment.presets import CUSTOM, DEFAULT_PRESET, PRESET_NAMES, AugmentConfig, preset
from studio.durable import atomic_write_text
from studio.errors import StudioError

AUGMENT_FILE = "augment.json"
PROJECT_CHOICE = "project"  # "train with what the Augment tab saved"


def load_project_augment(project_root: str | Path) -> AugmentConfig:
    """The project's saved augmentation, else the default preset."""
    path = Path(project_root) / AUGMENT_FILE
    return _read_settings(path) if path.is_file() else preset(DEFAULT_PRESET)


def _read_settings(path: Path) -> AugmentConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StudioError(f"Cannot read augmentation settings from {path}: {error}. Fix or delete the file, "
                          "or save new settings in the Augment tab.") from error
    return AugmentConfig.from_dict(data)


def save_project_augment(project_root: str | Path, config: AugmentConfig) -> Path:
    """Store `config` as the project's augmentation (written atomically)."""
    path = Path(project_root) / AUGMENT_FILE
    atomic_write_text(path, json.dumps(config.to_dict(), indent=2) + "\n")
    return path


def training_setting(config: AugmentConfig) -> str | dict[str, Any]:
    """The preset name when `config` is exactly that preset, else all its strengths (marked custom)."""
    if config.preset in PRESET_NAMES and preset(config.preset) == config:
        return config.preset
    return {**config.to_dict(), "preset": CUSTOM}


def augment_from_setting(setting: str | dict[str, Any]) -> AugmentConfig:
    """The AugmentConfig a training setting stands for: a preset name or a dict of strengths."""
    if isinstance(setting, dict):
        return AugmentConfig.from_dict(setting)
    if isinstance(setting, str) and setting in PRESET_NAMES:
        return preset(setting)
    raise StudioError(f"Unknown augmentation {setting!r}: use a preset ({', '.join(PRESET_NAMES)}) or a dict "
                      "of strengths (the Augment tab's settings).")


def resolve_augment_choice(choice: str, project_root: str | Path) -> str | dict[str, Any]:
    """A user's augmentation choice as a training setting.

    choice: a preset name, "project" (the Augment tab's saved settings), or a JSON file of strengths.
    """
    if choice in PRESET_NAMES:
        return choice
    if choice == PROJECT_CHOICE:
        return training_setting(load_project_augment(project_root))
    path = Path(choice).expanduser()
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise StudioError(
                f"The augmentation file {path} does not exist; check the path passed to --augment."
            )
        return training_setting(_read_settings(path))
    raise StudioError(
        f"Unknown augmentation {choice!r}: use a preset ({', '.join(PRESET_NAMES)}), "
        f"'{PROJECT_CHOICE}' for the settings saved in the Augment tab, or a .json file of strengths."
    )
